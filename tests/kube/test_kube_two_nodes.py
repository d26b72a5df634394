"""Two nodes, one cluster: where a user outgrows one machine.

Two throwaway node namespaces joined by a veth (10.99.3.1 and 10.99.3.2), each with its own
`pyrun cri serve` (own state root, data root and pod CIDR) and kubelet; node1 also runs the
control plane. Each node routes the other's pod CIDR to it. A Deployment with one pod per node
(required anti-affinity), and the pod on each node talks to the pod on the other.
"""
from __future__ import annotations

import contextlib
import ipaddress

import pytest

from _kube_nodes import DEMO_IMAGE, ControlPlane, PyrunNode, connect, kube_workdir, owned, start_node, wait_until

NODES = {"node1": ("10.99.3.1", "10.89.31.0/24"), "node2": ("10.99.3.2", "10.89.32.0/24")}


@pytest.fixture(scope="module")
def cluster(kube_bin, demo_layout):
    (ip1, cidr1), (ip2, cidr2) = NODES["node1"], NODES["node2"]
    with kube_workdir() as wd, contextlib.ExitStack() as stack:
        n1 = stack.enter_context(owned(PyrunNode("node1", wd, kube_bin, cidr1, ip1)))
        n2 = stack.enter_context(owned(PyrunNode("node2", wd, kube_bin, cidr2, ip2)))
        connect(n1, n2, ip1, ip2)
        n1.run("ip", "route", "add", cidr2, "via", ip2)
        n2.run("ip", "route", "add", cidr1, "via", ip1)
        cp = ControlPlane(n1)
        cp.start()
        start_node(n1, demo_layout, cp.kubeconfig)
        start_node(n2, demo_layout, cp.kubeconfig)
        stack.callback(cp.delete_all)  # runs first: pods go while both kubelets still run
        cp.wait_nodes_ready(["node1", "node2"])
        yield cp, n1, n2


SERVER = "while true; do echo \"hello from $(hostname)\" | nc -l -p 8080; done"


def test_deployment_spreads_over_both_nodes_and_pods_talk_across(cluster):
    cp, n1, n2 = cluster
    cp.apply({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "spread"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "spread"}},
                 "template": {"metadata": {"labels": {"app": "spread"}}, "spec": {
                     "terminationGracePeriodSeconds": 2,
                     "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                         "labelSelector": {"matchLabels": {"app": "spread"}},
                         "topologyKey": "kubernetes.io/hostname"}]}},
                     "containers": [{"name": "srv", "image": DEMO_IMAGE, "imagePullPolicy": "IfNotPresent",
                                     "command": ["sh", "-c", SERVER]}]}}}})
    cp.kubectl("rollout", "status", "deployment/spread", "--timeout=300s", timeout=330)
    pods = [p for p in cp.get("pods", "-l", "app=spread")["items"] if not p["metadata"].get("deletionTimestamp")]
    by_node = {p["spec"]["nodeName"]: p for p in pods}
    assert sorted(by_node) == ["node1", "node2"], [(p["metadata"]["name"], p["spec"].get("nodeName")) for p in pods]
    # each pod's address is from its own node's pod CIDR
    for name, p in by_node.items():
        assert ipaddress.ip_address(p["status"]["podIP"]) in ipaddress.ip_network(NODES[name][1]), p["status"]
    # pod to pod, both ways, across the nodes
    for src, dst in (("node1", "node2"), ("node2", "node1")):
        target = by_node[dst]
        reply = wait_until(f"{src}'s pod reaching {dst}'s pod", lambda: cp.kubectl(
            "exec", by_node[src]["metadata"]["name"], "--", "nc", "-w", "3", target["status"]["podIP"], "8080",
            check=False).stdout.strip(), 60, interval=1)
        assert reply == f"hello from {target['metadata']['name']}"
    cp.kubectl("delete", "deployment", "spread")


def test_deleting_everything_leaves_nothing_on_either_node(cluster):
    cp, n1, n2 = cluster
    cp.delete_all()
    for n in (n1, n2):
        wait_until(f"nothing left on {n.name}", lambda: not n.leftovers(), 150, interval=1,
                   detail=lambda: "\n".join(n.leftovers()))
