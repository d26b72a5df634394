"""cAdvisor's container_* series from pyrun's samples (pure: no I/O, no clock).

Names, types and units follow cAdvisor (what the kubelet serves at /metrics/cadvisor), so the
dashboards and alerts written for Kubernetes work unchanged:

- labels namespace, pod, container, image, id (the cgroup path, as cAdvisor's `id`); a pod's own
  cgroup has container="" and image="", as in cAdvisor, so `container!=""` selects containers;
- container_cpu_usage_seconds_total has cAdvisor's extra label cpu="total" (per-CPU usage off, as
  the kubelet runs cAdvisor);
- container_spec_memory_limit_bytes is 0 without a limit and container_spec_cpu_quota is absent
  without a quota (cAdvisor does both);
- container_memory_failcnt is a counter in cAdvisor but prometheus_client allows the counter type only
  for names ending in _total, so it is exported untyped under cAdvisor's name (PromQL treats both alike).

A value that could not be read (a controller missing on this host) is left out, never exported as 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

LABELS = ("namespace", "pod", "container", "image", "id")


@dataclass(frozen=True)
class Series:
    name: str
    type: str  # counter, gauge or unknown
    help: str
    value: Callable[[Any, float], float | None]  # (target, now in seconds) -> value or None
    extra: tuple[tuple[str, str], ...] = ()  # constant labels (name, value)


def _ns(value: int | None) -> float | None:
    return None if value is None else value / 1e9


def _memory_limit(sample) -> int | None:
    if sample.memory_usage is None:
        return None  # no memory controller: nothing known
    return sample.memory_limit or 0


SERIES: tuple[Series, ...] = (
    Series("container_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed in seconds.",
           lambda t, now: _ns(t.sample.cpu_usage_ns), (("cpu", "total"),)),
    Series("container_cpu_cfs_throttled_periods_total", "counter", "Number of throttled period intervals.",
           lambda t, now: t.sample.cpu_nr_throttled),
    Series("container_cpu_cfs_throttled_seconds_total", "counter",
           "Total time duration the container has been throttled.", lambda t, now: _ns(t.sample.cpu_throttled_ns)),
    Series("container_memory_working_set_bytes", "gauge", "Current working set in bytes.",
           lambda t, now: t.sample.memory_working_set),
    Series("container_memory_rss", "gauge", "Size of RSS in bytes.", lambda t, now: t.sample.memory_rss),
    Series("container_memory_usage_bytes", "gauge",
           "Current memory usage in bytes, including all memory regardless of when it was accessed.",
           lambda t, now: t.sample.memory_usage),
    Series("container_memory_failcnt", "unknown", "Number of memory usage hits limits.",
           lambda t, now: t.sample.memory_failcnt),
    Series("container_oom_events_total", "counter", "Count of out of memory events observed for the container.",
           lambda t, now: t.sample.oom_kills),
    Series("container_spec_memory_limit_bytes", "gauge", "Memory limit for the container.",
           lambda t, now: _memory_limit(t.sample)),
    Series("container_spec_cpu_quota", "gauge", "CPU quota of the container.", lambda t, now: t.sample.cpu_quota),
    Series("container_spec_cpu_period", "gauge", "CPU period of the container.",
           lambda t, now: t.sample.cpu_period),
    Series("container_spec_cpu_shares", "gauge", "CPU share of the container.",
           lambda t, now: t.sample.cpu_shares),
    Series("container_processes", "gauge", "Number of processes running inside the container.",
           lambda t, now: t.sample.processes),
    Series("container_start_time_seconds", "gauge", "Start time of the container since unix epoch in seconds.",
           lambda t, now: _ns(t.started_at_ns)),
    Series("container_last_seen", "gauge", "Last time a container was seen by the exporter.",
           lambda t, now: now),
)


def label_values(target) -> tuple[str, ...]:
    """The values of LABELS for one target (a pyrun.runtime.metrics_source.Target)."""
    return (target.namespace, target.pod, target.container, target.image, target.cgroup)


def values(target, now: float) -> dict[str, float]:
    """{series name: value} of one target, without the values that are not known."""
    out = {}
    for s in SERIES:
        v = s.value(target, now)
        if v is not None:
            out[s.name] = float(v)
    return out


def families(targets: Iterable, now: float) -> list:
    """The prometheus_client metric families of every series over `targets` (now: the scrape's time)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, UnknownMetricFamily
    kinds = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily, "unknown": UnknownMetricFamily}
    out = {}
    for s in SERIES:
        names = list(LABELS) + [k for k, _ in s.extra]
        out[s.name] = (kinds[s.type](s.name, s.help, labels=names), tuple(v for _, v in s.extra))
    for target in targets:
        labels = label_values(target)
        for name, value in values(target, now).items():
            family, extra = out[name]
            family.add_metric(labels + extra, value)
    return [family for family, _ in out.values()]
