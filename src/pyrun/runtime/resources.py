"""The runtime's seam to pyrun.cgroups: a pod's and its containers' cgroups in the kubelet's layout.

Records keep cgroups as plain strings (CgroupPath rendered below each hierarchy's
root): PodRecord.cgroup = PodCgroup(path=".../pod<uid>", sandbox=".../pod<uid>/pause") and
ContainerRecord.cgroup = ContainerCgroup(path=".../pod<uid>/<container-id>"). The pause process gets
its own leaf, as the kubelet does, because cgroup v2 allows no process in a cgroup
that hands controllers down to children.
"""
from __future__ import annotations

from pyrun.config import Config
from pyrun.runtime.records import ContainerCgroup, DeviceNode, PodCgroup, PodRecord

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a CLI command's start-up)
if TYPE_CHECKING:
    from typing import Any

SANDBOX_LEAF = "pause"


_drivers: dict[tuple[str, str], Any] = {}  # (cgroup root, parent) -> driver


def _cgroups(cfg: Config):
    """The cgroups driver of cfg, the host's layout detected once per process: it does not change while
    pyrun runs, and /proc/self/mountinfo, which the detection parses, grows with every pod's pinned
    namespaces (a create used to parse it three times)."""
    key = (str(cfg.cgroup_root), cfg.cgroup_parent)
    driver = _drivers.get(key)
    if driver is None:
        from pyrun.cgroups import open_cgroups
        driver = _drivers[key] = open_cgroups(cfg)
    return driver


def _pids_max(cfg: Config) -> int:
    from pyrun.cgroups import DEFAULT_PIDS_MAX
    return int(cfg.pids_max or DEFAULT_PIDS_MAX)


def plan_pod_cgroup(cfg: Config, pod: PodRecord) -> PodCgroup:
    """Where the pod's cgroup and its sandbox leaf go (nothing is made yet), so the record can name
    them before they exist: a crash from then on is cleaned by gc."""
    from pyrun.cgroups import CgroupPath
    cg = _cgroups(cfg)
    override = pod.cgroup_parent_override  # the CRI's cgroup_parent: exactly this path, sized by the kubelet
    path = CgroupPath.parse(override) if override else cg.pod_path(pod.qos, pod.uid)
    # A CRI caller's cgroup_parent belongs to the kubelet: pyrun only adds (and removes) leaves below it,
    # and the levels it has to make where the kubelet does not manage cgroups.
    return PodCgroup(path=path.cgroupfs, owned=not override, sandbox=cg.container_path(path, SANDBOX_LEAF).cgroupfs,
                     made_in=cg.unmanaged_hierarchies(path) if override else ())


def create_pod_cgroup(cfg: Config, record: PodCgroup, qos: str, spec) -> PodCgroup:
    """Create pod<uid> (with the pod-level limits, unless it is the CRI's) and the sandbox's leaf."""
    from pyrun.cgroups import CgroupPath, Limits, pod_limits
    from pyrun.cgroups.devices import container_rules
    cg = _cgroups(cfg)
    cg.create(CgroupPath.parse(record.path), None if not record.owned else
              pod_limits([c.resources for c in spec.containers], qos, _pids_max(cfg)))
    cg.create(CgroupPath.parse(record.sandbox), Limits(devices=container_rules()))  # pause needs no device
    return record


def requested_devices(container) -> list[DeviceNode]:
    """The host devices a container asks for, looked up on the host (stat follows symlinks)."""
    import os
    import stat
    from pyrun.errors import SpecError
    nodes = []
    for i, dev in enumerate(getattr(container, "devices", ())):
        field = f"{dev.field or f'devices[{i}]'}.host_path"
        try:
            st = os.stat(dev.host_path)
        except OSError as e:
            raise SpecError([(field, f"{dev.host_path}: {e.strerror} (a device asked for that this host lacks)")]) from None
        if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            raise SpecError([(field, f"{dev.host_path} is not a character or block device")])
        nodes.append(DeviceNode(path=dev.container_path, type="c" if stat.S_ISCHR(st.st_mode) else "b",
                                major=os.major(st.st_rdev), minor=os.minor(st.st_rdev),
                                mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid,
                                permissions=dev.permissions))
    return nodes


