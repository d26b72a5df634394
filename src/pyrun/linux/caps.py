"""Capabilities (capabilities(7)): the names, the set a container gets, and applying it.

Pure part: CAPABILITIES (the kernel's numbering, linux/capability.h) and
`container_capabilities` (Kubernetes' add/drop/privileged rules, as containerd applies them).

Side-effect part, in the order the init runs it (the same order as runc):
  drop_bounding(keep)      PR_CAPBSET_DROP every other capability (needs CAP_SETPCAP, so while root)
  set_keep_caps(True)      PR_SET_KEEPCAPS: permitted survives the setuid(2) to a non-root uid
  ... setgroups/setgid/setuid ...
  apply_sets(keep, ambient) capset(2) effective = permitted = inheritable = keep; keep-caps off; then
                           raise `ambient` into the ambient set, the only set a non-root process keeps
                           across execve(2) (PR_CAP_AMBIENT, prctl(2); a cap must be in permitted and
                           inheritable first). For a non-root user the init passes the capabilities
                           the manifest *added* (`ambient_capabilities`): `capabilities.add:
                           [NET_BIND_SERVICE]` + `runAsUser: 1000` can bind port 80, while the default
                           set alone gives a non-root workload nothing effective, as with containerd.
python-prctl does the bounding set, keep-caps and capset; it has no ambient call, so that one
goes through libc's prctl with ctypes (CDLL(None): libc is already mapped, nothing is read from
disk, so it also works after pivot_root).
"""
from __future__ import annotations

from pyrun import explain

CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
)  # index == capability number

DEFAULT_CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
    "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
)

PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_LAST_CAP: int | None = None
_LIBC = None


def normalize(name: str) -> str | None:
    """"net_raw", "CAP_NET_RAW" -> "NET_RAW"; "ALL" stays; None for an unknown name."""
    upper = name.strip().upper().removeprefix("CAP_")
    if upper == "ALL" or upper in CAPABILITIES:
        return upper
    return None


def cap_number(name: str) -> int:
    norm = normalize(name)
    if norm is None or norm == "ALL":
        raise ValueError(f"unknown capability {name!r}")
    return CAPABILITIES.index(norm)


def container_capabilities(add: list[str] = (), drop: list[str] = (), privileged: bool = False,
                           last_cap: int = len(CAPABILITIES) - 1,
                           default: tuple[str, ...] = DEFAULT_CAPABILITIES) -> list[str]:
    """The capability names a container keeps, in kernel order (pure).

    privileged: every capability the kernel knows. Otherwise the default set minus `drop`
    ("ALL" drops all), then plus `add` ("ALL" adds all): add wins over drop, as in containerd.
    Names must already be valid (the spec layer checks them).
    """
    every = list(CAPABILITIES[:last_cap + 1])
    if privileged:
        return every
    adds = {normalize(c) for c in add}
    drops = {normalize(c) for c in drop}
    keep = set() if "ALL" in drops else {c for c in default if c not in drops}
    keep |= set(every) if "ALL" in adds else adds
    keep.discard(None)
    return [c for c in every if c in keep]


def preload() -> None:
    """Import python-prctl, load libc's prctl and read cap_last_cap while the host filesystem is visible."""
    import ctypes
    import prctl  # noqa: F401
    global _LAST_CAP, _LIBC
    _LAST_CAP = last_cap()
    _LIBC = ctypes.CDLL(None, use_errno=True)


def held_capabilities(status: str = "/proc/self/status") -> list[str]:
    """The names in this process's permitted set (CapPrm in proc(5))."""
    with open(status) as f:
        mask = next(int(line.split()[1], 16) for line in f if line.startswith("CapPrm:"))
    return [name for n, name in enumerate(CAPABILITIES) if mask >> n & 1]


def last_cap(proc: str = "/proc") -> int:
    with open(f"{proc}/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def _known_last_cap() -> int:
    return _LAST_CAP if _LAST_CAP is not None else last_cap()


def drop_bounding(keep: list[str] | tuple[str, ...]) -> None:
    """Drop every capability not in `keep` from the bounding set (irreversible, inherited)."""
    import prctl
    wanted = {cap_number(c) for c in keep}
    dropped = [n for n in range(_known_last_cap() + 1) if n not in wanted]
    explain.emit(explain.argv("capsh", "--drop=" + ",".join(_cap_name(n) for n in dropped), "--")
                 + "  # bounding set")
    for n in dropped:
        prctl.capbset.drop(n)


def set_keep_caps(on: bool) -> None:
    """PR_SET_KEEPCAPS: keep the permitted set across a setuid(2) away from uid 0 (prctl(2))."""
    import prctl
    prctl.set_keepcaps(on)


def ambient_capabilities(kept: list[str], add: list[str] = ()) -> list[str]:
    """The capabilities a non-root workload keeps across execve: those explicitly added that it kept (pure)."""
    adds = {normalize(c) for c in add}
    return list(kept) if "ALL" in adds else [c for c in kept if c in adds]


def apply_sets(keep: list[str] | tuple[str, ...], ambient: list[str] | tuple[str, ...] = ()) -> None:
    """Effective and permitted = `keep`; inheritable = ambient = `ambient` (a subset of keep).

    The inheritable set holds only what is raised into the ambient set (which requires
    it): runc and containerd leave it empty otherwise since CVE-2022-24769.
    """
    import prctl
    every = range(_known_last_cap() + 1)
    wanted = sorted(cap_number(c) for c in keep)
    inheritable = sorted(cap_number(c) for c in ambient)
    ep = [prctl.CAP_EFFECTIVE, prctl.CAP_PERMITTED]
    explain.emit(explain.argv("capsh", "--caps=" + (",".join(_cap_name(n) for n in wanted) + "+ep"
                                                    if wanted else ""), "--")
                 + (f"  # inheritable and ambient: {','.join(ambient)}" if ambient else ""))
    prctl.set_caps((wanted, ep, True), ([n for n in every if n not in wanted], ep, False),
                   (inheritable, [prctl.CAP_INHERITABLE], True),
                   ([n for n in every if n not in inheritable], [prctl.CAP_INHERITABLE], False))
    set_keep_caps(False)
    _ambient(prctl_value=PR_CAP_AMBIENT_CLEAR_ALL, cap=0)
    for name in ambient:
        _ambient(PR_CAP_AMBIENT_RAISE, cap_number(name))


def _ambient(prctl_value: int, cap: int) -> None:
    import ctypes
    import os
    from pyrun.errors import SyscallError
    libc = _LIBC or ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_CAP_AMBIENT, prctl_value, cap, 0, 0) != 0:
        err = ctypes.get_errno()
        raise SyscallError.from_errno(err, f"prctl(PR_CAP_AMBIENT, {prctl_value}, {_cap_name(cap)})",
                                      hint=os.strerror(err))


def _cap_name(n: int) -> str:
    return "cap_" + (CAPABILITIES[n].lower() if n < len(CAPABILITIES) else str(n))
