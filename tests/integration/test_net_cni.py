"""`--network cni` with the real plugins of Debian's containernetworking-plugins (/usr/lib/cni).

Every test runs in a throwaway node (a forked child with its own network and mount
namespace, see _net_helpers): the CNI conf dir, host-local's dataDir and pyrun's state
root are temporary directories, never /etc/cni or /var/lib/cni, and the iptables rules
portmap and firewall make live in the node namespace and vanish with it. Each test has
its own state root, so no CNI pod is ever left for a cleanup that would run outside
the node namespace.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import DEMO_IMAGE, Pyrun, _processes_under, pod_manifest

from pyrun.linux.mounts import mounts_under

from _net_helpers import host_snapshot, ping, run_in_node_netns, tcp_get, tcp_server, wait_for

PLUGINS = Path("/usr/lib/cni")
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)"),
    pytest.mark.skipif(not (PLUGINS / "bridge").exists(),
                       reason="needs containernetworking-plugins (scripts/apt-ensure.sh containernetworking-plugins)"),
]
SUBNET, GATEWAY, BRIDGE = "10.77.0.0/24", "10.77.0.1", "cnipyr0"
SLEEPY = """#!/bin/sh
# A plugin that hangs in ADD while {flag} exists (its pid in {pidfile}); otherwise passes prevResult on.
input=$(cat)
if [ "$CNI_COMMAND" = ADD ] && [ -e {flag} ]; then echo $$ > {pidfile}; exec sleep 600; fi
if [ "$CNI_COMMAND" = ADD ]; then
    printf '%s' "$input" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["prevResult"]))'
fi
"""


class Node:
    """A temporary CNI setup (conf dir, bin dir, host-local dataDir) and a pyrun instance using it."""

    def __init__(self, base: Path, runner: Pyrun):
        self.base, self.pyrun = base, runner
        self.conf_dir, self.bin_dir, self.ipam_dir = base / "net.d", base / "bin", base / "ipam"
        for d in (self.conf_dir, self.bin_dir, self.ipam_dir):
            d.mkdir(parents=True)
        self.env = {"PYRUN_CNI_CONF_DIR": str(self.conf_dir), "PYRUN_CNI_BIN_DIR": f"{self.bin_dir}:{PLUGINS}",
                    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}

    def conflist(self, *plugins: dict, name: str = "pyrun-test", version: str = "1.0.0") -> None:
        doc = {"cniVersion": version, "name": name, "plugins": list(plugins)}
        (self.conf_dir / "10-pyrun-test.conflist").write_text(json.dumps(doc, indent=1))

    def bridge(self) -> dict:
        return {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False, "hairpinMode": True,
                "ipam": {"type": "host-local", "dataDir": str(self.ipam_dir), "ranges": [[{"subnet": SUBNET}]],
                         "routes": [{"dst": "0.0.0.0/0"}]}}

    def __call__(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.pyrun(*args, check=check, timeout=timeout, env=self.env)

    def create(self, name: str, ports: list[dict] = (), check: bool = True) -> subprocess.CompletedProcess:
        spec = self.base / f"{name}.json"
        spec.write_text(json.dumps(pod_manifest(name, [{"name": "c", "command": ["sleep", "1000"],
                                                        "ports": list(ports)}], terminationGracePeriodSeconds=1)))
        return self("pod", "create", str(spec), check=check)

    def inspect(self, name: str) -> dict:
        return json.loads(self("pod", "inspect", name).stdout)

    def allocated(self, net: str = "pyrun-test") -> dict[str, str]:
        """host-local's records: {ip: container id}."""
        d = self.ipam_dir / net
        if not d.is_dir():
            return {}
        return {n: (d / n).read_text().split()[0] for n in os.listdir(d) if n[0].isdigit()}

    def cache(self) -> list[str]:
        d = self.pyrun.root / "cni" / "results"
        return sorted(os.listdir(d)) if d.is_dir() else []

    def remove_all(self) -> None:
        for p in self.pyrun.pods():
            self("pod", "rm", "-f", p["id"], check=False)
        self("gc", check=False)


