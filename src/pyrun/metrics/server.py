"""The HTTP endpoint: GET /metrics in Prometheus' text format (prometheus_client renders it).

`pyrun metrics serve --listen HOST:PORT` serves the pods of one state root (the CLI's);
`pyrun cri serve --metrics-listen HOST:PORT` serves the same next to the CRI, plus the pyrun_*
operation metrics its RPC wrapper observes. A thread per scrape; a scrape reads files only.
No TLS and no authentication: keep it on loopback or behind something that adds them.

What a scrape costs is mostly rendering (100 pods: ~3000 samples, ~600 KB), so two choices keep it
cheap, both made for a scraper on the same machine: the classic text format (0.0.4), as the
kubelet's cAdvisor endpoint serves it, even when Prometheus asks for OpenMetrics first (whose
renderer in prometheus_client is slower), and no gzip (prometheus_client compresses at level 9,
which costs more than sending the bytes over loopback).
"""
from __future__ import annotations

import logging
import socket
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from pyrun.errors import PyrunError
from pyrun.spec.address import parse_host_port

log = logging.getLogger("pyrun.metrics")
DEFAULT_LISTEN = "127.0.0.1:9101"


def parse_listen(text: str, option: str = "--listen") -> tuple[str, int]:
    """"127.0.0.1:9101" -> ("127.0.0.1", 9101); "[::1]:9101" -> ("::1", 9101); port 0: any free one (pure)."""
    return parse_host_port(text, option, DEFAULT_LISTEN)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        log.debug("%s %s", self.address_string(), format % args)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def build_registry(targets, operations: bool = False):
    """A registry with the container_* collector over `targets` (a callable, Runtime.metrics_targets) and,
    if asked, the pyrun_* metrics; returns (registry, OperationMetrics or None)."""
    from prometheus_client import CollectorRegistry

    from pyrun.metrics.collector import ContainerCollector
    from pyrun.metrics.operations import OperationMetrics
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ContainerCollector(targets))
    return registry, (OperationMetrics(registry) if operations else None)


def text_format_app(registry):
    """prometheus_client's WSGI app, always in the text format 0.0.4 and never gzipped (see above)."""
    from prometheus_client import make_wsgi_app
    app = make_wsgi_app(registry, disable_compression=True)

    def serve_text(environ, start_response):
        environ = {k: v for k, v in environ.items() if k != "HTTP_ACCEPT"}
        return app(environ, start_response)
    return serve_text


class MetricsServer:
    """Serves `registry` on HOST:PORT in a background thread until stop()."""

    def __init__(self, listen: str, registry, option: str = "--listen"):
        self.host, self.port = parse_listen(listen, option)
        self._option = option
        self._registry = registry
        self._httpd: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "MetricsServer":
        server_cls = type("Server", (_ThreadingServer,), {"address_family": _family(self.host)})
        try:
            self._httpd = make_server(self.host, self.port, text_format_app(self._registry), server_cls, _Quiet)
        except OSError as e:
            raise PyrunError(f"cannot listen on {self.host}:{self.port} ({self._option}): "
                             f"{e.strerror or e}") from None
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="metrics", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._httpd = None


def _family(host: str) -> int:
    try:
        socket.inet_pton(socket.AF_INET6, host)
        return socket.AF_INET6
    except OSError:
        return socket.AF_INET


def start(runtime, listen: str, option: str = "--listen", operations: bool = False):
    """Serve the pods of a pyrun.runtime.api.Runtime on `listen` in the background: (MetricsServer,
    OperationMetrics or None)."""
    registry, ops = build_registry(runtime.metrics_targets, operations)
    return MetricsServer(listen, registry, option).start(), ops


def serve(cfg, listen: str = DEFAULT_LISTEN) -> None:
    """`pyrun metrics serve`: serve until SIGTERM/SIGINT."""
    import signal

    from pyrun.runtime.api import Runtime
    server, _ = start(Runtime(cfg), listen)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("serving metrics of state root %s on %s", cfg.root, server.url)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
