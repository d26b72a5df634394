"""Overlay mount options for an image's layers. Pure: the container init does the mount.

mount(2) passes options in one page, so "lowerdir=" with many long paths can
exceed it (4095 bytes usable). All layers live in one directory
(<image_root>/layers/<64 hex>), so `compact_mount_data` can name them relative
to it: the caller chdir()s there right before mount(2) (that is what
containerd does). Kernels >= 6.8 also accept "lowerdir+" one at a time via
fsconfig(2), which has no such limit.

Overlayfs separates lower dirs with ':' and options with ','; both (and '\\')
are escaped with a backslash (Documentation/filesystems/overlayfs.rst).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from pyrun.errors import ImageError

MOUNT_DATA_MAX = 4095


def escape(path: str | os.PathLike) -> str:
    s = os.fspath(path)
    for ch in ("\\", ":", ","):
        s = s.replace(ch, "\\" + ch)
    return s


def lowerdir_value(lower: Sequence[str | os.PathLike]) -> str:
    """'top:...:bottom' (pass store.layer_dirs() as is: top layer first)."""
    if not lower:
        raise ImageError("an overlay needs at least one lower directory (the image has no layers)")
    return ":".join(escape(p) for p in lower)


def mount_data(lower: Sequence[str | os.PathLike], upper: str | os.PathLike | None = None,
               work: str | os.PathLike | None = None, extra: Sequence[str] = ()) -> str:
    """The data argument of mount(2) for `mount -t overlay overlay -o <data> target`.

    Without upper/work the overlay is read-only (needs >= 2 lower dirs, or use a single
    layer as a bind mount instead).
    """
    if (upper is None) != (work is None):
        raise ImageError("overlay: upperdir and workdir go together")
    opts = [f"lowerdir={lowerdir_value(lower)}"]
    if upper is not None:
        opts += [f"upperdir={escape(upper)}", f"workdir={escape(work)}"]
    return ",".join(opts + list(extra))


def compact_mount_data(lower: Sequence[Path], upper: Path | None = None, work: Path | None = None,
                       extra: Sequence[str] = ()) -> tuple[str, Path | None]:
    """(data, cwd): the full data if it fits; else lower dirs relative to their common parent,
    which the caller must chdir() into just before mount(2). ImageError if even that is too long."""
    data = mount_data(lower, upper, work, extra)
    if len(data.encode()) <= MOUNT_DATA_MAX:
        return data, None
    parents = {Path(p).parent for p in lower}
    if len(parents) == 1:
        short = mount_data([Path(p).name for p in lower], upper, work, extra)
        if len(short.encode()) <= MOUNT_DATA_MAX:
            return short, parents.pop()
    raise ImageError(f"overlay options are {len(data)} bytes with {len(lower)} layers; "
                     f"mount(2) takes at most {MOUNT_DATA_MAX}")
