"""Walking, measuring, chowning and removing directory trees that a container or image controls.

Python 3.11's shutil.rmtree and os.walk recurse (RecursionError past ~1000 levels)
and build full paths (ENAMETOOLONG past PATH_MAX). These helpers never do either:

- iterative: the only per-level state is a name, an inode and the list of
  subdirectories still to visit, so depth is bounded by memory, not the C stack;
- fd-relative: one directory fd is held at a time; every step is openat(2) with
  O_NOFOLLOW | O_DIRECTORY relative to it, so no path is ever longer than one name
  and a symlink is never followed (it is an entry like any other);
- going up is openat(fd, ".."), checked against the (st_dev, st_ino) we came from:
  if the tree was moved under us we stop with an OSError instead of walking elsewhere;
- other filesystems (mount points below the root) are never entered.
"""
from __future__ import annotations

import errno
import operator
import os
import stat

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a CLI command's start-up)
if TYPE_CHECKING:
    from typing import Callable, Iterator

from pyrun.errors import SyscallError
from pyrun.frozen import Record, field

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NAME = operator.attrgetter("name")


class _Level(Record):
    name: str                                # this directory's name in its parent ("" for the root)
    dev: int
    ino: int
    pending: list[str] = field(default_factory=list)  # subdirectories not visited yet


def _open_dir(name: str | os.PathLike, dir_fd: int | None = None) -> int:
    return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


class _Cursor:
    """One open directory fd moving through a tree; `levels` is the way back up."""

    def __init__(self, root: str | os.PathLike):
        self.root = os.fspath(root)
        self.fd = _open_dir(self.root)
        st = os.fstat(self.fd)
        self.dev = st.st_dev
        self.levels = [_Level("", st.st_dev, st.st_ino)]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def where(self) -> str:
        """A readable location for error messages (may be longer than PATH_MAX: only for humans)."""
        return os.path.join(self.root, *[lv.name for lv in self.levels[1:]])

    def down(self, name: str) -> None:
        fd = _open_dir(name, self.fd)
        st = os.fstat(fd)
        os.close(self.fd)
        self.fd = fd
        self.levels.append(_Level(name, st.st_dev, st.st_ino))

    def up(self) -> str:
        """Back to the parent; returns the name of the directory we left."""
        left = self.levels.pop()
        fd = _open_dir("..", self.fd)
        st = os.fstat(fd)
        want = self.levels[-1]
        if (st.st_dev, st.st_ino) != (want.dev, want.ino):
            os.close(fd)
            raise OSError(errno.ESTALE, "directory tree changed while walking it (its '..' moved)",
                          self.where())
        os.close(self.fd)
        self.fd = fd
        return left.name


def _entries(fd: int) -> list[os.DirEntry]:
    with os.scandir(fd) as it:
        return list(it)


def walk(root: str | os.PathLike) -> Iterator[tuple[int, str, os.stat_result]]:
    """Yield (dir_fd, name, lstat) for every entry below `root`, each directory before its contents.

    dir_fd is the open parent directory, valid only until the next item: act on the
    entry with *at() calls (dir_fd=..., follow_symlinks=False). The root is not yielded.
    Symlinks are yielded, never followed; mount points are yielded, never entered.
    """
    cur = _Cursor(root)
    try:
        yield from _yield_scan(cur)
        while True:
            level = cur.levels[-1]
            if level.pending:
                cur.down(level.pending.pop())
                yield from _yield_scan(cur)
            elif len(cur.levels) > 1:
                cur.up()
            else:
                return
    finally:
        cur.close()


def _yield_scan(cur: _Cursor) -> Iterator[tuple[int, str, os.stat_result]]:
    level = cur.levels[-1]
    for entry in _entries(cur.fd):
        st = entry.stat(follow_symlinks=False)
        yield cur.fd, entry.name, st
        if stat.S_ISDIR(st.st_mode) and st.st_dev == cur.dev:
            level.pending.append(entry.name)


