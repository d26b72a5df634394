"""Find and remove the mounts pyrun left under a directory (from /proc/self/mountinfo, proc(5))."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from pyrun.linux import syscalls as linux


def unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo octal (proc(5))."""
    if "\\" not in field:
        return field  # nearly every line: mountinfo has a line per mount, pinned namespaces included
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and len(field[i + 1:i + 4]) == 3 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points(mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    with open(mountinfo) as f:
        return [unescape(line.split()[4]) for line in f if line.strip()]


def filesystem_at(path: Path | str, mountinfo_text: str) -> tuple[str, str]:
    """(mount point, filesystem type) of the mount `path` lives on, from mountinfo text (pure).

    The longest mount point that is `path` or one of its ancestors; of several stacked on one
    point, the last listed (the visible one). `path` should be absolute and resolved."""
    base = os.path.abspath(path)
    best: tuple[str, str] = ("", "")
    for line in mountinfo_text.splitlines():
        fields = line.split()
        if len(fields) < 7 or "-" not in fields[6:]:
            continue
        point = unescape(fields[4])
        fstype = fields[fields.index("-", 6) + 1]
        inside = point == "/" or base == point or base.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, fstype)
    return best


def propagation_at(path: Path | str, mountinfo_text: str) -> tuple[str, set[str]]:
    """(mount point, propagation tags) of the mount `path` lives on, from mountinfo text (pure): the
    tags are the optional fields' names, "shared" and/or "master" (a slave); none for a private mount.
    Like filesystem_at(), the visible one of stacked mounts."""
    base = os.path.abspath(path)
    best: tuple[str, set[str]] = ("", set())
    for line in mountinfo_text.splitlines():
        fields = line.split()
        if len(fields) < 7 or "-" not in fields[6:]:
            continue
        point = unescape(fields[4])
        tags = {f.partition(":")[0] for f in fields[6:fields.index("-", 6)]}
        inside = point == "/" or base == point or base.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, tags)
    return best


def filesystem_of(path: Path | str, mountinfo: str = "/proc/self/mountinfo") -> tuple[str, str]:
    """filesystem_at() for this process, `path` resolved first (its nearest existing ancestor)."""
    probe = os.path.realpath(path)
    with open(mountinfo) as f:
        return filesystem_at(probe, f.read())


def mounts_under(directory: Path | str, mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Mount points at or below `directory`, deepest first (the order to unmount them)."""
    base = os.path.abspath(directory)
    found = [m for m in mount_points(mountinfo) if m == base or m.startswith(base + "/")]
    return sorted(set(found), key=lambda m: (-m.count("/"), m))


def unmount_under(directory: Path | str) -> None:
    """Lazily unmount everything mounted at or below `directory` (stacked mounts too)."""
    for _ in range(8):  # a point can have several mounts stacked on it
        points = mounts_under(directory)
        if not points:
            return
        for m in points:
            with contextlib.suppress(FileNotFoundError, OSError):
                linux.umount(m, detach=True)
