"""What the Prometheus endpoint exports, read at scrape time: each pod and container and one cgroup Sample.

The front end (pyrun.metrics) turns these into cAdvisor's series; it never reads the state store
or cgroups itself. A scrape reads files only: the pod and container records, then the cgroup files
of each pod and container (pyrun.cgroups.Cgroups.sample). No process is started, and the cgroup
layout is detected once per MetricsSource.

A pod is one target (container "" and image "", as cAdvisor shows a pod's cgroup), each of its
containers another; `cgroup` is the cgroup path (cAdvisor's `id` label). The pause process's leaf
is counted in its pod, not exported on its own. A pod's `processes` is the sum over its leaves
(on cgroup v1 and v2 alike a pod cgroup holds no process itself).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any

from pyrun.config import Config


@dataclass(frozen=True)
class Target:
    """One pod or container and its cgroup sample (a pyrun.cgroups.Sample)."""

    namespace: str
    pod: str
    container: str
    image: str
    cgroup: str
    started_at_ns: int | None
    sample: Any


class MetricsSource:
    """Reads the pods and containers of one state root at every call of targets()."""

    def __init__(self, cfg: Config):
        from pyrun.runtime.state import StateStore
        self.cfg = cfg
        self._store = StateStore(cfg.root)
        self._cg: Any = None
        self._lock = threading.Lock()

    def _cgroups(self):
        with self._lock:
            if self._cg is None:
                from pyrun.cgroups import open_cgroups
                self._cg = open_cgroups(self.cfg)
            return self._cg

    def targets(self) -> list[Target]:
        """Every pod with a cgroup, then its containers whose cgroup still exists."""
        out: list[Target] = []
        for pod in self._store.pods():
            if pod.get("cgroup"):
                out += self._pod_targets(pod)
        return out

    def _sample(self, path: str | None):
        from pyrun.cgroups import CgroupPath
        from pyrun.errors import CgroupError
        if not path:
            return None
        try:
            return self._cgroups().sample(CgroupPath.parse(path))
        except (CgroupError, OSError):
            return None  # removed while we read it, or unreadable: not exported this time

    def _pod_targets(self, pod: dict) -> list[Target]:
        from pyrun.errors import NotFound
        record = pod["cgroup"]
        pod_sample = self._sample(record.get("path"))
        if pod_sample is None:
            return []
        containers: list[Target] = []
        for entry in pod.get("containers", []):
            try:
                rec = self._store.read_container(entry["id"])
            except (NotFound, ValueError):
                continue  # removed meanwhile
            cgroup = (rec.get("cgroup") or {}).get("path")
            sample = self._sample(cgroup)
            if sample is None:
                continue
            containers.append(Target(pod.get("namespace", "default"), pod["name"], rec["name"],
                                     rec.get("image_name") or rec.get("image") or "", cgroup,
                                     (rec.get("status") or {}).get("started_at"), sample))
        sandbox = self._sample(record.get("sandbox"))
        leaves = [t.sample for t in containers] + ([sandbox] if sandbox is not None else [])
        processes = sum(s.processes or 0 for s in leaves)
        pod_target = Target(pod.get("namespace", "default"), pod["name"], "", "", record["path"],
                            pod.get("created_at"), replace(pod_sample, processes=processes))
        return [pod_target] + containers
