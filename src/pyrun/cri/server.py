"""The gRPC server of `pyrun cri serve`: runtime.v1 and runtime.v1alpha2 on one unix socket.

One implementation (pyrun.cri.service), two thin adapters. The v1alpha2 messages
are field-compatible with v1 (same numbers and wire types for every field
v1alpha2 has; v1 only adds fields), so the v1alpha2 handlers parse the request
bytes straight into the v1 message and serialise the v1 reply, which a v1alpha2
client reads as its own message (tests/unit/test_cri_adapter.py checks every
message pair, recursively). Only Version differs: it reports the API it was asked on.

Every RPC goes through `_wrap`: one check of the request (pyrun.cri.validate: no NUL byte in any
string field), one log line (method, id, duration, status) and the one error -> status translation
(pyrun.cri.errors). RPCs pyrun does not
implement answer UNIMPLEMENTED, never UNKNOWN. Exec/Attach/PortForward are unary here: they hand
out URLs of the streaming server (pyrun.cri.streaming) that `serve` starts next to the gRPC server.

Threads: grpc runs handlers on a thread pool, so no thread of this process ever forks: `serve`
first forks the zygote (pyrun.runtime.zygote), while it is still single-threaded, and every sandbox
launcher, container monitor and exec is forked from that helper. pyroute2's
`IPRoute(netns=...)` forks a child to open a socket in the pod's netns; in
bridge mode the server switches it to a multiprocessing "forkserver" child (a
freshly exec'd, single-threaded process) so no forked copy of this threaded
process ever runs Python.
"""
from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import signal
import socket
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
from cri_api.v1 import api_pb2 as v1

from pyrun.config import Config, setup_logging
from pyrun.cri.errors import Unimplemented, is_expected, status_for
from pyrun.cri.validate import check_request
from pyrun.errors import UsageError
from pyrun.errors import naming as _naming

log = logging.getLogger("pyrun.cri")

API_VERSIONS = ("v1", "v1alpha2")
SERVICES = ("RuntimeService", "ImageService")
DEFAULT_LISTEN = "unix:///run/pyrun/cri.sock"


def socket_path(listen: str) -> str:
    """unix:///run/x.sock, unix:/run/x.sock or /run/x.sock -> /run/x.sock (pure)."""
    path = listen
    if listen.startswith("unix://"):
        path = listen[len("unix://"):]
    elif listen.startswith("unix:"):
        path = listen[len("unix:"):]
    elif "://" in listen:
        raise UsageError(f"--listen {listen!r}: only unix sockets are supported (unix:///path)")
    if not path.startswith("/"):
        raise UsageError(f"--listen {listen!r}: the socket path must be absolute")
    if len(path.encode()) >= 108:
        raise UsageError(f"--listen {listen!r}: the socket path is longer than 107 bytes (sun_path)")
    return path


def request_id(request) -> str:
    """The object an RPC is about, for the log line."""
    for field in ("pod_sandbox_id", "container_id"):
        value = getattr(request, field, "")
        if value:
            return value[:12]
    config = getattr(request, "config", None)
    if config is not None and config.HasField("metadata"):
        return config.metadata.name
    image = getattr(request, "image", None)
    if image is not None and hasattr(image, "image") and image.image:
        return image.image
    return "-"


def _wrap(method: str, fn, observe=None):
    """Run one RPC: call, translate errors to a status, log one line, and (with --metrics-listen)
    observe its latency and status: observe(method, seconds, status code name)."""
    def handle(request, context):
        start = time.monotonic()
        code, detail = grpc.StatusCode.OK, ""
        try:
            check_request(request)  # every string field of every request, once, before any handler
            return fn(request)
        except Exception as e:  # noqa: BLE001 - every error leaves as a gRPC status
            code, detail = status_for(e)
            if not is_expected(e):
                log.exception("%s failed unexpectedly", method)
            context.abort(code, detail)
        finally:
            seconds = time.monotonic() - start
            if observe is not None:
                observe(method, seconds, code.name)
            ms = seconds * 1000
            log.info("%s id=%s %.1fms %s%s", method, request_id(request), ms, code.name,
                     f" {detail!r}" if detail else "")
    return handle


def _unimplemented(api: str, service: str, method: str):
    def fn(request):
        raise Unimplemented(f"runtime.{api}.{service}/{method} is not implemented by pyrun")
    return fn


def _stream_unimplemented(method: str):
    message = f"{method} (a streaming RPC) is not implemented by pyrun"

    def handle(request, context):
        log.info("%s id=- 0.0ms UNIMPLEMENTED", method)
        context.abort(grpc.StatusCode.UNIMPLEMENTED, message)
    return handle


def _api_module(api: str):
    if api == "v1":
        return v1
    from cri_api.v1alpha2 import api_pb2
    return api_pb2


def service_handler(api: str, service: str, impl, observe=None) -> grpc.GenericRpcHandler:
    """The handlers of runtime.<api>.<service>, all backed by `impl` with v1 messages."""
    descriptor = _api_module(api).DESCRIPTOR.services_by_name[service]
    handlers = {}
    for m in descriptor.methods:
        request_cls = getattr(v1, m.input_type.name)
        response_cls = getattr(v1, m.output_type.name)
        if m.client_streaming or m.server_streaming:
            handlers[m.name] = grpc.unary_stream_rpc_method_handler(
                _stream_unimplemented(m.name), request_deserializer=request_cls.FromString,
                response_serializer=response_cls.SerializeToString)
            continue
        fn = getattr(impl, m.name, None) or _unimplemented(api, service, m.name)
        if m.name == "Version":
            fn = functools.partial(fn, api=api)
        handlers[m.name] = grpc.unary_unary_rpc_method_handler(
            _wrap(m.name, fn, observe), request_deserializer=request_cls.FromString,
            response_serializer=response_cls.SerializeToString)
    return grpc.method_handlers_generic_handler(f"runtime.{api}.{service}", handlers)


