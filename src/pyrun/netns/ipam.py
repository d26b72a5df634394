"""IP address management for pods: one address per pod out of the node's CIDR.

The decision is pure (`next_free`: given the used addresses, which one is next);
the state is a small JSON file under `Config.network_dir`, read-modify-written
under an exclusive flock(2) so parallel `pyrun` processes never hand out the same
address. Like the CNI host-local plugin, allocation continues after the address
handed out last instead of reusing the lowest free one at once, so a new pod
rarely inherits a just-deleted pod's address (stale ARP/conntrack entries).

File format (network_dir/ipam.json):
    {"cidr": "10.88.0.0/16", "last": "10.88.0.7", "allocations": {"<pod id>": "10.88.0.7"}}
"""
from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from pyrun.errors import NetworkError

IPv4 = ipaddress.IPv4Address
STATE_FILE = "ipam.json"
LOCK_FILE = "ipam.lock"


# --- pure --------------------------------------------------------------------------------------

def reserved(network: ipaddress.IPv4Network) -> set[IPv4]:
    """Addresses never given to a pod: the network address, the gateway (first host) and broadcast."""
    return {network.network_address, network.network_address + 1, network.broadcast_address}


def next_free(network: ipaddress.IPv4Network, used: Iterable[IPv4], last: IPv4 | None = None) -> IPv4 | None:
    """The first address after `last` (wrapping around) that is neither used nor reserved; None when full."""
    taken = set(used) | reserved(network)
    first = int(network.network_address)
    size = network.num_addresses
    start = (int(last) - first + 1) % size if last is not None and last in network else 0
    for step in range(size):
        candidate = IPv4(first + (start + step) % size)
        if candidate not in taken:
            return candidate
    return None


@dataclass
class IpamState:
    cidr: str
    allocations: dict[str, str] = field(default_factory=dict)
    last: str | None = None

    def to_json(self) -> str:
        return json.dumps({"cidr": self.cidr, "last": self.last, "allocations": self.allocations},
                          indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> "IpamState":
        try:
            data = json.loads(text)
            return cls(cidr=str(data["cidr"]), allocations=dict(data.get("allocations") or {}),
                       last=data.get("last"))
        except (ValueError, KeyError, TypeError) as e:
            raise NetworkError(f"{source}: corrupt IPAM state ({e})") from None


def allocate_in(state: IpamState, pod_id: str) -> IPv4:
    """Give `pod_id` an address in `state` (the one it already has, if any). Mutates state."""
    if pod_id in state.allocations:
        return IPv4(state.allocations[pod_id])
    network = ipaddress.IPv4Network(state.cidr)
    last = IPv4(state.last) if state.last else None
    ip = next_free(network, (IPv4(a) for a in state.allocations.values()), last)
    if ip is None:
        raise NetworkError(f"no free pod address left in {state.cidr} "
                           f"({len(state.allocations)} pods hold one)")
    state.allocations[pod_id] = str(ip)
    state.last = str(ip)
    return ip


# --- the file ----------------------------------------------------------------------------------

class AddressPool:
    """The node's pod addresses, persisted in `directory`/ipam.json."""

    def __init__(self, directory: str | os.PathLike[str], cidr: str):
        self.directory = Path(directory)
        self.cidr = str(ipaddress.IPv4Network(cidr))
        self.path = self.directory / STATE_FILE

    def allocate(self, pod_id: str) -> IPv4:
        """An address for `pod_id` (idempotent: a pod that has one keeps it)."""
        with self._transaction() as state:
            return allocate_in(state, pod_id)

    def release(self, pod_id: str) -> IPv4 | None:
        """Free the pod's address; returns it, or None if the pod held none."""
        with self._transaction() as state:
            ip = state.allocations.pop(pod_id, None)
        return IPv4(ip) if ip else None

    def reclaim(self, live_pod_ids: Iterable[str]) -> dict[str, IPv4]:
        """Free the addresses of pods that no longer exist (crash recovery, `pyrun gc`)."""
        live = set(live_pod_ids)
        with self._transaction() as state:
            dead = {p: IPv4(a) for p, a in state.allocations.items() if p not in live}
            for p in dead:
                del state.allocations[p]
        return dead

    def lookup(self, pod_id: str) -> IPv4 | None:
        return self.allocations().get(pod_id)

    def allocations(self) -> dict[str, IPv4]:
        with self._transaction(write=False) as state:
            return {p: IPv4(a) for p, a in state.allocations.items()}

    @contextlib.contextmanager
    def _transaction(self, write: bool = True) -> Iterator[IpamState]:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            lock_fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise NetworkError(f"{self.directory}: cannot open IPAM lock: {e.strerror}") from None
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            state = self._read()
            yield state
            if write:
                self._write(state)
        finally:
            os.close(lock_fd)  # closing drops the flock

    def _read(self) -> IpamState:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return IpamState(cidr=self.cidr)
        state = IpamState.from_json(text, str(self.path))
        if state.cidr != self.cidr:
            if state.allocations:
                raise NetworkError(f"{self.path}: pods hold addresses in {state.cidr}, "
                                   f"but the network is now {self.cidr}; remove those pods first")
            return IpamState(cidr=self.cidr)
        return state

    def _write(self, state: IpamState) -> None:
        tmp = self.path.with_name(f".{STATE_FILE}.{os.getpid()}")
        try:
            tmp.write_text(state.to_json())
            os.replace(tmp, self.path)
        except OSError as e:
            raise NetworkError(f"{self.path}: cannot write IPAM state: {e.strerror}") from None
