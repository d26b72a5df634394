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
