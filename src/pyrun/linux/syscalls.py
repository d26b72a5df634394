"""Thin, typed wrappers over the Linux primitives a container is built from.

This module is the only importer of the cffi extension (pyrun._syscalls) and the
single place where mount/namespace/process side effects happen, so it is also
where explain mode speaks: every wrapper emits the equivalent shell command
(pyrun.explain) just before it acts.

Failures raise pyrun.errors.SyscallError, an OSError subclass that keeps errno
and the path(s), e.g. SyscallError(EINVAL, "pivot_root", "/rootfs").
"""
from __future__ import annotations

import os
import signal

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a CLI command's start-up)
if TYPE_CHECKING:
    from typing import Iterable

from pyrun import explain
from pyrun.errors import SyscallError

try:  # the extension exists only after a build (pip install)
    from pyrun._syscalls import ffi as _ffi, lib as _lib
except ImportError:  # pragma: no cover - exercised only on an unbuilt tree
    _ffi = _lib = None

# Namespace flags (clone(2), unshare(2), setns(2)).
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

NAMESPACE_FLAGS = {
    "mnt": CLONE_NEWNS,
    "cgroup": CLONE_NEWCGROUP,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "user": CLONE_NEWUSER,
    "pid": CLONE_NEWPID,
    "net": CLONE_NEWNET,
}
_UNSHARE_OPTION = {"mnt": "--mount", "cgroup": "--cgroup", "uts": "--uts", "ipc": "--ipc",
                   "user": "--user", "pid": "--pid", "net": "--net"}

# Mount flags (mount(2)).
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

_FLAG_OPTIONS = [(MS_RDONLY, "ro"), (MS_NOSUID, "nosuid"), (MS_NODEV, "nodev"), (MS_NOEXEC, "noexec"),
                 (MS_RELATIME, "relatime"), (MS_STRICTATIME, "strictatime")]


def _need_lib():
    if _lib is None:
        raise RuntimeError("pyrun._syscalls is not built: install pyrun with pip (see README)")
    return _lib


def _check(ret: int, call: str, path: str | None = None, path2: str | None = None, hint: str = "") -> None:
    if ret != 0:
        raise SyscallError.from_errno(_ffi.errno, call, path, path2, hint)


def _c(s: str | None):
    return _ffi.NULL if s is None else os.fsencode(s)


# --- mounts --------------------------------------------------------------------------------------

def describe_mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> str:
    """Render mount(2) arguments as the mount(8) command line (pure, for explain and tests)."""
    if flags & (MS_PRIVATE | MS_SLAVE | MS_SHARED) and not flags & MS_BIND:
        kind = "private" if flags & MS_PRIVATE else "slave" if flags & MS_SLAVE else "shared"
        rec = "r" if flags & MS_REC else ""
        return explain.argv("mount", f"--make-{rec}{kind}", target)
    if flags & MS_MOVE:
        return explain.argv("mount", "--move", source, target)
    opts = [name for bit, name in _FLAG_OPTIONS if flags & bit]
    if flags & MS_BIND and flags & MS_REMOUNT:
        return explain.argv("mount", "-o", ",".join(["remount", "bind"] + opts), target)
    if flags & MS_BIND:
        words = ["mount", "--rbind" if flags & MS_REC else "--bind"]
        if opts:
            words += ["-o", ",".join(opts)]
        return explain.argv(*words, source, target)
    if flags & MS_REMOUNT:
        return explain.argv("mount", "-o", ",".join(["remount"] + opts + ([data] if data else [])), target)
    words = ["mount", "-t", fstype or "none"]
    all_opts = opts + ([data] if data else [])
    if all_opts:
        words += ["-o", ",".join(all_opts)]
    return explain.argv(*words, source or "none", target)


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0,
          data: str | None = None) -> None:
    """mount(2). See mount(8) for what each flag means."""
    lib = _need_lib()
    explain.emit(describe_mount(source, target, fstype, flags, data))
    _check(lib.mount(_c(source), _c(target), _c(fstype), flags, _c(data)), "mount", target, source)


def bind_mount(source: str, target: str, readonly: bool = False, recursive: bool = True,
               extra_flags: int = 0) -> None:
    """Bind-mount source on target; read-only needs a second remount (mount(2), MS_BIND|MS_REMOUNT)."""
    flags = MS_BIND | (MS_REC if recursive else 0)
    mount(source, target, None, flags)
    if readonly or extra_flags:
        mount(None, target, None, MS_BIND | MS_REMOUNT | extra_flags | (MS_RDONLY if readonly else 0))


def make_private(target: str = "/", recursive: bool = True) -> None:
    """Stop mount events propagating between this mount namespace and the host (mount_namespaces(7))."""
    mount(None, target, None, MS_PRIVATE | (MS_REC if recursive else 0))


