"""The CNI result cache, in libcni's layout and format, under the state root.

<root>/cni/results/<network name>-<container id>-<ifname> holds {"kind": "cniCacheV1",
"containerId", "config" (the list's JSON, base64 as Go writes []byte), "ifName",
"networkName", "netns", "cniArgs", "capabilityArgs", "result"} plus pyrun's
"binDirs" and "pod". Unlike libcni, the entry is written *before* ADD (without a
result), so a pyrun killed in the middle of ADD leaves what DEL needs: the exact
config, arguments and plugin dirs. The result is added once ADD succeeds.
"""
from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyrun.netns.cni.protocol import IFNAME, PodRef

KIND = "cniCacheV1"


@dataclass
class CacheEntry:
    config: dict
    pod: PodRef
    netns: str
    bin_dirs: list[str]
    capability_args: dict
    result: dict | None = None
    ifname: str = IFNAME

    @property
    def network_name(self) -> str:
        return self.config["name"]

    def to_json(self) -> dict:
        doc: dict[str, Any] = {
            "kind": KIND, "containerId": self.pod.container_id,
            "config": base64.b64encode(json.dumps(self.config).encode()).decode(),
            "ifName": self.ifname, "networkName": self.network_name, "netns": self.netns,
            "cniArgs": [[k, v] for k, v in (kv.split("=", 1) for kv in self.pod.cni_args().split(";"))],
            "capabilityArgs": self.capability_args, "binDirs": self.bin_dirs,
            "pod": {"namespace": self.pod.namespace, "name": self.pod.name, "uid": self.pod.uid},
        }
        if self.result is not None:
            doc["result"] = self.result
        return doc

    @classmethod
    def from_json(cls, doc: dict) -> "CacheEntry":
        pod = doc.get("pod") or {}
        return cls(config=json.loads(base64.b64decode(doc["config"])),
                   pod=PodRef(doc["containerId"], pod.get("namespace", ""), pod.get("name", ""), pod.get("uid", "")),
                   netns=doc.get("netns", ""), bin_dirs=list(doc.get("binDirs") or []),
                   capability_args=dict(doc.get("capabilityArgs") or {}), result=doc.get("result"),
                   ifname=doc.get("ifName", IFNAME))


def results_dir(root: Path) -> Path:
    return Path(root) / "cni" / "results"


def entry_path(root: Path, network_name: str, container_id: str, ifname: str = IFNAME) -> Path:
    return results_dir(root) / f"{network_name}-{container_id}-{ifname}"


def write(root: Path, entry: CacheEntry) -> Path:
    """Atomically (temp file + rename, fsynced: it must survive a crash of pyrun)."""
    path = entry_path(root, entry.network_name, entry.pod.container_id, entry.ifname)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(entry.to_json(), f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def read(path: Path) -> CacheEntry | None:
    try:
        return CacheEntry.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None


def entries_of(root: Path, container_id: str) -> list[Path]:
    """The cache files of one container (pod sandbox), whatever the network name."""
    d = results_dir(root)
    if not d.is_dir():
        return []
    suffix = f"-{container_id}-"
    return sorted(d / n for n in os.listdir(d) if suffix in n and not n.endswith(".tmp"))


def all_entries(root: Path) -> list[Path]:
    d = results_dir(root)
    if not d.is_dir():
        return []
    return sorted(d / n for n in os.listdir(d) if not n.endswith(".tmp"))
