"""PortForward over the WebSocket port-forward protocol (as the kubelet's streaming server speaks it).

Subprotocols: v4.channel.k8s.io, channel.k8s.io, portforward.k8s.io (or none offered). The ports
come from the URL's `?port=` query parameters, else from the PortForwardRequest. Port i owns two
channels: 2i data (both ways) and 2i+1 error (server -> client). The first message the server sends
on each carries the port as a little-endian uint16; after that, data frames are raw bytes, and a
failure to reach the port is a text message on the error channel. One WebSocket is one TCP
connection per port; the WebSocket closes when every pod-side connection has ended.

The pod-side connection is to 127.0.0.1:<port> inside the pod's network namespace: the plan's `dial`
(pyrun.runtime.api.Runtime.port_forward, which dials from a thread that joined the namespace,
pyrun.netns.dial) returns the connected socket, and the session relays with it directly.
"""
from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable

from pyrun.cri import spdy
from pyrun.cri.websocket import OP_BINARY, WebSocket
from pyrun.errors import NetworkError

PROTOCOLS = ("v4.channel.k8s.io", "channel.k8s.io", "portforward.k8s.io")


@dataclass(frozen=True)
class ForwardPlan:
    """What a /portforward/<token> URL reaches: dial(port) connects to 127.0.0.1:port in the pod (a socket;
    NetworkError if that fails), and the default ports."""

    dial: Callable[[int], socket.socket]
    ports: tuple[int, ...]
    pod: str = ""


def ports_from_query(values: list[str], default: tuple[int, ...]) -> tuple[int, ...]:
    """?port=80&port=8080 (or "80,8080"); the request's ports when none are given. ValueError if bad."""
    out: list[int] = []
    for value in values:
        for part in value.split(","):
            port = int(part.strip())
            if not 0 < port < 1 << 16:
                raise ValueError(f"port {port} is out of range (1-65535)")
            out.append(port)
    ports = tuple(out) or tuple(default)
    if not ports:
        raise ValueError("no port given (?port=N)")
    return ports


def port_prefix(port: int) -> bytes:
    return port.to_bytes(2, "little")


class PortForwardSession:
    def __init__(self, ws: WebSocket, plan: ForwardPlan, ports: tuple[int, ...]):
        self.ws, self.plan, self.ports = ws, plan, ports
        self.socks: dict[int, socket.socket] = {}
        self._lock = threading.Lock()

    def _send(self, channel: int, data: bytes) -> bool:
        try:
            self.ws.send(OP_BINARY, bytes([channel]) + data)
            return True
        except OSError:
            return False

    def _pod_to_client(self, index: int, sock: socket.socket) -> None:
        while (data := _recv(sock)) and self._send(2 * index, data):
            pass

    def _client_to_pod(self) -> None:
        for opcode, msg in self.ws.messages():
            if opcode != OP_BINARY or not msg or msg[0] % 2:
                continue  # nothing is read from the error channels
            sock = self.socks.get(msg[0] // 2)
            if sock is not None:
                try:
                    sock.sendall(msg[1:])
                except OSError:
                    pass
        self.close_sockets()  # the client left

    def close_sockets(self) -> None:
        with self._lock:
            for sock in self.socks.values():
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.socks.clear()

    def abort(self) -> None:
        self.close_sockets()
        self.ws.close(1001, "server shutting down")

    def run(self) -> None:
        for i, port in enumerate(self.ports):
            self._send(2 * i, port_prefix(port))
            self._send(2 * i + 1, port_prefix(port))
        pumps = []
        for i, port in enumerate(self.ports):
            try:
                sock = self.plan.dial(port)
            except NetworkError as e:
                self._send(2 * i + 1, f"failed to connect to 127.0.0.1:{port} in pod {self.plan.pod}: {e}".encode())
                continue
            with self._lock:
                self.socks[i] = sock
            t = threading.Thread(target=self._pod_to_client, args=(i, sock), daemon=True, name="pf-out")
            t.start()
            pumps.append(t)
        threading.Thread(target=self._client_to_pod, daemon=True, name="pf-in").start()
        try:
            for t in pumps:
                t.join()
        finally:
            self.close_sockets()
            self.ws.close()


# --- SPDY ----------------------------------------------------------------------------------------

SPDY_PROTOCOLS = ("portforward.k8s.io",)
PAIR_TIMEOUT = 30.0  # s a stream waits for its partner (the kubelet's stream creation timeout)


def request_id(stream: "spdy.Stream") -> str:
    """Which forwarded connection a stream belongs to: its "requestID" header; old clients send none,
    and then the error stream's id names the pair (the data stream is the next one, id + 2)."""
    rid = stream.header("requestID")
    if rid:
        return rid
    return str(stream.id if stream.header("streamType") == "error" else stream.id - 2)


def parse_port(text: str) -> int:
    """The "port" header of a stream pair; ValueError naming the problem (pure)."""
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"port header {text!r} is not a number") from None
    if not 0 < port < 1 << 16:
        raise ValueError(f"port {port} is out of range (1-65535)")
    return port


