"""Render a pod's /etc/resolv.conf and /etc/hosts (pure), the way the kubelet does.

resolv.conf (kubelet pkg/kubelet/network/dns; resolv.conf(5)):
- "ClusterFirst" (the default) with a cluster DNS server: nameservers = the cluster
  DNS, search = <ns>.svc.<domain> svc.<domain> <domain> + the host's searches,
  options = ndots:5.
- "ClusterFirst" without a cluster DNS server (pyrun's usual case), and
  "ClusterFirst" for a hostNetwork pod: the kubelet falls back to "Default".
- "ClusterFirstWithHostNet": "ClusterFirst", also for hostNetwork pods.
- "Default": the node's resolv.conf (nameservers, search, options).
- "None": only what dnsConfig says.
Then dnsConfig is merged in: nameservers and searches appended (duplicates dropped),
options merged by name (dnsConfig wins). The kubelet's limits apply: at most 3
nameservers and 32 search domains; extra ones are dropped.

Loopback nameservers: a nameserver on 127.x/::1 (systemd-resolved's 127.0.0.53,
dnsmasq) listens in the node's network namespace and cannot be reached from the
pod's. The kubelet itself copies the file as is and relies on being pointed at a
usable one (kubeadm sets --resolv-conf=/run/systemd/resolve/resolv.conf when the
stub resolver is in use); `host_resolv_conf_path` does that choice, and
`parse_resolv_conf` drops loopback nameservers, as Docker does, so no pod gets a
resolver that cannot work (Docker then adds public servers; pyrun adds none).
"""
from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping

from pyrun.errors import SpecError
from pyrun.frozen import Frozen

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a pod create's start-up)
if TYPE_CHECKING:
    from typing import Iterable, Sequence

POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
SYSTEMD_RESOLV_CONF = "/run/systemd/resolve/resolv.conf"


class ResolvConf(Frozen):
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def render(self) -> str:
        lines = [f"nameserver {n}" for n in self.nameservers]
        if self.searches:
            lines.append("search " + " ".join(self.searches))
        if self.options:
            lines.append("options " + " ".join(self.options))
        return "".join(line + "\n" for line in lines)


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def parse_resolv_conf(text: str, drop_loopback: bool = True) -> ResolvConf:
    """Parse resolv.conf(5) content; the last search/domain line wins, as in the resolver."""
    nameservers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split(";", 1)[0].split()
        if not words:
            continue
        key, args = words[0], words[1:]
        if key == "nameserver" and args:
            if not (drop_loopback and is_loopback(args[0])):
                nameservers.append(args[0])
        elif key in ("search", "domain"):
            searches = list(args)
        elif key == "options":
            options.extend(args)
    return ResolvConf(tuple(nameservers), tuple(searches), tuple(options))


def host_resolv_conf_path(etc_text: str, etc_path: str = "/etc/resolv.conf",
                          systemd_exists: bool | None = None) -> str:
    """Which node file to copy: /etc/resolv.conf, or systemd-resolved's upstream list when
    /etc/resolv.conf only names the 127.0.0.53 stub (what kubeadm configures the kubelet with)."""
    parsed = parse_resolv_conf(etc_text, drop_loopback=False)
    stub_only = bool(parsed.nameservers) and all(is_loopback(n) for n in parsed.nameservers)
    if systemd_exists is None:
        systemd_exists = os.path.exists(SYSTEMD_RESOLV_CONF)
    return SYSTEMD_RESOLV_CONF if stub_only and systemd_exists else etc_path


