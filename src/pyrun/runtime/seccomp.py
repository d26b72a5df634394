"""seccomp(2) filters: the RuntimeDefault profile, Localhost profiles, rendering and loading.

A profile is in the OCI/Docker JSON format:
  {"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1,
   "syscalls": [{"names": [...], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                 "args": [{"index": 0, "value": 1, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
                 "includes": {"caps": [...]}, "excludes": {"caps": [...]}}]}
`render(profile, caps)` turns it into a plan (pure, JSON-able) for the container's capabilities:
{"default": <action>, "rules": [[<action>, "<syscall>", [[index, op, a, b], ...]], ...]}.
`load(plan)` builds a libseccomp filter from the plan and loads it (seccomp_init/seccomp_rule_add_array/
seccomp_load, seccomp_rule_add(3)). libseccomp.so.2 is opened by `preload()` before pivot_root; after
that the filter is built from memory only.

RuntimeDefault is a deny-list (default allow) of the calls the Docker/containerd default profile
keeps from unprivileged containers, each lifted by the capability that makes it legitimate. A deny-list
cannot refuse syscalls added to the kernel later, but it never breaks a workload on a call the list
forgot; the calls that matter for escapes (namespaces, mounts, keyrings, modules, kexec, bpf,
userfaultfd, io_uring, ...) are all on it. Only the native architecture is allowed: any other
(e.g. 32-bit int 0x80 calls on x86_64) hits libseccomp's bad-arch action, which kills the process.
"""
from __future__ import annotations

import errno as _errno
import json
import os
from pathlib import Path

from pyrun import explain
from pyrun.errors import PyrunError, SyscallError

ACT_KILL_THREAD = 0x00000000
ACT_KILL_PROCESS = 0x80000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000

OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
       "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}

CLONE_NAMESPACE_FLAGS = {"CLONE_NEWNS": 0x00020000, "CLONE_NEWCGROUP": 0x02000000, "CLONE_NEWUTS": 0x04000000,
                         "CLONE_NEWIPC": 0x08000000, "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
                         "CLONE_NEWNET": 0x40000000}


