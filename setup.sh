#!/usr/bin/env bash
# pyrun set-up on a fresh Debian 12 machine, as root:
#   ./setup.sh            install everything, build the demo image, run the demo pod
#   ./setup.sh --no-demo  install everything only (what ./test.sh and the test VM use)
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
DEMO=1
[ "${1:-}" = "--no-demo" ] && DEMO=0

if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: run me as root (pyrun makes namespaces, mounts and cgroups)" >&2
    exit 1
fi

# 1. Debian packages: compilers and headers for the cffi module and the static pause binary,
#    libcap-dev for python-prctl, busybox-static for the demo image, iproute2/nftables for pod networking,
#    containernetworking-plugins for `--network cni` (lab 9; the default bridge network does not need it).
scripts/apt-ensure.sh python3 python3-venv python3-dev gcc libc6-dev libffi-dev libcap-dev libseccomp2 \
    busybox-static iproute2 nftables containernetworking-plugins
# Prometheus for lab 10 and the metrics tests, which start their own on 127.0.0.1: the packaged service
# is neither started nor enabled, and the recommended node-exporter is not installed.
scripts/apt-ensure.sh --no-services prometheus

# 2. A virtualenv with pyrun and its Python dependencies (re-installed when the build inputs change).
PY=/usr/bin/python3
stamp_inputs=$(cat pyproject.toml setup.py csrc/* | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.pyrun-stamp 2>/dev/null)" != "$stamp_inputs" ] \
        || [ ! -x src/pyrun/bin/pause ] || ! .venv/bin/python -c 'import pyrun._syscalls' 2>/dev/null; then
    echo "==> python venv in $HERE/.venv"
    [ -x .venv/bin/python ] || "$PY" -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check --upgrade pip setuptools wheel
    .venv/bin/pip install -q --disable-pip-version-check -e '.[test,cri]'
    echo "$stamp_inputs" > .venv/.pyrun-stamp
fi
# Byte-compile once: every pyrun command and container start is a fresh Python process.
.venv/bin/python -m compileall -q src >/dev/null
ln -sf "$HERE/.venv/bin/pyrun" /usr/local/bin/pyrun

# 3. The demo image, built offline from busybox-static, imported into the image store.
if [ "$DEMO" = 1 ]; then
    exec "$HERE/scripts/demo.sh"
fi