def build_server(cfg: Config, workers: int = 16, streaming=None, observe=None, rt=None) -> grpc.Server:
    """rt: the server's pyrun.runtime.api.Runtime, shared by both services (one is made if None)."""
    from pyrun.cri.service import ImageService, RuntimeService
    from pyrun.runtime.api import Runtime
    rt = rt if rt is not None else Runtime(cfg)
    impls = {"RuntimeService": RuntimeService(cfg, streaming, rt), "ImageService": ImageService(cfg, rt)}
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cri"))
    server.add_generic_rpc_handlers([service_handler(api, svc, impls[svc], observe) for api in API_VERSIONS
                                     for svc in SERVICES])
    return server


def _claim_socket(path: str) -> None:
    """Make the socket's directory (0711) and remove a stale socket; refuse a live one."""
    directory = Path(path).parent
    with _naming("mkdir", str(directory), "the directory of the --listen socket"):
        if not directory.exists():
            directory.mkdir(mode=0o711, parents=True)
        elif not directory.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(directory))
    if not os.path.lexists(path):
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
        except OSError:
            with _naming("unlink", path, "a stale --listen socket"):
                os.unlink(path)  # nobody listens: a leftover of a killed server
            return
    raise UsageError(f"{path}: another server is listening on this socket")


def _listen(server: grpc.Server, path: str) -> None:
    """Bind the gRPC server to the unix socket `path`; grpc says only "Failed to bind" on failure."""
    from pyrun.errors import PyrunError
    try:
        port = server.add_insecure_port("unix:" + path)
    except RuntimeError as e:
        raise PyrunError(f"cannot listen on unix://{path} (--listen): {e}") from None
    if port == 0:  # older grpc versions report failure this way
        raise PyrunError(f"cannot listen on unix://{path} (--listen)")


def _fork_free_netns_sockets() -> None:
    """Make pyroute2 open pod-netns sockets from a forkserver child, never a fork of this threaded process."""
    import multiprocessing
    import pyroute2.config
    multiprocessing.set_start_method("forkserver", force=True)
    multiprocessing.set_forkserver_preload(["pyroute2.netns"])
    pyroute2.config.child_process_mode = "mp"


def serve(cfg: Config, listen: str = DEFAULT_LISTEN, log_level: str = "info", workers: int = 16,
          stream_address: str = "127.0.0.1:0", metrics_listen: str | None = None) -> None:
    """Serve until SIGTERM/SIGINT; the socket (mode 0600) is removed on the way out, the streaming
    server (Exec/Attach/PortForward URLs) stopped with its sessions, and the metrics endpoint
    (metrics_listen) too."""
    from pyrun.cri.streaming import parse_address
    setup_logging(log_level)
    path = socket_path(listen)
    parse_address(stream_address)  # a bad --stream-address fails before anything is set up
    if metrics_listen is not None:
        from pyrun.metrics.server import parse_listen
        parse_listen(metrics_listen, "--metrics-listen")
    from pyrun.runtime.api import helpers
    with helpers():  # the zygote: before grpc, the streaming server or anything else starts a thread
        _serve(cfg, path, workers, stream_address, metrics_listen)


def _start_metrics(rt, listen: str | None):
    """The /metrics endpoint next to the CRI: (server or None, observe callback or None)."""
    if listen is None:
        return None, None
    from pyrun.metrics.server import start
    server, operations = start(rt, listen, "--metrics-listen", operations=True)
    log.info("serving metrics on %s", server.url)
    return server, operations.observe


def _serve(cfg: Config, path: str, workers: int, stream_address: str, metrics_listen: str | None = None) -> None:
    from pyrun.cri.streaming import StreamServer
    from pyrun.runtime.api import Runtime
    rt = Runtime(cfg)
    rt.check_start()  # cgroups and the data root's filesystem, named, before anything is made
    rt.prepare_roots()  # the state root and the data root (a failed data root takes back a new state root)
    collected = rt.recover()  # pods a killed server left half-made
    if collected:
        log.info("removed %d pod(s) left half-created by a previous run", len(collected))
    if cfg.network_mode == "bridge":  # only the bridge opens netlink sockets in pods' netns (cni: the plugins);
        _fork_free_netns_sockets()    # importing pyroute2 costs the server 11 MiB
    _claim_socket(path)
    streaming = StreamServer(stream_address).start()
    try:
        metrics, observe = _start_metrics(rt, metrics_listen)
    except BaseException:
        streaming.stop()
        raise
    server = build_server(cfg, workers, streaming, observe, rt)
    old = os.umask(0o177)  # the socket is born 0600
    try:
        _listen(server, path)
        server.start()
    except BaseException:
        streaming.stop()
        if metrics is not None:
            metrics.stop()
        raise
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("serving the CRI (runtime.v1, runtime.v1alpha2) on unix://%s, streaming on %s, state root %s, "
             "data root %s, pid %d", path, streaming.base_url, cfg.root, cfg.data_root, os.getpid())
    try:
        while not stop.wait(1.0):
            pass
    finally:
        log.info("shutting down")
        server.stop(5).wait()
        streaming.stop()
        if metrics is not None:
            metrics.stop()
        rt.close()  # removals the RPCs left to a worker thread
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
