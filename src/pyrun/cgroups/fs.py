"""The thin side-effect layer of pyrun.cgroups: every read, mkdir, write and rmdir in a cgroup tree.

Writes go through pyrun.linux.syscalls so explain mode shows them
(`echo '50000 100000' > /sys/fs/cgroup/.../cpu.max`); failures become a
CgroupError naming the file and the value.
"""
from __future__ import annotations

import errno
import os

from pyrun import explain
from pyrun.errors import CgroupError, SyscallError
from pyrun.linux import syscalls as linux

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a pod create's start-up)
if TYPE_CHECKING:
    from typing import Callable

READ_SIZE = 65536


def read(path: str) -> str | None:
    """The file's text, or None when it does not exist (or the cgroup went away).

    os.open/os.read rather than open(): no buffer objects, no fstat or isatty, about half the time
    per file, which a metrics scrape (a dozen files per cgroup) notices. A read shorter than the
    buffer is the end: cgroup files are seq_files, whose read fills the buffer unless the file ends
    (so one read(2) per small file, not a second one to see EOF)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            chunks = [os.read(fd, READ_SIZE)]
            while len(chunks[-1]) == READ_SIZE:
                chunks.append(os.read(fd, READ_SIZE))
        finally:
            os.close(fd)
        return b"".join(chunks).decode()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        if e.errno == errno.ENODEV:  # a removed cgroup whose files are still open
            return None
        raise CgroupError(f"cannot read {path}: {e.strerror}") from None


def mkdir(path: str) -> None:
    try:
        linux.mkdir(path)
    except SyscallError as e:
        raise CgroupError(f"cannot create cgroup {path}: {e.strerror}") from None


def write(path: str, value: str) -> None:
    """Write one value to one cgroup file."""
    try:
        linux.write_file(path, value)
    except SyscallError as e:
        raise CgroupError(f"cannot write {value!r} to {path}: {os.strerror(e.errno)}") from None


def write_errno(path: str, value: str) -> int:
    """Like write(), but return the errno (0 on success) for callers that decide what a failure means."""
    try:
        linux.write_file(path, value)
    except SyscallError as e:
        return e.errno or errno.EIO
    return 0


def rmdir(path: str, dir_fd: int | None = None, shown: Callable[[], str] | None = None) -> None:
    """rmdir(2) of a cgroup directory (its control files go with it); raises OSError.

    With dir_fd, `path` is one name relative to it (deep trees); shown() gives the path explain
    prints (built only when explaining: O(depth))."""
    if explain.active():
        explain.emit(explain.argv("rmdir", shown() if shown else path))
    os.rmdir(path, dir_fd=dir_fd)


def read_at(dir_fd: int, name: str) -> str | None:
    """Like read(), for a file `name` ("child/cgroup.procs") relative to an open directory."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise CgroupError(f"cannot open {name}: {e.strerror}") from None
    try:
        with os.fdopen(fd) as f:
            return f.read()
    except OSError as e:
        if e.errno == errno.ENODEV:
            return None
        raise CgroupError(f"cannot read {name}: {e.strerror}") from None
