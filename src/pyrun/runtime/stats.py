"""Resource usage of pods and containers: one cgroup sample each, and the CPU rate between two.

The rate needs two samples: CpuRates keeps the previous (time, usage) per key (a container
id, or "pod:<id>") and returns the rate since then, None on the first sample, as containerd
does. `pyrun stats --watch` shows it as a percentage (100 = one CPU), the CRI as nanocores.
Keys of removed containers and pods are dropped (`forget`, `forget_except`), so the table
is as big as what exists, not as everything that ever existed.
"""
from __future__ import annotations

import _thread  # threading.Lock is _thread.allocate_lock; importing threading costs the CLI

from pyrun.frozen import Frozen



def cpu_rate(prev: tuple[int, int] | None, now_ns: int, usage_ns: int) -> int | None:
    """Nanocores used between two samples (pure); None without a usable previous sample."""
    if prev is None:
        return None
    t0, u0 = prev
    if now_ns <= t0 or usage_ns < u0:
        return None
    return (usage_ns - u0) * 1_000_000_000 // (now_ns - t0)


def cpu_percent(nanocores: int | None) -> float | None:
    """A rate in nanocores as a percentage of one CPU (pure)."""
    return None if nanocores is None else nanocores / 10_000_000


class CpuRates:
    """The previous CPU sample per key; thread-safe (the CRI server samples from many threads)."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, int]] = {}
        self._lock = _thread.allocate_lock()

    def sample(self, key: str, now_ns: int, usage_ns: int | None) -> int | None:
        if usage_ns is None:
            return None
        with self._lock:
            rate = cpu_rate(self._last.get(key), now_ns, usage_ns)
            self._last[key] = (now_ns, usage_ns)
        return rate

    def forget(self, key: str) -> None:
        with self._lock:
            self._last.pop(key, None)

    def forget_except(self, keys: set[str]) -> None:
        with self._lock:
            for k in [k for k in self._last if k not in keys]:
                del self._last[k]

    def __len__(self) -> int:
        return len(self._last)


def pod_key(pod_id: str) -> str:
    return "pod:" + pod_id


class Usage(Frozen):
    """One sample of a pod's or a container's cgroup.

    stats: a pyrun.cgroups.Stats (None if the cgroup could not be read); cpu_nanocores: the rate since
    the previous sample of the same key (None on the first); writable: (bytes, inodes) of a container's
    writable layer and the directory it lives in (None for a pod, or when not asked for)."""

    name: str
    timestamp_ns: int
    stats: object | None
    cpu_nanocores: int | None
    writable: tuple[int, int] | None = None
    writable_dir: str = ""

    @property
    def cpu_percent(self) -> float | None:
        return cpu_percent(self.cpu_nanocores)


def tree_usage(path) -> tuple[int, int]:
    """(bytes, inodes) of a directory tree (allocated blocks, each inode once); (0, 0) if missing."""
    from pyrun.linux.tree import tree_usage as usage
    try:
        _, allocated, inodes = usage(path)
    except OSError:  # the tree changed while we walked it (a container writes its layer)
        return 0, 0
    return allocated, inodes
