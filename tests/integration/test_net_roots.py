"""Two state roots side by side in one node network namespace (issue 15 item 7).

`pyrun --root B gc` used to delete the veths of root A's pods (and the shared bridge),
and both roots handed out 10.88.0.2. Here root A's create is killed right after its pod
got its network; root B's gc must leave A's veth, address and hostPort alone, A's gc
must clean only A's, and the bridge goes only when B's pod, the last one, is removed.
Everything runs through the CLI inside `unshare --net` (the host's network is never touched).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import DEMO_IMAGE, REPO, Pyrun, _processes_under, pod_manifest

from pyrun.linux.mounts import mounts_under

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)")

SCRIPT = r"""
set -e
ip link set lo up
NS=$(stat -L -c %i /proc/self/ns/net)
veths() { ip -o link show type veth | wc -l; }
bridges() { ip -o link show type bridge | wc -l; }
rules() { nft list table ip pyrun 2>/dev/null | grep -c 'dnat to' || true; }
owners() { nft list table ip pyrun 2>/dev/null | grep -o 'owner [0-9a-f]*' | sort -u | wc -l || true; }
ipof() { $1 pod inspect $2 2>/dev/null | python3 -c 'import json,sys; print((json.load(sys.stdin).get("network") or {}).get("ip") or "")' || true; }
reaches() { /bin/busybox ping -c 1 -W 2 "$1" >/dev/null 2>&1 && echo yes || echo no; }

PYRUN_FAULT=network:sleep:120 $PA pod create "$SPEC_A" >/dev/null 2>&1 &
CREATOR=$!
IPA=""
for i in $(seq 1 300); do IPA=$(ipof "$PA" net-a); [ -n "$IPA" ] && break; sleep 0.1; done
$PB pod create "$SPEC_B" >/dev/null
IPB=$(ipof "$PB" net-b)
echo "ips $IPA $IPB"
kill -9 $CREATOR; wait $CREATOR || true
echo "crashed: veths $(veths) rules $(rules) owners $(owners)"
$PB gc >/dev/null
echo "after B gc: veths $(veths) rules $(rules) bridges $(bridges) a $(reaches $IPA) b $(reaches $IPB)"
$PA gc >/dev/null
echo "after A gc: veths $(veths) rules $(rules) bridges $(bridges) b $(reaches $IPB)"
$PB pod rm -f net-b >/dev/null
$PB gc >/dev/null
RECORDS=$(ls "${PYRUN_NET_STATE_DIR:-/run/pyrun-net}" 2>/dev/null | grep -c "^$NS-" || true)
echo "after B rm: veths $(veths) bridges $(bridges) tables $(nft list tables | grep -c pyrun || true) records $RECORDS"
"""


@pytest.fixture
def root_b(demo_layout, cgroup_parent):
    """A second, fresh pyrun instance (state root + data root) with the demo image."""
    base = Path(f"/tmp/pyrun-netb-{secrets.token_hex(3)}")
    runner = Pyrun(base / "run", cgroup_parent, data_root=base / "lib")
    runner("image", "import", str(demo_layout), DEMO_IMAGE)
    try:
        yield runner
    finally:
        for p in runner.pods():
            runner("pod", "rm", "-f", p["id"], check=False)
        runner("gc", check=False)
        left, procs = mounts_under(base), _processes_under(base)
        shutil.rmtree(base, ignore_errors=True)
        assert not left and not procs, f"left behind: mounts {left}, processes {procs}"


def _spec(tmp_path: Path, name: str, host_port: int) -> str:
    path = tmp_path / f"{name}.json"
    containers = [{"name": "c", "command": ["sleep", "1000"],
                   "ports": [{"containerPort": 80, "hostPort": host_port}]}]
    path.write_text(json.dumps(pod_manifest(name, containers, terminationGracePeriodSeconds=1)))
    return str(path)


def _bridged(runner: Pyrun) -> str:
    argv = runner.argv()
    argv[argv.index("--network") + 1] = "bridge"
    return " ".join(argv)


def test_gc_of_one_root_leaves_the_other_roots_pod_network_alone(pyrun, root_b, tmp_path):
    env = {"PA": _bridged(pyrun), "PB": _bridged(root_b), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
           "SPEC_A": _spec(tmp_path, "net-a", 18093), "SPEC_B": _spec(tmp_path, "net-b", 18094)}
    p = subprocess.run(["unshare", "--net", "bash", "-c", SCRIPT], capture_output=True, text=True,
                       env=env, timeout=300, cwd=REPO)
    out = p.stdout
    assert p.returncode == 0, out + p.stderr
    ips = next(line for line in out.splitlines() if line.startswith("ips ")).split()[1:]
    assert len(ips) == 2 and ips[0] != ips[1] and all(ip.startswith("10.88.") for ip in ips), out
    assert "crashed: veths 2 rules 2 owners 2" in out, out
    assert "after B gc: veths 2 rules 2 bridges 1 a yes b yes" in out, out  # A's pod is not B's to judge
    assert "after A gc: veths 1 rules 1 bridges 1 b yes" in out, out  # A cleans only its own
    assert "after B rm: veths 0 bridges 0 tables 0 records 0" in out, out  # nothing attached: all gone
