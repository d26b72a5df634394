"""SPDY/3.1 as the Kubernetes streaming protocols use it: frames, header compression, a server session.

A kubelet that proxies `kubectl exec/attach/port-forward`, and crictl before 1.30, upgrade the
HTTP connection with `Upgrade: SPDY/3.1` and then open one SPDY stream per channel (the stream's
"streamType" header says which: error, stdin, stdout, stderr, resize; or error/data per forwarded
connection). Their SPDY library is github.com/moby/spdystream; pyrun matches what it does.

Frames (draft-mbelshe-httpbis-spdy-00, "SPDY Protocol - Draft 3"), all big-endian:
  control:  1|version(15)=3|type(16)  flags(8)|length(24)  payload
  data:     0|stream-id(31)           flags(8)|length(24)  payload        flag 0x01 = FIN
Control types used: SYN_STREAM 1 (client opens a stream: id, associated id, priority, slot, header
block), SYN_REPLY 2 (the server accepts it: id, header block), RST_STREAM 3 (id, status),
PING 6 (echoed), GOAWAY 7 (last good id, status). SETTINGS 4, HEADERS 8 and WINDOW_UPDATE 9 are read
and ignored: like spdystream, pyrun does no flow control (the peer never waits for a window).

Header blocks are zlib-compressed with the SPDY/3 dictionary, one zlib stream per direction for the
whole connection (each block ends with a sync flush); the uncompressed block is a 32-bit count, then
per pair a 32-bit length + lowercase name and a 32-bit length + value (several values NUL-separated).

Threads: Connection.start() runs one reader thread; writes from any thread are serialised by a lock.
A stream's received data waits in a small buffer; when it is full the reader stops reading the socket
(TCP pushes back on the client) until the consumer catches up.
"""
from __future__ import annotations

import socket
import struct
import threading
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import BinaryIO, Iterable, Mapping

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN, FLAG_UNIDIRECTIONAL = 0x01, 0x02
RST_PROTOCOL_ERROR, RST_INVALID_STREAM, RST_REFUSED_STREAM, RST_CANCEL = 1, 2, 3, 5
GOAWAY_OK, GOAWAY_PROTOCOL_ERROR = 0, 1
MAX_FRAME = (1 << 24) - 1        # the length field's limit
MAX_HEADER_BLOCK = 64 * 1024     # decompressed; a SYN_STREAM of the streaming protocols has 3 headers
WRITE_CHUNK = 64 * 1024
BUFFER_LIMIT = 1 << 20           # bytes a stream buffers before the reader waits for its consumer


class FrameError(Exception):
    """The peer broke the SPDY framing; the connection cannot continue."""


