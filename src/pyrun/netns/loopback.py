"""Bring up `lo` in the current network namespace without netlink.

A new network namespace starts with only a down loopback device (network_namespaces(7)).
This uses the SIOCGIFFLAGS/SIOCSIFFLAGS ioctls (netdevice(7)) so that a pod
with no pod network never pays pyroute2's import cost.
"""
from __future__ import annotations

import fcntl
import socket
import struct

from pyrun import explain
from pyrun.errors import SyscallError

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def loopback_up(ifname: str = "lo") -> None:
    explain.emit(explain.argv("ip", "link", "set", ifname, "up"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH22x", ifname.encode(), 0)
        try:
            flags = struct.unpack("16sH22x", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
            fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", ifname.encode(), flags | IFF_UP))
        except OSError as e:
            raise SyscallError.from_errno(e.errno, "set link up", ifname) from None
