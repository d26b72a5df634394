"""The memory controller.

Kernel docs: Documentation/admin-guide/cgroup-v2.rst ("Memory"), cgroup-v1/memory.rst.

- A memory limit is a hard cap: memory.max (v2) / memory.limit_in_bytes (v1).
  When reclaim cannot bring the cgroup under it, the kernel's OOM killer kills a
  task inside the cgroup; v2 counts it in memory.events `oom_kill`, v1 in
  memory.oom_control `oom_kill` (kernel >= 4.13; memory.failcnt only counts hits
  of the limit, which reclaim often survives, so it is a fallback only).
- Swap is off for limited containers, as with the kubelet's NoSwap default:
  memory.swap.max = 0 (v2) / memory.memsw.limit_in_bytes = the memory limit (v1,
  memory+swap). Both files exist only when the kernel accounts swap, so they are
  written only where present. On v1 memsw must stay >= the memory limit, so when
  raising a limit above the current memsw value memsw is written first.
- Working set is what the kubelet evicts on: usage - inactive_file (v2
  memory.current and memory.stat inactive_file; v1 memory.usage_in_bytes and
  memory.stat total_inactive_file), never below 0.
- For metrics (cAdvisor's names): rss is anonymous memory (v2 memory.stat anon, v1
  total_rss); failcnt counts hits of the limit (v1 memory.failcnt; v2 has no such file,
  memory.events `max` counts the same event).
"""
from __future__ import annotations

from pyrun.cgroups.cpu import Reader, parse_flat_keyed
from pyrun.cgroups.limits import Limits

CONTROLLER = "memory"
OPTIONAL_FILES = frozenset({"memory.swap.max", "memory.memsw.limit_in_bytes"})
V1_UNLIMITED = 1 << 62  # v1 shows "no limit" as PAGE_COUNTER_MAX pages (9223372036854771712)


def render_v2(limits: Limits) -> dict[str, str]:
    if limits.memory_max is None:
        return {}
    return {"memory.max": str(limits.memory_max), "memory.swap.max": "0"}


def render_v1(limits: Limits) -> dict[str, str]:
    if limits.memory_max is None:
        return {}
    return {"memory.limit_in_bytes": str(limits.memory_max),
            "memory.memsw.limit_in_bytes": str(limits.memory_max)}


def order_v1(files: dict[str, str], current_memsw: int | None) -> list[tuple[str, str]]:
    """Write memsw first when the new limit is above the current memsw limit (else the kernel says EINVAL)."""
    items = list(files.items())
    memsw = files.get("memory.memsw.limit_in_bytes")
    if memsw is not None and current_memsw is not None and int(memsw) > current_memsw:
        items.sort(key=lambda kv: kv[0] != "memory.memsw.limit_in_bytes")
    return items


def _limit(text: str | None) -> int | None:
    text = (text or "").strip()
    if not text.isdigit():
        return None  # "max" or missing
    value = int(text)
    return None if value >= V1_UNLIMITED else value


def _int(text: str | None) -> int | None:
    text = (text or "").strip()
    return int(text) if text.isdigit() else None


def _stats(usage: int | None, inactive: int | None, limit: int | None) -> dict[str, int | None]:
    working_set = None if usage is None else max(0, usage - (inactive or 0))
    return {"memory_usage": usage, "memory_working_set": working_set, "memory_limit": limit}


def stats_v2(read: Reader) -> dict[str, int | None]:
    stat = parse_flat_keyed(read("memory.stat") or "")
    return _stats(_int(read("memory.current")), stat.get("inactive_file"), _limit(read("memory.max")))


def stats_v1(read: Reader) -> dict[str, int | None]:
    stat = parse_flat_keyed(read("memory.stat") or "")
    return _stats(_int(read("memory.usage_in_bytes")), stat.get("total_inactive_file"),
                  _limit(read("memory.limit_in_bytes")))


def usage_v2(read: Reader) -> dict[str, int | None]:
    """The usage and counters the metrics need from one v2 memory cgroup (memory.stat read once)."""
    stat = parse_flat_keyed(read("memory.stat") or "")
    events = parse_flat_keyed(read("memory.events") or "")
    out = _stats(_int(read("memory.current")), stat.get("inactive_file"), None)
    del out["memory_limit"]
    return out | {"memory_rss": stat.get("anon"), "memory_failcnt": events.get("max"),
                  "oom_kills": events.get("oom_kill", 0 if events else None)}


def usage_v1(read: Reader) -> dict[str, int | None]:
    """The usage and counters the metrics need from one v1 memory cgroup (memory.stat read once)."""
    stat = parse_flat_keyed(read("memory.stat") or "")
    out = _stats(_int(read("memory.usage_in_bytes")), stat.get("total_inactive_file"), None)
    del out["memory_limit"]
    return out | {"memory_rss": stat.get("total_rss"), "memory_failcnt": _int(read("memory.failcnt")),
                  "oom_kills": oom_kills_v1(read) if out["memory_usage"] is not None else None}


def spec_v2(read: Reader) -> dict[str, int | None]:
    return {"memory_limit": _limit(read("memory.max"))}


def spec_v1(read: Reader) -> dict[str, int | None]:
    return {"memory_limit": _limit(read("memory.limit_in_bytes"))}


def oom_kills_v2(read: Reader) -> int:
    return parse_flat_keyed(read("memory.events") or "").get("oom_kill", 0)


def oom_kills_v1(read: Reader) -> int:
    control = parse_flat_keyed(read("memory.oom_control") or "")
    if "oom_kill" in control:
        return control["oom_kill"]
    return _int(read("memory.failcnt")) or 0