def _dedup(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for i in items:
        seen.setdefault(i, None)
    return list(seen)


def _merge_options(base: Sequence[str], extra: Iterable[Mapping | str]) -> list[str]:
    """Options by name; a later one replaces an earlier one of the same name."""
    merged: dict[str, str] = {}
    for opt in list(base) + list(extra):
        if isinstance(opt, Mapping):
            name, value = str(opt.get("name", "")), opt.get("value")
            text = name if value in (None, "") else f"{name}:{value}"
        else:
            text = str(opt)
            name = text.split(":", 1)[0]
        if name:
            merged[name] = text
    return list(merged.values())


def resolve_dns(policy: str | None = "ClusterFirst", *, dns_config: Mapping | None = None,
                host_resolv_conf: str = "", cluster_dns: Sequence[str] = (),
                cluster_domain: str = "cluster.local", namespace: str = "default",
                host_network: bool = False) -> ResolvConf:
    """Decide the pod's resolver configuration (see the module docstring for the rules).

    dns_config is the pod's spec.dnsConfig: {"nameservers": [...], "searches": [...],
    "options": [{"name": "ndots", "value": "2"}, ...]}.
    """
    policy = policy or "ClusterFirst"
    if policy not in POLICIES:
        raise SpecError([("spec.dnsPolicy", f"unknown policy {policy!r}; one of {', '.join(POLICIES)}")])
    dns_config = dns_config or {}
    if policy == "None" and not dns_config.get("nameservers"):
        raise SpecError([("spec.dnsConfig.nameservers", 'dnsPolicy "None" needs at least one nameserver')])

    host = parse_resolv_conf(host_resolv_conf)
    cluster = bool(cluster_dns) and (policy == "ClusterFirstWithHostNet"
                                     or (policy == "ClusterFirst" and not host_network))
    if policy == "None":
        base = ResolvConf()
    elif cluster:
        domain = cluster_domain.strip(".")
        base = ResolvConf(tuple(cluster_dns),
                          (f"{namespace}.svc.{domain}", f"svc.{domain}", domain) + host.searches,
                          ("ndots:5",))
    else:  # Default, or ClusterFirst without a cluster DNS server
        base = host

    nameservers = _dedup(list(base.nameservers) + list(dns_config.get("nameservers") or []))
    searches = _dedup(list(base.searches) + list(dns_config.get("searches") or []))
    options = _merge_options(base.options, dns_config.get("options") or [])
    return ResolvConf(tuple(nameservers[:MAX_NAMESERVERS]), tuple(searches[:MAX_SEARCHES]), tuple(options))


def render_resolv_conf(policy: str | None = "ClusterFirst", **kw) -> str:
    """resolve_dns(...) rendered as resolv.conf content."""
    return resolve_dns(policy, **kw).render()


_LOCALHOST_LINES = (
    ("127.0.0.1", ("localhost",)),
    ("::1", ("localhost", "ip6-localhost", "ip6-loopback")),
    ("fe00::0", ("ip6-localnet",)),
    ("fe00::0", ("ip6-mcastprefix",)),
    ("fe00::1", ("ip6-allnodes",)),
    ("fe00::2", ("ip6-allrouters",)),
)


def render_hosts(hostname: str, pod_ips: Sequence[str] = (), *,
                 host_aliases: Sequence[Mapping] = (), fqdn: str | None = None) -> str:
    """The pod's /etc/hosts, laid out like the kubelet's managed hosts file.

    pod_ips: the pod's addresses (none for a pod without a network: only localhost lines).
    host_aliases: spec.hostAliases, [{"ip": "10.1.2.3", "hostnames": ["a", "b"]}].
    fqdn: "<hostname>.<subdomain>.<ns>.svc.<domain>" when the pod has a subdomain.
    """
    lines = ["# Kubernetes-managed hosts file (pyrun)."]
    lines += [f"{ip}\t{' '.join(names)}" for ip, names in _LOCALHOST_LINES]
    names = f"{fqdn}\t{hostname}" if fqdn else hostname
    lines += [f"{ip}\t{names}" for ip in pod_ips]
    if host_aliases:
        lines += ["", "# Entries added by HostAliases."]
        for i, alias in enumerate(host_aliases):
            ip, hostnames = alias.get("ip"), list(alias.get("hostnames") or [])
            if not ip or not hostnames:
                raise SpecError([(f"spec.hostAliases[{i}]", "needs an ip and at least one hostname")])
            lines.append(f"{ip}\t" + "\t".join(hostnames))  # one line per alias, names tab-separated (kubelet)
    return "\n".join(lines) + "\n"

