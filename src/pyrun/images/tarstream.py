"""A forward-only, buffered view of a tar stream that tarfile can read as if it could seek.

tarfile's own stream mode ("r|") reads through `_Stream`, which fetches 10 KiB at a time and joins
and re-slices its buffer on every read: for a layer of 50k small files, most of the unpack's time
went there and into `extractfile()` objects. ForwardReader refills one buffer in big chunks, hands
out slices, and "seeks" only forward (discarding). Opened with `tarfile.TarFile(fileobj=...,
mode="r")`, tarfile reads headers and data from it in order, as it does from a stream.
"""
from __future__ import annotations

from typing import Callable

CHUNK = 1 << 20


class ForwardReader:
    """read(n) / tell() / seek(forward) over `read_source(n) -> bytes` (b"" at the end)."""

    def __init__(self, read_source: Callable[[int], bytes], chunk: int = CHUNK):
        self._source = read_source
        self._chunk = chunk
        self._buf = b""
        self._at = 0       # position of the next byte inside _buf
        self._pos = 0      # position of the next byte in the stream
        self._eof = False

    def tell(self) -> int:
        return self._pos

    def _fill(self, want: int) -> None:
        """Make at least `want` bytes available after _at, unless the source ends first."""
        parts = [self._buf[self._at:]]
        have = len(parts[0])
        while have < want and not self._eof:
            more = self._source(max(self._chunk, want - have))
            if not more:
                self._eof = True
                break
            parts.append(more)
            have += len(more)
        self._buf = parts[0] if len(parts) == 1 else b"".join(parts)
        self._at = 0

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            self._fill(1 << 62)
            n = len(self._buf) - self._at
        elif len(self._buf) - self._at < n:
            self._fill(n)
        out = self._buf[self._at:self._at + n]
        self._at += len(out)
        self._pos += len(out)
        return out

    def seek(self, pos: int, whence: int = 0) -> int:
        """Forward only: skip to `pos` (or to the end of the stream, if it ends before)."""
        if whence != 0 or pos < self._pos:
            raise OSError(f"a forward-only tar stream cannot seek back to {pos} from {self._pos}")
        skip = pos - self._pos
        while skip > 0:
            in_buf = len(self._buf) - self._at
            if in_buf == 0:
                self._fill(min(skip, self._chunk))
                if len(self._buf) == 0:
                    break
                continue
            step = min(skip, in_buf)
            self._at += step
            self._pos += step
            skip -= step
        return self._pos
