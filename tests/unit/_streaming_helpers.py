"""Helpers shared by the streaming server's unit tests (WebSocket and SPDY)."""
from __future__ import annotations

from pyrun.linux.procs import ProcessRef


def command_ends(pid: int, timeout: float = 5.0) -> bool:
    """True once pid has exited (a zombie counts: the server reaps it later), within timeout."""
    try:
        return ProcessRef.of(pid).wait_gone(timeout)
    except ProcessLookupError:
        return True
