"""Pod networking against the real kernel, inside a throwaway node network namespace.

Every test body runs in a forked child with its own network and mount namespace
(see _net_helpers), and each test checks that the host namespace shows no new
veth, nft table or named netns afterwards.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)"),
]

from pyrun.config import Config  # noqa: E402
from pyrun.netns.owner import owner_tag  # noqa: E402
from pyrun.netns.pod import node_records_dir  # noqa: E402

from _net_helpers import (  # noqa: E402
    host_snapshot, in_netns, make_pod_netns, ping, run_in_node_netns, tcp_get, tcp_server,
)


@pytest.fixture(autouse=True)
def host_untouched():
    before = host_snapshot()
    yield
    assert host_snapshot() == before, "the host network namespace changed"


def _links(kind: str | None = None) -> list[str]:
    cmd = ["ip", "-o", "link", "show"] + (["type", kind] if kind else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split(": ")[1].split("@")[0] for line in out.splitlines()]


def _nft_tables() -> str:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout


def test_pods_talk_to_each_other_the_node_and_via_hostport(tmp_path: Path):
    def body():
        from pyrun.netns.pod import attach_pod, detach_pod
        cfg = Config(root=tmp_path / "root")
        a_ns = make_pod_netns(tmp_path, "a")
        b_ns = make_pod_netns(tmp_path, "b")
        a = attach_pod(cfg, "pod-a", a_ns, hostname="a")
        b = attach_pod(cfg, "pod-b", b_ns, hostname="b",
                       ports=[{"containerPort": 80, "hostPort": 8080, "protocol": "TCP"},
                              {"containerPort": 9090}])
        assert a.ip != b.ip and a.gateway == b.gateway == "10.88.0.1"
        assert a.host_ifname != b.host_ifname and len(a.host_ifname) <= 15
        assert set(_links("veth")) == {a.host_ifname, b.host_ifname}

        # ping: pod -> pod, pod -> gateway, node -> pod
        assert ping(b.ip, a_ns) and ping(a.ip, b_ns)
        assert ping("10.88.0.1", a_ns)
        assert ping(a.ip) and ping(b.ip)

        with tcp_server(b_ns, 80, "hello from b"):
            # pod -> pod TCP, the client address is kept
            assert in_netns(a_ns, lambda: tcp_get(b.ip, 80)) == f"hello from b from {a.ip}"
            # node -> pod
            assert tcp_get(b.ip, 80) == "hello from b from 10.88.0.1"
            # hostPort from the node's loopback and from the bridge address
            assert tcp_get("127.0.0.1", 8080).startswith("hello from b")
            assert tcp_get("10.88.0.1", 8080).startswith("hello from b")
            # hostPort from another pod via the gateway address: masqueraded to the gateway
            assert in_netns(a_ns, lambda: tcp_get("10.88.0.1", 8080)) == "hello from b from 10.88.0.1"
            # a port without hostPort is not mapped
            with pytest.raises(OSError):
                tcp_get("127.0.0.1", 9090, timeout=1)

        detach_pod(cfg, "pod-a", a_ns)
        detach_pod(cfg, "pod-b", b_ns)
        detach_pod(cfg, "pod-b", b_ns)  # idempotent
        assert _links("veth") == []
        assert "pyrun" not in _nft_tables()
        assert _links("bridge") == [] and not node_records_dir(cfg).exists()  # nothing attached: all gone
        return True

    assert run_in_node_netns(body)


def test_pod_side_looks_like_a_kubernetes_pod(tmp_path: Path):
    def body():
        from pyrun.netns.dns import render_hosts, render_resolv_conf
        from pyrun.netns.pod import attach_pod, detach_pod
        from pyrun.netns.settings import NetworkSettings
        cfg = Config(root=tmp_path / "root", network={"mtu": 1400, "cidr": "10.77.0.0/24"})
        ns = make_pod_netns(tmp_path, "p")
        att = attach_pod(cfg, "pod-p", ns, hostname="web")
        assert NetworkSettings.from_config(cfg).gateway_cidr == "10.77.0.1/24"
        assert (att.ip, att.prefix_len, att.gateway) == ("10.77.0.2", 24, "10.77.0.1")
        out = subprocess.run(["nsenter", f"--net={ns}", "ip", "-o", "addr", "show", "dev", "eth0"],
                             capture_output=True, text=True, check=True).stdout
        assert f"inet {att.ip}/24" in out
        routes = subprocess.run(["nsenter", f"--net={ns}", "ip", "route"],
                                capture_output=True, text=True, check=True).stdout
        assert "default via 10.77.0.1 dev eth0" in routes
        def mtu(cmd):  # /sys/class/net shows the host's namespace here; ask netlink instead
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            return out.split(" mtu ")[1].split()[0]
        assert mtu(["nsenter", f"--net={ns}", "ip", "-o", "link", "show", "eth0"]) == "1400"
        assert mtu(["ip", "-o", "link", "show", "pyrun0"]) == "1400"
        assert mtu(["ip", "-o", "link", "show", att.host_ifname]) == "1400"
        assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"  # in the node netns only
        hosts = render_hosts("web", [att.ip], host_aliases=[{"ip": "10.1.2.3", "hostnames": ["db"]}])
        assert f"{att.ip}\tweb\n" in hosts and "10.1.2.3\tdb\n" in hosts
        resolv = render_resolv_conf("Default", host_resolv_conf="nameserver 127.0.0.53\nnameserver 10.0.0.2\n")
        assert resolv == "nameserver 10.0.0.2\n"
        detach_pod(cfg, "pod-p", None)
        return True

    assert run_in_node_netns(body)


def test_attach_failures_leave_nothing_behind(tmp_path: Path):
    def body():
        from pyrun.errors import NetworkError
        from pyrun.netns.pod import attach_pod, detach_pod
        cfg = Config(root=tmp_path / "root")
        with pytest.raises(NetworkError, match="missing"):
            attach_pod(cfg, "pod-x", str(tmp_path / "missing"))
        assert _links("veth") == []
        first = make_pod_netns(tmp_path, "first")
        second = make_pod_netns(tmp_path, "second")
        attach_pod(cfg, "pod-1", first, ports=[{"containerPort": 80, "hostPort": 8080}])
        with pytest.raises(NetworkError, match="8080.*pod-1"):
            attach_pod(cfg, "pod-2", second, ports=[{"containerPort": 81, "hostPort": 8080}])
        assert len(_links("veth")) == 1
        eth = subprocess.run(["nsenter", f"--net={second}", "ip", "-o", "link"], capture_output=True, text=True)
        assert "eth0" not in eth.stdout
        allocations = json.loads((node_records_dir(cfg) / "ipam.json").read_text())["allocations"]
        assert list(allocations) == ["pod-1"]
        detach_pod(cfg, "pod-1", first)
        assert _links("veth") == [] and "pyrun" not in _nft_tables()
        return True

    assert run_in_node_netns(body)


def test_gc_removes_what_dead_pods_left(tmp_path: Path):
    def body():
        from pyrun.netns.pod import attach_pod, gc_network, host_ifname
        cfg = Config(root=tmp_path / "root")
        alive = make_pod_netns(tmp_path, "alive")
        dead = make_pod_netns(tmp_path, "dead")
        attach_pod(cfg, "alive", alive, ports=[{"containerPort": 80, "hostPort": 8081}])
        attach_pod(cfg, "dead", dead, ports=[{"containerPort": 80, "hostPort": 8082}])
        removed = gc_network(cfg, ["alive"])
        assert removed == {"veths": [host_ifname("dead")], "rules": ["dead"], "addresses": ["dead"], "bridge": []}
        assert _links("veth") == [host_ifname("alive")]
        rules = subprocess.run(["nft", "list", "table", "ip", "pyrun"], capture_output=True, text=True).stdout
        assert "8081" in rules and "8082" not in rules
        removed = gc_network(cfg, [])
        assert removed["veths"] == [host_ifname("alive")] and removed["bridge"] == ["pyrun0"]
        assert _links("veth") == [] and _links("bridge") == [] and "pyrun" not in _nft_tables()
        return True

    assert run_in_node_netns(body)


def test_parallel_attach_from_several_processes(tmp_path: Path):
    """Four processes of two state roots attach at once: one creates the bridge, the others wait
    for the node lock; all addresses distinct, each record names its root."""
    def body():
        from pyrun.netns.pod import attach_pod, detach_pod
        cfgs = [Config(root=tmp_path / "root"), Config(root=tmp_path / "other-root")]
        cfg = cfgs[0]
        paths = [make_pod_netns(tmp_path, f"p{i}") for i in range(4)]
        pids = []
        for i, path in enumerate(paths):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    attach_pod(cfgs[i % 2], f"pod-{i}", path)
                    code = 0
                finally:
                    os._exit(code)
            pids.append(pid)
        statuses = [os.waitpid(pid, 0)[1] for pid in pids]
        assert statuses == [0, 0, 0, 0]
        records = json.loads((node_records_dir(cfg) / "ipam.json").read_text())["allocations"]
        ips = {pod: record["ip"] for pod, record in records.items()}
        assert len(set(ips.values())) == 4
        assert {p: r["owner"] for p, r in records.items()} == {f"pod-{i}": owner_tag(cfgs[i % 2].root) for i in range(4)}
        for i, path in enumerate(paths):
            assert ping(ips[f"pod-{i}"], paths[(i + 1) % 4])
        for i, path in enumerate(paths):
            detach_pod(cfgs[(i + 1) % 2], f"pod-{i}", path)  # the wrong root: nothing happens
        assert len(_links("veth")) == 4
        for i, path in enumerate(paths):
            detach_pod(cfgs[i % 2], f"pod-{i}", path)
        assert _links("veth") == [] and _links("bridge") == []
        return True

    assert run_in_node_netns(body)


def test_explain_shows_ip_and_nft_commands(tmp_path: Path):
    def body():
        from pyrun import explain
        from pyrun.netns.pod import attach_pod, detach_pod
        cfg = Config(root=tmp_path / "root")
        ns = make_pod_netns(tmp_path, "e")
        lines = explain.record()
        att = attach_pod(cfg, "pod-e", ns, ports=[{"containerPort": 80, "hostPort": 8080}])
        detach_pod(cfg, "pod-e", ns)
        explain.stop_recording()
        text = "\n".join(lines)
        assert "ip link add name pyrun0 type bridge" in text
        assert "type veth peer name eth0" in text and f"netns {ns}" in text
        assert f"nsenter --net={ns} ip addr add {att.ip}/16 dev eth0" in text
        assert "ip route add default via 10.88.0.1 dev eth0" in text
        assert "tcp dport 8080 dnat to" in text
        tag = owner_tag(cfg.root)
        assert f"ip link set dev {att.host_ifname} alias 'pyrun owner={tag} pod=pod-e'" in text
        assert f'comment "pod pod-e owner {tag}"' in text
        assert "ip link del pyrun0" in text  # the last pod gone: the bridge goes too
        assert f"ip link del {att.host_ifname}" in text
        return True

    assert run_in_node_netns(body)


def test_two_state_roots_share_the_bridge_and_gc_only_their_own(tmp_path: Path):
    """Issue 15 item 7: `pyrun --root A gc` deleted the veths, rules and bridge of root B's pods
    (and two roots handed out the same address). Each root now touches only what it owns."""
    def body():
        from pyrun.netns.pod import attach_pod, detach_pod, gc_network
        a_cfg, b_cfg = Config(root=tmp_path / "root-a"), Config(root=tmp_path / "root-b")
        a_ns, b_ns = make_pod_netns(tmp_path, "a"), make_pod_netns(tmp_path, "b")
        a = attach_pod(a_cfg, "pod-a", a_ns, ports=[{"containerPort": 80, "hostPort": 8083}])
        b = attach_pod(b_cfg, "pod-b", b_ns, ports=[{"containerPort": 80, "hostPort": 8084}])
        assert a.ip != b.ip, "two state roots handed out the same address"

        def table() -> str:
            return subprocess.run(["nft", "list", "table", "ip", "pyrun"], capture_output=True, text=True).stdout

        # root B's gc while both pods live: root A's pod is not B's to judge
        removed = gc_network(b_cfg, ["pod-b"])
        assert removed["veths"] == [] and removed["rules"] == [] and removed["addresses"] == []
        assert set(_links("veth")) == {a.host_ifname, b.host_ifname}
        assert "8083" in table() and "8084" in table() and ping(a.ip) and ping(b.ip)

        # root A crashed and lost its records: B's gc still leaves A's objects alone
        removed = gc_network(b_cfg, ["pod-b"])
        assert removed["veths"] == [] and removed["bridge"] == [] and ping(a.ip)

        # root A's own gc cleans only A's pod; the bridge stays for B's pod
        removed = gc_network(a_cfg, [])
        assert removed["veths"] == [a.host_ifname] and removed["rules"] == ["pod-a"]
        assert removed["addresses"] == ["pod-a"] and removed["bridge"] == []
        assert _links("veth") == [b.host_ifname] and _links("bridge") == ["pyrun0"]
        assert "8083" not in table() and "8084" in table() and ping(b.ip)

        # once B's pod is gone, nothing is attached: the bridge and the table go too
        detach_pod(b_cfg, "pod-b", b_ns)
        gc_network(b_cfg, [])
        assert _links("veth") == [] and _links("bridge") == [] and "pyrun" not in _nft_tables()
        return True

    assert run_in_node_netns(body)
