"""The runtime's seam to pyrun.cgroups: a pod's and its containers' cgroups in the kubelet's layout.

Records keep cgroups as plain strings (CgroupPath rendered below each hierarchy's
root): pod["cgroup"] = {"path": ".../pod<uid>", "sandbox": ".../pod<uid>/pause"} and
container["cgroup"] = {"path": ".../pod<uid>/<container-id>"}. The pause process gets
its own leaf, as the kubelet does, because cgroup v2 allows no process in a cgroup
that hands controllers down to children.
"""
from __future__ import annotations

from pyrun.config import Config

SANDBOX_LEAF = "pause"


def _cgroups(cfg: Config):
    from pyrun.cgroups import open_cgroups
    return open_cgroups(cfg)


def _pids_max(cfg: Config) -> int:
    from pyrun.cgroups import DEFAULT_PIDS_MAX
    return int(cfg.extra.get("pids_max") or DEFAULT_PIDS_MAX)


def create_pod_cgroup(cfg: Config, pod: dict, spec) -> dict:
    """Create pod<uid> (with the pod-level limits) and the sandbox's leaf; returns the record."""
    from pyrun.cgroups import CgroupPath, Limits, pod_limits
    from pyrun.cgroups.devices import container_rules
    cg = _cgroups(cfg)
    override = pod.get("cgroup_parent_override")  # the CRI's cgroup_parent: exactly this path, sized by the kubelet
    path = CgroupPath.parse(override) if override else cg.pod_path(pod["qos"], pod["uid"])
    # A CRI caller's cgroup_parent belongs to the kubelet: pyrun only adds (and removes) leaves below it.
    record = {"path": path.cgroupfs, "owned": not override}
    pod["cgroup"] = record  # recorded before it exists: a crash from here on is cleaned by gc
    cg.create(path, None if override else
              pod_limits([c.resources for c in spec.containers], pod["qos"], _pids_max(cfg)))
    sandbox = cg.container_path(path, SANDBOX_LEAF)
    cg.create(sandbox, Limits(devices=container_rules()))  # the pause process needs no device
    record["sandbox"] = sandbox.cgroupfs
    return record


def requested_devices(container) -> list[dict]:
    """The host devices a container asks for, looked up on the host (stat follows symlinks):
    [{"path", "type" ("c"/"b"), "major", "minor", "mode", "uid", "gid", "permissions"}]."""
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
        nodes.append({"path": dev.container_path, "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
                      "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                      "mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
                      "permissions": dev.permissions})
    return nodes


def device_rules(container, nodes: list[dict]):
    """The container's device cgroup rules: all for a privileged one, else runc's defaults plus `nodes`."""
    from pyrun.cgroups.devices import DeviceRule, container_rules
    privileged = bool((container.security_context or {}).get("privileged"))
    return container_rules(privileged, tuple(DeviceRule(n["type"], n["major"], n["minor"], n["permissions"])
                                             for n in nodes))


def create_container_cgroup(cfg: Config, pod: dict, container, cid: str, nodes: list[dict] = ()) -> dict | None:
    """Create the container's cgroup with its limits and device rules (nodes: requested_devices())."""
    from pyrun.cgroups import CgroupPath, container_limits
    if not pod.get("cgroup"):
        return None
    cg = _cgroups(cfg)
    path = cg.container_path(CgroupPath.parse(pod["cgroup"]["path"]), cid)
    cg.create(path, container_limits(container.resources, _pids_max(cfg), device_rules(container, list(nodes))))
    return {"path": path.cgroupfs, "prune": pod["cgroup"].get("owned", True)}


def _leaf(record: dict | None):
    from pyrun.cgroups import CgroupPath
    if not record:
        return None
    return CgroupPath.parse(record.get("sandbox") or record["path"])


def procs_files(cfg: Config, record: dict | None) -> list[str]:
    """cgroup.procs files a new process writes its pid to (the sandbox leaf for a pod)."""
    leaf = _leaf(record)
    return _cgroups(cfg).procs_files(leaf) if leaf else []


def oom_events_file(cfg: Config, record: dict | None) -> str | None:
    leaf = _leaf(record)
    return _cgroups(cfg).oom_events_file(leaf) if leaf else None


def kill_cgroup(cfg: Config, record: dict | None) -> None:
    """Kill every process left in the cgroup (and below)."""
    from pyrun.cgroups import CgroupPath
    if record:
        _cgroups(cfg).kill_all(CgroupPath.parse(record["path"]))


def remove_cgroup(cfg: Config, record: dict | None) -> None:
    """Kill what is left, then remove the cgroup bottom-up (idempotent).

    A pod cgroup that is not pyrun's (the CRI's cgroup_parent) keeps existing: only the
    sandbox leaf goes, and no empty parent level is pruned.
    """
    from pyrun.cgroups import CgroupPath
    if not record:
        return
    if record.get("owned", True):
        _cgroups(cfg).remove(CgroupPath.parse(record["path"]), prune_parents=record.get("prune", True))
    elif record.get("sandbox"):
        _cgroups(cfg).remove(CgroupPath.parse(record["sandbox"]), prune_parents=False)


def describe(cfg: Config, record: dict | None) -> dict | None:
    """Per-controller directories, for `pod inspect`."""
    from pyrun.cgroups import CgroupPath
    if not record:
        return None
    out = dict(record)
    try:
        out["directories"] = _cgroups(cfg).paths(CgroupPath.parse(record["path"]))
    except Exception as e:  # noqa: BLE001 - inspect shows what it can
        out["error"] = str(e)
    return out
