#!/usr/bin/env bash
# Run the integration tests as root inside the pure cgroup v2 test VM (what ./test.sh calls).
# Usage: tests/vm/run-tests.sh [PYTEST_ARGS...]     default: the cgroup-v2-relevant files below
# The guest runs under TCG (15-30x slower), so by default it runs the integration tests whose
# outcome depends on the cgroup version or on the kernel's pod primitives: cgroups, devices, pod
# lifecycle/status/failures, security, the monitor, the CRI server, storage, bridge networking.
# Image unpacking, pulls, CNI plugins, Prometheus, deep trees, labs and the streaming peers
# don't touch cgroups differently on v2 and run on the host only. `tests/vm/run-tests.sh
# tests/integration` runs everything.
# The whole VM run is limited to $PYRUN_VM_TIMEOUT seconds (default 2700); qemu is killed after.
set -euo pipefail
cd "$(dirname "$0")/../.."
VM_FOCUS=(test_cgroups_real test_pod_cgroups test_devices test_pod_lifecycle test_pod_status
          test_pod_failures test_security_breakout test_monitor_handoff test_cri_server
          test_storage_reboot test_net_pod test_pod_cli test_cri_terminals)
if [ $# -eq 0 ]; then
    VM_FOCUS=("${VM_FOCUS[@]/%/.py}")
    set -- "${VM_FOCUS[@]/#/tests/integration/}"
fi
tests/tools/spdyclient/build.sh   # the guest has no Go: it runs the SPDY test peer built here (.cache/)
exec tests/vm/run.sh --timeout "${PYRUN_VM_TIMEOUT:-2700}" -- python3 -m pytest -q -p no:cacheprovider "$@"
