"""Attach a pod's network namespace to the node bridge, and take it off again.

attach_pod: ensure the bridge -> allocate an address -> veth pair (host end
`veth<8 hex of sha256(pod id)>` on the bridge, peer born as eth0 inside the pod
namespace, ifalias naming the owning state root) -> address, lo and eth0 up,
default route via the gateway -> NAT and hostPort rules. Each step registers its
undo, so a failure leaves nothing.

Ownership (pyrun.netns.owner): several state roots may share the bridge. The
records (addresses, hostPorts) are node-wide (pyrun.netns.nodestate) and every
entry, like every veth, names its owner; detach_pod and gc_network touch only
the calling root's. The bridge and pyrun's nft table belong to nobody: whoever
finds nothing at all attached any more (no port, of any root) removes them with
the records, under the node lock that attach holds too.

Everything happens in the caller's network namespace (the node's); the pod
namespace is only reached through a netlink socket opened inside it.
hostNetwork pods never come here (see pyrun.netns).
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from pyrun.errors import NetworkError
from pyrun.netns import bridge as _bridge
from pyrun.netns import ipam, nat, netlink, nodestate
from pyrun.netns.ipam import AddressPool
from pyrun.netns.nodestate import NodeState
from pyrun.netns.owner import Owner, host_ifname, parse_veth_alias, veths_to_collect
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


def _settings(config: Any, settings: NetworkSettings | None) -> NetworkSettings:
    return settings or NetworkSettings.from_config(config)


def node_records_dir(config: Any, settings: NetworkSettings | None = None) -> Path:
    """Where the calling network namespace keeps the bridge's records (ipam.json, hostports.json)."""
    return nodestate.node_dir(_settings(config, settings))


def attach_pod(config: Any, pod_id: str, netns_path: str, *,
               ports: Iterable[Mapping[str, Any] | PortMapping] = (), hostname: str | None = None,
               settings: NetworkSettings | None = None) -> Attachment:
    """Give the pod at `netns_path` an address on the node bridge; returns what it got.

    ports: the pod's container ports (spec dicts or PortMapping); those with a hostPort
    get DNAT rules. hostname is accepted for symmetry with render_hosts (not needed here).
    """
    s = _settings(config, settings)
    owner = Owner.of(config)
    mappings = port_mappings(ports)
    veth = host_ifname(pod_id)
    Path(config.network_dir).mkdir(parents=True, exist_ok=True)  # marks the root as networked (see gc)
    with nodestate.locked(s) as node, contextlib.ExitStack() as undo:
        undo.callback(_undo_bridge, node, s)  # runs last: a bridge this failure left empty
        pool = AddressPool(node.dir, s.cidr)
        with netlink.node() as ipr:
            br = _bridge.ensure_bridge(ipr, s.bridge, s.gateway_cidr, s.mtu)
            if br.created:
                node.drop_records()  # they describe a former bridge (of a namespace now gone)
            _adopt_legacy_records(config, node, s, owner)
            ip = pool.allocate(pod_id, owner.tag, owner.root)
            undo.callback(pool.release, pod_id, owner.tag)
            _delete_own_veth(ipr, veth, owner)  # a leftover of an earlier failed attempt for this pod
            netlink.add_veth(ipr, veth, POD_IFNAME, str(netns_path), br.index, br.name, br.mtu)
            undo.callback(_delete_veth, veth)
            host = netlink.link(ipr, veth)
            netlink.set_alias(ipr, host["index"], veth, owner.veth_alias(pod_id))
            netlink.set_link(ipr, host["index"], veth, state="up")
        mac = _configure_pod_side(str(netns_path), str(ip), s)
        if s.masquerade or mappings:
            _bridge.enable_forwarding(s.bridge)
        nat.set_pod(node.dir, s, pod_id, str(ip), mappings, owner.tag)
        undo.pop_all()
    return Attachment(ip=str(ip), prefix_len=s.network.prefixlen, gateway=str(s.gateway), mac=mac,
                      host_ifname=veth, bridge=s.bridge)