PROPAGATION_FLAGS = {"rprivate": MS_PRIVATE | MS_REC, "rslave": MS_SLAVE | MS_REC, "rshared": MS_SHARED | MS_REC}


def set_propagation(target: str, kind: str) -> None:
    """`mount --make-<kind> target`, kind one of rprivate, rslave, rshared (mount_namespaces(7))."""
    mount(None, target, None, PROPAGATION_FLAGS[kind])


def umount(target: str, detach: bool = False) -> None:
    """umount2(2); detach=True is `umount -l` (lazy)."""
    lib = _need_lib()
    explain.emit(explain.argv("umount", *(["-l"] if detach else []), target))
    _check(lib.umount2(_c(target), MNT_DETACH if detach else 0), "umount", target)


def pivot_root(new_root: str) -> None:
    """Make new_root the root of this mount namespace and drop the old root.

    Uses the pivot_root(".", ".") idiom (pivot_root(2), NOTES): the old root is
    stacked under the new one and then lazily unmounted, so no directory for it
    is needed inside the image. new_root must be a mount point and neither it nor
    its parent mount may be shared, or the kernel answers EINVAL.
    """
    lib = _need_lib()
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.chdir(new_root)
        explain.emit(explain.argv("pivot_root", new_root, new_root)
                     + "  # then: mount --make-rslave / (the old root); umount -l /")
        _check(lib.pyrun_pivot_root(b".", b"."), "pivot_root", new_root,
               hint="the new root must be a mount point in a private mount tree")
        # Into the old root (stacked on the new one) by its descriptor, as runc does: "." alone would name
        # the new root for mount(2). Make it a slave first, so that dropping it never propagates to the
        # host's mounts (the namespace's / is shared when a volume is Bidirectional).
        os.fchdir(old_root)
        _check(lib.mount(b"", b".", _ffi.NULL, MS_SLAVE | MS_REC, _ffi.NULL), "mount --make-rslave old root",
               new_root)
        _check(lib.umount2(b".", MNT_DETACH), "umount old root", new_root)
    finally:
        os.close(old_root)
    os.chdir("/")


# --- namespaces ----------------------------------------------------------------------------------

def unshare(kinds: Iterable[str]) -> None:
    """unshare(2) the given namespace kinds ("net", "ipc", "uts", "pid", "mnt", ...).

    A new PID namespace applies to children only: the next fork() becomes PID 1.
    """
    kinds = list(kinds)
    flags = 0
    for k in kinds:
        flags |= NAMESPACE_FLAGS[k]
    lib = _need_lib()
    explain.emit(explain.argv("unshare", *(_UNSHARE_OPTION[k] for k in kinds)))
    _check(lib.unshare(flags), "unshare " + ",".join(kinds))


def setns(path: str, kind: str) -> None:
    """Join the namespace pinned at `path` (setns(2)). For "pid", only children join."""
    lib = _need_lib()
    explain.emit(explain.argv("nsenter", f"{_UNSHARE_OPTION[kind]}={path}"))
    fd = _open(path, os.O_RDONLY | os.O_CLOEXEC, "open namespace")
    try:
        _check(lib.setns(fd, NAMESPACE_FLAGS[kind]), f"setns {kind}", path)
    finally:
        os.close(fd)


def sethostname(name: str) -> None:
    """sethostname(2): set the UTS namespace's hostname."""
    import socket
    explain.emit(explain.argv("hostname", name))
    try:
        socket.sethostname(name)
    except OSError as e:
        raise SyscallError.from_errno(e.errno, "sethostname", name) from None


# --- files and processes -------------------------------------------------------------------------

def _open(path: str, flags: int, call: str) -> int:
    try:
        return os.open(path, flags)
    except OSError as e:
        raise SyscallError.from_errno(e.errno, call, path) from None


def mkdir(path: str, mode: int = 0o755) -> None:
    """mkdir -p."""
    if os.path.isdir(path):
        return
    explain.emit(explain.argv("mkdir", "-p", path))
    try:
        os.makedirs(path, mode=mode, exist_ok=True)
    except OSError as e:
        raise SyscallError.from_errno(e.errno, "mkdir", path) from None