def device_rules(container, nodes: list[DeviceNode]):
    """The container's device cgroup rules: all for a privileged one, else runc's defaults plus `nodes`."""
    from pyrun.cgroups.devices import DeviceRule, container_rules
    privileged = bool((container.security_context or {}).get("privileged"))
    return container_rules(privileged, tuple(DeviceRule(n.type, n.major, n.minor, n.permissions) for n in nodes))


def create_container_cgroup(cfg: Config, pod: PodRecord, container, cid: str,
                            nodes: list[DeviceNode] = ()) -> ContainerCgroup | None:
    """Create the container's cgroup with its limits and device rules (nodes: requested_devices())."""
    from pyrun.cgroups import CgroupPath, container_limits
    if pod.cgroup is None:
        return None
    cg = _cgroups(cfg)
    path = cg.container_path(CgroupPath.parse(pod.cgroup.path), cid)
    cg.create(path, container_limits(container.resources, _pids_max(cfg), device_rules(container, list(nodes))))
    return ContainerCgroup(path=path.cgroupfs, prune=pod.cgroup.owned)


CgroupRecord = PodCgroup | ContainerCgroup


def _leaf(record: CgroupRecord | None):
    """Where a new process goes: the sandbox leaf for a pod, the cgroup itself for a container."""
    from pyrun.cgroups import CgroupPath
    if record is None:
        return None
    return CgroupPath.parse(getattr(record, "sandbox", None) or record.path)


def procs_files(cfg: Config, record: CgroupRecord | None) -> list[str]:
    """cgroup.procs files a new process writes its pid to (the sandbox leaf for a pod)."""
    leaf = _leaf(record)
    return _cgroups(cfg).procs_files(leaf) if leaf else []


def oom_events_file(cfg: Config, record: CgroupRecord | None) -> str | None:
    leaf = _leaf(record)
    return _cgroups(cfg).oom_events_file(leaf) if leaf else None


def kill_cgroup(cfg: Config, record: CgroupRecord | None) -> None:
    """Kill every process left in the cgroup (and below)."""
    from pyrun.cgroups import CgroupPath
    if record is not None:
        _cgroups(cfg).kill_all(CgroupPath.parse(record.path))


def remove_cgroup(cfg: Config, record: CgroupRecord | None) -> None:
    """Kill what is left, then remove the cgroup bottom-up (idempotent).

    A pod cgroup that is not pyrun's (the CRI's cgroup_parent) keeps existing: only the
    sandbox leaf goes, and no empty parent level is pruned.
    """
    from pyrun.cgroups import CgroupPath
    if record is None:
        return
    if isinstance(record, ContainerCgroup):
        _cgroups(cfg).remove(CgroupPath.parse(record.path), prune_parents=record.prune)
    elif record.owned:
        _cgroups(cfg).remove(CgroupPath.parse(record.path))
    elif record.sandbox:
        _cgroups(cfg).remove(CgroupPath.parse(record.sandbox), prune_parents=False)
        if record.made_in:
            _cgroups(cfg).remove_made(CgroupPath.parse(record.path), record.made_in)


def describe(cfg: Config, record: CgroupRecord | None) -> dict | None:
    """The record and its per-controller directories, for `pod inspect`."""
    from pyrun.cgroups import CgroupPath
    if record is None:
        return None
    out = record.to_dict()
    try:
        out["directories"] = _cgroups(cfg).paths(CgroupPath.parse(record.path))
    except Exception as e:  # noqa: BLE001 - inspect shows what it can
        out["error"] = str(e)
    return out
