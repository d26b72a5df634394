"""Process identity and waiting.

A pid alone is not an identity: pids are reused. pyrun records (pid, start time)
from /proc/<pid>/stat (field 22, proc(5)) and only signals a pid whose start
time still matches, so it never kills a process it did not start.
"""
from __future__ import annotations

import os
import select
import signal
import time

from pyrun.frozen import Frozen


def _stat_fields(pid: int, proc: str = "/proc") -> list[bytes] | None:
    """Fields 3... of /proc/<pid>/stat (state first), or None if the pid is gone."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:  # ENOENT/ESRCH (and, mid-exit, others): gone
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    return data[data.rindex(b")") + 2:].split()


def start_time(pid: int, proc: str = "/proc") -> int | None:
    """The process start time in clock ticks since boot, or None if the pid is gone."""
    fields = _stat_fields(pid, proc)
    return None if fields is None else int(fields[19])


def is_zombie(pid: int) -> bool:
    """True for a zombie or a process that is gone (a dying process's stat can fail with ESRCH)."""
    fields = _stat_fields(pid)
    return fields is None or fields[0] in (b"Z", b"X")


class ProcessRef(Frozen):
    pid: int
    start_time: int

    @classmethod
    def of(cls, pid: int) -> "ProcessRef":
        st = start_time(pid)
        if st is None:
            raise ProcessLookupError(pid)
        return cls(pid, st)

    @classmethod
    def from_dict(cls, d: dict | None) -> "ProcessRef | None":
        if not d or not d.get("pid"):
            return None
        return cls(int(d["pid"]), int(d.get("start_time") or 0))

    def to_dict(self) -> dict:
        return {"pid": self.pid, "start_time": self.start_time}

    def alive(self) -> bool:
        """The same process (start time) and not a zombie: one read of its stat file."""
        fields = _stat_fields(self.pid)
        return fields is not None and int(fields[19]) == self.start_time and fields[0] not in (b"Z", b"X")

    def signal(self, sig: int) -> bool:
        """Send sig if this is still the same process; True if it was sent."""
        if start_time(self.pid) != self.start_time:
            return False
        from pyrun.linux import syscalls as linux  # cffi: not for the commands that only read state
        linux.kill(self.pid, sig)
        return True

    def wait_gone(self, timeout: float) -> bool:
        """Wait until the process has exited (any parent); True if it did within timeout."""
        return wait_pids_gone([self], timeout)


def wait_pids_gone(refs: list[ProcessRef], timeout: float) -> bool:
    """Wait for all processes to exit, using pidfds (pidfd_open(2)) where possible."""
    deadline = time.monotonic() + timeout
    for ref in refs:
        if not ref.alive():
            continue
        try:
            fd = os.pidfd_open(ref.pid)
        except ProcessLookupError:
            continue
        except OSError:
            # EINVAL: the pid no longer has a thread-group leader (the process is exiting): poll instead
            fd = None
        try:
            if start_time(ref.pid) != ref.start_time:
                continue  # the pid was reused before we opened it
            while ref.alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                # readable when the process exits; zombies of foreign parents count as gone
                if fd is None:
                    time.sleep(min(left, 0.02))
                else:
                    select.select([fd], [], [], min(left, 0.05))
        finally:
            if fd is not None:
                os.close(fd)
    return True


def terminate(refs: list[ProcessRef], grace: float) -> None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL what is left and wait for it."""
    live = [r for r in refs if r.signal(signal.SIGTERM)]
    if live and not wait_pids_gone(live, grace):
        for r in live:
            r.signal(signal.SIGKILL)
        wait_pids_gone(live, 5.0)


def kill_now(refs: list[ProcessRef]) -> None:
    live = [r for r in refs if r.signal(signal.SIGKILL)]
    wait_pids_gone(live, 5.0)


def wait_reaped(ref: ProcessRef, timeout: float) -> bool:
    """Wait until an exited process has also been reaped by its parent (its /proc entry is gone);
    True if it was within timeout. There is no fd for this: after the pidfd wait for the exit,
    a short poll, as a live parent reaps within a scheduling tick."""
    if not wait_pids_gone([ref], timeout):
        return False
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while start_time(ref.pid) == ref.start_time:
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.01)
    return True
