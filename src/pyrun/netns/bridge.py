"""The node side: pyrun's bridge and the sysctls pod networking needs.

All of it acts on the network namespace of the calling process (the node's, or
a test's throwaway one). Idempotent and safe when several pyrun processes get
here at once: creating a bridge or an address that exists is not an error.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from pyrun.errors import NetworkError
from pyrun.netns import netlink
from pyrun.linux import syscalls as linux

PROC_SYS_NET = Path("/proc/sys/net")  # per network namespace: the namespace of the process that opens it


@dataclass(frozen=True)
class Bridge:
    name: str
    index: int
    mtu: int
    created: bool = False  # this call made it (records of a former bridge are stale)


def ensure_bridge(ipr, name: str = "pyrun0", gateway_cidr: str = "10.88.0.1/16", mtu: int | None = None) -> Bridge:
    """Create the bridge on first use, give it the gateway address, bring it up.

    ip link add name pyrun0 type bridge; ip addr add 10.88.0.1/16 dev pyrun0;
    ip link set dev pyrun0 up. A link of that name that is not a bridge is an error.
    """
    iface = ipaddress.IPv4Interface(gateway_cidr)
    msg = netlink.link(ipr, name)
    created = msg is None
    if created:
        netlink.create_bridge(ipr, name, mtu)
        msg = netlink.link(ipr, name)
        if msg is None:
            raise NetworkError(f"bridge {name} vanished right after it was created")
    kind = netlink.link_kind(msg)
    if kind != "bridge":
        raise NetworkError(f"interface {name} exists but is a {kind or 'device of unknown kind'}, not a bridge")
    index = msg["index"]
    if mtu and msg.get_attr("IFLA_MTU") != mtu:
        netlink.set_link(ipr, index, name, mtu=mtu)
    addresses = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=index, family=2)}
    if str(iface.ip) not in addresses:
        netlink.add_address(ipr, index, name, str(iface.ip), iface.network.prefixlen)
    if not msg["flags"] & 1:  # IFF_UP
        netlink.set_link(ipr, index, name, state="up")
    final = netlink.link(ipr, name)
    return Bridge(name=name, index=index, mtu=final.get_attr("IFLA_MTU"), created=created)


def is_bridge(msg) -> bool:
    return netlink.link_kind(msg) == "bridge"


def set_sysctl(key: str, value: str, proc_sys_net: Path = PROC_SYS_NET) -> None:
    """sysctl -w net.<key>=value in the current network namespace, only if it differs."""
    path = proc_sys_net / key.replace(".", "/")
    try:
        if path.read_text().strip() == value:
            return
    except OSError as e:
        raise NetworkError(f"{path}: cannot read: {e.strerror}") from None
    linux.write_file(str(path), value)


def enable_forwarding(bridge: str) -> None:
    """Routing for NAT and hostPorts, in this network namespace only:
    net.ipv4.ip_forward=1 (pods' traffic is forwarded between the bridge and other
    interfaces, and pod -> node address:hostPort -> pod goes out the bridge again) and
    net.ipv4.conf.<bridge>.route_localnet=1 (hostPort via 127.0.0.1: after DNAT the
    packet keeps its 127.x source until postrouting masquerades it; see pyrun.netns.rules)."""
    set_sysctl("ipv4.ip_forward", "1")
    set_sysctl(f"ipv4.conf.{bridge}.route_localnet", "1")
