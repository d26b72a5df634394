"""`pyrun pod inspect`: one JSON document that shows a pod as the kernel sees it."""
from __future__ import annotations

import os

from pyrun.runtime import resources
from pyrun.runtime.security import summary as security_summary
from pyrun.linux.procs import ProcessRef
from pyrun.runtime.state import read_json_or


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


def inspect_pod(rt, pod: dict) -> dict:
    store = rt.store
    pause = ProcessRef.from_dict(pod.get("pause"))
    doc = {k: pod.get(k) for k in ("id", "name", "namespace", "uid", "state", "created_at", "hostname", "qos",
                                    "labels", "annotations", "share_pid", "host_network", "network", "warnings")}
    doc["pause"] = dict(pause.to_dict(), alive=pause.alive()) if pause else None
    doc["namespaces"] = _ns_ids(pod.get("namespaces"))
    doc["cgroup"] = resources.describe(rt.cfg, pod.get("cgroup"))
    containers, status = rt.observe(pod)
    doc["status"] = status.to_dict()  # the same STATUS, READY and IP as `pod ls` and the CRI
    doc["containers"] = []
    for c in containers:
        cdir = store.container_dir(c["id"])
        config = read_json_or(cdir / "config.json", {})
        status = c["status"]
        entry = {
            "id": c["id"], "name": c["name"], "image": c.get("image_name") or c.get("image"),
            "image_id": c.get("image_id"), "state": status.get("state"), "pid": status.get("pid"),
            "exit_code": status.get("exit_code"), "reason": status.get("reason"), "error": status.get("error"),
            "started_at": status.get("started_at"), "finished_at": status.get("finished_at"),
            "process": c.get("process"), "log_path": c.get("log_path"),
            "rootfs": config.get("rootfs"), "mounts": config.get("mounts"),
            "cgroup": resources.describe(rt.cfg, c.get("cgroup")), "resources": c.get("resources"),
            "capabilities": config.get("capabilities"),
            "security": security_summary(config.get("security") or {}),
        }
        if status.get("state") == "running" and status.get("pid"):
            entry["namespaces"] = _process_namespaces(status["pid"])
            entry["live_mounts"] = _live_mounts(status["pid"])
        doc["containers"].append(entry)
    return doc
