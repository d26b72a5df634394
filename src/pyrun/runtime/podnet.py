"""The runtime's seam to pod networking (pyrun.netns): attach, detach, /etc files, gc.

`--network none` pods (and hostNetwork pods) get no veth; the pyroute2 import
(≈ 200 ms) is only paid by pods that do.
"""
from __future__ import annotations

from pathlib import Path

from pyrun.linux import syscalls as linux
from pyrun.runtime.records import PodNetwork, PodRecord


def wants_network(cfg, spec_or_pod) -> bool:
    """Whether a pod (its PodSpec or its PodRecord) gets a veth: not with --network none or hostNetwork."""
    return cfg.pod_network and not spec_or_pod.host_network


def _ports(spec) -> list[dict]:
    out = []
    for c in spec.containers:
        for p in c.ports:
            out.append({"containerPort": p.container_port, "hostPort": p.host_port, "protocol": p.protocol,
                        "hostIP": p.host_ip})
    return out


def attach(cfg, pod: PodRecord, spec) -> PodNetwork | None:
    """Give the pod an address on the node bridge (a veth pair); None when it has no pod network."""
    if not wants_network(cfg, spec):
        return None
    from pyrun.netns.pod import attach_pod
    att = attach_pod(cfg, pod.id, pod.namespaces["net"], ports=_ports(spec), hostname=spec.hostname)
    return PodNetwork.from_dict(att.to_json())


def detach(cfg, pod: PodRecord) -> None:
    """Idempotent: removes the veth, rules and address of a pod that had (or was getting) a network."""
    if pod.network is None:
        return
    from pyrun.netns.pod import detach_pod
    detach_pod(cfg, pod.id, pod.net_namespace)


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
    if not (cfg.network_dir).exists():
        return {}
    from pyrun.netns.pod import gc_network
    return gc_network(cfg, live_pod_ids)
