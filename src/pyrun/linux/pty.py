"""Pseudo-terminals of a container's own devpts instance (pts(4), devpts newinstance).

A process that has joined (or built) a container's mount namespace opens /dev/ptmx there: the
container's /dev/ptmx -> pts/ptmx, so the pair belongs to the container's devpts and the slave is
/dev/pts/N inside it (`tty` prints /dev/pts/0), as runc's console does. The master may then travel
to a process outside (SCM_RIGHTS): output, input and TIOCSWINSZ work on it from anywhere.
"""
from __future__ import annotations

import fcntl
import os
import struct
import termios

# asm-generic/ioctls.h (the same on x86-64 and arm64): Python's termios has neither
TIOCGPTN = 0x80045430    # _IOR('T', 0x30, unsigned int): the slave's number
TIOCSPTLCK = 0x40045431  # _IOW('T', 0x31, int): lock (1) or unlock (0) the slave


def open_pair(ptmx: str = "/dev/ptmx") -> tuple[int, int, str]:
    """(master, slave, slave path) of a new pty from `ptmx` (resolved in the caller's root); both
    close-on-exec and not the controlling terminal of anything yet."""
    master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))[0]
        name = os.path.join(os.path.dirname(os.path.realpath(ptmx)), str(number))
        slave = os.open(name, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except BaseException:
        os.close(master)
        raise
    return master, slave, name


def become_stdio_and_ctty(slave: int) -> None:
    """Make `slave` fds 0, 1 and 2 and the controlling terminal of this process's session (the caller
    must be a session leader without one, e.g. right after setsid(2))."""
    for target in (0, 1, 2):
        os.dup2(slave, target, inheritable=True)
    if slave > 2:
        os.close(slave)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def set_size(fd: int, cols: int, rows: int) -> None:
    """TIOCSWINSZ on a pty's master (the foreground process group gets SIGWINCH)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
