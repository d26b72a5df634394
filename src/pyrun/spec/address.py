"""HOST:PORT options of the servers (`cri serve --stream-address`, `--metrics-listen`, `metrics serve
--listen`), parsed once (pure)."""
from __future__ import annotations

from pyrun.errors import UsageError


def parse_host_port(text: str, option: str, example: str) -> tuple[str, int]:
    """A listen address option: "127.0.0.1:0" -> ("127.0.0.1", 0), "[::1]:10010" -> ("::1", 10010)
    (pure); UsageError naming `option` otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise UsageError(f"{option} {text!r}: expected HOST:PORT (e.g. {example})")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not port.isdigit() or not 0 <= int(port) < 1 << 16:
        raise UsageError(f"{option} {text!r}: port {port!r} is not a number from 0 to 65535")
    return host, int(port)