def walk_dirs_bottom_up(root: str | os.PathLike) -> Iterator[tuple[int, str, Callable[[], tuple[str, ...]]]]:
    """Yield (parent_fd, name, parts) for every directory below `root`, each after everything below it.

    parent_fd is the open parent, valid only until the next item; the caller may chmod, chown or
    rmdir the directory through it (the walk is done with it). parts() is the directory's path below
    the root as components, built only when asked (O(depth)). The root itself is not yielded; mount
    points are yielded but never entered; symlinks are not directories here.
    """
    cur = _Cursor(root)
    try:
        _scan_dirs(cur)
        while True:
            level = cur.levels[-1]
            if level.pending:
                cur.down(level.pending.pop())
                _scan_dirs(cur)
            elif len(cur.levels) > 1:
                name = cur.up()
                yield cur.fd, name, lambda: (*map(_NAME, cur.levels[1:]), name)  # valid until next()
            else:
                return
    finally:
        cur.close()


def _scan_dirs(cur: _Cursor) -> None:
    level = cur.levels[-1]
    for entry in _entries(cur.fd):
        if entry.is_dir(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_dev == cur.dev:
            level.pending.append(entry.name)


def remove_tree(path: str | os.PathLike, missing_ok: bool = True) -> None:
    """rm -rf `path` at any depth, without following symlinks or leaving the filesystem.

    `path` itself may be a file or symlink (then it is just unlinked). A mount point
    below it makes rmdir fail with EBUSY (OSError): unmount first (linux.mounts.unmount_under).
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if missing_ok:
            return
        raise
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    cur = _Cursor(path)
    try:
        _empty(cur)
    except SyscallError:
        raise
    except OSError as e:
        raise _located(e, "remove", cur) from None
    finally:
        cur.close()
    os.rmdir(path)


def _located(e: OSError, call: str, cur: _Cursor) -> SyscallError:
    """The error with the path it happened at (fd-relative calls only know one name)."""
    where = cur.where()
    if e.filename and e.filename != "..":
        where = os.path.join(where, os.fsdecode(e.filename))  # an absolute filename replaces `where`
    return SyscallError.from_errno(e.errno or errno.EIO, call, where)


def _empty(cur: _Cursor) -> None:
    """Delete everything below the cursor's root, post-order, one fd at a time."""
    scanned = False
    while True:
        level = cur.levels[-1]
        if not scanned:
            for entry in _entries(cur.fd):
                if entry.is_dir(follow_symlinks=False):
                    if entry.stat(follow_symlinks=False).st_dev != cur.dev:
                        raise OSError(errno.EXDEV, "a mount point inside the tree; not removing across it",
                                      os.path.join(cur.where(), entry.name))
                    level.pending.append(entry.name)
                else:
                    _unlink(cur, entry.name)
            scanned = True
        if level.pending:
            cur.down(level.pending.pop())
            scanned = False
        elif len(cur.levels) > 1:
            name = cur.up()
            os.rmdir(name, dir_fd=cur.fd)
        else:
            return


def _unlink(cur: _Cursor, name: str) -> None:
    try:
        os.unlink(name, dir_fd=cur.fd)
    except FileNotFoundError:
        pass


def tree_usage(root: str | os.PathLike) -> tuple[int, int, int]:
    """(apparent bytes, allocated bytes, inodes) below `root`, each inode counted once; zeros if missing."""
    try:
        entries = walk(root)
        seen: set[tuple[int, int]] = set()
        size = blocks = 0
        for _, _, st in entries:
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            size += st.st_size
            blocks += st.st_blocks * 512
        return size, blocks, len(seen)
    except FileNotFoundError:
        return 0, 0, 0


def apply_each(root: str | os.PathLike, fn: Callable[[int, str, os.stat_result], None],
               include_root: bool = True) -> None:
    """Call fn(dir_fd, name, lstat) for `root` (name ".", dir_fd of root) and every entry below it.

    For chown/chmod over an untrusted tree: use *at() calls with follow_symlinks=False.
    """
    if include_root:
        fd = _open_dir(root)
        try:
            fn(fd, ".", os.fstat(fd))
        finally:
            os.close(fd)
    for dir_fd, name, st in walk(root):
        fn(dir_fd, name, st)


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync(2) a directory, making the renames and creations in it durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