@pytest.fixture
def node(tmp_path, demo_layout, cgroup_parent):
    """A fresh pyrun instance with the demo image and --network cni, plus its CNI dirs."""
    if not host_snapshot():
        pytest.skip("no host snapshot")
    before = host_snapshot()
    base = Path(f"/tmp/pyrun-cni-{secrets.token_hex(3)}")
    runner = Pyrun(base / "run", cgroup_parent, network="cni", data_root=base / "lib")
    runner("image", "import", str(demo_layout), DEMO_IMAGE)
    n = Node(tmp_path / "cni", runner)
    try:
        yield n
    finally:
        shutil.rmtree(runner.root / "cni", ignore_errors=True)  # never run plugins outside the node netns
        for p in runner.pods():
            runner("pod", "rm", "-f", p["id"], check=False)
        left, procs = mounts_under(base), _processes_under(base)
        shutil.rmtree(base, ignore_errors=True)
        assert not left and not procs, f"left behind: mounts {left}, processes {procs}"
        assert host_snapshot() == before, "the host network namespace changed"


def _sh(cmd: str) -> str:
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout


def _in_pod(netns: str, cmd: str) -> str:
    return _sh(f"nsenter --net={netns} {cmd}")


def _iptables_rules() -> str:
    return _sh("iptables-save")


def test_two_pods_reach_each_other_and_the_node_a_host_port_works_and_rm_frees_the_ip(node):
    node.conflist({"type": "loopback"}, node.bridge(), {"type": "portmap", "capabilities": {"portMappings": True}},
                  {"type": "firewall", "backend": "iptables"},
                  {"type": "tuning", "sysctl": {"net.core.somaxconn": "1234"}})

    def body():
        try:
            node.create("cni-a")
            node.create("cni-b", ports=[{"containerPort": 80, "hostPort": 18080}])
            a, b = node.inspect("cni-a"), node.inspect("cni-b")
            ip_a, ip_b = a["network"]["ip"], b["network"]["ip"]
            ns_a, ns_b = a["namespaces"]["net"]["path"], b["namespaces"]["net"]["path"]
            out = {"ips": (ip_a, ip_b), "mode": a["network"]["mode"], "allocated": node.allocated(),
                   "ids": (a["id"], b["id"]), "cache": node.cache(),
                   "ls": node("pod", "ls").stdout,
                   "a->b": ping(ip_b, ns_a), "b->a": ping(ip_a, ns_b), "a->node": ping(GATEWAY, ns_a),
                   "node->a": ping(ip_a), "somaxconn": _in_pod(ns_a, "cat /proc/sys/net/core/somaxconn").strip(),
                   "lo": _in_pod(ns_a, "ip -o addr show lo")}
            with tcp_server(ns_b, 80, "hello from b"):
                out["hostport"] = tcp_get(GATEWAY, 18080)
            rules = _iptables_rules()
            out["rules"] = {"dnat": f"--to-destination {ip_b}:80" in rules, "fw_a": f"-s {ip_a}/32" in rules}
            node("pod", "rm", "-f", "cni-a")
            out["after_rm_a"] = {"allocated": node.allocated(), "cache": node.cache(), "b": ping(ip_b),
                                 "fw_a": f"-s {ip_a}/32" in _iptables_rules()}
            node("pod", "stop", "cni-b")
            out["after_stop_b"] = {"allocated": node.allocated(), "dnat": "--to-destination" in _iptables_rules()}
            node("pod", "rm", "cni-b")
            out["after_rm_b"] = {"allocated": node.allocated(), "cache": node.cache(),
                                 "veths": _sh("ip -o link show type veth").strip(),
                                 "dn_chains": _sh("iptables-save -t nat | grep -c ':CNI-DN-' || true").strip()}
            return out
        finally:
            node.remove_all()

    out = run_in_node_netns(body, timeout=300)
    ip_a, ip_b = out["ips"]
    id_a, id_b = out["ids"]
    assert out["mode"] == "cni" and ip_a != ip_b and ip_a.startswith("10.77.0.") and ip_b.startswith("10.77.0."), out
    assert out["allocated"] == {ip_a: id_a, ip_b: id_b}, out  # host-local's files: ip -> container id
    assert out["cache"] == sorted([f"pyrun-test-{id_a}-eth0", f"pyrun-test-{id_b}-eth0"]), out
    assert ip_a in out["ls"] and ip_b in out["ls"], out["ls"]
    assert out["a->b"] and out["b->a"] and out["a->node"] and out["node->a"], out
    assert out["somaxconn"] == "1234", out  # tuning, inside the pod's namespace
    assert "127.0.0.1/8" in out["lo"], out
    assert out["hostport"] == f"hello from b from {GATEWAY}", out
    assert out["rules"] == {"dnat": True, "fw_a": True}, out
    assert out["after_rm_a"] == {"allocated": {ip_b: id_b}, "cache": [f"pyrun-test-{id_b}-eth0"], "b": True,
                                 "fw_a": False}, out
    assert out["after_stop_b"] == {"allocated": {}, "dnat": False}, out  # a stopped pod holds no address
    assert out["after_rm_b"] == {"allocated": {}, "cache": [], "veths": "", "dn_chains": "0"}, out


