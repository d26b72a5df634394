from __future__ import annotations

import pytest

from pyrun.errors import NetworkError, SpecError
from pyrun.netns.rules import (
    PodPorts, PortMapping, check_no_clash, port_mappings, render_nft_delete,
    render_nft_replace, render_nft_table,
)
from pyrun.netns.settings import NetworkSettings
from pyrun.netns.pod import host_ifname

PORTS = [{"containerPort": 80, "hostPort": 8080},
         {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "127.0.0.1"},
         {"containerPort": 9000}]


def test_port_mappings_from_spec():
    m = port_mappings(PORTS)
    assert m == [PortMapping(8080, 80, "tcp", ""), PortMapping(5353, 53, "udp", "127.0.0.1")]
    with pytest.raises(SpecError, match=r"ports\[0\].protocol"):
        port_mappings([{"containerPort": 80, "hostPort": 80, "protocol": "SCTP"}])
    with pytest.raises(SpecError, match=r"ports\[1\].hostPort"):
        port_mappings([{"containerPort": 80, "hostPort": 80}, {"containerPort": 81, "hostPort": 80}])
    with pytest.raises(SpecError, match="65535"):
        port_mappings([{"containerPort": 80, "hostPort": 70000}])


def test_nft_table_rules():
    text = render_nft_table("10.88.0.0/16", "pyrun0", [PodPorts("abc", "10.88.0.5", tuple(port_mappings(PORTS)))])
    assert text.startswith("table ip pyrun {")
    assert "fib daddr type local jump hostports" in text
    assert "type nat hook output priority -100;" in text
    assert '\t\ttcp dport 8080 dnat to 10.88.0.5:80 comment "pod abc"\n' in text
    assert "ip daddr 127.0.0.1 udp dport 5353 dnat to 10.88.0.5:53" in text
    assert "9000" not in text
    assert "ct status dnat ip saddr 127.0.0.0/8 masquerade" in text
    assert 'ip saddr 10.88.0.0/16 oifname != "pyrun0" masquerade' in text
    no_nat = render_nft_table("10.88.0.0/16", "pyrun0", [], masquerade=False)
    assert "oifname" not in no_nat


def test_replace_script_is_atomic_and_delete_is_safe():
    script = render_nft_replace("10.88.0.0/16", "pyrun0", [])
    assert script.startswith("table ip pyrun\ndelete table ip pyrun\ntable ip pyrun {")
    assert render_nft_delete() == "table ip pyrun\ndelete table ip pyrun\n"


def test_comment_is_sanitised():
    text = render_nft_table("10.88.0.0/16", "pyrun0", [PodPorts('x"; drop', "10.88.0.5", (PortMapping(1, 1),))])
    assert 'comment "pod x___drop"' in text


def test_host_port_clash_names_the_other_pod():
    held = [PodPorts("web", "10.88.0.2", (PortMapping(8080, 80),))]
    check_no_clash(PodPorts("web", "10.88.0.2", (PortMapping(8080, 80),)), held)  # itself: fine
    check_no_clash(PodPorts("dns", "10.88.0.3", (PortMapping(8080, 80, "udp"),)), held)
    with pytest.raises(NetworkError, match="8080/tcp is already used by pod web"):
        check_no_clash(PodPorts("other", "10.88.0.3", (PortMapping(8080, 81, host_ip="127.0.0.1"),)), held)
    specific = [PodPorts("a", "10.88.0.2", (PortMapping(8080, 80, host_ip="127.0.0.1"),))]
    check_no_clash(PodPorts("b", "10.88.0.3", (PortMapping(8080, 80, host_ip="127.0.0.2"),)), specific)


def test_settings_and_veth_names():
    s = NetworkSettings()
    assert s.gateway_cidr == "10.88.0.1/16" and s.bridge == "pyrun0"
    assert NetworkSettings.from_config(type("C", (), {"network": {"cidr": "10.5.0.0/24"}})()).gateway_cidr \
        == "10.5.0.1/24"
    for bad in ({"cidr": "10.88.0.1/16"}, {"bridge": "x" * 16}, {"cidr": "10.0.0.0/31"}, {"mtu": 10}):
        with pytest.raises(Exception):
            NetworkSettings(**bad)
    name = host_ifname("0123456789abcdef-a-very-long-pod-id")
    assert name.startswith("veth") and len(name) == 12
    assert host_ifname("a") != host_ifname("b")


def test_importing_pyrun_netns_stays_light():
    import subprocess
    import sys
    code = ("import sys, pyrun.netns, pyrun.netns.dns, pyrun.netns.ipam, pyrun.netns.rules, pyrun.netns.pod; "
            "print('pyroute2' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
