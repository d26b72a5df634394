"""A standalone kubelet (no control plane) runs static pods on pyrun.

One node for the module: a throwaway network + mount namespace with `pyrun cri serve` and the
kubelet 1.20.2 (built from Debian's source package) pointed at it. The manifests go in the
kubelet's --pod-manifest-path; pod status comes from the kubelet's read-only port, logs from
/var/log/pods as the node sees it. The tests run in file order; the last one removes every
manifest and checks nothing is left.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from _kube_nodes import DEMO_IMAGE, PyrunNode, give_address, kube_workdir, owned, start_node, wait_until

NODE_IP = "10.99.1.1"


# What an unpatched kubelet sets on the whole host (setupKernelTunables); tests/kube/build.sh patches it to warn.
HOST_SYSCTLS = ("vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
                "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes")


def host_sysctls() -> dict[str, str]:
    return {k: Path("/proc/sys", k).read_text().strip() for k in HOST_SYSCTLS}


@pytest.fixture(scope="module")
def node(kube_bin, demo_layout):
    before = host_sysctls()
    with kube_workdir() as wd, owned(PyrunNode("node1", wd, kube_bin, "10.89.1.0/24", NODE_IP)) as n:
        give_address(n, NODE_IP)
        start_node(n, demo_layout)
        n.sysctls_before = before
        yield n


def test_the_kubelet_left_host_kernel_settings_alone(node):
    assert host_sysctls() == node.sysctls_before


def static_pod(name: str, containers: list[dict], **spec) -> dict:
    for c in containers:
        c.setdefault("image", DEMO_IMAGE)
        c.setdefault("imagePullPolicy", "Never")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": containers, "terminationGracePeriodSeconds": 2, **spec}}


def container_status(pod: dict | None, name: str) -> dict:
    if not pod:
        return {}
    return next((c for c in pod["status"].get("containerStatuses", []) if c["name"] == name), {})


def condition(pod: dict, kind: str) -> str | None:
    return next((c["status"] for c in pod["status"].get("conditions", []) if c["type"] == kind), None)


# The first run is healthy for 4 s, then removes /tmp/healthy: the exec liveness probe fails and the
# kubelet restarts the container; the second run (the count lives in an emptyDir) stays healthy.
WEB_SCRIPT = ("n=$(cat /data/starts 2>/dev/null || echo 0); n=$((n+1)); echo $n > /data/starts; "
              "echo \"start $n\"; touch /tmp/healthy; "
              "if [ $n = 1 ]; then sleep 4; echo 'unhealthy now'; rm /tmp/healthy; fi; exec sleep 100000")


def test_burstable_pod_with_probes_restarts_on_liveness_failure(node):
    probe = {"exec": {"command": ["cat", "/tmp/healthy"]}, "periodSeconds": 1, "failureThreshold": 1}
    node.add_static_pod(static_pod("web", [{
        "name": "web", "command": ["sh", "-c", WEB_SCRIPT],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        "livenessProbe": probe, "readinessProbe": {**probe, "failureThreshold": 1}}],
        volumes=[{"name": "data", "emptyDir": {}}]))

    def restarted_and_ready():
        pod = node.kubelet_pod("web")
        c = container_status(pod, "web")
        return pod if c.get("restartCount", 0) >= 1 and c.get("ready") and "running" in c.get("state", {}) else None
    pod = wait_until("web restarted by its liveness probe and Ready again", restarted_and_ready, 300, interval=1,
                     detail=lambda: str(node.kubelet_pod("web")) + "\n" + node.logs())
    assert pod["status"]["qosClass"] == "Burstable"
    assert condition(pod, "Ready") == "True"
    c = container_status(pod, "web")
    assert c["restartCount"] == 1, c
    assert "terminated" in c["lastState"], c

    # the kubelet's log layout: /var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log, CRI format
    uid = pod["metadata"]["uid"]
    logdir = node.host_path(f"/var/log/pods/default_web-node1_{uid}/web")
    first, second = (logdir / "0.log").read_text(), (logdir / "1.log").read_text()
    assert " stdout F start 1" in first and " stdout F unhealthy now" in first, first
    assert " stdout F start 2" in second, second
    # the cgroup the kubelet asked for: <cgroup-root>/kubepods/burstable/pod<uid>
    assert (node.host_path("/sys/fs/cgroup/memory") / node.cgroup_parent / "kubepods" / "burstable"
            / f"pod{uid}").is_dir()


def test_restart_policy_never_keeps_exit_code_3(node):
    node.add_static_pod(static_pod("exit3", [{"name": "main", "command": ["sh", "-c", "echo bye; exit 3"]}],
                                   restartPolicy="Never"))
    pod = wait_until("exit3 Failed", lambda: (p := node.kubelet_pod("exit3")) and p["status"].get("phase") == "Failed"
                     and p, 300, interval=1, detail=lambda: str(node.kubelet_pod("exit3")) + "\n" + node.logs())
    c = container_status(pod, "main")
    assert c["state"]["terminated"]["exitCode"] == 3, c
    assert c["restartCount"] == 0


def test_oom_killed_container_is_reported(node):
    node.add_static_pod(static_pod("oom", [{
        "name": "hog", "command": ["sh", "-c", "tail /dev/zero"],
        "resources": {"requests": {"memory": "24Mi"}, "limits": {"memory": "24Mi"}}}], restartPolicy="Never"))

    def terminated():
        c = container_status(node.kubelet_pod("oom"), "hog")
        return c.get("state", {}).get("terminated")
    t = wait_until("the hog terminated", terminated, 300, interval=1,
                   detail=lambda: str(node.kubelet_pod("oom")) + "\n" + node.logs())
    assert t["reason"] == "OOMKilled", t
    assert t["exitCode"] == 137, t


def test_host_port_reaches_the_container(node):
    node.add_static_pod(static_pod("hostport", [{
        "name": "srv", "command": ["sh", "-c", "while true; do echo hostport-ok | nc -l -p 8080; done"],
        "ports": [{"containerPort": 8080, "hostPort": 18080, "protocol": "TCP"}]}]))
    wait_until("hostport running", lambda: "running" in container_status(node.kubelet_pod("hostport"), "srv")
               .get("state", {}), 300, interval=1, detail=lambda: str(node.kubelet_pod("hostport")))
    reply = wait_until("an answer on the node's port 18080", lambda: node.tcp_read(NODE_IP, 18080, 3).strip(), 60,
                       interval=1)
    assert reply == "hostport-ok"


def test_removing_the_manifests_leaves_nothing(node):
    for name in ("web", "exit3", "oom", "hostport"):
        node.remove_static_pod(name)
    wait_until("the kubelet to forget its pods", lambda: not node.kubelet_pods(), 120, interval=1,
               detail=lambda: str([p["metadata"]["name"] for p in node.kubelet_pods()]))
    wait_until("nothing left of the pods", lambda: not node.leftovers(), 120, interval=1,
               detail=lambda: "\n".join(node.leftovers()))
    assert not list(node.host_path("/var/log/pods").iterdir())


def test_no_pod_cgroups_left_in_the_hybrid_unified_hierarchy(node):
    """kubelet 1.20 leaves a hybrid host's v2 tree alone: pyrun made the pod cgroups there (for hugetlb)
    and removes them with the pods."""
    assert not node.unified_pod_cgroups()
