"""Commands run in a running container: synchronously with a timeout and capped output (the CRI's
ExecSync), streamed with any stdio and a terminal (the CRI's Exec), or in this very process (`pyrun exec`).

Each goes through pyrun.runtime.nsexec: a child forked by pyrun.runtime.spawn (from the CRI server's
zygote, never from a gRPC thread), or this process itself. The output of a synchronous exec is capped
as containerd caps it (maxExecSyncSize, 16 MiB per stream), so a command that prints without end
cannot exhaust the server's memory: the pipes are drained to their end either way (a command blocked
on a full pipe would never exit) and bytes past the cap are read and dropped.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from pyrun.errors import DeadlineExceeded, PyrunError, SpecError
from pyrun.frozen import Frozen, Record, field

MAX_EXEC_SYNC_OUTPUT = 16 << 20  # bytes per stream, as containerd
TERM_XTERM = "TERM=xterm"  # what containerd sets for a process on a terminal


class CappedBuffer(Record):
    """Keeps the first `cap` bytes written to it and counts the rest (pure)."""
    cap: int
    data: bytearray = field(default_factory=bytearray)
    dropped: int = 0

    def write(self, chunk: bytes) -> None:
        room = max(0, self.cap - len(self.data))
        self.data += chunk[:room]
        self.dropped += max(0, len(chunk) - room)

    @property
    def truncated(self) -> bool:
        return self.dropped > 0


def truncation_note(container: str, out: CappedBuffer, err: CappedBuffer) -> bytes:
    """A line for the end of stderr (and a log warning) naming each stream that was cut; b"" if none."""
    cut = [f"{name} after {buf.cap} bytes ({buf.dropped} more dropped)"
           for name, buf in (("stdout", out), ("stderr", err)) if buf.truncated]
    if not cut:
        return b""
    note = f"ExecSync in container {container}: output truncated: " + ", ".join(cut)
    import logging  # here: every CLI command imports this module, only the CRI server logs
    logging.getLogger("pyrun.exec").warning("%s", note)
    return f"\n[pyrun: {note}]\n".encode()


def require_command(argv) -> list[str]:
    if not argv:
        raise SpecError([("cmd", "no command given")])
    return list(argv)


class ExecResult(Frozen):
    stdout: bytes
    stderr: bytes  # with a note at its end when a stream was truncated
    exit_code: int


class ExecHandle(Frozen):
    """A command to run in a running container; `start` forks it with the given stdio."""

    cdir: Path
    container: str
    argv: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str | None = None

    def job(self):
        from pyrun.runtime import nsexec
        return nsexec.job(self.cdir, list(self.argv), list(self.env), self.cwd)

    def start(self, stdio: tuple[int, int, int], sock=None):
        """A pyrun.runtime.spawn.Child (pid, poll, wait, kill) in a session of its own (a terminal:
        start_terminal); with sock, it reports the command's exit code there (`exited`) as soon as it
        has it (pyrun.runtime.nsexec.child_main)."""
        from pyrun.runtime import spawn
        return spawn.spawn(self.job(), sock=sock, stdio=stdio)

    def start_terminal(self) -> tuple[Any, int]:
        """Start the command on a terminal of the container's own devpts (`tty` prints /dev/pts/N) with
        TERM=xterm, as containerd does for a tty exec: (pyrun.runtime.spawn.Child, the pty's master)."""
        from pyrun.runtime import nsexec, spawn, sync
        env = [*self.env, TERM_XTERM] if not any(e.startswith("TERM=") for e in self.env) else list(self.env)
        mine, theirs = sync.socketpair()
        try:
            proc = spawn.spawn(nsexec.job(self.cdir, list(self.argv), env, self.cwd, terminal=True), sock=theirs)
        finally:
            theirs.close()
        with mine:
            try:
                _, master = sync.recv_fd(mine, "terminal", timeout=60, peer="exec")
            except BaseException:
                proc.kill()
                with contextlib.suppress(TimeoutError, OSError, spawn.SpawnError):
                    proc.wait(10)
                raise
        if master is None:
            proc.kill()
            raise PyrunError(f"exec in container {self.container}: no terminal came back")
        return proc, master

    def run_sync(self, timeout: float | None, cap: int = MAX_EXEC_SYNC_OUTPUT) -> ExecResult:
        """Run to the end with stdin /dev/null; DeadlineExceeded (the command killed) after `timeout`."""
        from pyrun.runtime import spawn, sync
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        report, theirs = sync.socketpair()
        try:
            proc = self.start((null, out_w, err_w), sock=theirs)
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            report.close()
            raise
        finally:
            for fd in (null, out_w, err_w):
                os.close(fd)
            theirs.close()
        out, err = CappedBuffer(cap), CappedBuffer(cap)
        try:
            _, _, code = spawn.communicate(proc, out_r, err_r, timeout, sinks=(out, err), report=report)
        except TimeoutError:
            proc.kill()  # its process group: the command and what it started
            with contextlib.suppress(TimeoutError, OSError, spawn.SpawnError):
                proc.wait(10)
            raise DeadlineExceeded(f"command {list(self.argv)!r} in container {self.container} timed out "
                                   f"after {timeout}s") from None
        finally:
            report.close()
        return ExecResult(bytes(out.data), bytes(err.data) + truncation_note(self.container, out, err), code)

    def run_here(self) -> int:
        """Run in this process (no new interpreter): it joins the container's namespaces and cgroups, forks
        the command and waits; errors are reported on stderr. Returns the exit code to exit with: having
        joined the container, the caller must do nothing but exit. With the container's exec profile this
        process becomes the C exec helper instead (pyrun.runtime.execprofile: no Python in the container)."""
        from pyrun.runtime import execprofile
        execprofile.exec_helper(self.cdir, self.container, self.argv, self.env, self.cwd)
        from pyrun.runtime import nsexec
        return nsexec.run(self.cdir, list(self.argv), list(self.env), self.cwd)
