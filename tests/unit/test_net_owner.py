"""Ownership of network objects by state roots (issue 15 item 7): the pure parts and the records."""
from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

import pytest

from pyrun.errors import NetworkError
from pyrun.netns import nodestate
from pyrun.netns.ipam import AddressPool
from pyrun.netns.owner import Owner, host_ifname, owner_tag, parse_veth_alias, veths_to_collect
from pyrun.netns.rules import PodPorts, PortMapping, render_nft_table
from pyrun.netns.settings import NetworkSettings

IP = ipaddress.IPv4Address


class Cfg:
    def __init__(self, root):
        self.root = root


def test_owner_tag_is_short_stable_and_differs_per_root(tmp_path: Path, monkeypatch):
    a = owner_tag("/run/pyrun")
    assert len(a) == 12 and int(a, 16) >= 0
    assert owner_tag("/run/pyrun") == a and owner_tag("/run/pyrun-b") != a
    monkeypatch.chdir(tmp_path)
    assert owner_tag("rel") == owner_tag(tmp_path / "rel")  # relative roots mean the absolute path
    o = Owner.of(Cfg(tmp_path / "r"))
    assert o.tag == owner_tag(tmp_path / "r") and o.root == str(tmp_path / "r")


def test_veth_alias_round_trip_and_foreign_aliases():
    o = Owner(tag="0123456789ab", root="/r")
    alias = o.veth_alias("pod-1")
    assert alias == "pyrun owner=0123456789ab pod=pod-1" and len(alias) < 256  # IFALIASZ
    assert parse_veth_alias(alias) == ("0123456789ab", "pod-1")
    assert parse_veth_alias(o.veth_alias("odd id")) == ("0123456789ab", "odd id")  # the pod id is the rest
    for foreign in (None, "", "uplink to rack 3", "pyrun owner=x", "pyrun pod=y", "pyrun owner= pod=y"):
        assert parse_veth_alias(foreign) is None
    assert o.owns("0123456789ab") and o.owns(None) and not o.owns("ffffffffffff")


def test_gc_collects_only_its_own_dead_veths():
    me, other = Owner("aaaaaaaaaaaa", "/a"), Owner("bbbbbbbbbbbb", "/b")
    ports = {
        host_ifname("mine-live"): me.veth_alias("mine-live"),
        host_ifname("mine-dead"): me.veth_alias("mine-dead"),
        host_ifname("theirs-dead"): other.veth_alias("theirs-dead"),
        host_ifname("untagged-mine"): None,     # crashed between veth creation and alias: my address record says so
        host_ifname("untagged-stranger"): None,  # nobody's record: not mine to judge
        "eth9": "uplink",
    }
    got = veths_to_collect(ports, me, live=["mine-live"], my_pods=["mine-live", "untagged-mine"])
    assert got == sorted([host_ifname("mine-dead"), host_ifname("untagged-mine")])
    assert veths_to_collect(ports, other, live=[], my_pods=[]) == [host_ifname("theirs-dead")]


def test_nft_rule_comment_names_the_owner():
    pods = [PodPorts("web", "10.88.0.5", (PortMapping(8080, 80),), owner="aaaaaaaaaaaa"),
            PodPorts("old", "10.88.0.6", (PortMapping(8081, 80),))]
    text = render_nft_table("10.88.0.0/16", "pyrun0", pods)
    assert 'tcp dport 8080 dnat to 10.88.0.5:80 comment "pod web owner aaaaaaaaaaaa"' in text
    assert 'tcp dport 8081 dnat to 10.88.0.6:80 comment "pod old"' in text
    hostile = render_nft_table("10.88.0.0/16", "pyrun0", [PodPorts("p", "10.88.0.5", (PortMapping(1, 1),), 'x" drop')])
    assert 'comment "pod p owner x__drop"' in hostile


def test_ipam_records_the_owner_and_roots_touch_only_their_own(tmp_path: Path):
    pool = AddressPool(tmp_path, "10.88.0.0/16")
    a = pool.allocate("pa", "aaaaaaaaaaaa", "/a")
    b = pool.allocate("pb", "bbbbbbbbbbbb", "/b")
    assert a != b  # one pool for both roots: never the same address
    data = json.loads((tmp_path / "ipam.json").read_text())["allocations"]
    assert data["pa"] == {"ip": str(a), "owner": "aaaaaaaaaaaa", "root": "/a"}
    assert pool.allocations("bbbbbbbbbbbb") == {"pb": b}
    assert pool.release("pa", "bbbbbbbbbbbb") is None  # not B's
    assert pool.reclaim([], "bbbbbbbbbbbb") == {"pb": b}  # B's gc with no live pod: only B's
    assert pool.allocations() == {"pa": a}
    with pytest.raises(NetworkError, match="pod id pa already holds .* for state root /a"):
        pool.allocate("pa", "bbbbbbbbbbbb", "/b")
    assert pool.allocate("pa", "aaaaaaaaaaaa", "/a") == a  # idempotent for its owner
    assert pool.release("pa", "aaaaaaaaaaaa") == a and pool.allocations() == {}


