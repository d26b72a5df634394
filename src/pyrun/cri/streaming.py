"""The streaming server behind the CRI's Exec, Attach and PortForward.

Those RPCs do not stream over gRPC: they return a URL of a server the runtime runs, and the client
(crictl, or the kubelet's proxy) connects there. `pyrun cri serve` starts this one on --stream-address
(default 127.0.0.1 with an ephemeral port). Each RPC stores its request under a random single-use
token, as the kubelet's request cache does; the URL is http://<address>/<exec|attach|portforward>/<token>
and a token not used within 60 s expires. The token is the only credential: there is no TLS, so keep
the address on loopback (or on a network only the node's clients reach).

Protocols, told apart by the upgrade the client asks for:
- WebSocket (RFC 6455, pyrun.cri.websocket), what crictl >= 1.30 uses (--transport websocket):
  remotecommand for exec and attach (v5.channel.k8s.io, v4.channel.k8s.io, channel.k8s.io;
  pyrun.cri.remotecommand) and the port-forward channels (pyrun.cri.portforward).
- SPDY/3.1 (pyrun.cri.spdy), what a kubelet proxies for `kubectl exec/attach/port-forward` and what
  older crictl speaks: `Upgrade: SPDY/3.1` with X-Stream-Protocol-Version negotiation
  (v4.channel.k8s.io down to channel.k8s.io for exec/attach, portforward.k8s.io), GET or POST, then
  one SPDY stream per channel.

Threads: one per connection (ThreadingHTTPServer) plus a few per session; exec commands are forked
by the server's zygote (pyrun.runtime.zygote), port-forward connections dialled by a thread in the pod's
network namespace. stop() ends the sessions still running and their processes.
"""
from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, urlsplit

from pyrun.cri import spdy, websocket
from pyrun.errors import UsageError
from pyrun.spec.address import parse_host_port

log = logging.getLogger("pyrun.cri.streaming")

TOKEN_TTL = 60.0
MAX_TOKENS = 1000
KINDS = ("exec", "attach", "portforward")
DEFAULT_ADDRESS = "127.0.0.1:0"
PROTOCOL_HEADER = "X-Stream-Protocol-Version"
SPDY_UPGRADE = "SPDY/3.1"


def parse_address(text: str) -> tuple[str, int]:
    """"127.0.0.1:0" -> ("127.0.0.1", 0); "[::1]:10010" -> ("::1", 10010) (pure)."""
    return parse_host_port(text, "--stream-address", DEFAULT_ADDRESS)


class TokenCache:
    """Single-use tokens for pending streaming requests, expiring after `ttl` seconds."""

    def __init__(self, ttl: float = TOKEN_TTL, limit: int = MAX_TOKENS, clock: Callable[[], float] = time.monotonic):
        self.ttl, self.limit, self.clock = ttl, limit, clock
        self._items: dict[str, tuple[float, str, Any]] = {}
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        for token in [t for t, (deadline, _, _) in self._items.items() if deadline <= now]:
            del self._items[token]

    def insert(self, kind: str, request: Any) -> str:
        with self._lock:
            now = self.clock()
            self._expire(now)
            if len(self._items) >= self.limit:
                raise UsageError(f"too many pending streaming requests ({self.limit}); try again shortly")
            token = secrets.token_urlsafe(12)
            self._items[token] = (now + self.ttl, kind, request)
            return token

    def consume(self, kind: str, token: str) -> Any | None:
        """The request stored under `token` for `kind`, removed; None if unknown, used, expired or another kind."""
        with self._lock:
            item = self._items.pop(token, None)
        if item is None:
            return None
        deadline, stored_kind, request = item
        if stored_kind != kind or deadline <= self.clock():
            return None
        return request

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def route(path: str) -> tuple[str, str, dict[str, list[str]]] | None:
    """"/exec/<token>?x=1" -> ("exec", token, {"x": ["1"]}); None for any other path (pure)."""
    parts = urlsplit(path)
    pieces = parts.path.strip("/").split("/")
    if len(pieces) != 2 or pieces[0] not in KINDS or not pieces[1]:
        return None
    return pieces[0], pieces[1], parse_qs(parts.query)