def _dictionary() -> bytes:
    """The SPDY/3 header compression dictionary (draft 3, section 2.6.10.1): 65 length-prefixed
    words, then a run of common values. Its Adler-32 (the zlib dictionary id) is 0xe3c6a7c2."""
    words = [w.replace("_", " ") for w in (  # "200_OK" is the one word with a space: "200 OK"
        "options head post put delete trace accept accept-charset accept-encoding accept-language "
        "accept-ranges age allow authorization cache-control connection content-base content-encoding "
        "content-language content-length content-location content-md5 content-range content-type date etag "
        "expect expires from host if-match if-modified-since if-none-match if-range if-unmodified-since "
        "last-modified location max-forwards pragma proxy-authenticate proxy-authorization range referer "
        "retry-after server te trailer transfer-encoding upgrade user-agent vary via warning www-authenticate "
        "method get status 200_OK version HTTP/1.1 url public set-cookie keep-alive origin").split()]
    tail = (
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
        "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
        "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
        "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
        "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
        "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
    return b"".join(struct.pack(">I", len(w)) + w.encode() for w in words) + tail.encode()


DICTIONARY = _dictionary()


# --- header blocks (pure) ------------------------------------------------------------------------

def pack_headers(headers: Mapping[str, str | Iterable[str]]) -> bytes:
    """The uncompressed name/value block; names lowercased, several values joined with NUL."""
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        values = [value] if isinstance(value, str) else list(value)
        n, v = name.lower().encode(), "\0".join(values).encode()
        out += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
    return b"".join(out)


def unpack_headers(block: bytes) -> dict[str, list[str]]:
    """Parse an uncompressed name/value block; names lowercased. FrameError when malformed."""
    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(block):
            raise FrameError("header block is truncated")
        pos += n
        return block[pos - n:pos]

    pos = 0
    (count,) = struct.unpack(">I", take(4))
    headers: dict[str, list[str]] = {}
    for _ in range(count):
        name = take(struct.unpack(">I", take(4))[0]).decode("utf-8", "replace").lower()
        value = take(struct.unpack(">I", take(4))[0]).decode("utf-8", "replace")
        if not name:
            raise FrameError("header block has an empty name")
        headers.setdefault(name, []).extend(value.split("\0"))
    if pos != len(block):
        raise FrameError(f"header block has {len(block) - pos} bytes after its {count} headers")
    return headers


class HeaderCompressor:
    """One direction's zlib stream (level 9, the SPDY dictionary); each block ends with a sync flush."""

    def __init__(self) -> None:
        self._z = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)

    def compress(self, headers: Mapping[str, str | Iterable[str]]) -> bytes:
        return self._z.compress(pack_headers(headers)) + self._z.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    def __init__(self) -> None:
        self._z = zlib.decompressobj(zdict=DICTIONARY)

    def decompress(self, data: bytes) -> dict[str, list[str]]:
        try:
            block = self._z.decompress(data, MAX_HEADER_BLOCK + 1)
        except zlib.error as e:
            raise FrameError(f"header block does not decompress: {e}") from None
        if len(block) > MAX_HEADER_BLOCK or self._z.unconsumed_tail:
            raise FrameError(f"header block is larger than {MAX_HEADER_BLOCK} bytes")
        return unpack_headers(block)


# --- frames (pure) -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Frame:
    """A parsed frame: control frames have a type; data frames have type 0 and a stream id."""

    control: bool
    type: int
    flags: int
    payload: bytes
    stream_id: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


def _frame_header(first: int, flags: int, length: int) -> bytes:
    if length > MAX_FRAME:
        raise ValueError(f"frame payload of {length} bytes is over the {MAX_FRAME} limit")
    return struct.pack(">II", first, (flags << 24) | length)


def control_frame(ftype: int, flags: int, payload: bytes) -> bytes:
    return _frame_header(0x80000000 | (VERSION << 16) | ftype, flags, len(payload)) + payload


def data_frame(stream_id: int, data: bytes, fin: bool = False) -> bytes:
    return _frame_header(stream_id & 0x7FFFFFFF, FLAG_FIN if fin else 0, len(data)) + data


def syn_stream(stream_id: int, header_block: bytes, fin: bool = False) -> bytes:
    """What a client sends to open a stream (priority 0, no associated stream); for tests and tools."""
    return control_frame(SYN_STREAM, FLAG_FIN if fin else 0, struct.pack(">IIH", stream_id, 0, 0) + header_block)


def syn_reply(stream_id: int, header_block: bytes, fin: bool = False) -> bytes:
    return control_frame(SYN_REPLY, FLAG_FIN if fin else 0, struct.pack(">I", stream_id) + header_block)


def rst_stream(stream_id: int, status: int) -> bytes:
    return control_frame(RST_STREAM, 0, struct.pack(">II", stream_id, status))


def goaway(last_good: int, status: int = GOAWAY_OK) -> bytes:
    return control_frame(GOAWAY, 0, struct.pack(">II", last_good, status))


def _read_exact(rfile: BinaryIO, n: int) -> bytes | None:
    data = rfile.read(n)
    if not data:
        return None
    if len(data) < n:
        raise FrameError(f"connection closed inside a frame ({len(data)} of {n} bytes)")
    return data