def _adopt_legacy_records(config: Any, node: NodeState, s: NetworkSettings, owner: Owner) -> None:
    """An older pyrun kept addresses and hostPorts per state root (<root>/network): move them into
    the node's records as this root's, so pods from before an upgrade keep their address to
    themselves. Called with the node lock held."""
    legacy = Path(config.network_dir)
    if legacy.resolve() == node.dir.resolve():
        return
    ipam_file, ports_file = legacy / ipam.STATE_FILE, legacy / nat.STATE_FILE
    if ipam_file.exists():
        AddressPool(node.dir, s.cidr).adopt(AddressPool(legacy, s.cidr).records(), owner.tag, owner.root)
        ipam_file.unlink()
    if ports_file.exists():
        nat.adopt(legacy, node.dir, owner.tag)
        ports_file.unlink()


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


def _delete_own_veth(ipr: Any, name: str, owner: Owner) -> bool:
    """Delete the veth unless its alias names another state root (then it is an error to reuse
    the name: that root has a pod with the same id)."""
    msg = netlink.link(ipr, name)
    if msg is None:
        return False
    parsed = parse_veth_alias(netlink.alias(msg))
    if parsed is not None and not owner.owns(parsed[0]):
        raise NetworkError(f"{name} belongs to pod {parsed[1]} of another state root (owner {parsed[0]}), "
                           f"not to this one ({owner.root})")
    return netlink.delete_link(ipr, name)


def _remove_bridge_if_unused(ipr, node: NodeState, s: NetworkSettings) -> list[str]:
    """With nothing at all attached to the bridge (no port, of any root): delete the bridge,
    pyrun's nft table and the node records. Called with the node lock held and the caller's
    node netlink socket. Returns [bridge] if it was deleted."""
    removed: list[str] = []
    br = netlink.link(ipr, s.bridge)
    if br is not None:
        if not _bridge.is_bridge(br) or netlink.bridge_ports(ipr, br["index"]):
            return removed
        if netlink.delete_link(ipr, s.bridge):
            removed.append(s.bridge)
    nat.drop_table()
    node.remove()
    return removed


def _undo_bridge(node: NodeState, s: NetworkSettings) -> None:
    """_remove_bridge_if_unused on the way out of a failed attach: the attach's own error is the
    one to report (a bridge left empty goes with the next pod rm or gc)."""
    with contextlib.suppress(NetworkError), netlink.node() as ipr:
        _remove_bridge_if_unused(ipr, node, s)


def detach_pod(config: Any, pod_id: str, netns_path: str | None = None, *,
               settings: NetworkSettings | None = None) -> None:
    """Remove the pod's rules, its veth pair and its address (only this state root's: a pod id
    another root owns is left alone), and the bridge once nothing is attached. Idempotent; the
    pod namespace may already be gone (deleting the host end removes both ends)."""
    s = _settings(config, settings)
    owner = Owner.of(config)
    with nodestate.locked(s) as node:
        _adopt_legacy_records(config, node, s, owner)
        nat.remove_pods(node.dir, s, [pod_id], owner.tag)
        with netlink.node() as ipr:
            with contextlib.suppress(NetworkError):  # another root's veth of that name: not ours
                _delete_own_veth(ipr, host_ifname(pod_id), owner)
            AddressPool(node.dir, s.cidr).release(pod_id, owner.tag)
            _remove_bridge_if_unused(ipr, node, s)


def gc_network(config: Any, live_pod_ids: Iterable[str], *,
               settings: NetworkSettings | None = None) -> dict[str, list[str]]:
    """Remove what this state root's pods that no longer exist left behind: their veths, rules
    and addresses; other roots' are never touched. The bridge (with the nft table) goes once
    nothing at all is attached to it.
    Returns what was removed: {"veths": [...], "rules": [pod ids], "addresses": [pod ids], "bridge": [...]}."""
    s = _settings(config, settings)
    owner = Owner.of(config)
    live = set(live_pod_ids)
    removed_veths: list[str] = []
    with nodestate.locked(s) as node:
        _adopt_legacy_records(config, node, s, owner)
        pool = AddressPool(node.dir, s.cidr)
        with netlink.node() as ipr:
            br = netlink.link(ipr, s.bridge)
            if br is not None and _bridge.is_bridge(br):
                ports = netlink.bridge_ports(ipr, br["index"])
                for name in veths_to_collect(ports, owner, live, pool.allocations(owner.tag)):
                    if netlink.delete_link(ipr, name):
                        removed_veths.append(name)
            rules_removed = nat.reclaim(node.dir, s, live, owner.tag)
            freed = pool.reclaim(live, owner.tag)
            removed_bridge = _remove_bridge_if_unused(ipr, node, s)
    return {"veths": removed_veths, "rules": rules_removed, "addresses": sorted(freed), "bridge": removed_bridge}
