"""`pyrun stats [POD] [--watch]`: cpu, memory and pids of each container's cgroup.

The targets (each pod and each of its containers) come from
pyrun.runtime.resources.stats_targets(config, pod), from pod state.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import click

from pyrun.cgroups import Stats

COLUMNS = ("NAME", "CPU %", "CPU TIME", "THROTTLED", "MEM USAGE", "WORKING SET", "MEM LIMIT", "PIDS", "HUGETLB")


@dataclass(frozen=True)
class StatsRow:
    name: str
    stats: Stats
    cpu_percent: float | None = None  # over the last interval, only in --watch mode


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _seconds(ns: int | None) -> str:
    return "-" if ns is None else f"{ns / 1e9:.2f}s"


def _cells(row: StatsRow) -> tuple[str, ...]:
    s = row.stats
    throttled = "-" if s.cpu_nr_throttled is None else f"{s.cpu_nr_throttled} ({_seconds(s.cpu_throttled_ns)})"
    return (row.name,
            "-" if row.cpu_percent is None else f"{row.cpu_percent:.1f}",
            _seconds(s.cpu_usage_ns),
            throttled,
            human_bytes(s.memory_usage),
            human_bytes(s.memory_working_set),
            "max" if s.memory_limit is None and s.memory_usage is not None else human_bytes(s.memory_limit),
            "-" if s.pids_current is None else str(s.pids_current),
            ",".join(f"{size}:{human_bytes(n)}" for size, n in sorted(s.hugetlb_usage.items())) or "-")


def format_stats_table(rows: list[StatsRow]) -> str:
    """A left-aligned table with one line per container (pure)."""
    table = [COLUMNS] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in table)


def cpu_percent(before: Stats | None, after: Stats, seconds: float) -> float | None:
    """CPU use between two samples, 100 = one full CPU."""
    if before is None or before.cpu_usage_ns is None or after.cpu_usage_ns is None or seconds <= 0:
        return None
    return (after.cpu_usage_ns - before.cpu_usage_ns) / (seconds * 1e9) * 100


@click.command("stats")
@click.argument("pod", required=False)
@click.option("--watch", is_flag=True, help="Refresh every 2 seconds until interrupted.")
@click.option("--interval", default=2.0, show_default=True, hidden=True)
@click.pass_obj
def stats(config, pod: str | None, watch: bool, interval: float) -> None:
    """Show cpu, memory, pids and hugetlb usage of each pod and its containers (of every pod without POD)."""
    from pyrun.cgroups import open_cgroups
    from pyrun.runtime.resources import stats_targets

    cg = open_cgroups(config)
    previous: dict[str, Stats] = {}
    last = time.monotonic()
    while True:
        now = time.monotonic()
        rows = []
        for name, path in stats_targets(config, pod):
            s = cg.stats(path)
            rows.append(StatsRow(name, s, cpu_percent(previous.get(name), s, now - last)))
            previous[name] = s
        last = now
        if watch:
            click.clear()
        click.echo(format_stats_table(rows))
        if not watch:
            return
        time.sleep(interval)
