"""Entries for the spawn/zygote tests (registered in pyrun.runtime.spawn.ENTRIES by the tests)."""
from __future__ import annotations

import os
import sys

from pyrun.runtime import sync


def exit_with(args: dict, sock) -> int:
    """Print to stdout and stderr, then exit with args["code"]."""
    print(args.get("out", "out"))
    print(args.get("err", "err"), file=sys.stderr)
    return int(args["code"])


def report(args: dict, sock) -> int:
    """Send what the child looks like (pid, session, title, open fds), then wait for `go` and exit 0."""
    with open(f"/proc/{os.getpid()}/cmdline", "rb") as f:
        cmdline = f.read().split(b"\0", 1)[0].decode()
    sync.send(sock, "hello", pid=os.getpid(), sid=os.getsid(0), cmdline=cmdline,
              fds=sorted(int(fd) for fd in os.listdir("/proc/self/fd")))
    sync.recv(sock, "go", timeout=30)
    return 0


def crash(args: dict, sock) -> int:
    raise RuntimeError("boom")


def report_exit_early(args: dict, sock) -> int:
    """Leave stdout to nobody, send `exited` with args["code"], then linger before exiting (as an exec's
    helper does while its process is torn down)."""
    import time
    print("out", flush=True)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    sync.send(sock, "exited", code=int(args["code"]))
    time.sleep(float(args.get("linger", 0)))
    return 0
