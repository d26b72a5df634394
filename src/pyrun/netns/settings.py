"""Node network settings (pure): bridge name, pod CIDR, MTU, NAT, where the node's records live."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from pyrun.errors import UsageError

DEFAULT_BRIDGE = "pyrun0"
DEFAULT_CIDR = "10.88.0.0/16"
KEYS = ("bridge", "cidr", "mtu", "masquerade", "state_dir")
IFNAMSIZ = 15  # longest interface name the kernel takes (IFNAMSIZ - 1), netdevice(7)


@dataclass(frozen=True)
class NetworkSettings:
    """How the node network looks. `masquerade` adds the NAT rule for traffic leaving the node
    and turns on net.ipv4.ip_forward (in the node's network namespace). `state_dir` is the base
    of the node-wide records shared by all state roots (pyrun.netns.nodestate; None: default)."""

    bridge: str = DEFAULT_BRIDGE
    cidr: str = DEFAULT_CIDR
    mtu: int | None = None
    masquerade: bool = True
    state_dir: str | None = None

    def __post_init__(self) -> None:
        if not self.bridge or len(self.bridge) > IFNAMSIZ or "/" in self.bridge or " " in self.bridge:
            raise UsageError(f"network bridge name {self.bridge!r}: must be 1-{IFNAMSIZ} characters, no '/' or space")
        try:
            net = ipaddress.IPv4Network(self.cidr, strict=True)
        except ValueError as e:
            raise UsageError(f"network cidr {self.cidr!r}: {e}") from None
        if net.num_addresses < 4:
            raise UsageError(f"network cidr {self.cidr!r}: too small (needs room for a gateway and a pod)")
        if self.mtu is not None and not 68 <= self.mtu <= 65535:
            raise UsageError(f"network mtu {self.mtu}: must be 68..65535")

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr)

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        """The bridge's address: the first host address of the CIDR."""
        return self.network.network_address + 1

    @property
    def gateway_cidr(self) -> str:
        return f"{self.gateway}/{self.network.prefixlen}"

    @classmethod
    def from_config(cls, config: Any) -> "NetworkSettings":
        """Read overrides from `config.network` (keys: bridge, cidr, mtu, masquerade, state_dir; or a
        NetworkSettings)."""
        values = getattr(config, "network", None) or {}
        if isinstance(values, NetworkSettings):
            return values
        return cls(**{k: v for k, v in values.items() if k in KEYS})
