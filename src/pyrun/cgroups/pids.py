"""The pids controller: a cap on tasks (processes and threads) in the cgroup.

Kernel docs: Documentation/admin-guide/cgroup-v2.rst ("PID"), cgroup-v1/pids.rst.
The same file names on v1 and v2: pids.max (fork()/clone() fail with EAGAIN once
pids.current would exceed it), pids.current. The root cgroup has neither.
"""
from __future__ import annotations

from pyrun.cgroups.cpu import Reader
from pyrun.cgroups.limits import Limits

CONTROLLER = "pids"
OPTIONAL_FILES: frozenset[str] = frozenset()


def render_v2(limits: Limits) -> dict[str, str]:
    return {} if limits.pids_max is None else {"pids.max": str(limits.pids_max)}


render_v1 = render_v2


def stats(read: Reader) -> dict[str, int | None]:
    text = (read("pids.current") or "").strip()
    return {"pids_current": int(text) if text.isdigit() else None}


stats_v1 = stats_v2 = stats
