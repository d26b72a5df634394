#!/usr/bin/env bash
# Run a command as root in a pure cgroup v2 Debian 12 guest (qemu, TCG) and return its exit status.
#
# Usage: tests/vm/run.sh [--timeout SECONDS] [--memory MB] [--cpus N] -- COMMAND...
#   One COMMAND word is a bash script line (run.sh -- 'cat a; ls b'); several words are one
#   command with its arguments (run.sh -- python3 -m pytest -m integration tests/integration).
# The command runs in /srv/pyrun, a copy of this checkout made in the guest at boot (with the
# cffi module and pause binary built into the image), with /opt/pyrun-venv/bin first on PATH.
# The checkout itself is mounted read-write at /mnt/pyrun ($PYRUN_VM_SHARE) for results.
# Exit status: the command's; 124 on timeout (qemu is killed); 125 when the guest broke down.
set -euo pipefail
# shellcheck source=tests/vm/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '2,11s/^# \{0,1\}//p' "$0" >&2; exit 2; }

timeout_s=1800 memory_mb=2048 cpus=2
while [ $# -gt 0 ]; do
    case "$1" in
        --timeout) timeout_s=${2:?--timeout needs seconds}; shift 2 ;;
        --memory) memory_mb=${2:?--memory needs MB}; shift 2 ;;
        --cpus) cpus=${2:?--cpus needs a number}; shift 2 ;;
        --) shift; break ;;
        -h|--help) usage ;;
        *) log "unknown option $1"; usage ;;
    esac
done
[ $# -gt 0 ] || usage
[[ "$timeout_s" =~ ^[0-9]+$ ]] || die "--timeout wants whole seconds, got '$timeout_s'"
[ "$(id -u)" -eq 0 ] || die "run.sh needs root (image build, 9p passthrough)"

image=$("$VM_DIR/build-image.sh")
ctl=$(mktemp -d /tmp/pyrun-vm.XXXXXX)
qemu_pid=""
cleanup() {
    if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
        kill "$qemu_pid" 2>/dev/null || true
        wait "$qemu_pid" 2>/dev/null || true
    fi
    rm -rf "$ctl"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cp "$VM_DIR/guest-run" "$ctl/guest-run"
checkout_tar >"$ctl/checkout.tar"   # one sequential 9p read in the guest instead of one per file
if [ $# -eq 1 ]; then
    printf '%s\n' "$1" >"$ctl/cmd"
else
    printf '%q ' "$@" >"$ctl/cmd"
    echo >>"$ctl/cmd"
fi

qemu=(
    qemu-system-x86_64 -name pyrun-vm -M pc -accel tcg,thread=multi -cpu max -m "$memory_mb" -smp "$cpus"
    -nodefaults -no-user-config -nographic -no-reboot
    -bios "$QBOOT_ROM" -kernel "$image/vmlinux" -initrd "$image/initramfs.cpio"
    -append "cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1 console=ttyS0 panic=-1 quiet ${PYRUN_VM_KERNEL_ARGS:-}"
    -serial stdio
    -drive "file=$image/disk.img,if=virtio,format=raw,snapshot=on,cache=unsafe"
    -fsdev "local,id=src,path=$REPO_DIR,security_model=passthrough"
    -device virtio-9p-pci,fsdev=src,mount_tag=pyrun
    -fsdev "local,id=ctl,path=$ctl,security_model=passthrough"
    -device virtio-9p-pci,fsdev=ctl,mount_tag=pyrunctl
)
log "booting $(cat "$image/kernel-release") (timeout ${timeout_s} s)"
started=$SECONDS
# timeout(1) is our child and kills qemu, its child, by PID; -k escalates to SIGKILL.
timeout -k 10 "$timeout_s" "${qemu[@]}" </dev/null &
qemu_pid=$!
rc=0
wait "$qemu_pid" || rc=$?
qemu_pid=""
elapsed=$((SECONDS - started))
echo   # the console's last line ("reboot: Power down") has no newline

if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    log "error: the guest did not finish within ${timeout_s} s; qemu was killed"
    exit 124
fi
if [ ! -s "$ctl/status" ]; then
    log "error: the guest stopped without reporting an exit status (qemu exit code $rc, ${elapsed} s)"
    exit 125
fi
status=$(cat "$ctl/status")
log "guest command exited with status $status after ${elapsed} s"
exit "$status"
