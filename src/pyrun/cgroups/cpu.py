"""The cpu controller (and cpuacct for usage on cgroup v1).

Kernel docs: Documentation/admin-guide/cgroup-v2.rst ("CPU"), cgroup-v1/cpuacct.rst,
scheduler/sched-bwc.rst (CFS bandwidth).

- Requests become a relative weight: cpu.weight [1, 10000] on v2, cpu.shares
  [2, 262144] on v1. Weights only matter when CPUs are contended.
- Limits become CFS bandwidth: at most `quota` µs of CPU time per `period` µs,
  written as "quota period" to cpu.max (v2) or to cpu.cfs_period_us then
  cpu.cfs_quota_us (v1; the period first, because the kernel checks the quota
  against the current period). A throttled cgroup's tasks wait for the next
  period: cpu.stat nr_throttled counts those periods, throttled_usec (v2) /
  throttled_time (v1, ns) the time.
- Usage: cpu.stat usage_usec (v2); cpuacct.usage in ns (v1, the cpuacct hierarchy,
  which may be comounted with cpu as "cpu,cpuacct").
- What is set (for metrics, cAdvisor's container_spec_cpu_*): quota and period in µs,
  shares as v1 counts them (a v2 cpu.weight converted back, as cAdvisor does).
"""
from __future__ import annotations

from collections.abc import Callable  # (not typing's: a pod create imports no typing)

from pyrun.cgroups.limits import Limits

CONTROLLER = "cpu"
OPTIONAL_FILES: frozenset[str] = frozenset()


def render_v2(limits: Limits) -> dict[str, str]:
    files: dict[str, str] = {}
    if limits.cpu_shares is not None:
        files["cpu.weight"] = str(limits.cpu_weight)
    if limits.cpu_quota is not None:
        files["cpu.max"] = f"{limits.cpu_quota} {limits.cpu_period}"
    return files


def render_v1(limits: Limits) -> dict[str, str]:
    files: dict[str, str] = {}
    if limits.cpu_shares is not None:
        files["cpu.shares"] = str(limits.cpu_shares)
    if limits.cpu_quota is not None:
        files["cpu.cfs_period_us"] = str(limits.cpu_period)
        files["cpu.cfs_quota_us"] = str(limits.cpu_quota)
    return files


def parse_flat_keyed(text: str) -> dict[str, int]:
    """"key value" lines (cpu.stat, memory.stat, memory.events, memory.oom_control) -> {key: int}."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if not value.isdigit():  # the common "key digits" line is decided above, cheaply (a scrape parses many)
            parts = line.split()
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                continue
            key, value = parts
        out[key] = int(value)
    return out


Reader = Callable[[str], "str | None"]  # file name -> contents, None when the file does not exist


def stats_v2(read: Reader) -> dict[str, int | None]:
    stat = parse_flat_keyed(read("cpu.stat") or "")
    usec = {k: stat.get(k) for k in ("usage_usec", "throttled_usec")}
    return {
        "cpu_usage_ns": None if usec["usage_usec"] is None else usec["usage_usec"] * 1000,
        "cpu_nr_throttled": stat.get("nr_throttled"),
        "cpu_throttled_ns": None if usec["throttled_usec"] is None else usec["throttled_usec"] * 1000,
    }


def stats_v1(read_cpu: Reader, read_cpuacct: Reader) -> dict[str, int | None]:
    stat = parse_flat_keyed(read_cpu("cpu.stat") or "")
    usage = (read_cpuacct("cpuacct.usage") or "").strip()
    return {
        "cpu_usage_ns": int(usage) if usage.isdigit() else None,
        "cpu_nr_throttled": stat.get("nr_throttled"),
        "cpu_throttled_ns": stat.get("throttled_time"),
    }


def _int(text: str | None) -> int | None:
    text = (text or "").strip()
    return int(text) if text.lstrip("-").isdigit() else None


def spec_v2(read: Reader) -> dict[str, int | None]:
    """cpu.max "QUOTA PERIOD" ("max PERIOD": no quota) and cpu.weight -> quota, period, shares."""
    fields = (read("cpu.max") or "").split()
    weight = _int(read("cpu.weight"))
    return {
        "cpu_quota": _int(fields[0]) if fields and fields[0] != "max" else None,
        "cpu_period": _int(fields[1]) if len(fields) == 2 else None,
        "cpu_shares": None if weight is None else weight_to_shares(weight),
    }


def spec_v1(read: Reader) -> dict[str, int | None]:
    """cpu.cfs_quota_us (-1: no quota), cpu.cfs_period_us, cpu.shares."""
    quota = _int(read("cpu.cfs_quota_us"))
    return {"cpu_quota": quota if quota is not None and quota > 0 else None,
            "cpu_period": _int(read("cpu.cfs_period_us")), "cpu_shares": _int(read("cpu.shares"))}


def weight_to_shares(weight: int) -> int:
    """cgroup v2 cpu.weight [1, 10000] -> v1 cpu.shares [2, 262144] (the inverse of limits.shares_to_weight)."""
    return 2 + ((weight - 1) * 262142) // 9999