class _Handler(BaseHTTPRequestHandler):
    server: "_HTTPServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args) -> None:
        log.debug("%s %s", self.address_string(), fmt % args)

    def _refuse(self, code: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        body = (message + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True
        log.info("stream %s refused: %d %s", self.path.split("?")[0][:24], code, message)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        found = route(self.path)
        if found is None:
            return self._refuse(404, "not found (expected /exec/<token>, /attach/<token> or /portforward/<token>)")
        if (self.headers.get("Upgrade") or "").lower() == SPDY_UPGRADE.lower():
            return self._serve_spdy(found[0], found[1])
        if self.headers.get(PROTOCOL_HEADER) and not self.headers.get("Sec-WebSocket-Key"):
            return self._refuse(400, f"not a SPDY upgrade: expected 'Upgrade: {SPDY_UPGRADE}'")
        kind, token, query = found
        problem = websocket.handshake_problem(self.command, self.headers)
        if problem:
            return self._refuse(400, f"not a WebSocket upgrade: {problem}")
        handler = self.server.streams
        plan = self._consume(kind, token)
        if plan is None:
            return
        supported = handler.protocols(kind)
        protocol = websocket.choose_protocol(websocket.offered_protocols(self.headers.get("Sec-WebSocket-Protocol")),
                                             supported)
        if protocol is None:
            return self._refuse(400, f"none of the offered subprotocols is supported (pyrun: {', '.join(supported)})")
        self.wfile.write(websocket.server_response(self.headers["Sec-WebSocket-Key"], protocol))
        self.wfile.flush()
        self.close_connection = True
        ws = websocket.WebSocket(self.connection, self.rfile)
        self._session(kind, protocol, lambda: handler.run(kind, ws, protocol, plan, query),
                      lambda: ws.close(1011, "internal error"), ws.shutdown)

    do_POST = do_GET  # noqa: N815 - kubectl's SPDY requests are POSTs

    def _consume(self, kind: str, token: str):
        plan = self.server.streams.cache.consume(kind, token)
        if plan is None:
            self._refuse(404, f"unknown or expired {kind} token (tokens are single-use and expire "
                              f"after {self.server.streams.cache.ttl:.0f}s)")
        return plan

    def _serve_spdy(self, kind: str, token: str) -> None:
        """The HTTP upgrade to SPDY/3.1 with X-Stream-Protocol-Version negotiation, as the kubelet
        does it (k8s.io/apimachinery httpstream.Handshake): the client lists protocols, the first one
        the server has wins; none in common is 403 with X-Accepted-Stream-Protocol-Versions."""
        if "upgrade" not in [t.strip().lower() for t in (self.headers.get("Connection") or "").split(",")]:
            return self._refuse(400, "not a SPDY upgrade: no 'Connection: Upgrade' header")
        offered = websocket.offered_protocols(", ".join(self.headers.get_all(PROTOCOL_HEADER) or []))
        if not offered:
            return self._refuse(400, f"unable to upgrade: {PROTOCOL_HEADER} is required")
        supported = self.server.streams.spdy_protocols(kind)
        protocol = next((p for p in offered if p in supported), None)
        if protocol is None:
            return self._refuse(403, f"unable to upgrade: unable to negotiate protocol: client supports "
                                     f"{offered}, server accepts {list(supported)}",
                                [("X-Accepted-Stream-Protocol-Versions", p) for p in supported])
        plan = self._consume(kind, token)
        if plan is None:
            return
        self.wfile.write(("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                          f"Upgrade: {SPDY_UPGRADE}\r\n{PROTOCOL_HEADER}: {protocol}\r\n\r\n").encode())
        self.wfile.flush()
        self.close_connection = True
        conn = spdy.Connection(self.connection, self.rfile, name=f"spdy-{kind}").start()
        self._session(kind, f"spdy {protocol}", lambda: self.server.streams.run_spdy(kind, conn, protocol, plan),
                      conn.close, conn.close)

    def _session(self, kind: str, protocol: str, run: Callable[[], None], on_error: Callable[[], None],
                 cleanup: Callable[[], None]) -> None:
        start = time.monotonic()
        log.info("stream %s start protocol=%s", kind, protocol or "-")
        try:
            run()
        except Exception:  # noqa: BLE001 - a session's failure must not take the server down
            log.exception("stream %s failed", kind)
            on_error()
        finally:
            cleanup()
            log.info("stream %s end %.1fs", kind, time.monotonic() - start)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    streams: "StreamServer"

    def __init__(self, address: tuple[str, int], streams: "StreamServer"):
        import socket
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.streams = streams
        super().__init__(address, _Handler)


class StreamServer:
    """Tokens in, URLs out; serves the sessions on its own threads."""

    def __init__(self, address: str = DEFAULT_ADDRESS, ttl: float = TOKEN_TTL):
        self.address = parse_address(address)
        self.cache = TokenCache(ttl)
        self._http: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._sessions: set = set()
        self._lock = threading.Lock()

    def start(self) -> "StreamServer":
        try:
            self._http = _HTTPServer(self.address, self)
        except OSError as e:  # name the address: "[Errno 99] Cannot assign requested address" alone says nothing
            from pyrun.errors import SyscallError
            host, port = self.address[:2]
            shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            raise SyscallError.from_errno(e.errno or 0, "bind", shown,
                                          hint="the streaming server's --stream-address") from None
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True, name="streaming")
        self._thread.start()
        return self

    @property
    def base_url(self) -> str:
        if self._http is None:
            raise RuntimeError("the streaming server is not started")
        host, port = self._http.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"

    def url(self, kind: str, plan: Any) -> str:
        return f"{self.base_url}/{kind}/{self.cache.insert(kind, plan)}"

    @staticmethod
    def protocols(kind: str) -> tuple[str, ...]:
        if kind == "portforward":
            from pyrun.cri.portforward import PROTOCOLS
            return PROTOCOLS
        from pyrun.cri.remotecommand import PROTOCOLS
        return PROTOCOLS

    @staticmethod
    def spdy_protocols(kind: str) -> tuple[str, ...]:
        if kind == "portforward":
            from pyrun.cri.portforward import SPDY_PROTOCOLS
            return SPDY_PROTOCOLS
        from pyrun.cri.remotecommand import SPDY_PROTOCOLS
        return SPDY_PROTOCOLS

    def run(self, kind: str, ws: websocket.WebSocket, protocol: str, plan: Any, query: dict) -> None:
        from pyrun.cri import portforward, remotecommand
        if kind == "portforward":
            try:
                ports = portforward.ports_from_query(query.get("port", []), plan.ports)
            except ValueError as e:
                ws.close(1008, f"bad port: {e}")
                return
            self._track(portforward.PortForwardSession(ws, plan, ports))
        else:
            self._track(self._remotecommand(kind, remotecommand.Channels(ws, protocol), plan))

    def run_spdy(self, kind: str, conn: spdy.Connection, protocol: str, plan: Any) -> None:
        from pyrun.cri import portforward, remotecommand
        if kind == "portforward":
            return self._track(portforward.SpdyPortForwardSession(conn, plan))
        wanted = remotecommand.expected_streams(protocol, getattr(plan, "stdin", False), plan.stdout, plan.stderr,
                                                plan.tty)
        with self._lock:
            self._sessions.add(conn)  # stop() closes it while the client is still opening streams
        try:
            streams = remotecommand.wait_for_streams(conn, wanted)
        except TimeoutError as e:
            log.info("stream %s: %s", kind, e)
            return
        finally:
            with self._lock:
                self._sessions.discard(conn)
        self._track(self._remotecommand(kind, remotecommand.SpdyChannels(conn, protocol, streams), plan))

    @staticmethod
    def _remotecommand(kind: str, channels, plan: Any):
        from pyrun.cri import remotecommand
        session = remotecommand.ExecSession if kind == "exec" else remotecommand.AttachSession
        return session(channels, plan)

    def _track(self, session) -> None:
        """Run a session to its end, known to stop() meanwhile."""
        with self._lock:
            self._sessions.add(session)
        try:
            session.run()
        finally:
            with self._lock:
                self._sessions.discard(session)

    def stop(self) -> None:
        """Stop accepting, end running sessions (their commands are killed), close the socket."""
        if self._http is None:
            return
        self._http.shutdown()
        with self._lock:
            sessions = list(self._sessions)
        for session in sessions:
            with contextlib.suppress(Exception):
                session.abort()
        self._http.server_close()
        self._http = None
