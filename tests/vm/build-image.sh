#!/usr/bin/env bash
# Build (or reuse) the pure cgroup v2 test VM: a Debian 12 minbase ext4 disk, the uncompressed
# Debian kernel (vmlinux) and a busybox initramfs that loads virtio/ext4/9p and switch_roots.
#
# Usage: tests/vm/build-image.sh [--force]
# Prints the image directory (disk.img, vmlinux, initramfs.cpio, kernel-release) on stdout.
# Cached under $PYRUN_VM_CACHE (default /var/cache/pyrun-vm), keyed by a hash of every input,
# so a second run returns at once. No loop device and no mount is used: the disk is populated
# with `mkfs.ext4 -d`. Needs root (debootstrap, chroot).
set -euo pipefail
# shellcheck source=tests/vm/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SUITE=bookworm
VENV=/opt/pyrun-venv          # in the guest
GUEST_SRC=/srv/pyrun          # where the guest builds and runs the project
GUEST_PACKAGES=python3,python3-venv,python3-dev,gcc,libc6-dev,libcap-dev,libffi-dev,busybox-static,iproute2,nftables,procps,kmod,wget,curl,containernetworking-plugins,prometheus
INITRAMFS_MODULES="virtio_pci virtio_blk crc32c_generic ext4 9pnet_virtio 9p"
EXTRAS="test cri"
# Kernel module directories no test guest needs (keeps the disk ≈ 250 MB smaller).
DROP_MODULE_DIRS="drivers/gpu drivers/media drivers/infiniband drivers/iio drivers/usb drivers/net/wireless drivers/net/ethernet sound"

exec 3>&1 1>&2   # only the image directory goes to stdout (fd 3); all chatter to stderr
force=0
[ "${1:-}" = "--force" ] && force=1
[ "$(id -u)" -eq 0 ] || die "build-image.sh needs root (debootstrap and chroot)"
ensure_host_tools

mirror=$("$HOST_PYTHON" "$VM_DIR/vmtool.py" mirror /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)
kernel_pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$kernel_pkg" ] || die "apt-cache does not know linux-image-amd64 (run apt-get update)"
kernel_ver=$(apt-cache policy "$kernel_pkg" | awk '/Candidate:/ {print $2}')
# shellcheck disable=SC2086 # EXTRAS is a list of words
requirements=$("$HOST_PYTHON" "$VM_DIR/vmtool.py" requirements "$REPO_DIR/pyproject.toml" $EXTRAS)

# Two layers: the base (Debian, kernel, initramfs, venv: slow, ≈ 60 s) is keyed by everything but the
# project's C sources; the image (the project's C parts built into a copy of the base, ≈ 15 s) adds them.
base_key=$(
    {
        printf '%s\n' "$SUITE" "$mirror" "$kernel_pkg=$kernel_ver" "$GUEST_PACKAGES" "$INITRAMFS_MODULES" \
            "$DROP_MODULE_DIRS" "$requirements"
        cat "$VM_DIR/build-image.sh" "$VM_DIR/lib.sh" "$VM_DIR/vmtool.py" "$VM_DIR/guest-init"
    } | sha256sum | cut -c1-16
)
key=$(
    {
        echo "$base_key"
        cat "$REPO_DIR/pyproject.toml" "$REPO_DIR/setup.py"
        find "$REPO_DIR/csrc" -type f -not -name '*.pyc' | LC_ALL=C sort | xargs cat
    } | sha256sum | cut -c1-16
)
base="$CACHE_DIR/base/$base_key"
out="$CACHE_DIR/images/$key"

mkdir -p "$CACHE_DIR/images" "$CACHE_DIR/base"
exec 9>"$CACHE_DIR/lock"
flock 9   # one build at a time; a second caller waits and then finds the image ready

if [ -f "$out/ready" ] && [ "$force" -eq 0 ]; then
    log "image $key is cached"
    echo "$out" >&3
    exit 0
fi