def write_file(path: str, content: str | bytes, mode: int | None = None, quiet: bool = False) -> None:
    """Write content to a (kernel or ordinary) file: `echo content > path`."""
    data = content.encode() if isinstance(content, str) else content
    if not quiet:
        shown = data.decode(errors="replace").rstrip("\n")
        if "\n" in shown or len(shown) > 200:
            explain.emit(f"cat > {explain.argv(path)} <<'EOF'\n{shown}\nEOF")
        else:
            explain.emit(f"echo {explain.argv(shown)} > {explain.argv(path)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    fd = _open(path, flags, "open for writing") if mode is None else _open_mode(path, flags, mode)
    try:
        os.write(fd, data)
    except OSError as e:
        raise SyscallError.from_errno(e.errno, "write", path, hint=f"value {shown_value(data)}") from None
    finally:
        os.close(fd)


def shown_value(data: bytes) -> str:
    text = data.decode(errors="replace").strip()
    return repr(text if len(text) < 60 else text[:57] + "...")


def _open_mode(path: str, flags: int, mode: int) -> int:
    try:
        return os.open(path, flags, mode)
    except OSError as e:
        raise SyscallError.from_errno(e.errno, "open for writing", path) from None


def mknod_char(path: str, major: int, minor: int, mode: int = 0o666) -> None:
    """mknod(2) a character device, with exactly `mode` (the umask does not apply)."""
    import stat
    explain.emit(explain.argv("mknod", "-m", f"{mode:o}", path, "c", major, minor))
    try:
        os.mknod(path, stat.S_IFCHR | mode, os.makedev(major, minor))
        os.chmod(path, mode)
    except OSError as e:
        raise SyscallError.from_errno(e.errno, "mknod", path) from None


def symlink(target: str, path: str) -> None:
    explain.emit(explain.argv("ln", "-s", target, path))
    try:
        os.symlink(target, path)
    except OSError as e:
        raise SyscallError.from_errno(e.errno, "symlink", path, target) from None


def kill(pid: int, sig: int = signal.SIGTERM) -> None:
    """kill(2); a process that is already gone is not an error."""
    explain.emit(explain.argv("kill", f"-{signal.Signals(sig).name[3:]}", pid))
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    except OSError as e:
        raise SyscallError.from_errno(e.errno, "kill", str(pid)) from None


def mknod(path: str, kind: str, major: int, minor: int, mode: int = 0o666, uid: int = 0, gid: int = 0) -> None:
    """mknod(2) a character ("c") or block ("b") device with exactly `mode`, owned by uid:gid."""
    import stat
    explain.emit(explain.argv("mknod", "-m", f"{mode:o}", path, kind, major, minor))
    try:
        os.mknod(path, (stat.S_IFCHR if kind == "c" else stat.S_IFBLK) | mode, os.makedev(major, minor))
        os.chmod(path, mode)
        os.chown(path, uid, gid)
    except OSError as e:
        raise SyscallError.from_errno(e.errno, "mknod", path) from None


# --- bpf -----------------------------------------------------------------------------------------

BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
_BPF_LOG_SIZE = 64 * 1024


def bpf_prog_load(prog_type: int, code: bytes, what: str, license: str = "GPL") -> int:
    """bpf(BPF_PROG_LOAD): the new program's fd (close-on-exec). On a refusal the verifier's log is
    loaded again with logging on and kept in the error's hint."""
    lib = _need_lib()
    insns = _ffi.new("char[]", code)
    lic = _ffi.new("char[]", license.encode())
    fd = lib.pyrun_bpf_prog_load(prog_type, insns, len(code) // 8, lic, _ffi.NULL, 0, 0)
    if fd >= 0:
        return fd
    err = _ffi.errno
    log = _ffi.new("char[]", _BPF_LOG_SIZE)
    retry = lib.pyrun_bpf_prog_load(prog_type, insns, len(code) // 8, lic, log, _BPF_LOG_SIZE, 1)
    if retry >= 0:  # a transient failure (EAGAIN); keep the program
        return retry
    text = _ffi.string(log).decode(errors="replace").strip()
    raise SyscallError.from_errno(err, "bpf(BPF_PROG_LOAD)", what,
                                  hint=f"verifier log: {text[-2000:]}" if text else "")


def bpf_attach_cgroup_device(cgroup_dir: str, code: bytes, description: str) -> None:
    """Load a BPF_PROG_TYPE_CGROUP_DEVICE program and attach it (BPF_F_ALLOW_MULTI) to the cgroup v2
    directory. The attachment holds the program: both fds are closed here, and removing the cgroup
    detaches it."""
    lib = _need_lib()
    explain.emit(f"# bpf(BPF_PROG_LOAD, cgroup_device, {len(code) // 8} insns: {description}); "
                 f"bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI) to {explain.argv(cgroup_dir)}")
    prog = bpf_prog_load(BPF_PROG_TYPE_CGROUP_DEVICE, code, cgroup_dir)
    try:
        cg = _open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, "open cgroup")
        try:
            _check(lib.pyrun_bpf_prog_attach(cg, prog, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI),
                   "bpf(BPF_PROG_ATTACH)", cgroup_dir)
        finally:
            os.close(cg)
    finally:
        os.close(prog)
