"""Attach a pod's network namespace to the node bridge, and take it off again.

attach_pod: allocate an address -> ensure the bridge -> veth pair (host end
`veth<8 hex of sha256(pod id)>` on the bridge, peer born as eth0 inside the pod
namespace) -> address, lo and eth0 up, default route via the gateway -> NAT and
hostPort rules. Each step registers its undo, so a failure leaves nothing.

Everything happens in the caller's network namespace (the node's); the pod
namespace is only reached through a netlink socket opened inside it.
hostNetwork pods never come here (see pyrun.netns).
"""
from __future__ import annotations

import contextlib
import hashlib
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping

from pyrun.errors import NetworkError
from pyrun.netns import bridge as _bridge
from pyrun.netns import nat, netlink
from pyrun.netns.ipam import AddressPool
from pyrun.netns.rules import PortMapping, port_mappings
from pyrun.netns.settings import NetworkSettings

POD_IFNAME = "eth0"


@dataclass(frozen=True)
class Attachment:
    ip: str
    prefix_len: int
    gateway: str
    mac: str
    host_ifname: str
    ifname: str = POD_IFNAME
    bridge: str = "pyrun0"

    def to_json(self) -> dict:
        return asdict(self)


def host_ifname(pod_id: str) -> str:
    """The host end's name: 'veth' + 8 hex characters of sha256(pod id) (<= 15, IFNAMSIZ)."""
    return "veth" + hashlib.sha256(pod_id.encode()).hexdigest()[:8]


def _settings(config: Any, settings: NetworkSettings | None) -> NetworkSettings:
    return settings or NetworkSettings.from_config(config)


def attach_pod(config: Any, pod_id: str, netns_path: str, *,
               ports: Iterable[Mapping[str, Any] | PortMapping] = (), hostname: str | None = None,
               settings: NetworkSettings | None = None) -> Attachment:
    """Give the pod at `netns_path` an address on the node bridge; returns what it got.

    ports: the pod's container ports (spec dicts or PortMapping); those with a hostPort
    get DNAT rules. hostname is accepted for symmetry with render_hosts (not needed here).
    """
    s = _settings(config, settings)
    mappings = port_mappings(ports)
    pool = AddressPool(config.network_dir, s.cidr)
    veth = host_ifname(pod_id)
    with contextlib.ExitStack() as undo:
        ip = pool.allocate(pod_id)
        undo.callback(pool.release, pod_id)
        with netlink.node() as ipr:
            br = _bridge.ensure_bridge(ipr, s.bridge, s.gateway_cidr, s.mtu)
            netlink.delete_link(ipr, veth)  # a leftover of an earlier failed attempt for this pod
            netlink.add_veth(ipr, veth, POD_IFNAME, str(netns_path), br.index, br.name, br.mtu)
            undo.callback(_delete_veth, veth)
            host = netlink.link(ipr, veth)
            netlink.set_link(ipr, host["index"], veth, state="up")
        mac = _configure_pod_side(str(netns_path), str(ip), s)
        if s.masquerade or mappings:
            _bridge.enable_forwarding(s.bridge)
        nat.set_pod(config.network_dir, s, pod_id, str(ip), mappings)
        undo.pop_all()
    return Attachment(ip=str(ip), prefix_len=s.network.prefixlen, gateway=str(s.gateway), mac=mac,
                      host_ifname=veth, bridge=s.bridge)


def _configure_pod_side(netns_path: str, ip: str, s: NetworkSettings) -> str:
    """Inside the pod: address on eth0, lo and eth0 up, default route. Returns eth0's MAC."""
    with netlink.pod(netns_path) as ipr:
        eth0 = netlink.link(ipr, POD_IFNAME)
        lo = netlink.link(ipr, "lo")
        if eth0 is None or lo is None:
            raise NetworkError(f"{netns_path}: {POD_IFNAME} or lo missing right after the veth was created")
        netlink.add_address(ipr, eth0["index"], POD_IFNAME, ip, s.network.prefixlen, netns_path)
        netlink.set_link(ipr, lo["index"], "lo", netns_path, state="up")
        netlink.set_link(ipr, eth0["index"], POD_IFNAME, netns_path, state="up")
        netlink.add_default_route(ipr, str(s.gateway), eth0["index"], POD_IFNAME, netns_path)
        return eth0.get_attr("IFLA_ADDRESS")


def _delete_veth(name: str) -> None:
    with netlink.node() as ipr:
        netlink.delete_link(ipr, name)


def detach_pod(config: Any, pod_id: str, netns_path: str | None = None, *,
               settings: NetworkSettings | None = None) -> None:
    """Remove the pod's rules, its veth pair and its address. Idempotent; the pod namespace
    may already be gone (deleting the host end removes both ends)."""
    s = _settings(config, settings)
    nat.remove_pods(config.network_dir, s, [pod_id])
    _delete_veth(host_ifname(pod_id))
    AddressPool(config.network_dir, s.cidr).release(pod_id)


def gc_network(config: Any, live_pod_ids: Iterable[str], *,
               settings: NetworkSettings | None = None) -> dict[str, list[str]]:
    """Remove what pods that no longer exist left behind: veths on the bridge, rules, addresses,
    and the bridge itself once no pod is left (removing the last pod keeps it, for the next one).
    Returns what was removed: {"veths": [...], "rules": [pod ids], "addresses": [pod ids], "bridge": [...]}."""
    s = _settings(config, settings)
    live = set(live_pod_ids)
    keep = {host_ifname(p) for p in live}
    removed_veths: list[str] = []
    removed_bridge: list[str] = []
    with netlink.node() as ipr:
        br = netlink.link(ipr, s.bridge)
        if br is not None:
            for name in netlink.bridge_ports(ipr, br["index"]):
                if name.startswith("veth") and name not in keep and netlink.delete_link(ipr, name):
                    removed_veths.append(name)
            if not live and not netlink.bridge_ports(ipr, br["index"]) and netlink.delete_link(ipr, s.bridge):
                removed_bridge.append(s.bridge)
    rules_removed = nat.reclaim(config.network_dir, s, live)
    freed = AddressPool(config.network_dir, s.cidr).reclaim(live)
    return {"veths": removed_veths, "rules": rules_removed, "addresses": sorted(freed), "bridge": removed_bridge}
