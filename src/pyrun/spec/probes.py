"""A container's livenessProbe, readinessProbe, startupProbe and lifecycle hooks (pure).

Kubernetes' validation and defaults (ValidateProbe, validateHandler): exactly one handler; periodSeconds
(default 10), timeoutSeconds (default 1), successThreshold (default 1) and failureThreshold (default 3)
at least 1; initialDelaySeconds at least 0; successThreshold exactly 1 for liveness and startup probes.
A port is a number (1-65535) or the name of one of the container's ports (resolved here; a gRPC
probe takes a number only, as in Kubernetes). Hooks are exec or httpGet (tcpSocket and sleep hooks are
refused: the kubelet ignores the first, pyrun does not implement the second).

The C monitor runs them from fixed buffers (csrc/supervise.c), so their sizes are bounded here, in
UTF-8 bytes: an exec command of at most 63 words and 4095 bytes (each word with its NUL), a path or
gRPC service of 1023, the httpHeaders (as "name: value\r\n" lines) of 2047 and a host of 63.
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from pyrun.spec import names
from pyrun.spec.model import Handler, Lifecycle, PortSpec, Probe
from pyrun.spec.report import Report, join, type_name

PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
HOOK_HANDLERS = ("exec", "httpGet")
SCHEMES = ("HTTP", "HTTPS")
_DEFAULTS = {"initialDelaySeconds": 0, "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1,
             "failureThreshold": 3}
MAX_WORDS, MAX_COMMAND, MAX_PATH, MAX_HEADERS, MAX_HOST = 63, 4095, 1023, 2047, 63
_MINIMUM = {"initialDelaySeconds": 0, "periodSeconds": 1, "timeoutSeconds": 1, "successThreshold": 1,
            "failureThreshold": 1}


def _port(report: Report, data: dict[str, Any], path: str, ports: tuple[PortSpec, ...], named: bool = True) -> int:
    value = data.get("port")
    here = join(path, "port")
    if value is None:
        report.error(here, "required")
        return 0
    if isinstance(value, str) and named:
        if problem := names.port_name(value):
            report.error(here, problem)
            return 0
        for p in ports:
            if p.name == value:
                return p.container_port
        report.error(here, f'"{value}" names no port of this container')
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        want = "an integer or a port name" if named else "an integer"
        report.error(here, f"must be {want}, not {type_name(value)}")
        return 0
    if not 1 <= value <= 65535:
        report.error(here, f"{value} is out of range (1-65535)")
        return 0
    return value


def _size(text: str) -> int:
    return len(text.encode(errors="surrogatepass"))


def _at_most(report: Report, here: str, text: str, limit: int) -> None:
    if _size(text) > limit:
        report.error(here, f"is {_size(text)} bytes long; pyrun's probes take at most {limit}")


def _host(report: Report, data: dict[str, Any], path: str) -> str:
    host = report.string(data, "host", path) or ""
    if host and (problem := names.ip_address(host)):
        report.error(join(path, "host"), problem + " (pyrun probes an address, not a name)")
    _at_most(report, join(path, "host"), host, MAX_HOST)
    return host


def _exec(report: Report, value: Any, path: str) -> Handler:
    data = report.obj(value, path, "ExecAction")
    command = report.strings(data, "command", path) or ()
    if not command:
        report.error(join(path, "command"), "required: at least one word")
    elif len(command) > MAX_WORDS:
        report.error(join(path, "command"), f"has {len(command)} words; pyrun's exec actions take at most {MAX_WORDS}")
    else:
        _at_most(report, join(path, "command"), "\0".join(command) + "\0", MAX_COMMAND)
    return Handler("exec", command=command)


def _http_get(report: Report, value: Any, path: str, ports: tuple[PortSpec, ...]) -> Handler:
    data = report.obj(value, path, "HTTPGetAction")
    port = _port(report, data, path, ports)
    target = report.string(data, "path", path) or "/"
    if not target.startswith("/") or any(c in target for c in " \r\n\0"):
        report.error(join(path, "path"), f'"{target}" must be an absolute path without spaces')
    _at_most(report, join(path, "path"), target, MAX_PATH)
    scheme = (report.string(data, "scheme", path) or "HTTP").upper()
    if scheme not in SCHEMES:
        report.error(join(path, "scheme"), f'"{scheme}" must be one of {", ".join(SCHEMES)}')
    headers = []
    for here, item in report.items(data, "httpHeaders", path):
        header = report.obj(item, here, "HTTPHeader")
        name = report.string(header, "name", here, required=True) or ""
        text = report.string(header, "value", here) or ""
        if name and (not name.isascii() or any(c in name for c in " :\r\n\0")):
            report.error(join(here, "name"), f'"{name}" is not an HTTP header name')
        if any(c in text for c in "\r\n\0"):
            report.error(join(here, "value"), "must not contain a line break or NUL byte")
        headers.append((name, text))
    _at_most(report, join(path, "httpHeaders"), "".join(f"{n}: {v}\r\n" for n, v in headers), MAX_HEADERS)
    return Handler("httpGet", port=port, host=_host(report, data, path), path=target, scheme=scheme,
                   headers=tuple(headers))


def _tcp_socket(report: Report, value: Any, path: str, ports: tuple[PortSpec, ...]) -> Handler:
    data = report.obj(value, path, "TCPSocketAction")
    return Handler("tcpSocket", port=_port(report, data, path, ports), host=_host(report, data, path))


def _grpc(report: Report, value: Any, path: str) -> Handler:
    data = report.obj(value, path, "GRPCAction")
    service = report.string(data, "service", path) or ""
    _at_most(report, join(path, "service"), service, MAX_PATH)
    return Handler("grpc", port=_port(report, data, path, (), named=False), service=service)


def _handler(report: Report, data: dict[str, Any], path: str, ports: tuple[PortSpec, ...],
             allowed: tuple[str, ...]) -> Handler:
    given = [k for k in HANDLERS if data.get(k) is not None]
    if len(given) != 1:
        what = "none" if not given else ", ".join(given)
        report.error(path, f"exactly one handler ({', '.join(allowed)}) is required, got {what}")
        return Handler("")
    kind = given[0]
    here = join(path, kind)
    if kind == "exec":
        return _exec(report, data[kind], here)
    if kind == "httpGet":
        return _http_get(report, data[kind], here, ports)
    if kind == "tcpSocket":
        return _tcp_socket(report, data[kind], here, ports)
    return _grpc(report, data[kind], here)


def parse_probe(report: Report, value: Any, path: str, ports: tuple[PortSpec, ...], kind: str) -> Probe | None:
    """One probe at `path` (e.g. "spec.containers[0].livenessProbe"); None when absent."""
    if value is None:
        return None
    data = report.obj(value, path, "Probe")
    numbers = {}
    for key, default in _DEFAULTS.items():
        number = report.integer(data, key, path)
        if number is None or number == 0 and key != "initialDelaySeconds":
            number = default  # Kubernetes defaults 0 as unset for these
        elif number < _MINIMUM[key]:
            report.error(join(path, key), f"must be ≥ {_MINIMUM[key]}")
        numbers[key] = number
    if kind in ("livenessProbe", "startupProbe") and numbers["successThreshold"] != 1:
        report.error(join(path, "successThreshold"), f"must be 1 for a {kind}")
    return Probe(handler=_handler(report, data, path, ports, HANDLERS),
                 initial_delay=numbers["initialDelaySeconds"], period=numbers["periodSeconds"],
                 timeout=numbers["timeoutSeconds"], success_threshold=numbers["successThreshold"],
                 failure_threshold=numbers["failureThreshold"])


def parse_lifecycle(report: Report, value: Any, path: str, ports: tuple[PortSpec, ...]) -> Lifecycle:
    """spec.containers[i].lifecycle: postStart and preStop (exec or httpGet)."""
    data = report.obj(value, path, "Lifecycle")
    hooks: dict[str, Handler | None] = {}
    for key in ("postStart", "preStop"):
        here = join(path, key)
        if data.get(key) is None:
            hooks[key] = None
            continue
        hook = report.obj(data[key], here, "LifecycleHandler")
        hooks[key] = _handler(report, {k: v for k, v in hook.items() if k in HOOK_HANDLERS}, here, ports,
                              HOOK_HANDLERS) if hook else None
    return Lifecycle(post_start=hooks["postStart"], pre_stop=hooks["preStop"])
