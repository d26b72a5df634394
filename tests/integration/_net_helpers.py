"""Throwaway network namespaces for the netns integration tests.

`run_in_node_netns(fn)` forks a child that unshares a network *and* mount
namespace (mounts private), so the bridge, veths, sysctls, nft table and the bind
mounts pinning pod namespaces all live and die with that child: the host's
namespaces are never touched, and a crash leaves nothing behind. The child's
exception comes back to the test with its traceback.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import signal
import socket
import subprocess
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator

from pyrun.linux import syscalls as linux

BUSYBOX = "/bin/busybox"


def _child_result(fn: Callable[[], Any], write_fd: int) -> int:
    try:
        result = (True, fn())
    except BaseException as e:  # noqa: BLE001 - report everything to the parent
        result = (False, f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
    try:
        data = pickle.dumps(result)
    except Exception as e:  # noqa: BLE001
        data = pickle.dumps((False, f"unpicklable result: {e}"))
    with os.fdopen(write_fd, "wb") as w:
        w.write(data)
    return 0 if result[0] else 1


def run_forked(fn: Callable[[], Any], timeout: int = 60) -> Any:
    """Run fn in a forked child; return its result or raise with its traceback."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        code = 1
        try:
            signal.alarm(timeout)
            code = _child_result(fn, w)
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        raise AssertionError(f"child died without a result (wait status {status})")
    ok, value = pickle.loads(data)
    if not ok:
        raise AssertionError("in the forked child: " + value)
    return value


def run_in_node_netns(fn: Callable[[], Any], timeout: int = 90) -> Any:
    """Run fn in a fresh network + mount namespace (a throwaway "node") with lo up."""
    def body():
        linux.unshare(["net", "mnt"])
        linux.make_private("/")
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return fn()
    return run_forked(body, timeout)


def make_pod_netns(directory: Path, name: str) -> str:
    """A new network namespace pinned by a bind mount at directory/name (in this mount namespace)."""
    pin = directory / name
    pin.touch()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            linux.unshare(["net"])
            linux.bind_mount("/proc/self/ns/net", str(pin), recursive=False)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert status == 0, f"could not create pod netns {pin}"
    return str(pin)


def in_netns(path: str, fn: Callable[[], Any]) -> Any:
    """fn() run in a forked child that joined the network namespace at path."""
    def body():
        linux.setns(path, "net")
        return fn()
    return run_forked(body, timeout=20)


@contextlib.contextmanager
def tcp_server(netns_path: str, port: int, reply: str) -> Iterator[int]:
    """A server in the given netns that answers every connection with `reply`; yields its pid."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            linux.setns(netns_path, "net")
            srv = socket.socket()
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind(("0.0.0.0", port))
            srv.listen(16)
            os.write(w, b"1")
            os.close(w)
            while True:
                conn, addr = srv.accept()
                with conn:
                    conn.sendall(f"{reply} from {addr[0]}".encode())
        finally:
            os._exit(1)
    os.close(w)
    ready = os.read(r, 1)
    os.close(r)
    try:
        assert ready == b"1", "tcp server did not start"
        yield pid
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def tcp_get(host: str, port: int, timeout: float = 3.0) -> str:
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        chunks = []
        while True:
            data = s.recv(4096)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode()


def ping(address: str, netns_path: str | None = None) -> bool:
    cmd = [BUSYBOX, "ping", "-c", "1", "-W", "2", address]
    if netns_path:
        cmd = ["nsenter", f"--net={netns_path}"] + cmd
    return subprocess.run(cmd, capture_output=True).returncode == 0


def host_snapshot() -> tuple[str, str, list[str]]:
    """What the host namespace shows of veths, nft tables and named netns (must not change)."""
    veths = subprocess.run(["ip", "-o", "link", "show", "type", "veth"], capture_output=True, text=True).stdout
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    named = sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []
    return veths, tables, named


def temp_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="pyrun-net-"))


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
