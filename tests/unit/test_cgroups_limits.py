import pytest

from pyrun.cgroups.limits import (Limits, container_limits, milli_cpu_to_quota, milli_cpu_to_shares, pod_limits,
                                  shares_to_weight)
from pyrun.errors import CgroupError

from _cgroups_unit_helpers import Res

MI = 1024 * 1024


@pytest.mark.parametrize("milli, shares", [(0, 2), (1, 2), (2, 2), (10, 10), (100, 102), (250, 256),
                                           (1000, 1024), (2000, 2048), (256000, 262144), (300000, 262144)])
def test_milli_cpu_to_shares(milli, shares):
    assert milli_cpu_to_shares(milli) == shares


@pytest.mark.parametrize("milli, quota", [(0, 0), (1, 1000), (10, 1000), (11, 1100), (100, 10000),
                                          (200, 20000), (1500, 150000), (4000, 400000)])
def test_milli_cpu_to_quota(milli, quota):
    assert milli_cpu_to_quota(milli) == quota


@pytest.mark.parametrize("shares, weight", [(2, 1), (102, 4), (256, 10), (1024, 39), (2048, 79),
                                            (262144, 10000)])
def test_shares_to_weight(shares, weight):
    assert shares_to_weight(shares) == weight


def test_container_limits_full():
    r = Res(requests={"cpu": 250, "memory": 64 * MI},
            limits={"cpu": 500, "memory": 128 * MI, "hugepages-2Mi": 4 * MI})
    lim = container_limits(r, pids_max=100)
    assert lim == Limits(cpu_shares=256, cpu_quota=50000, cpu_period=100000, memory_max=128 * MI,
                         hugetlb={"2MB": 4 * MI}, pids_max=100)
    assert lim.cpu_weight == 10


def test_container_limits_cpu_limit_only_gives_shares_from_limit():
    lim = container_limits(Res(limits={"cpu": 1000}))
    assert (lim.cpu_shares, lim.cpu_quota, lim.pids_max) == (1024, 100000, 4096)


def test_container_limits_best_effort():
    lim = container_limits(Res())
    assert lim == Limits(cpu_shares=2, pids_max=4096)


def test_pod_limits_guaranteed_sums():
    a = Res(requests={"cpu": 500, "memory": 100 * MI}, limits={"cpu": 500, "memory": 100 * MI})
    b = Res(requests={"cpu": 250, "memory": 50 * MI, "hugepages-1Gi": 1 << 30},
            limits={"cpu": 250, "memory": 50 * MI, "hugepages-1Gi": 1 << 30})
    lim = pod_limits([a, b], "Guaranteed", pids_max=50)
    assert lim == Limits(cpu_shares=768, cpu_quota=75000, cpu_period=100000, memory_max=150 * MI,
                         hugetlb={"1GB": 1 << 30}, pids_max=50)


def test_pod_limits_burstable_needs_every_container_limited():
    a = Res(requests={"cpu": 100}, limits={"cpu": 200, "memory": 64 * MI})
    b = Res(requests={"cpu": 100, "memory": 10 * MI}, limits={"cpu": 300})
    lim = pod_limits([a, b], "Burstable")
    assert lim.cpu_shares == 204  # (100 + 100) * 1024 / 1000
    assert (lim.cpu_quota, lim.cpu_period) == (50000, 100000)
    assert lim.memory_max is None  # b has no memory limit


def test_pod_limits_burstable_without_cpu_limit_everywhere():
    a = Res(requests={"cpu": 100}, limits={"cpu": 200})
    b = Res(requests={"memory": 10 * MI})
    lim = pod_limits([a, b], "Burstable")
    assert (lim.cpu_quota, lim.cpu_period, lim.memory_max) == (None, None, None)


def test_pod_limits_best_effort():
    assert pod_limits([Res(), Res()], "BestEffort", pids_max=None) == Limits(cpu_shares=2)


def test_pod_limits_unknown_qos():
    with pytest.raises(CgroupError, match="unknown QoS class 'Gold'"):
        pod_limits([], "Gold")
