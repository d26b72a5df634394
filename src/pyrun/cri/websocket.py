"""A minimal WebSocket (RFC 6455) on the standard library, for pyrun's streaming server.

Only what the Kubernetes streaming protocols need: the opening handshake (server side, and a client
side for tests and tools), binary/text messages, fragmentation (continuation frames are joined),
ping -> pong, and the closing handshake. No extensions (permessage-deflate is never negotiated).

Frames (RFC 6455 section 5.2):  FIN|RSV|opcode, MASK|len7 [, len16 | len64] [, mask key], payload.
A client masks every frame it sends (a server closes with 1002 on an unmasked one); a server never
masks. Control frames (close, ping, pong) are at most 125 bytes and never fragmented.
"""
from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CONTROL = (OP_CLOSE, OP_PING, OP_PONG)
CLOSE_NORMAL, CLOSE_PROTOCOL_ERROR, CLOSE_TOO_BIG = 1000, 1002, 1009
MAX_MESSAGE = 16 << 20


class ProtocolError(Exception):
    """The peer broke RFC 6455; `code` is the close code to answer with."""

    def __init__(self, message: str, code: int = CLOSE_PROTOCOL_ERROR):
        super().__init__(message)
        self.code = code


# --- handshake (pure) ----------------------------------------------------------------------------

def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 section 4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def offered_protocols(header: str | None) -> list[str]:
    """Sec-WebSocket-Protocol values (comma-separated, possibly over several headers joined)."""
    return [p.strip() for p in (header or "").split(",") if p.strip()]


def choose_protocol(offered: Sequence[str], supported: Sequence[str]) -> str | None:
    """The first protocol the client offered that the server supports ("" when none was offered)."""
    if not offered:
        return ""
    for p in offered:
        if p in supported:
            return p
    return None


def handshake_problem(method: str, headers) -> str | None:
    """Why a request is not a valid WebSocket opening handshake (None when it is). `headers`: .get()."""
    if method != "GET":
        return f"method {method} (a WebSocket handshake is a GET)"
    if (headers.get("Upgrade") or "").lower() != "websocket":
        return "no 'Upgrade: websocket' header"
    if "upgrade" not in [t.strip().lower() for t in (headers.get("Connection") or "").split(",")]:
        return "no 'Connection: Upgrade' header"
    if (headers.get("Sec-WebSocket-Version") or "").strip() != "13":
        return "Sec-WebSocket-Version must be 13"
    key = headers.get("Sec-WebSocket-Key") or ""
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError
    except ValueError:
        return "Sec-WebSocket-Key is not 16 base64-encoded bytes"
    return None