def action(name: str, errno_ret: int | None = None) -> int:
    """The libseccomp action value of an OCI action name (SCMP_ACT_ERRNO defaults to EPERM)."""
    simple = {"SCMP_ACT_KILL": ACT_KILL_THREAD, "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
              "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS, "SCMP_ACT_TRAP": ACT_TRAP, "SCMP_ACT_LOG": ACT_LOG,
              "SCMP_ACT_ALLOW": ACT_ALLOW}
    if name in simple:
        return simple[name]
    if name == "SCMP_ACT_ERRNO":
        return ACT_ERRNO | ((_errno.EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return ACT_TRACE | ((_errno.EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    raise ValueError(f"unsupported seccomp action {name!r}")


# --- RuntimeDefault -------------------------------------------------------------------------------

def _deny(names: str, *, unless: str = "", args: list[dict] | None = None) -> dict:
    rule: dict = {"names": names.split(), "action": "SCMP_ACT_ERRNO", "errnoRet": _errno.EPERM}
    if unless:
        rule["excludes"] = {"caps": unless.split()}
    if args:
        rule["args"] = args
    return rule


def runtime_default_profile() -> dict:
    """pyrun's RuntimeDefault profile (OCI/Docker format; see the module docstring)."""
    clone_rules = [_deny("clone", unless="SYS_ADMIN",
                         args=[{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}])
                   for flag in CLONE_NAMESPACE_FLAGS.values()]
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            # keyrings are not namespaced: a container must not read or fill the host's
            _deny("add_key keyctl request_key"),
            # new namespaces (an unprivileged user namespace is the classic first step of an escape)
            _deny("unshare setns", unless="SYS_ADMIN"),
            *clone_rules,
            # clone3 passes its flags in memory seccomp cannot read: ENOSYS makes libc fall back to clone
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": _errno.ENOSYS,
             "excludes": {"caps": ["SYS_ADMIN"]}},
            _deny("mount umount umount2 pivot_root move_mount open_tree fsopen fsconfig fsmount fspick "
                  "mount_setattr quotactl quotactl_fd fanotify_init lookup_dcookie name_to_handle_at "
                  "sethostname setdomainname", unless="SYS_ADMIN"),
            _deny("reboot kexec_load kexec_file_load", unless="SYS_BOOT"),
            _deny("init_module finit_module delete_module create_module get_kernel_syms query_module",
                  unless="SYS_MODULE"),
            _deny("bpf", unless="BPF SYS_ADMIN"),
            _deny("perf_event_open", unless="PERFMON SYS_ADMIN"),
            _deny("swapon swapoff", unless="SYS_ADMIN"),
            _deny("acct", unless="SYS_PACCT"),
            _deny("settimeofday clock_settime clock_adjtime stime", unless="SYS_TIME"),
            _deny("open_by_handle_at", unless="DAC_READ_SEARCH"),
            _deny("kcmp process_vm_readv process_vm_writev", unless="SYS_PTRACE"),
            _deny("iopl ioperm", unless="SYS_RAWIO"),
            _deny("syslog", unless="SYSLOG"),
            _deny("vhangup", unless="SYS_TTY_CONFIG"),
            _deny("userfaultfd io_uring_setup io_uring_enter io_uring_register nfsservctl _sysctl sysfs uselib "
                  "ustat vm86 vm86old"),
        ],
    }


# --- rendering (pure) -----------------------------------------------------------------------------

def _applies(rule: dict, caps: set[str]) -> bool:
    def names(values) -> set[str]:
        return {str(c).upper().removeprefix("CAP_") for c in values or ()}
    includes = names((rule.get("includes") or {}).get("caps"))
    excludes = names((rule.get("excludes") or {}).get("caps"))
    norm = names(caps)
    return includes <= norm and not (excludes & norm)  # Docker: every included cap, none of the excluded


def render(profile: dict, caps: list[str] | tuple[str, ...] = (), where: str = "profile") -> dict:
    """The load plan of an OCI/Docker profile for a process with `caps` (pure; ValueError names the rule)."""
    if not isinstance(profile, dict) or "defaultAction" not in profile:
        raise ValueError(f"{where}: not a seccomp profile (no defaultAction)")
    try:
        default = action(profile["defaultAction"], profile.get("defaultErrnoRet"))
    except ValueError as e:
        raise ValueError(f"{where}: defaultAction: {e}") from None
    rules = []
    for i, rule in enumerate(profile.get("syscalls") or []):
        here = f"{where}: syscalls[{i}]"
        if not isinstance(rule, dict):
            raise ValueError(f"{here}: must be an object")
        if not _applies(rule, set(caps)):
            continue
        try:
            act = action(rule.get("action", ""), rule.get("errnoRet"))
        except ValueError as e:
            raise ValueError(f"{here}: {e}") from None
        if act == default:
            continue  # libseccomp refuses a rule that repeats the default action
        conditions = []
        for j, arg in enumerate(rule.get("args") or []):
            op = OPS.get(arg.get("op", ""))
            if op is None or not isinstance(arg.get("index"), int) or not 0 <= arg["index"] <= 5:
                raise ValueError(f"{here}.args[{j}]: needs an index 0-5 and an op ({', '.join(OPS)})")
            conditions.append([arg["index"], op, int(arg.get("value", 0)), int(arg.get("valueTwo", 0))])
        names = list(rule.get("names") or ([rule["name"]] if rule.get("name") else []))
        if not names or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{here}: needs names (a list of syscall names)")
        rules.extend([act, name, conditions] for name in names)
    return {"default": default, "rules": rules}


def read_localhost_profile(root: Path, relative: str) -> dict:
    """Parse <root>/<relative> (kubelet's Localhost seccomp profile); PyrunError names the file."""
    path = Path(root) / relative
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise PyrunError(f"seccomp profile {path} does not exist (localhostProfile {relative!r})") from None
    except (OSError, ValueError) as e:
        raise PyrunError(f"seccomp profile {path} cannot be read: {e}") from None
    return data


# --- loading (side effects) -----------------------------------------------------------------------

_LIB = None


class _CTypes:  # ctypes types and libc, built lazily: ctypes stays out of the import path of `pod create`
    type = None
    fprog = None  # struct sock_fprog, for a program compiled ahead
    libc = None


def preload() -> None:
    """Open libseccomp.so.2 now (the host's /usr/lib is gone after pivot_root)."""
    global _LIB
    if _LIB is not None:
        return
    import ctypes
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError as e:
        raise PyrunError(f"libseccomp.so.2 is needed for seccomp profiles and cannot be loaded: {e} "
                         "(apt-get install libseccomp2)") from None

    class ArgCmp(ctypes.Structure):
        _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                    ("datum_b", ctypes.c_uint64)]
    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    _CTypes.type = ArgCmp
    _CTypes.fprog = SockFprog
    _CTypes.libc = ctypes.CDLL(None, use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(ArgCmp)]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    _LIB = lib


