"""Changing a running container's resources (the CRI's UpdateContainerResources).

The new limits go to the container's cgroup and its record under the pod's lock, so an update
and a concurrent stop or remove of the same pod do not interleave.
"""
from __future__ import annotations

from dataclasses import replace

from pyrun.errors import InvalidState
from pyrun.runtime.records import ContainerRecord, Resources
from pyrun.runtime.state import StateStore


def update_resources(store: StateStore, cgroups, cid: str, resources) -> ContainerRecord:
    """Apply `resources` (a pyrun.spec ResourceRequirements) to container `cid`'s cgroup (`cgroups`:
    the driver) and record them; returns the record."""
    from pyrun.cgroups import CgroupPath, container_limits
    rec = store.read_container(cid)
    if rec.cgroup is None:
        raise InvalidState(f"container {rec.name} has no cgroup to update")
    with store.pod_lock(rec.pod_id):
        cgroups.apply(CgroupPath.parse(rec.cgroup.path), container_limits(resources, pids_max=None))
        rec = replace(store.read_container(cid),
                      resources=Resources(requests=dict(resources.requests), limits=dict(resources.limits)))
        store.write_container(rec)
    return rec
