"""Pure helpers for the benchmarks: summary statistics, /proc parsing, markdown rendering.

No side effects here (no processes, no files), so everything is unit-tested in
tests/unit/test_bench_stats.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence


# --- statistics -----------------------------------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of an empty sample")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within 0..100, got {q}")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    p90: float
    min: float
    max: float
    mean: float

    def to_dict(self) -> dict:
        return {"n": self.n, "median": self.median, "p90": self.p90, "min": self.min, "max": self.max,
                "mean": self.mean}


def summarize(values: Sequence[float]) -> Summary:
    """n, median, p90, min, max and mean of a non-empty sample."""
    if not values:
        raise ValueError("summary of an empty sample")
    return Summary(n=len(values), median=median(values), p90=percentile(values, 90), min=min(values),
                   max=max(values), mean=sum(values) / len(values))


# --- /proc parsing --------------------------------------------------------------------------------

def parse_smaps_rollup(text: str) -> dict[str, int]:
    """The `Name: N kB` fields of /proc/<pid>/smaps_rollup (proc(5)) as kB; the header line is skipped."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].endswith(":") and parts[2] == "kB" and parts[1].isdigit():
            out[parts[0][:-1]] = int(parts[1])
    return out


def memory_kib(rollup: dict[str, int]) -> dict[str, int]:
    """RSS, PSS and USS (private clean + private dirty) in KiB from a parsed smaps_rollup."""
    uss = rollup.get("Private_Clean", 0) + rollup.get("Private_Dirty", 0)
    return {"rss": rollup.get("Rss", 0), "pss": rollup.get("Pss", 0), "uss": uss}


@dataclass(frozen=True)
class ImportTime:
    module: str
    self_us: int
    cumulative_us: int
    depth: int  # nesting level in the -X importtime tree (0 = imported directly)


def parse_importtime(stderr: str) -> list[ImportTime]:
    """Entries of `python -X importtime` output (`import time: self | cumulative | name`)."""
    out = []
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        fields = line[len("import time:"):].split("|")
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue  # the header line
        name = fields[2].rstrip()
        stripped = name.lstrip(" ")
        depth = (len(name) - len(stripped) - 1) // 2  # one space after `|`, then two per level
        out.append(ImportTime(stripped, int(fields[0]), int(fields[1]), max(depth, 0)))
    return out


def top_imports(entries: Iterable[ImportTime], n: int = 10, prefix: str = "") -> list[ImportTime]:
    """The n entries with the largest cumulative time, optionally only modules under `prefix`."""
    picked = [e for e in entries if not prefix or e.module == prefix or e.module.startswith(prefix + ".")]
    return sorted(picked, key=lambda e: e.cumulative_us, reverse=True)[:n]


# --- rendering ------------------------------------------------------------------------------------

def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def fmt_mib(kib: float) -> str:
    return f"{kib / 1024:.2f}"


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub markdown table; `|` in cells is escaped. Numbers are right-aligned."""
    rows = [[str(c).replace("|", "\\|") for c in row] for row in rows]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row has {len(row)} cells, the table has {len(headers)} columns: {row}")
    numeric = [bool(rows) and all(_looks_numeric(r[i]) for r in rows) for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---:" if num else "---" for num in numeric) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _looks_numeric(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return cell in ("", "-")
    return True


def verdict(value: float, target: float | None) -> str:
    """`ok` when value <= target, else how many times over the target; `-` without a target."""
    if target is None:
        return "-"
    return "ok" if value <= target else f"{value / target:.1f}x over"
