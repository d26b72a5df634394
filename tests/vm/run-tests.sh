#!/usr/bin/env bash
# Run the integration tests as root inside the pure cgroup v2 test VM (what ./test.sh calls).
# Usage: tests/vm/run-tests.sh [PYTEST_ARGS...]     default: tests/integration
# The whole VM run is limited to $PYRUN_VM_TIMEOUT seconds (default 2700); qemu is killed after.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -gt 0 ] || set -- tests/integration
tests/tools/spdyclient/build.sh   # the guest has no Go: it runs the SPDY test peer built here (.cache/)
exec tests/vm/run.sh --timeout "${PYRUN_VM_TIMEOUT:-2700}" -- python3 -m pytest -q -p no:cacheprovider "$@"
