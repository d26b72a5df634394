"""Capabilities (capabilities(7)) through python-prctl.

A container keeps the default set the big runtimes give; everything else is dropped
from the bounding set, so not even a setuid-root binary inside can get it back.
"""
from __future__ import annotations

from pyrun import explain

DEFAULT_CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
    "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
)


def preload() -> None:
    """Import python-prctl and read cap_last_cap while the host filesystem is still visible."""
    import prctl  # noqa: F401
    global _LAST_CAP
    _LAST_CAP = last_cap()


_LAST_CAP: int | None = None


def cap_number(name: str) -> int:
    import prctl
    value = getattr(prctl, "CAP_" + name.upper().removeprefix("CAP_"), None)
    if value is None:
        raise ValueError(f"unknown capability {name!r}")
    return value


def last_cap(proc: str = "/proc") -> int:
    with open(f"{proc}/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def apply_capabilities(keep: tuple[str, ...] | list[str]) -> None:
    """Limit bounding, permitted, effective and inheritable sets to `keep` (capabilities(7))."""
    import prctl
    wanted = {cap_number(c) for c in keep}
    explain.emit(explain.argv("capsh", "--caps=" + ",".join(f"cap_{c.lower()}+eip" for c in keep), "--")
                 + "  # bounding set limited to the same list")
    for cap in range((_LAST_CAP if _LAST_CAP is not None else last_cap()) + 1):
        if cap not in wanted:
            prctl.capbset.drop(cap)
    caps = sorted(wanted)
    prctl.cap_effective.limit(*caps)
    prctl.cap_permitted.limit(*caps)
    prctl.cap_inheritable.limit(*caps)
