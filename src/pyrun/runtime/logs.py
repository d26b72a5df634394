"""The CRI container log format (pure): one line per chunk,

    <RFC3339Nano timestamp> <stdout|stderr> <P|F> <content>

F ends a line, P is a partial line: lines longer than 16 KiB are split into P
fragments, as the kubelet expects (see the CRI's kubelet log format).
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Entry:
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
