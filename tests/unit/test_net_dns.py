from __future__ import annotations

import pytest

from pyrun.errors import SpecError
from pyrun.netns.dns import host_resolv_conf_path, parse_resolv_conf, render_hosts, render_resolv_conf

HOST = """# generated
nameserver 127.0.0.53
nameserver 192.0.2.10
nameserver ::1
search corp.example lab.example
options edns0 trust-ad
"""


def test_parse_drops_loopback_nameservers_and_comments():
    conf = parse_resolv_conf(HOST)
    assert conf.nameservers == ("192.0.2.10",)
    assert conf.searches == ("corp.example", "lab.example")
    assert conf.options == ("edns0", "trust-ad")
    assert parse_resolv_conf(HOST, drop_loopback=False).nameservers == ("127.0.0.53", "192.0.2.10", "::1")


def test_default_and_clusterfirst_without_cluster_dns_copy_the_host():
    expected = "nameserver 192.0.2.10\nsearch corp.example lab.example\noptions edns0 trust-ad\n"
    assert render_resolv_conf("Default", host_resolv_conf=HOST) == expected
    assert render_resolv_conf("ClusterFirst", host_resolv_conf=HOST) == expected
    assert render_resolv_conf(None, host_resolv_conf=HOST) == expected


def test_clusterfirst_with_cluster_dns():
    out = render_resolv_conf("ClusterFirst", host_resolv_conf=HOST, cluster_dns=["10.96.0.10"],
                             namespace="shop")
    assert out == ("nameserver 10.96.0.10\n"
                   "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\n"
                   "options ndots:5\n")
    # a hostNetwork pod with ClusterFirst gets the node's resolver; WithHostNet keeps the cluster's
    assert render_resolv_conf("ClusterFirst", host_resolv_conf=HOST, cluster_dns=["10.96.0.10"],
                              host_network=True).startswith("nameserver 192.0.2.10\n")
    assert render_resolv_conf("ClusterFirstWithHostNet", host_resolv_conf=HOST, cluster_dns=["10.96.0.10"],
                              host_network=True).startswith("nameserver 10.96.0.10\n")


def test_none_uses_only_dns_config_and_options_merge():
    cfg = {"nameservers": ["1.1.1.1"], "searches": ["a.example"],
           "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}
    assert render_resolv_conf("None", host_resolv_conf=HOST, dns_config=cfg) == \
        "nameserver 1.1.1.1\nsearch a.example\noptions ndots:2 edns0\n"
    merged = render_resolv_conf("ClusterFirst", host_resolv_conf=HOST, cluster_dns=["10.96.0.10"],
                                dns_config={"options": [{"name": "ndots", "value": "1"}],
                                            "nameservers": ["10.96.0.10", "9.9.9.9"]})
    assert "nameserver 10.96.0.10\nnameserver 9.9.9.9\n" in merged and "options ndots:1\n" in merged


def test_limits_and_errors():
    many = {"nameservers": [f"10.0.0.{i}" for i in range(1, 6)]}
    out = render_resolv_conf("None", dns_config=many)
    assert out.count("nameserver") == 3
    with pytest.raises(SpecError, match="spec.dnsPolicy"):
        render_resolv_conf("Bogus")
    with pytest.raises(SpecError, match="spec.dnsConfig.nameservers"):
        render_resolv_conf("None")


def test_systemd_stub_points_at_upstream_file():
    assert host_resolv_conf_path("nameserver 127.0.0.53\n", systemd_exists=True) == \
        "/run/systemd/resolve/resolv.conf"
    assert host_resolv_conf_path("nameserver 127.0.0.53\n", systemd_exists=False) == "/etc/resolv.conf"
    assert host_resolv_conf_path(HOST, systemd_exists=True) == "/etc/resolv.conf"


def test_hosts_file():
    out = render_hosts("web", ["10.88.0.5"], host_aliases=[{"ip": "10.1.1.1", "hostnames": ["db", "cache"]}])
    lines = out.splitlines()
    assert lines[1] == "127.0.0.1\tlocalhost"
    assert "::1\tlocalhost ip6-localhost ip6-loopback" in lines
    assert "10.88.0.5\tweb" in lines
    assert lines[-2:] == ["# Entries added by HostAliases.", "10.1.1.1\tdb\tcache"]
    fq = render_hosts("web", ["10.88.0.5"], fqdn="web.sub.ns.svc.cluster.local")
    assert "10.88.0.5\tweb.sub.ns.svc.cluster.local\tweb" in fq.splitlines()
    assert "10.88" not in render_hosts("h")
    with pytest.raises(SpecError, match=r"spec.hostAliases\[0\]"):
        render_hosts("h", host_aliases=[{"ip": "1.2.3.4"}])