def server_response(key: str, protocol: str) -> bytes:
    """The 101 response that completes a handshake."""
    lines = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Accept: {accept_key(key)}"]
    if protocol:
        lines.append(f"Sec-WebSocket-Protocol: {protocol}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# --- frames (pure) -------------------------------------------------------------------------------

def apply_mask(data: bytes, key: bytes) -> bytes:
    """XOR with the 4-byte masking key (its own inverse)."""
    n = len(data)
    if n == 0:
        return b""
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")


def encode_frame(opcode: int, payload: bytes, fin: bool = True, mask: bytes | None = None) -> bytes:
    """One frame; `mask` (4 bytes) for frames a client sends."""
    if opcode in CONTROL and (len(payload) > 125 or not fin):
        raise ValueError("a control frame carries at most 125 bytes and is never fragmented")
    head = bytes([(0x80 if fin else 0) | opcode])
    bit = 0x80 if mask is not None else 0
    n = len(payload)
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if mask is not None:
        return head + mask + apply_mask(payload, mask)
    return head + payload


@dataclass(frozen=True)
class Frame:
    fin: bool
    opcode: int
    payload: bytes


def read_frame(read_exact: Callable[[int], bytes], require_mask: bool, max_size: int = MAX_MESSAGE) -> Frame:
    """Read one frame with `read_exact(n)` (EOFError when the stream ends), unmasked."""
    b0, b1 = read_exact(2)
    if b0 & 0x70:
        raise ProtocolError("reserved bits set (no extension was negotiated)")
    fin, opcode, masked, n = bool(b0 & 0x80), b0 & 0x0F, bool(b1 & 0x80), b1 & 0x7F
    if opcode not in (OP_CONTINUATION, OP_TEXT, OP_BINARY, *CONTROL):
        raise ProtocolError(f"unknown opcode {opcode:#x}")
    if opcode in CONTROL and (not fin or n > 125):
        raise ProtocolError("fragmented or oversized control frame")
    if masked != require_mask:
        raise ProtocolError("client frames must be masked" if require_mask else "server frames must not be masked")
    if n == 126:
        (n,) = struct.unpack("!H", read_exact(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", read_exact(8))
    if n > max_size:
        raise ProtocolError(f"frame of {n} bytes is too big", CLOSE_TOO_BIG)
    key = read_exact(4) if masked else b""
    payload = read_exact(n) if n else b""
    return Frame(fin, opcode, apply_mask(payload, key) if masked else payload)


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()[:123]


def parse_close(payload: bytes) -> tuple[int, str]:
    if len(payload) < 2:
        return 1005, ""  # "no status received"
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode(errors="replace")


# --- a connection --------------------------------------------------------------------------------

class WebSocket:
    """A WebSocket over a connected socket. `recv()` from one thread, `send*()` from any (locked).

    `rfile`: a buffered reader of the socket (bytes the HTTP layer read ahead stay usable).
    """

    def __init__(self, sock: socket.socket, rfile, client: bool = False, max_message: int = MAX_MESSAGE):
        self.sock, self.rfile, self.client, self.max_message = sock, rfile, client, max_message
        self._lock = threading.Lock()
        self.close_sent = False
        self.close_received: tuple[int, str] | None = None
        self.ended = threading.Event()  # recv() has seen the close frame or the end of the stream

    def _read_exact(self, n: int) -> bytes:
        data = self.rfile.read(n)
        if data is None or len(data) < n:
            raise EOFError("connection closed")
        return data

    def send(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        mask = os.urandom(4) if self.client else None
        frame = encode_frame(opcode, payload, fin, mask)
        with self._lock:
            if self.close_sent:
                raise BrokenPipeError("the WebSocket is closing")
            if opcode == OP_CLOSE:
                self.close_sent = True
            self.sock.sendall(frame)

    def send_binary(self, payload: bytes) -> None:
        self.send(OP_BINARY, payload)

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Start (or finish) the closing handshake; harmless when already closed."""
        try:
            self.send(OP_CLOSE, close_payload(code, reason))
        except OSError:
            pass

    def recv(self) -> tuple[int, bytes] | None:
        """The next message (opcode, payload); None once the connection is closed (close frame or EOF).

        Pings are answered, pongs dropped, fragments joined; a protocol error closes with its code.
        """
        msg = self._recv()
        if msg is None:
            self.ended.set()
        return msg

    def shutdown(self, linger: float = 1.0) -> None:
        """Close, wait up to `linger` s for the peer's close (read by whoever calls recv), then shut the
        socket down (which also wakes a reader still blocked in recv)."""
        self.close()
        self.ended.wait(linger)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _recv(self) -> tuple[int, bytes] | None:
        opcode, parts, size = None, [], 0
        while True:
            try:
                frame = read_frame(self._read_exact, require_mask=not self.client, max_size=self.max_message)
            except ProtocolError as e:
                self.close(e.code, str(e))
                return None
            except (EOFError, OSError, ValueError):
                return None
            if frame.opcode == OP_PING:
                try:
                    self.send(OP_PONG, frame.payload)
                except OSError:
                    return None
                continue
            if frame.opcode == OP_PONG:
                continue
            if frame.opcode == OP_CLOSE:
                self.close_received = parse_close(frame.payload)
                self.close(self.close_received[0] if self.close_received[0] != 1005 else CLOSE_NORMAL)
                return None
            if frame.opcode == OP_CONTINUATION:
                if opcode is None:
                    self.close(CLOSE_PROTOCOL_ERROR, "continuation without a first fragment")
                    return None
            elif opcode is not None:
                self.close(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
                return None
            else:
                opcode = frame.opcode
            parts.append(frame.payload)
            size += len(frame.payload)
            if size > self.max_message:
                self.close(CLOSE_TOO_BIG, "message too big")
                return None
            if frame.fin:
                return opcode, b"".join(parts)

    def messages(self) -> Iterable[tuple[int, bytes]]:
        while (msg := self.recv()) is not None:
            yield msg


def connect(host: str, port: int, path: str, protocols: Sequence[str] = (), timeout: float = 10.0
            ) -> tuple[WebSocket, str]:
    """Client side (tests and tools): open ws://host:port/path; returns (connection, chosen protocol).

    Raises ConnectionError with the server's status line and body when it refuses the upgrade.
    """
    sock = socket.create_connection((host, port), timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if protocols:
        lines.append("Sec-WebSocket-Protocol: " + ", ".join(protocols))
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    rfile = sock.makefile("rb")
    status = rfile.readline().decode(errors="replace").strip()
    headers: dict[str, str] = {}
    while (line := rfile.readline().decode(errors="replace").strip()):
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if not status.startswith("HTTP/1.1 101"):
        length = int(headers.get("content-length") or 0)
        body = rfile.read(length).decode(errors="replace") if length else ""
        sock.close()
        raise ConnectionError(f"{status}: {body}".strip())
    if headers.get("sec-websocket-accept") != accept_key(key):
        sock.close()
        raise ConnectionError("bad Sec-WebSocket-Accept")
    sock.settimeout(None)
    return WebSocket(sock, rfile, client=True), headers.get("sec-websocket-protocol", "")