def test_a_create_killed_during_add_is_cleaned_up_by_gc(node):
    flag, pidfile = node.base / "slow", node.base / "sleepy.pid"
    sleepy = node.bin_dir / "sleepy"
    sleepy.write_text(SLEEPY.format(flag=flag, pidfile=pidfile))
    sleepy.chmod(0o755)
    node.conflist(node.bridge(), {"type": "firewall", "backend": "iptables"},
                  {"type": "tuning", "sysctl": {"net.core.somaxconn": "999"}}, {"type": "sleepy"})

    def body():
        try:
            flag.touch()
            creator = subprocess.Popen(node.pyrun.argv("pod", "create", str(_spec(node, "cni-killed"))),
                                       env=dict(os.environ, **node.env), stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            assert wait_for(pidfile.exists, 60), "the sleepy plugin never ran"
            creator.send_signal(signal.SIGKILL)
            creator.wait()
            os.kill(int(pidfile.read_text()), signal.SIGKILL)  # the plugin it left hanging
            flag.unlink()
            out = {"crashed": {"allocated": len(node.allocated()), "cache": len(node.cache()),
                               "veths": len(_sh("ip -o link show type veth").splitlines()),
                               "fw": "-A CNI-FORWARD -s 10.77.0." in _iptables_rules()}}
            out["gc"] = node("gc").stdout
            out["after_gc"] = {"allocated": node.allocated(), "cache": node.cache(), "pods": node.pyrun.pods(),
                               "veths": _sh("ip -o link show type veth").strip(),
                               "fw": "-A CNI-FORWARD -s 10.77.0." in _iptables_rules()}
            node.create("cni-ok")
            out["check"] = node("pod", "check-network", "cni-ok").stdout.strip()
            return out
        finally:
            node.remove_all()

    out = run_in_node_netns(body, timeout=300)
    assert out["crashed"] == {"allocated": 1, "cache": 1, "veths": 1, "fw": True}, out
    assert "removed pod" in out["gc"], out
    assert out["after_gc"] == {"allocated": {}, "cache": [], "pods": [], "veths": "", "fw": False}, out
    assert out["check"] == "ok: pyrun-test", out


def _spec(node: Node, name: str) -> Path:
    path = node.base / f"{name}.json"
    path.write_text(json.dumps(pod_manifest(name, [{"name": "c", "command": ["sleep", "1000"]}],
                                            terminationGracePeriodSeconds=1)))
    return path


def test_a_broken_config_gives_a_clear_error_and_no_pod(node):
    def attempt(*plugins: dict, raw: str | None = None) -> dict:
        _sh(f"ip link del {BRIDGE} 2>/dev/null")  # a bridge the plugin left (as cni0 stays): fresh each time
        if raw is not None:
            (node.conf_dir / "10-pyrun-test.conflist").write_text(raw)
        else:
            node.conflist(*plugins)
        p = node.create("cni-broken", check=False)
        return {"rc": p.returncode, "err": p.stderr.strip(), "pods": node.pyrun.pods(), "cache": node.cache(),
                "allocated": node.allocated(), "veths": _sh("ip -o link show type veth").strip()}

    def body():
        try:
            bad_ipam = node.bridge()
            bad_ipam["ipam"]["ranges"] = [[{"subnet": "10.77.0.0/99"}]]
            return {"json": attempt(raw="{\"cniVersion\": "),
                    "missing": attempt(node.bridge(), {"type": "nosuch"}),
                    "plugin": attempt(bad_ipam),
                    "late": attempt(node.bridge(), {"type": "tuning", "sysctl": {"net.no.such": "1"}})}
        finally:
            node.remove_all()

    out = run_in_node_netns(body, timeout=300)
    for case, got in out.items():
        assert got["rc"] == 8 and got["pods"] == [] and got["cache"] == [], (case, got)
        assert got["allocated"] == {} and got["veths"] == "", (case, got)
    assert "no valid CNI network config in" in out["json"]["err"] and "10-pyrun-test.conflist: not valid JSON" \
        in out["json"]["err"], out
    assert "CNI plugin 'nosuch' not found in" in out["missing"]["err"], out
    assert "CNI plugin bridge failed on ADD:" in out["plugin"]["err"] and "99" in out["plugin"]["err"], out
    assert "CNI plugin tuning failed on ADD:" in out["late"]["err"] and "/proc/sys/net/no/such" in out["late"]["err"], out


def test_cri_server_with_network_cni(demo_layout, tmp_path):
    """`pyrun --network cni cri serve` in a throwaway node netns (unshare --net): NetworkReady follows
    the conf dir; a sandbox gets its IP, hostPort rule and CNI_ARGS from the CRI request; stop and
    remove give everything back."""
    from _cri_helpers import running_server
    conf_dir, ipam_dir = tmp_path / "net.d", tmp_path / "ipam"
    conf_dir.mkdir()
    env = {"PYRUN_CNI_CONF_DIR": str(conf_dir), "PYRUN_CNI_BIN_DIR": str(PLUGINS)}
    os.environ.update(env)  # the server inherits them (running_server starts it with os.environ)
    try:
        with running_server(demo_layout, "pyrun-cricni", network="cni", wrapper=("unshare", "--net")) as e:
            server = e["server"]
            rt, _, pb, ch = server.stubs("v1")
            try:
                _cri_cni_flow(rt, pb, e, conf_dir, ipam_dir, server.proc.pid)
            finally:
                for sb in rt.ListPodSandbox(pb.ListPodSandboxRequest()).items:
                    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sb.id))
                    rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sb.id))
                ch.close()
                shutil.rmtree(e["root"] / "cni", ignore_errors=True)  # never run plugins outside the node netns
    finally:
        for k in env:
            os.environ.pop(k, None)