class SpdyPortForwardSession:
    """port-forward over SPDY: the client opens an error stream and a data stream per connection it
    forwards (headers streamType, port, requestID), as many as it likes over one session, which
    lasts until the client closes it. Every complete pair gets its own TCP connection in the pod."""

    def __init__(self, conn: "spdy.Connection", plan: ForwardPlan, pair_timeout: float = PAIR_TIMEOUT):
        self.conn, self.plan, self.pair_timeout = conn, plan, pair_timeout
        self.socks: set[socket.socket] = set()
        self._lock = threading.Lock()

    def run(self) -> None:
        pending: dict[str, tuple[float, dict[str, spdy.Stream]]] = {}
        while not self.conn.closed:
            stream = self.conn.accept(1.0)
            now = time.monotonic()
            for rid in [r for r, (born, _) in pending.items() if now - born > self.pair_timeout]:
                for s in pending.pop(rid)[1].values():
                    s.reset()  # its partner never came
            if stream is None:
                continue
            kind, rid = stream.header("streamType"), request_id(stream)
            if kind not in ("error", "data"):
                stream.reset(spdy.RST_PROTOCOL_ERROR)
                continue
            born, pair = pending.setdefault(rid, (now, {}))
            if kind in pair:
                stream.reset(spdy.RST_PROTOCOL_ERROR)
                continue
            pair[kind] = stream
            if len(pair) == 2:
                del pending[rid]
                threading.Thread(target=self._forward, args=(pair["error"], pair["data"]), daemon=True,
                                 name="pf-spdy").start()
        self.close_sockets()

    def _forward(self, error: "spdy.Stream", data: "spdy.Stream") -> None:
        try:
            port = parse_port(data.header("port"))
            sock = self.plan.dial(port)
        except (ValueError, NetworkError) as e:
            error.write(f"error forwarding port {data.header('port')} to pod {self.plan.pod}: {e}".encode())
            error.close()
            data.close()
            return
        with self._lock:
            self.socks.add(sock)
        inbound = threading.Thread(target=self._client_to_pod, args=(data, sock), daemon=True, name="pf-spdy-in")
        inbound.start()
        try:
            while chunk := _recv(sock):
                if not data.write(chunk):
                    break
        finally:
            data.close()
            error.close()
            inbound.join(5.0)
            with self._lock:
                self.socks.discard(sock)
            sock.close()

    @staticmethod
    def _client_to_pod(data: "spdy.Stream", sock: socket.socket) -> None:
        while chunk := data.read():
            try:
                sock.sendall(chunk)
            except OSError:
                return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)  # the client is done sending: the pod's side reads EOF

    def close_sockets(self) -> None:
        with self._lock:
            for sock in self.socks:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self.socks.clear()

    def abort(self) -> None:
        self.close_sockets()
        self.conn.close()


def _recv(sock: socket.socket) -> bytes:
    """The next chunk from the pod's side; b"" at its end or on an error."""
    try:
        return sock.recv(32 * 1024)
    except OSError:
        return b""
