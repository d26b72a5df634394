"""`pyrun stats [POD] [--watch]`: cpu, memory and pids of each container's cgroup.

The samples (each pod, then each of its containers) and the CPU rate between two come from
pyrun.runtime.api.Runtime.stats; this module only prints them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import click

COLUMNS = ("NAME", "CPU %", "CPU TIME", "THROTTLED", "MEM USAGE", "WORKING SET", "MEM LIMIT", "PIDS", "HUGETLB")


@dataclass(frozen=True)
class StatsRow:
    name: str
    stats: Any  # a pyrun.cgroups.Stats
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


@click.command("stats")
@click.argument("pod", required=False)
@click.option("--watch", is_flag=True, help="Refresh every 2 seconds until interrupted.")
@click.option("--interval", default=2.0, show_default=True, hidden=True)
@click.pass_obj
def stats(config, pod: str | None, watch: bool, interval: float) -> None:
    """Show cpu, memory, pids and hugetlb usage of each pod and its containers (of every pod without POD)."""
    from pyrun.runtime.api import Runtime
    rt = Runtime(config)  # keeps the previous sample: --watch shows the CPU rate since then
    while True:
        rows = [StatsRow(u.name, u.stats, u.cpu_percent) for u in rt.stats(pod)]
        if watch:
            click.clear()
        click.echo(format_stats_table(rows))
        if not watch:
            return
        time.sleep(interval)