SCMP_FLTATR_CTL_NNP = 3  # libseccomp sets no_new_privs itself on load unless told not to


PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

# Filters built ahead of a fork (compile_ahead): (plan, its BPF program, the rules added).
_COMPILED: list[tuple[dict, bytes, int]] = []


def _compiled(plan) -> tuple[dict, bytes, int] | None:
    return next((c for c in _COMPILED if c[0] == plan), None)


def load(plan: dict, name: str = "") -> int:
    """Build the filter of `plan` and load it into this thread (and its future children).

    Syscalls this kernel/libseccomp does not know are skipped (as runc and Docker do).
    No-new-privileges is left to the caller. Returns the number of rules added.
    A plan compiled ahead in this process (compile_ahead, before the fork) is loaded as built.
    """
    preload()
    explain.emit(f"# seccomp: load the {name or 'given'} profile ({len(plan['rules'])} rules, "
                 f"default action {plan['default']:#x})")
    compiled = _compiled(plan)
    if compiled is not None:
        _load_program(compiled[1])
        return compiled[2]
    ctx, added = _build(plan)
    try:
        _check(_LIB.seccomp_load(ctx), "seccomp_load")
    finally:
        _LIB.seccomp_release(ctx)
    return added


def compile_ahead(plan: dict) -> None:
    """Build `plan`'s filter now and keep its BPF program (libseccomp's export), so that a process
    forked from this one loads it without building it (about 1.5 ms of every container init and
    exec): the CRI server's zygote does it for RuntimeDefault with the default capabilities."""
    if _compiled(plan) is not None:
        return
    preload()
    ctx, added = _build(plan)
    fd = os.memfd_create("pyrun-seccomp", os.MFD_CLOEXEC)
    try:
        _check(_LIB.seccomp_export_bpf(ctx, fd), "seccomp_export_bpf")
        size = os.lseek(fd, 0, os.SEEK_END)
        program = os.pread(fd, size, 0)
    finally:
        os.close(fd)
        _LIB.seccomp_release(ctx)
    _COMPILED.append((json.loads(json.dumps(plan)), program, added))  # as config.json gives it back


def export_bpf(plan: dict, fd: int) -> int:
    """Write the BPF program of `plan` (what `load` would load) to `fd`, for the C monitor to load
    into an exec probe or hook or an exec (csrc/supervise.c, csrc/nsexec.c) with prctl(PR_SET_SECCOMP).
    A plan compiled ahead (compile_ahead) is written as built. Returns the rules added."""
    compiled = _compiled(plan)
    if compiled is not None:
        os.write(fd, compiled[1])
        return compiled[2]
    preload()
    ctx, added = _build(plan)
    try:
        _check(_LIB.seccomp_export_bpf(ctx, fd), "seccomp_export_bpf")
    finally:
        _LIB.seccomp_release(ctx)
    return added


def _build(plan: dict):
    """(libseccomp filter context, rules added) for `plan`; the caller releases the context."""
    lib = _LIB
    ctx = lib.seccomp_init(plan["default"])
    if not ctx:
        raise PyrunError("seccomp_init failed (is the default action valid?)")
    added = 0
    try:
        _check(lib.seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0), "seccomp_attr_set(CTL_NNP)")
        for act, syscall, conditions in plan["rules"]:
            nr = lib.seccomp_syscall_resolve_name(syscall.encode())
            if nr == -1:  # __NR_SCMP_ERROR: unknown here
                continue
            array = (_CTypes.type * max(len(conditions), 1))(*[_CTypes.type(*c) for c in conditions])
            _check(lib.seccomp_rule_add_array(ctx, act, nr, len(conditions), array),
                   f"seccomp_rule_add({syscall})")
            added += 1
    except BaseException:
        lib.seccomp_release(ctx)
        raise
    return ctx, added


def _load_program(program: bytes) -> None:
    """Load a BPF program libseccomp exported, as its seccomp_load does (no flags: this thread only)."""
    import ctypes
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _CTypes.fprog(len(program) // 8, ctypes.addressof(buf))
    ulong = ctypes.c_ulong
    if _CTypes.libc.prctl(ulong(PR_SET_SECCOMP), ulong(SECCOMP_MODE_FILTER), ctypes.byref(prog), ulong(0),
                          ulong(0)) != 0:
        raise SyscallError.from_errno(ctypes.get_errno(), "seccomp load (prctl PR_SET_SECCOMP)")


def _check(ret: int, call: str) -> None:
    if ret < 0:  # libseccomp returns -errno
        raise SyscallError.from_errno(-ret, call)
