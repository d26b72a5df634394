#!/usr/bin/env bash
# The pyrun demo: build a busybox image offline, import it, run a two-container pod,
# look at it from the outside and the inside, then stop and remove it.
# Needs no network. Run as root after ./setup.sh --no-demo (./setup.sh runs it for you).
set -euo pipefail
cd "$(dirname "$0")/.."
PYRUN=${PYRUN:-.venv/bin/pyrun}
ROOT=${PYRUN_ROOT:-/run/pyrun}
export PYRUN_ROOT=$ROOT PYRUN_NETWORK=${PYRUN_NETWORK:-none}
WORK=$(mktemp -d /tmp/pyrun-demo.XXXXXX)
cleanup() {
    "$PYRUN" pod rm -f demo >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "Build the demo image (busybox-static, OCI layout) and import it"
show python3 scripts/build-demo-image.py "$WORK/layout"
show "$PYRUN" image import "$WORK/layout" pyrun/demo:latest
show "$PYRUN" image ls

"$PYRUN" pod rm -f demo >/dev/null 2>&1 || true
step "Create the pod; --explain prints every Linux primitive as a shell command"
show "$PYRUN" --explain pod create examples/demo.yaml
sleep 2

step "The pod from the outside"
show "$PYRUN" pod ls
"$PYRUN" pod inspect demo > "$WORK/inspect.json"
python3 - "$WORK/inspect.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"pod {d['name']}: QoS {d['qos']}, pause pid {d['pause']['pid']}")
for kind, ns in d["namespaces"].items():
    print(f"  {kind:4} namespace pinned at {ns['path']} (inode {ns['inode']})")
for c in d["containers"]:
    print(f"  container {c['name']}: pid {c['pid']}, {c['state']}, cgroup {c['cgroup']['path'] if c['cgroup'] else '-'}")
PY
show "$PYRUN" stats demo

step "The pod from the inside"
show "$PYRUN" exec demo reader -- ps -o pid,user,args
show "$PYRUN" exec demo reader -- hostname
show "$PYRUN" exec demo reader -- tail -n 2 /data/ticks
show "$PYRUN" exec demo reader -- sh -c 'mount | head -n 3; echo "no writing here:"; echo x > /data/ticks || true'
show "$PYRUN" logs demo writer

step "Stop (SIGTERM, grace period, SIGKILL) and remove"
show "$PYRUN" pod stop demo
printf '$ %s\n' "$PYRUN pod inspect demo | python3 -c '…print each container's state and exit code…'"
"$PYRUN" pod inspect demo | python3 -c 'import json,sys; [print(c["name"], c["state"], "exit code", c["exit_code"], c["reason"]) for c in json.load(sys.stdin)["containers"]]'
show "$PYRUN" logs demo writer
show "$PYRUN" pod rm demo
printf '\nDone. Try it yourself: sudo pyrun --help, and the labs in docs/labs/.\n'
