"""What the Prometheus endpoint exports, read at scrape time: each pod and container and one cgroup Sample.

The front end (pyrun.metrics) gets them through the facade (Runtime.metrics_targets) and turns them
into cAdvisor's series; it never reads the state store or cgroups itself. A scrape reads files only:
the pod and container records, then the cgroup files of each pod and container (Cgroups.usage,
.spec, .process_count). No process is started, and the cgroup layout is detected once per
MetricsSource.

A pod is one target (container "" and image "", as cAdvisor shows a pod's cgroup), each of its
containers another; `cgroup` is the cgroup path (cAdvisor's `id` label). The pause process's leaf
is counted in its pod, not exported on its own. A pod's `processes` is the sum over its leaves
(on cgroup v1 and v2 alike a pod cgroup holds no process itself).

Cost: a scrape reads each cgroup's usage files (about 7 on v1, 5 on v2) every time, but what is
set (cpu quota, period, shares, memory limit) only every SPEC_TTL seconds per cgroup, as cAdvisor
reads a container's spec when it appears rather than at every scrape: a limit changed by
UpdateContainerResources shows within SPEC_TTL. A container's name, image and cgroup never change
and its start time only once, so its records are read until it has started, then remembered
(forgotten with the container); pod records are read at every scrape.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from pyrun.runtime.state import StateStore
from pyrun.runtime.records import PodRecord

SPEC_TTL = 10.0  # seconds a cgroup's limits are reused before they are read again


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

    def __init__(self, store: StateStore, cgroups: Callable[[], Any], clock: Callable[[], float] = time.monotonic):
        """store: the state root's; cgroups: returns the cgroups driver (the Runtime's, opened once)."""
        self._store = store
        self._cgroups = cgroups
        self._clock = clock
        self._lock = threading.Lock()
        self._specs: dict[str, tuple[float, dict]] = {}  # cgroup path -> (read at, spec values)
        self._containers: dict[str, tuple[str, str, str | None, int | None]] = {}  # id -> name, image, cgroup, start

    def targets(self) -> list[Target]:
        """Every pod with a cgroup, then its containers whose cgroup still exists."""
        out: list[Target] = []
        for pod in self._store.pods():
            if pod.cgroup is not None:
                out += self._pod_targets(pod)
        self._forget_specs({t.cgroup for t in out})
        return out

    def _container(self, cid: str) -> tuple[str, str, str | None, int | None] | None:
        """(name, image, cgroup path, started_at) of a container; None if it is gone."""
        from pyrun.errors import NotFound
        with self._lock:
            known = self._containers.get(cid)
        if known is not None:
            return known
        try:
            rec = self._store.read_container(cid)
        except (NotFound, ValueError):
            return None  # removed meanwhile
        info = (rec.name, rec.image_name or rec.image or "", rec.cgroup.path if rec.cgroup else None,
                rec.status.started_at)
        if info[3] is not None:
            with self._lock:
                self._containers[cid] = info
        return info

    def _read(self, what: str, path: str | None):
        """cgroups.<what>(path) (usage, spec or process_count); None if gone or unreadable."""
        from pyrun.cgroups import CgroupPath
        from pyrun.errors import CgroupError
        if not path:
            return None
        try:
            return getattr(self._cgroups(), what)(CgroupPath.parse(path))
        except (CgroupError, OSError):
            return None  # removed while we read it, or unreadable: not exported this time

    def _spec(self, path: str) -> dict:
        now = self._clock()
        with self._lock:
            cached = self._specs.get(path)
        if cached is not None and now - cached[0] < SPEC_TTL:
            return cached[1]
        spec = self._read("spec", path) or {}
        with self._lock:
            self._specs[path] = (now, spec)
        return spec

    def _forget_specs(self, seen: set[str]) -> None:
        with self._lock:
            for path in [p for p in self._specs if p not in seen]:
                del self._specs[path]
            for cid in [c for c, info in self._containers.items() if info[2] not in seen]:
                del self._containers[cid]

    def _sample(self, path: str | None, leaf: bool):
        usage = self._read("usage", path)
        if usage is None:
            return None
        processes = self._read("process_count", path) if leaf else None
        return replace(usage, processes=processes, **self._spec(path))

    def _pod_targets(self, pod: PodRecord) -> list[Target]:
        record = pod.cgroup
        if record is None:
            return []
        pod_sample = self._sample(record.path, leaf=False)
        if pod_sample is None:
            return []
        namespace = pod.namespace
        containers: list[Target] = []
        for entry in pod.containers:
            info = self._container(entry.id)
            sample = self._sample(info[2], leaf=True) if info is not None else None
            if sample is not None:
                name, image, cgroup, started_at = info
                containers.append(Target(namespace, pod.name, name, image, cgroup, started_at, sample))
        pause = self._read("process_count", record.sandbox) or 0
        processes = pause + sum(t.sample.processes or 0 for t in containers)
        pod_target = Target(namespace, pod.name, "", "", record.path, pod.created_at,
                            replace(pod_sample, processes=processes))
        return [pod_target] + containers
