"""ExecSync's output, read with a cap: containerd keeps at most 16 MiB of each stream
(maxExecSyncSize), so a command that prints without end cannot exhaust the server's memory.

The pipes are drained to the end either way (a command blocked on a full pipe would
never exit); bytes past the cap are read and dropped.
"""
from __future__ import annotations

import logging
import os
import selectors
import subprocess
import time
from dataclasses import dataclass, field

MAX_EXEC_SYNC_OUTPUT = 16 << 20  # bytes per stream, as containerd

log = logging.getLogger("pyrun.cri")


@dataclass
class CappedBuffer:
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


def communicate_capped(proc: subprocess.Popen, timeout: float | None,
                       cap: int = MAX_EXEC_SYNC_OUTPUT) -> tuple[CappedBuffer, CappedBuffer]:
    """Read proc's stdout and stderr (both pipes) to EOF, each capped, then wait for it.

    Raises subprocess.TimeoutExpired if that takes longer than `timeout` seconds (None: no limit);
    the caller kills the process."""
    deadline = None if timeout is None else time.monotonic() + timeout
    out, err = CappedBuffer(cap), CappedBuffer(cap)
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        while sel.get_map():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(proc.args, timeout)
            for key, _ in sel.select(left):
                chunk = os.read(key.fd, 1 << 16)
                if chunk:
                    key.data.write(chunk)
                else:
                    sel.unregister(key.fileobj)
                    key.fileobj.close()
    left = None if deadline is None else max(0.0, deadline - time.monotonic())
    proc.wait(left)
    return out, err


def truncation_note(container: str, out: CappedBuffer, err: CappedBuffer) -> bytes:
    """A line for the end of stderr (and a log warning) naming each stream that was cut; b"" if none."""
    cut = [f"{name} after {buf.cap} bytes ({buf.dropped} more dropped)"
           for name, buf in (("stdout", out), ("stderr", err)) if buf.truncated]
    if not cut:
        return b""
    note = f"ExecSync in container {container}: output truncated: " + ", ".join(cut)
    log.warning("%s", note)
    return f"\n[pyrun: {note}]\n".encode()
