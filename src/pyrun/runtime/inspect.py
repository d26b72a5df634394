"""`pyrun pod inspect`: one JSON document that shows a pod as the kernel sees it."""
from __future__ import annotations

import os

from pyrun.runtime import resources
from pyrun.runtime.records import PodRecord
from pyrun.runtime.security import summary as security_summary


def _ns_ids(paths: dict) -> dict:
    out = {}
    for kind, path in (paths or {}).items():
        try:
            st = os.stat(path)
            out[kind] = {"path": path, "inode": st.st_ino, "pinned": st.st_dev != os.stat(os.path.dirname(path)).st_dev}
        except OSError:
            out[kind] = {"path": path, "inode": None, "pinned": False}
    return out


def _process_namespaces(pid: int) -> dict:
    """The namespaces of a live process (a process that exits meanwhile just shows fewer)."""
    out = {}
    for kind in ("mnt", "pid", "net", "ipc", "uts"):
        try:
            out[kind] = os.readlink(f"/proc/{pid}/ns/{kind}")
        except OSError:
            continue
    return out


def _live_mounts(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/mountinfo") as f:
            return [" ".join(line.split()[4:5] + line.split(" - ")[1].split()[:1]) for line in f]
    except OSError:
        return []


def inspect_pod(rt, pod: PodRecord) -> dict:
    doc = {"id": pod.id, "name": pod.name, "namespace": pod.namespace, "uid": pod.uid, "state": pod.state,
           "created_at": pod.created_at, "hostname": pod.hostname, "qos": pod.qos, "labels": dict(pod.labels),
           "annotations": dict(pod.annotations), "share_pid": pod.share_pid, "host_network": pod.host_network,
           "host_pid": pod.host_pid, "host_ipc": pod.host_ipc,
           "network": pod.network.to_dict() if pod.network else None, "warnings": list(pod.warnings)}
    pause = pod.pause
    doc["pause"] = dict(pause.to_dict(), alive=pause.alive()) if pause else None
    doc["namespaces"] = _ns_ids(pod.namespaces)
    doc["cgroup"] = resources.describe(rt.cfg, pod.cgroup)
    containers, status = rt.observe(pod)
    doc["status"] = status.to_dict()  # the same STATUS, READY and IP as `pod ls` and the CRI
    doc["containers"] = [_container_doc(rt, c) for c in containers]
    return doc


def _container_doc(rt, c) -> dict:
    config = rt.init_config(c.id)
    status = c.status
    entry = {
        "id": c.id, "name": c.name, "image": c.image_name or c.image,
        "image_id": c.image_id, "state": status.state, "pid": status.pid,
        "exit_code": status.exit_code, "reason": status.reason,
        "error": status.error.to_dict() if status.error else None,
        "started_at": status.started_at, "finished_at": status.finished_at,
        "process": c.process.to_dict(), "log_path": c.log_path,
        "rootfs": config.rootfs.to_dict() if config else None,
        "mounts": [m.to_dict() for m in config.mounts] if config else None,
        "cgroup": resources.describe(rt.cfg, c.cgroup), "resources": c.resources.to_dict(),
        "capabilities": list(config.capabilities) if config else None,
        "security": security_summary(config.security if config else None),
    }
    if config is not None and config.supervision is not None:  # what its monitor looks after, and how it went
        entry.update({"restart_policy": config.supervision.restart_policy,
                      "restart_count": status.restart_count or 0, "last_state": status.last_state,
                      "ready": status.state == "running" and status.ready is not False, "started": status.started,
                      "probes": dict(status.probes or {}), "next_start_at": status.next_start_at,
                      "backoff_seconds": status.backoff_seconds})
    if status.state == "running" and status.pid:
        entry["namespaces"] = _process_namespaces(status.pid)
        entry["live_mounts"] = _live_mounts(status.pid)
    return entry
