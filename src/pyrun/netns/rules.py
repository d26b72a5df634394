"""The NAT rules of pod networking, rendered as text (pure).

pyrun owns one nftables table, `table ip pyrun`, and always replaces it whole in
one atomic `nft -f` transaction (see pyrun.netns.nat), so rules are never patched
one by one and a crash can not leave half a pod's rules behind:

    chain prerouting  (nat, dstnat)   fib daddr type local jump hostports
    chain output      (nat, -100)     fib daddr type local jump hostports
    chain hostports                   [ip daddr <hostIP>] tcp dport 8080 dnat to 10.88.0.5:80
                                          comment "pod <pod id> owner <state root tag>"
    chain postrouting (nat, srcnat)   ct status dnat ip saddr 127.0.0.0/8 masquerade
                                      ct status dnat ip saddr <cidr> ip daddr <cidr> masquerade
                                      ip saddr <cidr> oifname != "<bridge>" masquerade

Why each piece (nft(8), ip-sysctl.rst):
- `fib daddr type local`: a hostPort is a port on *any* of the node's own
  addresses (eth0, the bridge 10.88.0.1, 127.0.0.1), whatever the interface the
  packet came in on. The FIB lookup answers "is this destination one of mine?"
  without listing addresses. prerouting covers packets arriving from outside
  and from pods; output covers connections the node opens itself (locally
  generated packets never pass prerouting).
- 127.0.0.1:8080 -> 10.88.0.5:80: after DNAT the packet has source 127.0.0.1 and
  leaves through the bridge, which the kernel treats as a martian and drops
  unless `net.ipv4.conf.<bridge>.route_localnet=1` (pyrun.netns.bridge sets it).
  The pod could not answer 127.0.0.1 either (that is its own lo), so the first
  masquerade rule rewrites the source to the bridge address.
- pod -> <node address>:hostPort -> a pod on the same bridge: without the second
  masquerade rule the target pod would answer the client directly over the
  bridge (same L2 segment) with its own address, which the client never
  connected to. Masquerading makes the reply come back through the node, where
  conntrack undoes the DNAT. This DNAT happens in the routed path (the packet is
  addressed to the node's MAC), so the bridge port needs no hairpin mode; only
  with br_netfilter (bridged frames passing iptables) would a pod reaching its
  own hostPort need hairpin_mode on its port, which pyrun does not rely on.
- The last rule is ordinary egress NAT: pod traffic leaving the node through any
  interface other than the bridge gets the node's address (and needs
  net.ipv4.ip_forward=1 in the node namespace).

The table and its chains belong to the bridge, shared by every state root that
attaches pods to it; only the hostport rules belong to a pod, and their comment
names its owner (pyrun.netns.owner). The table goes when the last pod of any root
does.

A filter-table FORWARD policy of drop set by someone else (Docker does that) is
not overridden by an accept in another nftables table; pyrun does not try.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from pyrun.errors import NetworkError, SpecError

TABLE = "pyrun"
PROTOCOLS = ("tcp", "udp")
_SAFE_COMMENT = re.compile(r"[^A-Za-z0-9_.:-]")


@dataclass(frozen=True)
class PortMapping:
    """One hostPort: `host_ip:host_port/protocol` on the node -> `container_port` on the pod."""

    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""  # "" or "0.0.0.0": every local address

    def __post_init__(self) -> None:
        for name in ("host_port", "container_port"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= 65535:
                raise SpecError([(name, f"port {value!r} must be 1..65535")])
        if self.protocol not in PROTOCOLS:
            raise SpecError([("protocol", f"{self.protocol!r}: pyrun maps only TCP and UDP hostPorts")])
        if self.host_ip:
            try:
                ipaddress.IPv4Address(self.host_ip)
            except ValueError:
                raise SpecError([("hostIP", f"{self.host_ip!r} is not an IPv4 address")]) from None

    @property
    def wildcard(self) -> bool:
        return self.host_ip in ("", "0.0.0.0")

    def clashes_with(self, other: "PortMapping") -> bool:
        """Two mappings claim the same node port (same protocol and port, overlapping address)."""
        return (self.protocol == other.protocol and self.host_port == other.host_port
                and (self.wildcard or other.wildcard or self.host_ip == other.host_ip))

    def describe(self) -> str:
        return f"{self.host_ip or '*'}:{self.host_port}/{self.protocol}"

    @classmethod
    def from_spec(cls, port: Mapping[str, Any] | "PortMapping", where: str = "ports") -> "PortMapping | None":
        """From a container port of the pod spec ({"containerPort", "hostPort", "protocol",
        "hostIP"}); None when it has no hostPort (nothing to map)."""
        if isinstance(port, PortMapping):
            return port
        host_port = port.get("hostPort", port.get("host_port"))
        if not host_port:
            return None
        try:
            return cls(host_port=host_port,
                       container_port=port.get("containerPort", port.get("container_port", host_port)),
                       protocol=str(port.get("protocol", "TCP")).lower(),
                       host_ip=port.get("hostIP", port.get("host_ip")) or "")
        except SpecError as e:
            raise SpecError([(f"{where}.{p}", m) for p, m in e.problems]) from None

    def to_json(self) -> dict:
        return {"hostPort": self.host_port, "containerPort": self.container_port,
                "protocol": self.protocol, "hostIP": self.host_ip}


def port_mappings(ports: Iterable[Mapping[str, Any] | PortMapping], where: str = "ports") -> list[PortMapping]:
    """The hostPort mappings among a pod's container ports; duplicates within the pod are an error."""
    result: list[PortMapping] = []
    for i, p in enumerate(ports):
        m = PortMapping.from_spec(p, f"{where}[{i}]")
        if m is None:
            continue
        for prev in result:
            if prev.clashes_with(m):
                raise SpecError([(f"{where}[{i}].hostPort", f"{m.describe()} is mapped twice in this pod")])
        result.append(m)
    return result


