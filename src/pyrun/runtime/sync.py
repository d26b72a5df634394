"""Typed messages between a launcher, a container's monitor and its init.

Each side holds one end of a SOCK_SEQPACKET socketpair (or the monitor's control
socket): one datagram is one JSON message {"type": ..., ...}, so messages never
run together. Every receive says which types it expects; anything else (or EOF)
is an error that names what was expected and what came.

  launcher (CLI)            monitor                         init (forked child)
      | spawn ------------>  |  setns/unshare pid, fork --->  |
      |                      |  cgroup.procs <- child pid     |
      |                      |  ---------- go ------------->  |  join ns, mounts, pivot_root,
      |                      |  <--------- ready ----------   |  caps, user (a tty container's
      |                      |                                |  pty master rides on ready)
      |  <------ ready ----  |  (status.json: created)        |  ... waits
      |  (CLI may exit)      |                                |
  starter ---- start ------> |  ---------- start ---------->  |  execve(workload)
      |  <---- started ----  |  <--- EOF (exec ok) / error    |
                                (status.json: running, later exited + code)
  Any step that fails sends {"type": "error", "step": ..., "message": ...}
  and the workload never runs.
"""
from __future__ import annotations

import array
import json
import os
import select
import socket
import time

from pyrun.errors import PyrunError
from pyrun.frozen import Record, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a pod create's start-up)
if TYPE_CHECKING:
    from typing import Any

MAX_MESSAGE = 1 << 16


class SyncError(PyrunError):
    """The other side broke the protocol or went away."""


class Message(Record):
    type: str
    fields: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)


def socketpair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    return a, b


def send(sock: socket.socket, type_: str, **fields: Any) -> None:
    data = json.dumps({"type": type_, **fields}).encode()
    if len(data) > MAX_MESSAGE:
        raise SyncError(f"message {type_} too large ({len(data)} bytes)")
    sock.send(data)


def send_error(sock: socket.socket, step: str, message: str) -> None:
    send(sock, "error", step=step, message=message)


def recv(sock: socket.socket, expect: set[str] | str, timeout: float | None = None,
         peer: str = "peer") -> Message:
    """Receive one message of an expected type; errors carry over as SyncError."""
    if isinstance(expect, str):
        expect = {expect}
    if timeout is not None:
        ready, _, _ = select.select([sock], [], [], timeout)
        if not ready:
            raise SyncError(f"timed out after {timeout:g}s waiting for {'/'.join(sorted(expect))} from the {peer}")
    return _decode(sock.recv(MAX_MESSAGE), expect, peer)


def _decode(data: bytes, expect: set[str], peer: str) -> Message:
    if not data:
        raise SyncError(f"the {peer} went away while pyrun waited for {'/'.join(sorted(expect))}")
    obj = json.loads(data)
    msg = Message(obj.pop("type", "?"), obj)
    if msg.type in expect:
        return msg
    if msg.type == "error":
        raise StepFailed(msg.get("step", "?"), msg.get("message", ""))
    raise SyncError(f"expected {'/'.join(sorted(expect))} from the {peer}, got {msg.type}")


def send_fd(sock: socket.socket, type_: str, fd: int, **fields: Any) -> None:
    """send() with one descriptor attached (SCM_RIGHTS): the peer gets its own copy."""
    socket.send_fds(sock, [json.dumps({"type": type_, **fields}).encode()], [fd])


def recv_fd(sock: socket.socket, expect: set[str] | str, timeout: float | None = None,
            peer: str = "peer") -> tuple[Message, int | None]:
    """recv() of a message that may carry one descriptor (close-on-exec here), or None without one."""
    if isinstance(expect, str):
        expect = {expect}
    if timeout is not None and not select.select([sock], [], [], timeout)[0]:
        raise SyncError(f"timed out after {timeout:g}s waiting for {'/'.join(sorted(expect))} from the {peer}")
    data, ancdata, _, _ = sock.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(4 * 4), socket.MSG_CMSG_CLOEXEC)
    fds = [fd for level, kind, payload in ancdata if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
           for fd in array.array("i", payload[:len(payload) - len(payload) % 4])]
    for extra in fds[1:]:
        os.close(extra)
    try:
        return _decode(data, expect, peer), (fds[0] if fds else None)
    except BaseException:
        if fds:
            os.close(fds[0])
        raise


class StepFailed(PyrunError):
    """The other side reported that a named set-up step failed."""

    def __init__(self, step: str, message: str):
        self.step = step
        self.message = message
        super().__init__(f"{step} failed: {message}")


def wait_eof_or_message(sock: socket.socket, timeout: float) -> Message | None:
    """After a `start`: EOF means execve succeeded (the socket is close-on-exec)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SyncError(f"the container did not exec within {timeout:g}s")
        ready, _, _ = select.select([sock], [], [], left)
        if ready:
            data = sock.recv(MAX_MESSAGE)
            if not data:
                return None
            obj = json.loads(data)
            return Message(obj.pop("type", "?"), obj)
