"""Resources in a manifest become kernel limits: QoS layout, limits read back, OOM kill, stats."""
from __future__ import annotations

import os

from pyrun.config import Config
from pyrun.cgroups import CgroupPath, open_cgroups


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def test_limits_land_in_the_kubelet_layout(pyrun, write_pod):
    spec = write_pod("limits", [
        {"name": "a", "command": ["sleep", "1000"],
         "resources": {"requests": {"cpu": "250m", "memory": "32Mi"}, "limits": {"cpu": "500m", "memory": "64Mi"}}},
        {"name": "b", "command": ["sleep", "1000"],
         "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "100m", "memory": "16Mi"}}},
    ])
    pyrun("pod", "create", spec)
    doc = pyrun.inspect("limits")
    assert doc["qos"] == "Burstable"
    pod_cg = doc["cgroup"]["path"]
    assert pod_cg.startswith(f"/{pyrun.cgroup_parent}/kubepods/burstable/pod")
    cg = open_cgroups(Config(cgroup_parent=pyrun.cgroup_parent))
    dirs = cg.paths(CgroupPath.parse(pod_cg))
    a = next(c for c in doc["containers"] if c["name"] == "a")
    a_dirs = cg.paths(CgroupPath.parse(a["cgroup"]["path"]))
    if "cpu.max" in os.listdir(a_dirs["cpu"]):  # cgroup v2
        assert _read(f"{a_dirs['cpu']}/cpu.max") == "50000 100000"
        assert _read(f"{a_dirs['memory']}/memory.max") == str(64 << 20)
        assert _read(f"{dirs['memory']}/memory.max") == str(80 << 20)
    else:  # cgroup v1 (this hybrid host)
        assert _read(f"{a_dirs['cpu']}/cpu.cfs_quota_us") == "50000"
        assert _read(f"{a_dirs['cpu']}/cpu.shares") == "256"
        assert _read(f"{a_dirs['memory']}/memory.limit_in_bytes") == str(64 << 20)
        assert _read(f"{dirs['memory']}/memory.limit_in_bytes") == str(80 << 20)  # the sum of the containers'
        assert _read(f"{dirs['cpu']}/cpu.cfs_quota_us") == "60000"
    # every process runs in its own container cgroup, pause in the pod's sandbox leaf
    pids = {int(p) for p in _read(f"{a_dirs['pids']}/cgroup.procs").split()}
    assert a["pid"] in pids
    pause_cg = _read(f"/proc/{doc['pause']['pid']}/cgroup")
    assert f"{pod_cg}/pause" in pause_cg


def test_oom_killed_container_is_reported(pyrun, write_pod):
    spec = write_pod("oom", [{"name": "hog", "command": ["sh", "-c", "x=$(head -c 100000000 /dev/zero | tr '\\0' a)"],
                              "resources": {"limits": {"memory": "24Mi"}}}])
    pyrun("pod", "create", spec)
    c = pyrun.wait_for("oom", "hog", "exited")
    assert (c["state"], c["exit_code"], c["reason"]) == ("exited", 137, "OOMKilled")


def test_best_effort_and_guaranteed_classes(pyrun, write_pod):
    pyrun("pod", "create", write_pod("be", [{"name": "c", "command": ["sleep", "1000"]}]))
    pyrun("pod", "create", write_pod("gu", [{"name": "c", "command": ["sleep", "1000"],
                                             "resources": {"limits": {"cpu": "1", "memory": "32Mi"}}}]))
    be, gu = pyrun.inspect("be"), pyrun.inspect("gu")
    assert be["qos"] == "BestEffort" and "/kubepods/besteffort/pod" in be["cgroup"]["path"]
    assert gu["qos"] == "Guaranteed" and "/kubepods/pod" in gu["cgroup"]["path"]


def test_stats_shows_pods_and_containers(pyrun, write_pod):
    pyrun("pod", "create", write_pod("statty", [{"name": "c", "command": ["sleep", "1000"],
                                                 "resources": {"limits": {"memory": "32Mi"}}}]))
    out = pyrun("stats", "statty").stdout.splitlines()
    assert out[0].split()[:2] == ["NAME", "CPU"]
    assert out[1].startswith("statty (pod)") and out[2].startswith("statty/c")
    assert "32.0MiB" in out[2]


def test_removal_leaves_no_cgroup(pyrun, write_pod):
    pyrun("pod", "create", write_pod("gone", [{"name": "c", "command": ["sleep", "1000"]}]))
    path = pyrun.inspect("gone")["cgroup"]["path"]
    pyrun("pod", "rm", "-f", "gone")
    cg = open_cgroups(Config(cgroup_parent=pyrun.cgroup_parent))
    assert not any(os.path.exists(d) for d in cg.paths(CgroupPath.parse(path)).values())