work=$(mktemp -d "$CACHE_DIR/build.XXXXXX")
root="$work/root"
cleanup() {
    # debootstrap mounts /proc and /sys in the target and may leave them on failure.
    local m
    for m in $(findmnt -rn -o TARGET | grep -F "$work/" | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m"
    done
    if findmnt -rn -o TARGET | grep -qF "$work/"; then
        log "warning: mounts remain under $work; not deleting it"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
start=$SECONDS

in_guest() {   # run a command in the target root with a clean environment (no host PIP_* settings)
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 PIP_DISABLE_PIP_VERSION_CHECK=1 \
        chroot "$root" "$@"
}

build_base() {
    log "debootstrap $SUITE from $mirror"
    mkdir -p "$CACHE_DIR/debs"
    debootstrap --variant=minbase --components=main --include="$GUEST_PACKAGES" --cache-dir="$CACHE_DIR/debs" \
        "$SUITE" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
        || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
    log "debootstrap done after $((SECONDS - start)) s"

    log "kernel $kernel_pkg $kernel_ver"
    mkdir -p "$CACHE_DIR/kernel-debs" "$work/kernel"
    deb=$(ls "$CACHE_DIR/kernel-debs/${kernel_pkg}_"*.deb 2>/dev/null | head -n 1 || true)
    if [ -z "$deb" ] || [ "$(dpkg-deb -f "$deb" Version)" != "$kernel_ver" ]; then
        rm -f "$CACHE_DIR/kernel-debs/"*.deb
        (cd "$CACHE_DIR/kernel-debs" && apt-get download -q "$kernel_pkg=$kernel_ver" >/dev/null 2>&1) \
            || die "apt-get download $kernel_pkg=$kernel_ver failed"
        deb=$(ls "$CACHE_DIR/kernel-debs/${kernel_pkg}_"*.deb)
    fi
    dpkg-deb -x "$deb" "$work/kernel"
    release=$(basename "$(ls -d "$work/kernel/lib/modules/"*)")
    for d in $DROP_MODULE_DIRS; do rm -rf "$work/kernel/lib/modules/$release/kernel/$d"; done
    mkdir -p "$root/usr/lib/modules"
    cp -a "$work/kernel/lib/modules/$release" "$root/usr/lib/modules/"
    in_guest depmod -a "$release"
    "$HOST_PYTHON" "$VM_DIR/vmtool.py" extract-vmlinux "$work/kernel/boot/vmlinuz-$release" "$work/vmlinux"

    log "python venv with the project's dependencies ($EXTRAS extras)"
    wheels="$CACHE_DIR/wheels/$(printf '%s\n' "$requirements" | sha256sum | cut -c1-16)"
    if [ ! -f "$wheels/requirements.txt" ]; then
        mkdir -p "$wheels.tmp"
        printf '%s\n' "$requirements" 'setuptools>=68' wheel >"$wheels.tmp/requirements.txt"
        # The host's Debian python is the guest's python (3.11, same glibc): its wheels fit the guest.
        "$HOST_PYTHON" -m pip wheel -q -w "$wheels.tmp" -r "$wheels.tmp/requirements.txt" >"$work/pip-wheel.log" 2>&1 \
            || { tail -n 30 "$work/pip-wheel.log" >&2; die "pip wheel failed"; }
        mv "$wheels.tmp" "$wheels"
    fi
    cp -r "$wheels" "$root/tmp/wheels"
    in_guest /usr/bin/python3 -m venv "$VENV"
    in_guest "$VENV/bin/pip" install -q --no-index --find-links /tmp/wheels -r /tmp/wheels/requirements.txt \
        || die "pip install in the guest image failed"
    rm -rf "$root/tmp/wheels"

    log "trimming and configuring the guest"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
        "$root"/usr/share/man/* "$root"/usr/share/locale/*
    echo pyrun-vm >"$root/etc/hostname"
    printf '127.0.0.1 localhost\n::1 localhost\n127.0.1.1 pyrun-vm\n' >"$root/etc/hosts"
    : >"$root/etc/resolv.conf"
    mkdir -p "$root/mnt/pyrun"

    log "initramfs"
    initrd="$work/initramfs"
    mkdir -p "$initrd"/{bin,dev,proc,sys,newroot}
    cp "$root/bin/busybox" "$initrd/bin/busybox"
    cp "$VM_DIR/guest-init" "$initrd/init"
    chmod 755 "$initrd/init"
    mknod -m 600 "$initrd/dev/console" c 5 1
    moddir="$root/usr/lib/modules/$release"
    # shellcheck disable=SC2086
    "$HOST_PYTHON" "$VM_DIR/vmtool.py" modules "$moddir" $INITRAMFS_MODULES >"$initrd/modules.list"
    while read -r m; do
        mkdir -p "$initrd/lib/modules/$(dirname "$m")"
        cp "$moddir/$m" "$initrd/lib/modules/$m"
    done <"$initrd/modules.list"
    (cd "$initrd" && find . | cpio -o -H newc --quiet) >"$work/initramfs.cpio"

    mkdir -p "$work/base"
    mv "$root" "$work/vmlinux" "$work/initramfs.cpio" "$work/base/"
    echo "$release" >"$work/base/kernel-release"
    touch "$work/base/ready"
    rm -rf "$base"
    mv "$work/base" "$base"
    log "base $base_key built in $((SECONDS - start)) s"
}

if [ ! -f "$base/ready" ] || [ "$force" -eq 1 ]; then
    build_base
fi

log "copying base $base_key"
touch "$base"   # recently used: kept by the pruning below
cp -a "$base/root" "$root"
log "building the project's C parts in the image (cffi module, pause)"
mkdir -p "$root$GUEST_SRC"
checkout_tar | tar -C "$root$GUEST_SRC" -xf -
in_guest sh -c "cd $GUEST_SRC && $VENV/bin/pip install -q --no-index --no-deps --no-build-isolation -e ." \
    >"$work/pip-project.log" 2>&1 || { tail -n 30 "$work/pip-project.log" >&2; die "building the project in the image failed"; }
# guest-run refreshes $GUEST_SRC from the 9p share at every boot and puts these build products back.
(cd "$root$GUEST_SRC" && find src \( -name '*.so' -o -path 'src/pyrun/bin/*' \) -type f -print0 \
    | tar --null -cf "$root/opt/pyrun-artifacts.tar" -T -)

log "ext4 disk image"
size_mb=$(( $(du -sm "$root" | cut -f1) + 2048 ))
mkfs.ext4 -q -F -L pyrun-root -d "$root" "$work/disk.img" "${size_mb}M" >/dev/null

mkdir -p "$work/out"
mv "$work/disk.img" "$work/out/"
cp "$base/vmlinux" "$base/initramfs.cpio" "$base/kernel-release" "$work/out/"
touch "$work/out/ready"
rm -rf "$out"
mv "$work/out" "$out"
# Keep the two newest of each; older keys are for inputs that changed.
for d in images base; do
    ls -1dt "$CACHE_DIR/$d/"*/ 2>/dev/null | tail -n +3 | xargs -r rm -rf
done
log "image $key built in $((SECONDS - start)) s"
echo "$out" >&3