@dataclass(frozen=True)
class PodPorts:
    pod_id: str
    ip: str
    ports: tuple[PortMapping, ...] = field(default_factory=tuple)
    owner: str | None = None  # tag of the state root that attached the pod (pyrun.netns.owner)


def find_clash(new: PodPorts, existing: Iterable[PodPorts]) -> str | None:
    """A message naming the pod that already holds one of `new`'s node ports, or None."""
    for other in existing:
        if other.pod_id == new.pod_id:
            continue
        for mine in new.ports:
            for theirs in other.ports:
                if mine.clashes_with(theirs):
                    return f"hostPort {mine.describe()} is already used by pod {other.pod_id}"
    return None


def _comment(pod_id: str, owner: str | None = None) -> str:
    """The rule's comment names the pod and the state root that owns it (nft keeps <= 128 bytes)."""
    tail = f" owner {_SAFE_COMMENT.sub('_', owner)[:16]}" if owner else ""
    return f'comment "pod {_SAFE_COMMENT.sub("_", pod_id)[:100]}{tail}"'


def dnat_rule(ip: str, m: PortMapping) -> str:
    match = "" if m.wildcard else f"ip daddr {m.host_ip} "
    return f"{match}{m.protocol} dport {m.host_port} dnat to {ip}:{m.container_port}"


def render_nft_table(cidr: str, bridge: str, pods: Sequence[PodPorts], masquerade: bool = True) -> str:
    """`table ip pyrun { ... }` for these pods (the body of an nft -f script)."""
    net = str(ipaddress.IPv4Network(cidr))
    hostports = [f"\t\t{dnat_rule(p.ip, m)} {_comment(p.pod_id, p.owner)}" for p in pods for m in p.ports]
    post = ["\t\tct status dnat ip saddr 127.0.0.0/8 masquerade",
            f"\t\tct status dnat ip saddr {net} ip daddr {net} masquerade"]
    if masquerade:
        post.append(f'\t\tip saddr {net} oifname != "{bridge}" masquerade')
    lines = [
        f"table ip {TABLE} {{",
        "\tchain prerouting {",
        "\t\ttype nat hook prerouting priority dstnat; policy accept;",
        "\t\tfib daddr type local jump hostports",
        "\t}",
        "\tchain output {",
        "\t\ttype nat hook output priority -100; policy accept;",
        "\t\tfib daddr type local jump hostports",
        "\t}",
        "\tchain hostports {",
        *hostports,
        "\t}",
        "\tchain postrouting {",
        "\t\ttype nat hook postrouting priority srcnat; policy accept;",
        *post,
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def render_nft_replace(cidr: str, bridge: str, pods: Sequence[PodPorts], masquerade: bool = True) -> str:
    """An nft -f script that atomically replaces pyrun's table (creating it first makes the
    delete safe when it does not exist yet)."""
    return (f"table ip {TABLE}\ndelete table ip {TABLE}\n"
            + render_nft_table(cidr, bridge, pods, masquerade))


def render_nft_delete() -> str:
    """An nft -f script that removes pyrun's table, whether or not it exists."""
    return f"table ip {TABLE}\ndelete table ip {TABLE}\n"


def check_no_clash(new: PodPorts, existing: Iterable[PodPorts]) -> None:
    message = find_clash(new, existing)
    if message:
        raise NetworkError(message)
