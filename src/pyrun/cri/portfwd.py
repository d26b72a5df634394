"""Port-forward helper: `python -m pyrun.cri.portfwd --reply-fd FD NETNS_PATH PORT`.

A fresh, single-threaded process: setns(2) into the network namespace pinned at NETNS_PATH ("-":
stay in this one), connect to 127.0.0.1:PORT, send the connected socket over the unix socket FD
(SCM_RIGHTS, unix(7)) with the message "ok", and exit. On failure it sends the error text without a
descriptor and exits 1. The socket stays in the pod's namespace after this process is gone.
"""
from __future__ import annotations

import argparse
import socket
import sys

CONNECT_TIMEOUT = 10.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pyrun-portfwd")
    p.add_argument("--reply-fd", type=int, required=True)
    p.add_argument("netns")
    p.add_argument("port", type=int)
    args = p.parse_args(argv)
    reply = socket.socket(fileno=args.reply_fd)
    try:
        if args.netns != "-":
            from pyrun.linux import syscalls as linux
            linux.setns(args.netns, "net")
        conn = socket.create_connection(("127.0.0.1", args.port), timeout=CONNECT_TIMEOUT)
    except OSError as e:
        reply.sendall(f"connect to 127.0.0.1:{args.port}: {e.strerror or e}".encode())
        return 1
    conn.settimeout(None)
    socket.send_fds(reply, [b"ok"], [conn.fileno()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
