"""IP address management for pods: one address per pod out of the node's CIDR.

The decision is pure (`next_free`: given the used addresses, which one is next);
the state is a small JSON file in the node's records directory (shared by every
state root on the bridge, see pyrun.netns.nodestate), read-modify-written under an
exclusive flock(2) so parallel `pyrun` processes, of any root, never hand out the
same address. Each allocation names its owner (pyrun.netns.owner): a root releases
and reclaims only its own. Like the CNI host-local plugin, allocation continues after the address
handed out last instead of reusing the lowest free one at once, so a new pod
rarely inherits a just-deleted pod's address (stale ARP/conntrack entries).

File format (<node records>/ipam.json):
    {"cidr": "10.88.0.0/16", "last": "10.88.0.7",
     "allocations": {"<pod id>": {"ip": "10.88.0.7", "owner": "<tag>", "root": "/run/pyrun"}}}
(a bare address string as the value is a record without owner, as older pyrun wrote them).
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


@dataclass(frozen=True)
class Allocation:
    """One pod's address and the state root that owns it (owner None: an unowned old record)."""

    ip: str
    owner: str | None = None
    root: str | None = None

    def to_json(self) -> dict:
        return {"ip": self.ip, "owner": self.owner, "root": self.root}

    @classmethod
    def from_json(cls, value) -> "Allocation":
        if isinstance(value, str):
            return cls(ip=value)
        return cls(ip=str(value["ip"]), owner=value.get("owner"), root=value.get("root"))


@dataclass
class IpamState:
    cidr: str
    allocations: dict[str, Allocation] = field(default_factory=dict)
    last: str | None = None

    def to_json(self) -> str:
        records = {p: a.to_json() for p, a in self.allocations.items()}
        return json.dumps({"cidr": self.cidr, "last": self.last, "allocations": records},
                          indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> "IpamState":
        try:
            data = json.loads(text)
            records = {str(p): Allocation.from_json(v) for p, v in (data.get("allocations") or {}).items()}
            return cls(cidr=str(data["cidr"]), allocations=records, last=data.get("last"))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise NetworkError(f"{source}: corrupt IPAM state ({e})") from None


def allocate_in(state: IpamState, pod_id: str, owner: str | None = None, root: str | None = None) -> IPv4:
    """Give `pod_id` an address in `state` (the one it already has, if any). Mutates state.
    A pod id another state root holds an address for is an error naming that root."""
    held = state.allocations.get(pod_id)
    if held is not None:
        if held.owner not in (None, owner):
            raise NetworkError(f"pod id {pod_id} already holds {held.ip} for state root {held.root or held.owner}")
        return IPv4(held.ip)
    network = ipaddress.IPv4Network(state.cidr)
    last = IPv4(state.last) if state.last else None
    ip = next_free(network, (IPv4(a.ip) for a in state.allocations.values()), last)
    if ip is None:
        raise NetworkError(f"no free pod address left in {state.cidr} "
                           f"({len(state.allocations)} pods hold one)")
    state.allocations[pod_id] = Allocation(str(ip), owner, root)
    state.last = str(ip)
    return ip


def release_in(state: IpamState, pod_id: str, owner: str | None = None) -> IPv4 | None:
    """Free the pod's address if `owner` may (its own record, or one without owner). Mutates state."""
    held = state.allocations.get(pod_id)
    if held is None or held.owner not in (None, owner):
        return None
    del state.allocations[pod_id]
    return IPv4(held.ip)


def dead_in(state: IpamState, live_pod_ids: Iterable[str], owner: str | None = None) -> dict[str, IPv4]:
    """The allocations of `owner` (None: every allocation) whose pod is not live."""
    live = set(live_pod_ids)
    return {p: IPv4(a.ip) for p, a in state.allocations.items()
            if p not in live and (owner is None or a.owner == owner)}


# --- the file ----------------------------------------------------------------------------------

class AddressPool:
    """The node's pod addresses, persisted in `directory`/ipam.json. `owner`: the tag of the
    calling state root (pyrun.netns.owner); None only for tests and tools that own everything."""

    def __init__(self, directory: str | os.PathLike, cidr: str):
        self.directory = Path(directory)
        self.cidr = str(ipaddress.IPv4Network(cidr))
        self.path = self.directory / STATE_FILE

    def allocate(self, pod_id: str, owner: str | None = None, root: str | None = None) -> IPv4:
        """An address for `pod_id` (idempotent: a pod that has one keeps it)."""
        with self._transaction() as state:
            return allocate_in(state, pod_id, owner, root)

    def release(self, pod_id: str, owner: str | None = None) -> IPv4 | None:
        """Free the pod's address; returns it, or None if the pod held none (or another root's)."""
        with self._transaction() as state:
            return release_in(state, pod_id, owner)

    def reclaim(self, live_pod_ids: Iterable[str], owner: str | None = None) -> dict[str, IPv4]:
        """Free the addresses of `owner`'s pods that no longer exist (crash recovery, `pyrun gc`)."""
        with self._transaction() as state:
            dead = dead_in(state, live_pod_ids, owner)
            for p in dead:
                del state.allocations[p]
        return dead

    def adopt(self, records: dict[str, Allocation], owner: str, root: str) -> list[str]:
        """Take over records kept elsewhere (an older pyrun's per-root file) as `owner`'s; a pod or
        an address already recorded here wins. Returns the pod ids adopted."""
        with self._transaction() as state:
            used = {a.ip for a in state.allocations.values()}
            taken = [p for p, a in records.items() if p not in state.allocations and a.ip not in used]
            for p in taken:
                state.allocations[p] = Allocation(records[p].ip, owner, root)
        return taken

    def lookup(self, pod_id: str) -> IPv4 | None:
        return self.allocations().get(pod_id)

    def allocations(self, owner: str | None = None) -> dict[str, IPv4]:
        """pod id -> address, of `owner` (None: of every root)."""
        with self._transaction(write=False) as state:
            return {p: IPv4(a.ip) for p, a in state.allocations.items() if owner is None or a.owner == owner}

    def records(self) -> dict[str, Allocation]:
        with self._transaction(write=False) as state:
            return dict(state.allocations)

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
