"""The thin netlink layer: the only importer of pyroute2 (imported lazily, it costs ~200 ms).

Every change emits the equivalent ip(8) command for explain mode just before it
acts, and every pyroute2 NetlinkError becomes a NetworkError that names that
command. Work in a pod's namespace goes through a netlink socket opened inside
it (pyroute2 does that in a short-lived child process), so the calling process
never changes namespace.
"""
from __future__ import annotations

import contextlib
import errno
import os
from typing import Any, Callable, Iterator

from pyrun import explain
from pyrun.errors import NetworkError


def _pyroute2():
    import pyroute2  # noqa: PLC0415 - deliberately lazy
    return pyroute2


def preload() -> None:
    """Import pyroute2 now, ahead of the first netlink call (a pod create overlaps it with other work)."""
    _pyroute2()


@contextlib.contextmanager
def node() -> Iterator[Any]:
    """A netlink socket in the calling process's (the node's) network namespace."""
    with _pyroute2().IPRoute() as ipr:
        yield ipr


@contextlib.contextmanager
def pod(netns_path: str) -> Iterator[Any]:
    """A netlink socket inside the namespace pinned at netns_path (never created: flags=0)."""
    try:
        ipr = _pyroute2().IPRoute(netns=str(netns_path), flags=0)
    except OSError as e:
        raise NetworkError(f"cannot open network namespace {netns_path}: {e.strerror or e}") from None
    with ipr:
        yield ipr


def _do(command: str, call: Callable[[], Any], ok: tuple[int, ...] = ()) -> Any:
    """Emit `command`, run the netlink call; errnos in `ok` are success (return None)."""
    explain.emit(command)
    NetlinkError = _pyroute2().NetlinkError
    try:
        return call()
    except NetlinkError as e:
        if e.code in ok:
            return None
        raise NetworkError(f"{command}: {os.strerror(e.code)}") from None


def in_ns(netns_path: str | None, command: str) -> str:
    return command if netns_path is None else f"nsenter --net={explain.argv(netns_path)} {command}"


def link(ipr: Any, ifname: str) -> Any | None:
    """The link message of `ifname`, or None."""
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        return None
    msgs = ipr.get_links(found[0])
    return msgs[0] if msgs else None


def link_kind(msg: Any) -> str | None:
    info = msg.get_attr("IFLA_LINKINFO")
    return info.get_attr("IFLA_INFO_KIND") if info is not None else None


def create_bridge(ipr: Any, name: str, mtu: int | None) -> None:
    """ip link add NAME type bridge (EEXIST: someone else was first, fine)."""
    extra = {"mtu": mtu} if mtu else {}
    words = ["ip", "link", "add", "name", name] + (["mtu", mtu] if mtu else []) + ["type", "bridge"]
    _do(explain.argv(*words), lambda: ipr.link("add", ifname=name, kind="bridge", **extra), ok=(errno.EEXIST,))


def add_address(ipr: Any, index: int, ifname: str, address: str, prefixlen: int,
                netns_path: str | None = None) -> None:
    """ip addr add ADDRESS/PREFIX dev IFNAME (EEXIST: already there, fine)."""
    cmd = in_ns(netns_path, explain.argv("ip", "addr", "add", f"{address}/{prefixlen}", "dev", ifname))
    _do(cmd, lambda: ipr.addr("add", index=index, address=address, prefixlen=prefixlen), ok=(errno.EEXIST,))


def set_link(ipr: Any, index: int, ifname: str, netns_path: str | None = None, **changes: Any) -> None:
    """ip link set dev IFNAME [up|down] [mtu N] [master BR] ..."""
    words = ["ip", "link", "set", "dev", ifname]
    for key, value in changes.items():
        words += [value] if key == "state" else [key, value]
    _do(in_ns(netns_path, explain.argv(*words)), lambda: ipr.link("set", index=index, **changes))


def add_veth(ipr: Any, host_ifname: str, peer_ifname: str, netns_path: str, master_index: int,
             master_name: str, mtu: int) -> None:
    """Create the pair with the peer born inside the pod namespace and the host end on the bridge:
    ip link add HOST mtu M master BR type veth peer name eth0 mtu M netns PATH."""
    cmd = explain.argv("ip", "link", "add", host_ifname, "mtu", mtu, "master", master_name, "type", "veth",
                       "peer", "name", peer_ifname, "mtu", mtu, "netns", netns_path)
    try:
        fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise NetworkError(f"cannot open network namespace {netns_path}: {e.strerror}") from None
    try:
        _do(cmd, lambda: ipr.link("add", ifname=host_ifname, kind="veth", mtu=mtu, master=master_index,
                                  peer={"ifname": peer_ifname, "mtu": mtu, "net_ns_fd": fd}))
    finally:
        os.close(fd)


def delete_link(ipr: Any, ifname: str) -> bool:
    """ip link del IFNAME; False when it did not exist (for a veth, this removes both ends)."""
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        return False
    result = _do(explain.argv("ip", "link", "del", ifname), lambda: ipr.link("del", index=found[0]) or True,
                 ok=(errno.ENODEV,))
    return bool(result)


def add_default_route(ipr: Any, gateway: str, index: int, ifname: str, netns_path: str | None = None) -> None:
    """ip route add default via GATEWAY dev IFNAME (EEXIST: already there)."""
    cmd = in_ns(netns_path, explain.argv("ip", "route", "add", "default", "via", gateway, "dev", ifname))
    _do(cmd, lambda: ipr.route("add", dst="0.0.0.0/0", gateway=gateway, oif=index), ok=(errno.EEXIST,))


def set_alias(ipr: Any, index: int, ifname: str, alias: str) -> None:
    """ip link set dev IFNAME alias ALIAS (the ifalias pyrun keeps a veth's owner in)."""
    _do(explain.argv("ip", "link", "set", "dev", ifname, "alias", alias),
        lambda: ipr.link("set", index=index, ifalias=alias))


def alias(msg: Any) -> str | None:
    """The ifalias of a link message, or None when unset."""
    return msg.get_attr("IFLA_IFALIAS") or None


def bridge_ports(ipr: Any, bridge_index: int) -> dict[str, str | None]:
    """The interfaces enslaved to the bridge: name -> ifalias (None when unset)."""
    return {m.get_attr("IFLA_IFNAME"): alias(m) for m in ipr.get_links() if m.get_attr("IFLA_MASTER") == bridge_index}
