"""What a pod or container cgroup is limited to, computed the kubelet's way (pure).

Sources (kubernetes pkg/kubelet/cm/helpers_linux.go and the kuberuntime
container config; runc libcontainer/cgroups for the v2 weight):

- MilliCPUToShares: 0 -> 2; else milli*1024/1000 clamped to [2, 262144].
- MilliCPUToQuota: 0 -> no quota; else milli*period/1000, at least 1000 (period 100000 µs).
- shares -> cgroup v2 cpu.weight: 1 + ((shares - 2) * 9999) // 262142.
- Container: shares from the cpu request (the limit when no request is set),
  quota from the cpu limit, memory.max from the memory limit, hugetlb from the
  hugepages-<size> limit (the request when no limit is given; Kubernetes makes
  them equal).
- Pod (ResourceConfigForPod): cpu request and hugepages are summed over the
  containers; a cpu quota or memory limit is set only when *every* container has
  one (Burstable) or always (Guaranteed); BestEffort pods get 2 shares (weight 1)
  and nothing else. pids.max is pyrun's per-cgroup default (4096) on both levels.

The kubepods / burstable / besteffort levels get no limits from pyrun: they only
group pods (the kubelet sizes them from node allocatable, which pyrun does not model).
"""
from __future__ import annotations

from pyrun.cgroups.devices import DeviceRules
from pyrun.cgroups.names import QOS_CLASSES
from pyrun.errors import CgroupError
from pyrun.frozen import Frozen, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a pod create's start-up)
if TYPE_CHECKING:
    from typing import Iterable, Mapping, Protocol

MIN_SHARES = 2
MAX_SHARES = 262144
SHARES_PER_CPU = 1024
MILLI_PER_CPU = 1000
QUOTA_PERIOD = 100000  # µs, the kernel's and the kubelet's default CFS period
MIN_QUOTA = 1000  # µs
DEFAULT_PIDS_MAX = 4096

HUGEPAGE_RESOURCES = {"hugepages-2Mi": "2MB", "hugepages-1Gi": "1GB"}  # resource name -> kernel size name


if TYPE_CHECKING:
    class ResourcesLike(Protocol):
        """The spec layer's Resources: requests/limits keyed "cpu" (millicores), "memory", "hugepages-*" (bytes)."""

        requests: Mapping[str, int]
        limits: Mapping[str, int]


class Limits(Frozen):
    """Values for one cgroup. None means "leave the kernel's default (unlimited)"."""

    cpu_shares: int | None = None
    cpu_quota: int | None = None  # µs per period
    cpu_period: int | None = None  # µs
    memory_max: int | None = None  # bytes
    hugetlb: Mapping[str, int] = field(default_factory=dict)  # kernel size name ("2MB") -> bytes
    pids_max: int | None = None
    devices: DeviceRules | None = None  # None: inherit the parent's device access (pod levels)

    @property
    def cpu_weight(self) -> int | None:
        """The cgroup v2 cpu.weight for cpu_shares."""
        return None if self.cpu_shares is None else shares_to_weight(self.cpu_shares)


def milli_cpu_to_shares(milli: int) -> int:
    if milli == 0:
        return MIN_SHARES
    return max(MIN_SHARES, min(MAX_SHARES, milli * SHARES_PER_CPU // MILLI_PER_CPU))


def milli_cpu_to_quota(milli: int, period: int = QUOTA_PERIOD) -> int:
    """0 means "no quota"."""
    if milli == 0:
        return 0
    return max(MIN_QUOTA, milli * period // MILLI_PER_CPU)


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2, 262144] -> cgroup v2 cpu.weight [1, 10000]."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def _hugepages(values: Mapping[str, int]) -> dict[str, int]:
    return {size: values[res] for res, size in HUGEPAGE_RESOURCES.items() if values.get(res)}


def _quota(milli: int | None) -> tuple[int | None, int | None]:
    quota = milli_cpu_to_quota(milli) if milli else 0
    return (quota, QUOTA_PERIOD) if quota else (None, None)


def container_limits(resources: ResourcesLike, pids_max: int | None = DEFAULT_PIDS_MAX,
                     devices: DeviceRules | None = None) -> Limits:
    """The limits of one container's cgroup (what the kubelet passes to runc); `devices` from
    pyrun.cgroups.devices.container_rules."""
    req, lim = resources.requests, resources.limits
    cpu_request = req.get("cpu") or lim.get("cpu") or 0
    quota, period = _quota(lim.get("cpu"))
    return Limits(
        cpu_shares=milli_cpu_to_shares(cpu_request),
        cpu_quota=quota,
        cpu_period=period,
        memory_max=lim.get("memory") or None,
        hugetlb={**_hugepages(req), **_hugepages(lim)},
        pids_max=pids_max,
        devices=devices,
    )


def pod_limits(containers: Iterable[ResourcesLike], qos: str,
               pids_max: int | None = DEFAULT_PIDS_MAX) -> Limits:
    """The limits of a pod's cgroup, as the kubelet's ResourceConfigForPod computes them."""
    if qos not in QOS_CLASSES:
        raise CgroupError(f"unknown QoS class {qos!r}: expected one of {', '.join(QOS_CLASSES)}")
    containers = list(containers)
    if qos == "BestEffort":
        return Limits(cpu_shares=MIN_SHARES, pids_max=pids_max)
    cpu_request = sum(c.requests.get("cpu") or c.limits.get("cpu") or 0 for c in containers)
    cpu_limited = all(c.limits.get("cpu") for c in containers)
    memory_limited = all(c.limits.get("memory") for c in containers)
    hugetlb: dict[str, int] = {}
    for c in containers:
        for size, value in {**_hugepages(c.requests), **_hugepages(c.limits)}.items():
            hugetlb[size] = hugetlb.get(size, 0) + value
    guaranteed = qos == "Guaranteed"
    quota, period = _quota(sum(c.limits.get("cpu") or 0 for c in containers)) if guaranteed or cpu_limited \
        else (None, None)
    memory = sum(c.limits.get("memory") or 0 for c in containers) if guaranteed or memory_limited else 0
    return Limits(
        cpu_shares=milli_cpu_to_shares(cpu_request),
        cpu_quota=quota,
        cpu_period=period,
        memory_max=memory or None,
        hugetlb=hugetlb,
        pids_max=pids_max,
    )