def _cri_cni_flow(rt, pb, e, conf_dir: Path, ipam_dir: Path, server_pid: int) -> None:
    from _cri_helpers import sandbox_config

    def network_ready():
        return next(c for c in rt.Status(pb.StatusRequest()).status.conditions if c.type == "NetworkReady")
    cond = network_ready()
    assert not cond.status and cond.reason == "NetworkPluginNotReady" and "no CNI network config" in cond.message
    doc = {"cniVersion": "0.4.0", "name": "cri-test", "plugins": [
        {"type": "bridge", "bridge": "cnicri0", "isGateway": True,
         "ipam": {"type": "host-local", "dataDir": str(ipam_dir), "ranges": [[{"subnet": "10.78.0.0/24"}]]}},
        {"type": "portmap", "capabilities": {"portMappings": True}}]}
    (conf_dir / "10-cri.conflist").write_text(json.dumps(doc))
    assert network_ready().status

    cfg = sandbox_config(pb, "cnipod", e["tmp"], port_mappings=[pb.PortMapping(container_port=80, host_port=18081)])
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg)).pod_sandbox_id
    ip = rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status.network.ip
    assert ip.startswith("10.78.0."), ip
    assert (ipam_dir / "cri-test" / ip).read_text().split()[0] == sid
    cached = json.loads((e["root"] / "cni" / "results" / f"cri-test-{sid}-eth0").read_text())
    assert dict(cached["cniArgs"]) == {"IgnoreUnknown": "1", "K8S_POD_NAMESPACE": "ns", "K8S_POD_NAME": "cnipod",
                                       "K8S_POD_INFRA_CONTAINER_ID": sid, "K8S_POD_UID": "uid-cnipod"}
    assert cached["capabilityArgs"] == {"portMappings": [{"hostPort": 18081, "containerPort": 80,
                                                          "protocol": "tcp"}]}
    rules = subprocess.run(["nsenter", f"--net=/proc/{server_pid}/ns/net", "iptables-save", "-t", "nat"],
                           capture_output=True, text=True).stdout
    assert f"--to-destination {ip}:80" in rules, rules
    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
    assert not (ipam_dir / "cri-test" / ip).exists()
    rules = subprocess.run(["nsenter", f"--net=/proc/{server_pid}/ns/net", "iptables-save", "-t", "nat"],
                           capture_output=True, text=True).stdout
    assert "--to-destination" not in rules, rules
    rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
    assert not list((e["root"] / "cni" / "results").iterdir())
