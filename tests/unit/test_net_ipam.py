from __future__ import annotations

import ipaddress
import json
import multiprocessing
from pathlib import Path

import pytest

from pyrun.errors import NetworkError
from pyrun.netns.ipam import AddressPool, next_free

IP = ipaddress.IPv4Address
NET = ipaddress.IPv4Network("10.88.0.0/16")


def test_next_free_skips_network_gateway_and_broadcast():
    assert next_free(NET, []) == IP("10.88.0.2")
    small = ipaddress.IPv4Network("192.168.5.0/30")  # .0 network, .1 gateway, .3 broadcast
    assert next_free(small, []) == IP("192.168.5.2")
    assert next_free(small, [IP("192.168.5.2")]) is None


def test_next_free_continues_after_last_and_wraps():
    assert next_free(NET, [IP("10.88.0.2")], last=IP("10.88.0.2")) == IP("10.88.0.3")
    tiny = ipaddress.IPv4Network("10.0.0.0/29")  # hosts .2-.6 for pods
    assert next_free(tiny, [IP("10.0.0.3")], last=IP("10.0.0.6")) == IP("10.0.0.2")
    assert next_free(tiny, [], last=IP("10.9.9.9")) == IP("10.0.0.2")  # last outside: start over


def test_allocate_release_and_idempotence(tmp_path: Path):
    pool = AddressPool(tmp_path, "10.88.0.0/16")
    a = pool.allocate("a")
    assert a == IP("10.88.0.2")
    assert pool.allocate("a") == a
    b = pool.allocate("b")
    assert b == IP("10.88.0.3")
    assert pool.release("a") == a
    assert pool.release("a") is None
    assert pool.allocate("c") == IP("10.88.0.4")  # no immediate reuse of a's address
    assert pool.allocations() == {"b": b, "c": IP("10.88.0.4")}
    data = json.loads((tmp_path / "ipam.json").read_text())
    assert data["cidr"] == "10.88.0.0/16" and data["allocations"]["b"]["ip"] == "10.88.0.3"


def test_exhaustion_names_the_cidr(tmp_path: Path):
    pool = AddressPool(tmp_path, "10.0.0.0/29")
    for i in range(5):
        pool.allocate(f"p{i}")
    with pytest.raises(NetworkError, match=r"10\.0\.0\.0/29"):
        pool.allocate("one-too-many")
    pool.release("p2")
    assert pool.allocate("again") == IP("10.0.0.4")


def test_reclaim_frees_dead_pods(tmp_path: Path):
    pool = AddressPool(tmp_path, "10.88.0.0/16")
    for p in ("a", "b", "c"):
        pool.allocate(p)
    freed = pool.reclaim(["b"])
    assert sorted(freed) == ["a", "c"]
    assert list(pool.allocations()) == ["b"]


def test_corrupt_or_mismatched_state_is_reported_with_the_file(tmp_path: Path):
    (tmp_path / "ipam.json").write_text("{nope")
    with pytest.raises(NetworkError, match="ipam.json"):
        AddressPool(tmp_path, "10.88.0.0/16").allocate("a")
    (tmp_path / "ipam.json").write_text(json.dumps({"cidr": "10.1.0.0/16", "allocations": {"x": "10.1.0.2"}}))
    with pytest.raises(NetworkError, match="10.1.0.0/16"):
        AddressPool(tmp_path, "10.88.0.0/16").allocate("a")


def _allocate(args):
    directory, pod = args
    return str(AddressPool(directory, "10.88.0.0/16").allocate(pod))


def test_parallel_processes_get_distinct_addresses(tmp_path: Path):
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(20) as workers:
        ips = workers.map(_allocate, [(str(tmp_path), f"pod-{i}") for i in range(20)])
    assert len(set(ips)) == 20
    assert {str(v) for v in AddressPool(tmp_path, "10.88.0.0/16").allocations().values()} == set(ips)
