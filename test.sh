#!/usr/bin/env bash
# Run every pyrun test, as root: unit tests, integration tests on this kernel,
# the integration tests again inside a pure cgroup v2 qemu VM, and the Kubernetes stage
# (tests/kube: a real kubelet and control plane on pyrun); then a leak check.
# Static checks first (scripts/lint.sh: ruff, mypy strict on the pure packages, import-linter).
#   ./test.sh                 everything
#   ./test.sh --no-vm         skip the qemu VM stage
#   ./test.sh --no-kube       skip the Kubernetes stage (and its one-time build of the binaries)
#   ./test.sh -- PYTEST_ARGS  pass arguments to the host pytest run
set -euo pipefail
cd "$(dirname "$0")"
VM=1
KUBE=1
PYTEST_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --no-vm) VM=0 ;;
        --no-kube) KUBE=0 ;;
        --) shift; PYTEST_ARGS=("$@"); break ;;
        *) PYTEST_ARGS+=("$1") ;;
    esac
    shift
done
./setup.sh --no-demo
# Test-only Debian packages: a real registry, skopeo to push to it, umoci as the unpacking peer,
# Go and spdystream for the SPDY streaming peer (tests/tools/spdyclient), strace to show the fast path
# starts one Python per create and exec (tests/integration/test_fastpath.py).
had_registry=$(dpkg-query -W -f='${Status}' docker-registry 2>/dev/null | grep -c "ok installed" || true)
scripts/apt-ensure.sh docker-registry skopeo umoci golang-go golang-github-docker-spdystream-dev strace curl
if [ "$had_registry" = 0 ] && [ -d /run/systemd/system ]; then
    # we installed it: the tests start their own registry on 127.0.0.1, the packaged service must not run
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
status=0
if [ "$KUBE" = 1 ]; then
    # The Kubernetes binaries build (first run on a machine only; cached under /var/cache/pyrun-tests)
    # while the other stages run.
    kube_log=$(mktemp /tmp/pyrun-kube-build.XXXXXX.log)
    tests/kube/build.sh >"$kube_log" 2>&1 &
    kube_build=$!
fi
scripts/lint.sh || status=$?
.venv/bin/python -m pytest -q -p no:cacheprovider tests/unit tests/integration "${PYTEST_ARGS[@]}" || status=$?
if [ "$VM" = 1 ] && [ -x tests/vm/run-tests.sh ]; then
    tests/vm/run-tests.sh || status=$?
fi
if [ "$KUBE" = 1 ]; then
    if wait "$kube_build"; then
        kube_bin=$(tail -n 1 "$kube_log")
        PYRUN_KUBE_BIN="$kube_bin" .venv/bin/python -m pytest -q -p no:cacheprovider tests/kube \
            "tests/integration/test_labs.py::test_lab[12-kubelet]" || status=$?
    else
        echo "kube stage: building the Kubernetes binaries failed:" >&2
        tail -n 40 "$kube_log" >&2
        status=1
    fi
    rm -f "$kube_log"
fi
scripts/leak-check.sh || status=$?
exit $status
