"""Which state root owns a network object (pure).

Several state roots (the CRI server and the CLI, two tests, a lab) can attach pods
to the same bridge in one network namespace. Everything a pod gets on the node
carries its owner, so that `pod rm` and `pyrun gc` of one root never touch
another root's pods:

    veth      ifalias "pyrun owner=<tag> pod=<pod id>"     (ip link set dev vethX alias ...)
    address   the IPAM record {"ip": ..., "owner": <tag>, "root": <path>}
    nft rule  comment "pod <pod id> owner <tag>"  (and the owner in hostports.json)

The tag is 12 hex characters of sha256(absolute state root path): short, stable for
a root, and different for different roots. Objects without an owner (made by an
older pyrun) belong to whoever knows their pod id: a root's own records.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Iterable, Mapping

ALIAS_PREFIX = "pyrun "


def owner_tag(root: str | os.PathLike) -> str:
    """12 hex characters of sha256 of the absolute state root path."""
    return hashlib.sha256(os.path.abspath(os.fspath(root)).encode()).hexdigest()[:12]


def host_ifname(pod_id: str) -> str:
    """The host end's name: 'veth' + 8 hex characters of sha256(pod id) (<= 15, IFNAMSIZ)."""
    return "veth" + hashlib.sha256(pod_id.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Owner:
    tag: str
    root: str

    @classmethod
    def of(cls, config) -> "Owner":
        root = os.path.abspath(os.fspath(config.root))
        return cls(tag=owner_tag(root), root=root)

    def veth_alias(self, pod_id: str) -> str:
        return f"{ALIAS_PREFIX}owner={self.tag} pod={pod_id}"

    def owns(self, tag: str | None) -> bool:
        """An object is mine when it carries my tag, or no tag at all (made by an older pyrun)."""
        return tag is None or tag == self.tag


def parse_veth_alias(alias: str | None) -> tuple[str, str] | None:
    """(owner tag, pod id) from a veth's ifalias, or None if pyrun did not write it."""
    if not alias or not alias.startswith(ALIAS_PREFIX + "owner="):
        return None
    owner, sep, pod_id = alias[len(ALIAS_PREFIX + "owner="):].partition(" pod=")
    if not sep or not owner or not pod_id or " " in owner:
        return None
    return owner, pod_id


def veths_to_collect(ports: Mapping[str, str | None], owner: Owner, live: Iterable[str],
                     my_pods: Iterable[str]) -> list[str]:
    """The bridge ports `gc` of `owner` may delete: veths of pods that are not live and that are
    provably this root's: tagged with its owner, or untagged but named after a pod this root
    holds an address for. Everything else (another root's, a stranger's) is left alone.

    ports: bridge port name -> its ifalias (None when unset)."""
    live = set(live)
    mine_untagged = {host_ifname(p): p for p in my_pods}
    out = []
    for name, alias in sorted(ports.items()):
        parsed = parse_veth_alias(alias)
        if parsed is not None:
            tag, pod_id = parsed
            if tag == owner.tag and pod_id not in live:
                out.append(name)
        elif name in mine_untagged and mine_untagged[name] not in live:
            out.append(name)
    return out