def read_frame(rfile: BinaryIO) -> Frame | None:
    """The next frame from a buffered reader; None at a clean end of the connection."""
    head = _read_exact(rfile, 8)
    if head is None:
        return None
    first, word = struct.unpack(">II", head)
    flags, length = word >> 24, word & 0xFFFFFF
    payload = _read_exact(rfile, length) if length else b""
    if payload is None:
        raise FrameError("connection closed inside a frame")
    if first & 0x80000000:
        version = (first >> 16) & 0x7FFF
        if version != VERSION:
            raise FrameError(f"SPDY version {version} (pyrun speaks SPDY/3.1)")
        return Frame(True, first & 0xFFFF, flags, payload)
    stream_id = first & 0x7FFFFFFF
    if stream_id == 0:
        raise FrameError("data frame on stream 0")
    return Frame(False, 0, flags, payload, stream_id)


def stream_id_of(payload: bytes) -> int:
    if len(payload) < 4:
        raise FrameError("control frame too short for a stream id")
    return struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF


# --- server session ------------------------------------------------------------------------------

@dataclass(eq=False)
class Stream:
    """One client-opened stream: read what the client sends, write back, FIN or reset it."""

    conn: "Connection"
    id: int
    headers: dict[str, list[str]]
    _buffer: deque = field(default_factory=deque)
    _buffered: int = 0
    _remote_done: bool = False
    _local_done: bool = False

    def header(self, name: str) -> str:
        return (self.headers.get(name.lower()) or [""])[0]

    # reading (the connection's reader thread feeds, one consumer reads)
    def _feed(self, data: bytes) -> None:
        with self.conn.cond:
            while self._buffered >= BUFFER_LIMIT and not self._remote_done and not self.conn.closed:
                self.conn.cond.wait(0.5)
            if not self._remote_done:
                self._buffer.append(data)
                self._buffered += len(data)
                self.conn.cond.notify_all()

    def _end_remote(self) -> None:
        with self.conn.cond:
            self._remote_done = True
            self.conn.cond.notify_all()

    def read(self, timeout: float | None = None) -> bytes | None:
        """The next chunk the client sent; b"" once it half-closed (FIN), reset, or left;
        None when `timeout` passed with nothing."""
        with self.conn.cond:
            if not self.conn.cond.wait_for(lambda: self._buffer or self._remote_done or self.conn.closed, timeout):
                return None
            if self._buffer:
                data = self._buffer.popleft()
                self._buffered -= len(data)
                self.conn.cond.notify_all()
                return data
            return b""

    # writing
    def write(self, data: bytes) -> bool:
        """Send data (in chunks); False if the stream or the connection is closed."""
        view = memoryview(data)
        while view:
            chunk, view = view[:WRITE_CHUNK], view[WRITE_CHUNK:]
            if self._local_done or not self.conn.send(data_frame(self.id, bytes(chunk))):
                return False
        return not self._local_done

    def close(self) -> None:
        """Half-close our side (an empty DATA frame with FIN); the client reads EOF."""
        if not self._local_done:
            self._local_done = True
            self.conn.send(data_frame(self.id, b"", fin=True))

    def reset(self, status: int = RST_CANCEL) -> None:
        if not (self._local_done and self._remote_done):
            self._local_done = True
            self._end_remote()
            self.conn.send(rst_stream(self.id, status))


