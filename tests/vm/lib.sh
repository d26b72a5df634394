# Shared by build-image.sh and run.sh (sourced, not executed).
# shellcheck shell=bash

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$VM_DIR/../.." && pwd)
CACHE_DIR=${PYRUN_VM_CACHE:-/var/cache/pyrun-vm}
HOST_PYTHON=/usr/bin/python3          # Debian's python: the same 3.11 the guest gets
QBOOT_ROM=/usr/share/qemu/qboot.rom   # shipped by qemu-system-data

log() { printf 'pyrun-vm: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ensure_host_tools: apt-get install what the harness needs on the host, quietly, only when missing.
ensure_host_tools() {
    local -A need=(
        [qemu-system-x86_64]=qemu-system-x86 [qemu-img]=qemu-utils [debootstrap]=debootstrap
        [mkfs.ext4]=e2fsprogs [cpio]=cpio [timeout]=coreutils
    )
    local missing=() cmd
    for cmd in "${!need[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
    done
    [ -r "$QBOOT_ROM" ] || missing+=(qemu-system-data)
    [ -x "$HOST_PYTHON" ] || missing+=(python3)
    "$HOST_PYTHON" -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing host packages (${missing[*]}); install them or run as root"
    log "installing host packages: ${missing[*]}"
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}")
    "${apt[@]}" >/dev/null || { apt-get update -q >/dev/null && "${apt[@]}" >/dev/null; } \
        || die "apt-get install ${missing[*]} failed"
}

# checkout_tar: write the checkout as a tar stream on stdout, without what the host built or
# cached (venv, C build products, egg-info); __pycache__ stays: the guest's python has the same magic.
checkout_tar() {
    tar -C "$REPO_DIR" -cf - --exclude=./.git --exclude=./.venv --exclude='*.so' --exclude=./src/pyrun/bin/pause \
        --exclude='*.egg-info' --exclude=./build --exclude=./.pytest_cache --exclude=./.hypothesis .
}
