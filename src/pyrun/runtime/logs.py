"""The CRI container log format (pure): one line per chunk,

    <RFC3339Nano timestamp> <stdout|stderr> <P|F> <content>

F ends a line, P is a partial line: lines longer than 16 KiB are split into P
fragments, as the kubelet expects (see the CRI's kubelet log format).

`LogFollower` is the one reader of a container's log file that `pyrun logs [-f]` and the
CRI's Attach share: from its start or its end, and (following) across a rotation.
"""
from __future__ import annotations

import datetime as _dt
import os
import time

from pyrun.frozen import Frozen

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a pod create's start-up)
if TYPE_CHECKING:
    from typing import Callable, Iterator


MAX_LINE = 16 * 1024


def rfc3339_nano(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    t = _dt.datetime.fromtimestamp(secs, _dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def format_entry(ns: int, stream: str, partial: bool, content: bytes) -> bytes:
    return b"%s %s %s %s\n" % (rfc3339_nano(ns).encode(), stream.encode(), b"P" if partial else b"F", content)


class LineSplitter:
    """Turns a byte stream into log entries: complete lines as F, 16 KiB chunks as P."""

    def __init__(self, stream: str, max_line: int = MAX_LINE):
        self.stream = stream
        self.max_line = max_line
        self.buf = b""

    def feed(self, data: bytes, ns: int) -> list[bytes]:
        self.buf += data
        out = []
        while True:
            nl = self.buf.find(b"\n")
            if nl != -1 and nl <= self.max_line:
                out.append(format_entry(ns, self.stream, False, self.buf[:nl]))
                self.buf = self.buf[nl + 1:]
            elif len(self.buf) >= self.max_line and (nl == -1 or nl > self.max_line):
                out.append(format_entry(ns, self.stream, True, self.buf[:self.max_line]))
                self.buf = self.buf[self.max_line:]
            else:
                return out

    def flush(self, ns: int) -> list[bytes]:
        """At end of stream a last unterminated line is written as a full line."""
        if not self.buf:
            return []
        out = [format_entry(ns, self.stream, False, self.buf)]
        self.buf = b""
        return out


class Entry(Frozen):
    timestamp: str
    stream: str
    partial: bool
    content: bytes


def parse_entry(line: bytes) -> Entry:
    line = line.rstrip(b"\n")
    ts, stream, tag, *rest = line.split(b" ", 3)
    return Entry(ts.decode(), stream.decode(), tag == b"P", rest[0] if rest else b"")


def render_entries(lines: list[bytes], streams: set[str] | None = None, timestamps: bool = False) -> bytes:
    """Turn log-file lines back into the program's output (P fragments joined)."""
    out = []
    for raw in lines:
        if not raw.strip():
            continue
        try:
            e = parse_entry(raw)
        except ValueError:
            continue
        if streams and e.stream not in streams:
            continue
        prefix = (e.timestamp + " ").encode() if timestamps else b""
        out.append(prefix + e.content + (b"" if e.partial else b"\n"))
    return b"".join(out)


READ_SIZE = 32 * 1024
POLL = 0.1         # s between reads of a quiet log
CHECK_EVERY = 0.5  # s between checks that the container may still write and that the file was not rotated


def _open_log(path: str, from_end: bool):
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return None
    if from_end:
        f.seek(0, os.SEEK_END)
    return f


def previous_entries(path: str, name: str, status) -> list[bytes]:
    """The log lines of a restarted container's previous instance: they lie between the offsets its
    monitor recorded (ContainerStatus.previous_log_start, log_start; the log is appended across
    restarts). NotFound if the container was never restarted (kubectl's message)."""
    from pyrun.errors import NotFound
    start, end = status.previous_log_start, status.log_start
    if not status.restart_count or start is None or end is None or end < start:
        raise NotFound(f'previous terminated container "{name}" not found')
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    return data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n")


class LogFollower:
    """The one reader of a container's CRI log file (`pyrun logs [-f]`, the CRI's Attach).

    The file is opened when the follower is made (from_end: at its end, so what is written after
    this point is what `lines` returns). A last line without its newline is not returned (the
    monitor writes whole lines)."""

    def __init__(self, path: str, *, from_end: bool = False, poll: float = POLL, check_every: float = CHECK_EVERY,
                 sleep: Callable[[float], None] = time.sleep):
        self.path = path
        self.poll, self.check_every, self.sleep = poll, check_every, sleep
        self._f = _open_log(path, from_end)
        self._pending = b""

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self) -> "LogFollower":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read(self) -> list[bytes] | None:
        """The complete lines of the next chunk; None at the file's end (for now)."""
        chunk = self._f.read(READ_SIZE) if self._f else b""
        if not chunk:
            return None
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        return lines

    def _rotated(self) -> bool:
        """Whether the path now names another file than the open one (ReopenContainerLog: the kubelet
        renamed the file and the monitor made a new one)."""
        try:
            current = os.stat(self.path).st_ino
        except FileNotFoundError:
            return False
        return self._f is None or os.fstat(self._f.fileno()).st_ino != current

    def lines(self, *, follow: bool = True, running: Callable[[], bool] = lambda: False,
              cancelled: Callable[[], bool] = lambda: False) -> Iterator[bytes]:
        """The file's complete lines (without their newline), one by one (see `batches`)."""
        for batch in self.batches(follow=follow, running=running, cancelled=cancelled):
            yield from batch

    def batches(self, *, follow: bool = True, running: Callable[[], bool] = lambda: False,
                cancelled: Callable[[], bool] = lambda: False) -> Iterator[list[bytes]]:
        """The file's complete lines (without their newline), as read. Without follow, those there now.
        Following: at the end, wait for more while `running()` (checked every `check_every` s) says the
        container may still write, continue in the new file after a rotation (the old one read to its end
        first), and read once more to the end after `running()` turned false. cancelled(): stop now."""
        last_check, alive = float("-inf"), True
        while not cancelled():
            lines = self._read()
            if lines is not None:
                yield lines
                continue
            if not follow or not alive:
                return  # without follow, or drained after the container stopped writing
            now = time.monotonic()
            if now - last_check >= self.check_every:
                last_check = now
                alive = running()
                if self._rotated():
                    while (rest := self._read()) is not None:
                        yield rest
                    self.close()
                    self._f, self._pending = _open_log(self.path, from_end=False), b""
                    continue
                if not alive:
                    continue  # one last read
            self.sleep(self.poll)