class Connection:
    """The server side of a SPDY/3.1 connection the client opens streams on."""

    def __init__(self, sock: socket.socket, rfile: BinaryIO, name: str = "spdy"):
        self.sock, self.rfile, self.name = sock, rfile, name
        self.cond = threading.Condition()
        self.closed = False           # the client is gone (EOF, error) or we closed
        self.error: str | None = None  # why, when it was a protocol error
        self._streams: dict[int, Stream] = {}
        self._new: deque[Stream] = deque()
        self._last_id = 0
        self._going_away = False
        self._send_lock = threading.Lock()
        self._compressor = HeaderCompressor()
        self._decompressor = HeaderDecompressor()
        self._reader: threading.Thread | None = None

    def start(self) -> "Connection":
        self._reader = threading.Thread(target=self._read_loop, daemon=True, name=f"{self.name}-reader")
        self._reader.start()
        return self

    # --- sending
    def send(self, frame: bytes) -> bool:
        if self.closed:
            return False
        try:
            with self._send_lock:
                self.sock.sendall(frame)
            return True
        except OSError:
            self._set_closed()
            return False

    # --- accepting streams
    def accept(self, timeout: float | None = None) -> Stream | None:
        """The next stream the client opened (already replied to); None on timeout or when closed."""
        with self.cond:
            self.cond.wait_for(lambda: self._new or self.closed, timeout)
            return self._new.popleft() if self._new else None

    def wait_closed(self, timeout: float | None = None) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.closed, timeout)

    # --- the reader thread
    def _read_loop(self) -> None:
        try:
            while True:
                frame = read_frame(self.rfile)
                if frame is None:
                    break
                self._dispatch(frame)
        except FrameError as e:
            self.error = str(e)
            self.send(goaway(self._last_id, GOAWAY_PROTOCOL_ERROR))
        except (OSError, ValueError):
            pass  # the socket was closed under us
        finally:
            self._set_closed()

    def _dispatch(self, frame: Frame) -> None:
        if not frame.control:
            stream = self._streams.get(frame.stream_id)
            if stream is None:
                return  # a stream we reset or never had: dropped, as spdystream does
            if frame.payload:
                stream._feed(frame.payload)
            if frame.fin:
                stream._end_remote()
            return
        if frame.type == SYN_STREAM:
            self._on_syn_stream(frame)
        elif frame.type == RST_STREAM:
            stream = self._streams.pop(stream_id_of(frame.payload), None)
            if stream is not None:
                stream._local_done = True
                stream._end_remote()
        elif frame.type == PING:
            self.send(control_frame(PING, 0, frame.payload))
        elif frame.type == GOAWAY:
            self._going_away = True  # no new streams; the client closes when it is done
        elif frame.type == HEADERS:
            stream_id_of(frame.payload)
            self._decompressor.decompress(frame.payload[4:])  # keep the zlib stream in step
        # SETTINGS, WINDOW_UPDATE and unknown types: nothing to do

    def _on_syn_stream(self, frame: Frame) -> None:
        if len(frame.payload) < 10:
            raise FrameError("SYN_STREAM too short")
        stream_id = stream_id_of(frame.payload)
        headers = self._decompressor.decompress(frame.payload[10:])
        if stream_id % 2 == 0 or stream_id <= self._last_id:
            self.send(rst_stream(stream_id, RST_PROTOCOL_ERROR))  # clients use odd, increasing ids
            return
        self._last_id = stream_id
        if self._going_away:
            self.send(rst_stream(stream_id, RST_REFUSED_STREAM))
            return
        stream = Stream(self, stream_id, headers)
        stream._local_done = bool(frame.flags & FLAG_UNIDIRECTIONAL)
        self._streams[stream_id] = stream
        with self._send_lock:  # compress and send in one step: the zlib stream's order is the wire order
            block = self._compressor.compress({})
            try:
                self.sock.sendall(syn_reply(stream_id, block))
            except OSError:
                pass
        if frame.fin:
            stream._end_remote()
        with self.cond:
            self._new.append(stream)
            self.cond.notify_all()

    def _set_closed(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    # --- ending
    def finish(self, linger: float = 5.0) -> None:
        """End the session after our last frames: give the client `linger` seconds to read them and
        close its side (closing first could discard what it has not read), then GOAWAY and close."""
        self.wait_closed(linger)
        self.close()

    def abort(self) -> None:
        """The server is stopping."""
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.send(goaway(self._last_id))
        self._set_closed()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # the reader thread sees EOF
        except OSError:
            pass
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(2.0)
