"""A TCP connection to a port of a pod, from inside its network namespace (port-forward).

Dialled as containerd's sandbox_portforward_linux.go does: setns(2) with CLONE_NEWNET changes
only the calling thread (a network namespace is per task), so a short-lived thread of its own
joins the namespace, connects, hands the connected socket back and ends; the thread is never
reused, and no other thread of the caller changes namespace. A socket keeps the namespace it
was created in, so the caller relays with it directly. No process per connection.
"""
from __future__ import annotations

import socket
import threading

from pyrun.errors import NetworkError

CONNECT_TIMEOUT = 10.0


def connect_in_netns(netns: str | None, port: int, timeout: float = CONNECT_TIMEOUT) -> socket.socket:
    """A TCP connection to 127.0.0.1:port made inside `netns` (a pinned namespace's path; None: this
    namespace) by a thread of its own. NetworkError naming the port if it fails."""
    result: dict[str, object] = {}

    def dial() -> None:
        try:
            if netns is not None:
                _join_netns(netns)
            result["sock"] = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        except Exception as e:  # noqa: BLE001 - reported to the caller
            result["error"] = e

    dialer = threading.Thread(target=dial, name=f"portfwd-dial-{port}", daemon=True)
    dialer.start()
    dialer.join()
    error = result.get("error")
    if error is not None:
        text = getattr(error, "strerror", None) or str(error)
        raise NetworkError(f"connect to 127.0.0.1:{port}: {text}")
    conn = result["sock"]
    assert isinstance(conn, socket.socket)
    conn.settimeout(None)
    return conn


def _join_netns(path: str) -> None:
    """setns(2) the calling thread into the network namespace pinned at `path`."""
    from pyrun.linux import syscalls as linux
    linux.setns(path, "net")
