"""A small SPDY/3.1 client on pyrun.cri.spdy's framing, for tests of the streaming server without Go.

It does what client-go's SPDY round tripper and remotecommand do on the wire: the HTTP upgrade with
X-Stream-Protocol-Version, then odd stream ids from 1 with a "streamType" header, data, FIN, pings.
The Go client in tests/tools/spdyclient (built on spdystream, the library Kubernetes uses) is the
independent peer; this one is for fast, exact checks of frames.
"""
from __future__ import annotations

import socket
import struct
import threading
from urllib.parse import urlsplit

from pyrun.cri import spdy


class SpdyClient:
    def __init__(self, url: str, protocols=("v4.channel.k8s.io",), method: str = "POST", timeout: float = 10):
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        lines = [f"{method} {parts.path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: Upgrade",
                 "Upgrade: SPDY/3.1", *(f"X-Stream-Protocol-Version: {p}" for p in protocols), "", ""]
        self.sock.sendall("\r\n".join(lines).encode())
        self.rfile = self.sock.makefile("rb")
        self.status = int(self.rfile.readline().split()[1])
        self.headers: dict[str, list[str]] = {}
        while (line := self.rfile.readline().decode().strip()):
            name, _, value = line.partition(":")
            self.headers.setdefault(name.strip().lower(), []).append(value.strip())
        self.body = b""
        if self.status != 101:
            self.body = self.rfile.read(int(self.headers.get("content-length", ["0"])[0]))
            return
        self.protocol = self.headers.get("x-stream-protocol-version", [""])[0]
        self.compressor, self.decompressor = spdy.HeaderCompressor(), spdy.HeaderDecompressor()
        self.next_id = 1
        self.data: dict[int, bytes] = {}
        self.fin: set[int] = set()
        self.replied: set[int] = set()
        self.reset: dict[int, int] = {}
        self.pongs: list[int] = []
        self.goaway = False
        self.closed = threading.Event()
        self.cond = threading.Condition()
        self.sock.settimeout(None)
        threading.Thread(target=self._read, daemon=True).start()

    def open(self, stream_type: str, **headers: str) -> int:
        sid, self.next_id = self.next_id, self.next_id + 2
        block = self.compressor.compress({"streamType": stream_type, **headers})
        self.sock.sendall(spdy.syn_stream(sid, block))
        return sid

    def send(self, sid: int, data: bytes, fin: bool = False) -> None:
        self.sock.sendall(spdy.data_frame(sid, data, fin))

    def ping(self, ping_id: int = 1) -> None:
        self.sock.sendall(spdy.control_frame(spdy.PING, 0, struct.pack(">I", ping_id)))

    def _read(self) -> None:
        try:
            while (frame := spdy.read_frame(self.rfile)) is not None:
                with self.cond:
                    self._on(frame)
                    self.cond.notify_all()
        except (OSError, ValueError, spdy.FrameError):
            pass
        finally:
            with self.cond:
                self.closed.set()
                self.cond.notify_all()

    def _on(self, frame: spdy.Frame) -> None:
        if not frame.control:
            self.data[frame.stream_id] = self.data.get(frame.stream_id, b"") + frame.payload
            if frame.fin:
                self.fin.add(frame.stream_id)
        elif frame.type == spdy.SYN_REPLY:
            self.decompressor.decompress(frame.payload[4:])
            self.replied.add(spdy.stream_id_of(frame.payload))
        elif frame.type == spdy.RST_STREAM:
            sid, status = struct.unpack(">II", frame.payload)
            self.reset[sid] = status
        elif frame.type == spdy.PING:
            self.pongs.append(struct.unpack(">I", frame.payload)[0])
        elif frame.type == spdy.GOAWAY:
            self.goaway = True

    def wait(self, predicate, timeout: float = 10) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def wait_fin(self, *sids: int, timeout: float = 10) -> bool:
        return self.wait(lambda: all(s in self.fin or s in self.reset for s in sids), timeout)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
