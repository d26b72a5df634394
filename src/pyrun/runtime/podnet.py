"""The runtime's seam to pod networking (pyrun.netns): attach, detach, /etc files, gc.

`--network none` pods (and hostNetwork pods) get no veth; the pyroute2 import
(≈ 200 ms) is only paid by pods that do. `--network cni` pods are attached by the CNI
plugins of the first valid config (pyrun.netns.cni); their record says "mode": "cni" and
detach runs DEL from the cached config whatever --network the remover was given.
"""
from __future__ import annotations

from pathlib import Path

from pyrun.linux import syscalls as linux
from pyrun.runtime.records import PodNetwork, PodRecord


def wants_network(cfg, spec_or_pod) -> bool:
    """Whether a pod (its PodSpec or its PodRecord) gets a veth: not with --network none or hostNetwork."""
    return cfg.pod_network and not spec_or_pod.host_network


def preload(cfg, spec) -> None:
    """Import what attach() will need for this pod, ahead of it: pyroute2 for a bridge pod (pyrun.runtime.pod
    does it while the sandbox launcher works). Nothing for --network none, hostNetwork or CNI pods."""
    if wants_network(cfg, spec) and mode(cfg) == "bridge":
        from pyrun.netns import netlink
        netlink.preload()


def _ports(spec) -> list[dict]:
    out = []
    for c in spec.containers:
        for p in c.ports:
            out.append({"containerPort": p.container_port, "hostPort": p.host_port, "protocol": p.protocol,
                        "hostIP": p.host_ip})
    return out


def mode(cfg) -> str:
    """--network: bridge, none or cni."""
    return cfg.network_mode


def pending(cfg) -> PodNetwork:
    """The pod's network record while attach runs (so a crash from there on is detached by gc)."""
    return PodNetwork(pending=True, mode=mode(cfg))


def _pod_ref(pod: PodRecord):
    from pyrun.netns.cni.protocol import PodRef
    return PodRef(container_id=pod.id, namespace=pod.namespace, name=pod.name, uid=pod.uid)


def attach(cfg, pod: PodRecord, spec) -> PodNetwork | None:
    """Give the pod an address on the node bridge (a veth pair), or run the CNI chain (--network cni);
    None when it has no pod network."""
    if not wants_network(cfg, spec):
        return None
    if mode(cfg) == "cni":
        from pyrun.netns.cni import chain, protocol
        result = chain.add(cfg.root, chain.CniSettings.from_config(cfg), _pod_ref(pod), pod.namespaces["net"],
                           ports=_ports(spec))
        return PodNetwork.from_dict({"mode": "cni", **protocol.summary(result)})
    from pyrun.netns.pod import attach_pod
    att = attach_pod(cfg, pod.id, pod.namespaces["net"], ports=_ports(spec), hostname=spec.hostname)
    return PodNetwork.from_dict(att.to_json())


def detach(cfg, pod: PodRecord) -> None:
    """Idempotent: removes the veth, rules and address of a pod that had (or was getting) a network."""
    if pod.network is None:
        return
    if pod.network.mode == "cni":
        _detach_cni(cfg, pod)
        return
    from pyrun.netns.pod import detach_pod
    detach_pod(cfg, pod.id, pod.net_namespace)


def _detach_cni(cfg, pod: PodRecord) -> None:
    """CNI DEL from the cache. For a pod whose ADD never finished (a failed create being undone,
    a crashed one collected) a failing DEL is a warning: the error to report is the create's,
    and the cache entry stays for `pyrun gc` to retry."""
    import sys

    from pyrun.errors import NetworkError
    from pyrun.netns.cni import chain
    try:
        chain.delete(cfg.root, chain.CniSettings.from_config(cfg), pod.id)
    except NetworkError as e:
        if not (pod.network and pod.network.pending):
            raise
        print(f"pyrun: warning: {e} (pyrun gc retries)", file=sys.stderr)


def check(cfg, pod: PodRecord) -> list[str]:
    """CNI CHECK of a --network cni pod; the networks checked (NetworkError naming the plugin)."""
    from pyrun.errors import InvalidState
    if pod.network is None or pod.network.mode != "cni":
        raise InvalidState(f"pod {pod.name} has no CNI network (CHECK is for pods made with --network cni)")
    from pyrun.netns.cni import chain
    return chain.check(cfg.root, chain.CniSettings.from_config(cfg), pod.id)


def cni_status(cfg) -> tuple[bool, str, str]:
    """NetworkReady with --network cni: a valid config whose plugins are all there (and, from
    cniVersion 1.1.0, answer STATUS); else NetworkPluginNotReady and why, as containerd reports it."""
    from pyrun.errors import NetworkError
    from pyrun.netns.cni import chain
    try:
        net = chain.status(chain.CniSettings.from_config(cfg))
    except NetworkError as e:
        return False, "NetworkPluginNotReady", f"cni plugin not initialized: {e}"
    return True, "", f"CNI network {net.name} from {net.source}"


def write_etc_files(etc_dir: Path, pod: PodRecord, spec) -> None:
    """/etc/hostname, /etc/hosts and /etc/resolv.conf for the pod's containers (kubelet-style)."""
    from pyrun.netns.dns import host_resolv_conf_path, render_hosts, render_resolv_conf
    etc_dir.mkdir(exist_ok=True)
    ip = pod.ip
    try:
        etc = Path("/etc/resolv.conf").read_text()
        node_resolv = Path(host_resolv_conf_path(etc)).read_text()
    except OSError:
        node_resolv = ""
    hosts = render_hosts(spec.hostname, [ip] if ip else [], host_aliases=spec.host_aliases)
    resolv = render_resolv_conf(spec.dns_policy, dns_config=spec.dns_config, host_resolv_conf=node_resolv,
                                namespace=spec.namespace, host_network=spec.host_network)
    linux.write_file(str(etc_dir / "hostname"), spec.hostname + "\n", quiet=True)
    linux.write_file(str(etc_dir / "hosts"), hosts, quiet=True)
    linux.write_file(str(etc_dir / "resolv.conf"), resolv, quiet=True)


def gc(cfg, live_pod_ids: set[str]):
    """Remove veths, rules and addresses of this root's pods that no longer exist (other state roots'
    are left alone; only if this root ever networked: attach makes cfg.network_dir)."""
    report = {}
    from pyrun.netns.cni import cache
    if cache.all_entries(cfg.root):
        from pyrun.netns.cni import chain
        report["cni"] = chain.gc(cfg.root, chain.CniSettings.from_config(cfg), live_pod_ids)
    if not (cfg.network_dir).exists():
        return report
    from pyrun.netns.pod import gc_network
    return {**gc_network(cfg, live_pod_ids), **report}