def test_ipam_reads_records_without_owner(tmp_path: Path):
    (tmp_path / "ipam.json").write_text(json.dumps({"cidr": "10.88.0.0/16", "allocations": {"old": "10.88.0.9"}}))
    pool = AddressPool(tmp_path, "10.88.0.0/16")
    assert pool.reclaim([], "aaaaaaaaaaaa") == {}  # gc does not take what it can't prove is its own
    assert pool.allocate("new", "aaaaaaaaaaaa") != IP("10.88.0.9")
    assert pool.release("old", "aaaaaaaaaaaa") == IP("10.88.0.9")  # its pod's own removal may


def test_node_records_are_per_namespace_and_bridge_and_removed_whole(tmp_path: Path, monkeypatch):
    s = NetworkSettings(state_dir=str(tmp_path / "base"))
    ino = os.stat("/proc/thread-self/ns/net").st_ino
    assert nodestate.node_dir(s) == tmp_path / "base" / f"{ino}-pyrun0"
    assert nodestate.node_dir(NetworkSettings(bridge="br1", state_dir=str(tmp_path))).name == f"{ino}-br1"
    monkeypatch.setenv(nodestate.ENV_BASE, str(tmp_path / "env"))
    assert nodestate.base_dir(NetworkSettings()) == tmp_path / "env"
    with nodestate.locked(s) as node:
        AddressPool(node.dir, s.cidr).allocate("p", "aaaaaaaaaaaa")
        assert sorted(os.listdir(node.dir)) == ["ipam.json", "ipam.lock", "lock"]
        node.drop_records()
        assert os.listdir(node.dir) == ["lock"]
        node.remove()
    assert not (tmp_path / "base").exists()  # the base goes with its last bridge
    with nodestate.locked(s) as node:  # and comes back for the next one
        assert node.dir.is_dir()
        node.remove()


def test_a_waiter_on_a_removed_records_directory_starts_over(tmp_path: Path):
    """The last user of the bridge removes the directory, lock file included, while another
    process waits for that lock: the waiter must not go on holding a lock nobody else can see."""
    import threading
    import time
    s = NetworkSettings(state_dir=str(tmp_path / "base"))
    seen = []

    def waiter():
        with nodestate.locked(s) as n:
            seen.append((n.dir / nodestate.LOCK_FILE).exists())
            n.remove()

    with nodestate.locked(s) as node:
        t = threading.Thread(target=waiter)
        t.start()
        time.sleep(0.2)  # let it block on the lock (either order is correct)
        node.remove()
    t.join(10)
    assert seen == [True] and not (tmp_path / "base").exists()


def test_records_an_older_pyrun_kept_per_root_are_adopted_by_that_root(tmp_path: Path):
    from pyrun.netns.nodestate import NodeState
    from pyrun.netns.pod import _adopt_legacy_records

    class Config:
        root = tmp_path / "root"
        network_dir = tmp_path / "root" / "network"

    Config.network_dir.mkdir(parents=True)
    (Config.network_dir / "ipam.json").write_text(json.dumps(
        {"cidr": "10.88.0.0/16", "allocations": {"old": "10.88.0.5", "clash": "10.88.0.9"}}))
    (Config.network_dir / "hostports.json").write_text(json.dumps(
        {"old": {"ip": "10.88.0.5", "ports": [{"hostPort": 8080, "containerPort": 80}]}}))
    node = NodeState(tmp_path / "node")
    node.dir.mkdir()
    AddressPool(node.dir, "10.88.0.0/16").allocate("theirs", "bbbbbbbbbbbb")  # 10.88.0.2
    (node.dir / "ipam.json").write_text((node.dir / "ipam.json").read_text().replace("10.88.0.2", "10.88.0.9"))
    me = Owner.of(Config)
    _adopt_legacy_records(Config, node, NetworkSettings(), me)
    records = AddressPool(node.dir, "10.88.0.0/16").records()
    assert records["old"].ip == "10.88.0.5" and records["old"].owner == me.tag
    assert "clash" not in records and records["theirs"].ip == "10.88.0.9"  # what the node records say wins
    ports = json.loads((node.dir / "hostports.json").read_text())
    assert ports["old"]["owner"] == me.tag and ports["old"]["ports"][0]["hostPort"] == 8080
    assert not (Config.network_dir / "ipam.json").exists() and not (Config.network_dir / "hostports.json").exists()
