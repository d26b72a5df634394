"""cgroup Stats -> CRI ContainerStats / PodSandboxStats.

`usage_nano_cores` needs two samples: CpuRates keeps the previous (time, usage)
per id and returns the rate since then (None on the first sample), as containerd does.
Entries of removed containers and pods are dropped (`forget`, `forget_except`), so the
table is as big as what exists, not as everything that ever existed.
"""
from __future__ import annotations

import threading

from cri_api.v1 import api_pb2 as pb


def cpu_rate(prev: tuple[int, int] | None, now_ns: int, usage_ns: int) -> int | None:
    """Nanocores used between two samples (pure); None without a usable previous sample."""
    if prev is None:
        return None
    t0, u0 = prev
    if now_ns <= t0 or usage_ns < u0:
        return None
    return (usage_ns - u0) * 1_000_000_000 // (now_ns - t0)


class CpuRates:
    def __init__(self) -> None:
        self._last: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

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


def _u(value: int | None) -> pb.UInt64Value | None:
    return None if value is None else pb.UInt64Value(value=max(0, int(value)))


def cpu_usage(stats, now_ns: int, rate: int | None) -> pb.CpuUsage:
    return pb.CpuUsage(timestamp=now_ns, usage_core_nano_seconds=_u(getattr(stats, "cpu_usage_ns", None)),
                       usage_nano_cores=_u(rate))


def memory_usage(stats, now_ns: int) -> pb.MemoryUsage:
    usage = getattr(stats, "memory_usage", None)
    working = getattr(stats, "memory_working_set", None)
    limit = getattr(stats, "memory_limit", None)
    available = limit - working if limit is not None and working is not None and limit >= working else None
    return pb.MemoryUsage(timestamp=now_ns, working_set_bytes=_u(working), usage_bytes=_u(usage),
                          available_bytes=_u(available))


def container_stats(attributes: pb.ContainerAttributes, stats, now_ns: int, rate: int | None,
                    writable: pb.FilesystemUsage | None = None) -> pb.ContainerStats:
    return pb.ContainerStats(attributes=attributes, cpu=cpu_usage(stats, now_ns, rate),
                             memory=memory_usage(stats, now_ns), writable_layer=writable)


def container_attributes(c: pb.Container) -> pb.ContainerAttributes:
    return pb.ContainerAttributes(id=c.id, metadata=c.metadata, labels=c.labels, annotations=c.annotations)


def sandbox_attributes(s: pb.PodSandbox) -> pb.PodSandboxAttributes:
    return pb.PodSandboxAttributes(id=s.id, metadata=s.metadata, labels=s.labels, annotations=s.annotations)


def sandbox_stats(attributes: pb.PodSandboxAttributes, stats, now_ns: int, rate: int | None,
                  containers: list[pb.ContainerStats]) -> pb.PodSandboxStats:
    pids = getattr(stats, "pids_current", None)
    return pb.PodSandboxStats(attributes=attributes, linux=pb.LinuxPodSandboxStats(
        cpu=cpu_usage(stats, now_ns, rate), memory=memory_usage(stats, now_ns),
        process=pb.ProcessUsage(timestamp=now_ns, process_count=_u(pids)), containers=containers))


def filesystem_usage(mountpoint: str, used_bytes: int, inodes: int, now_ns: int) -> pb.FilesystemUsage:
    return pb.FilesystemUsage(timestamp=now_ns, fs_id=pb.FilesystemIdentifier(mountpoint=mountpoint),
                              used_bytes=pb.UInt64Value(value=used_bytes), inodes_used=pb.UInt64Value(value=inodes))


def tree_usage(path) -> tuple[int, int]:
    """(bytes, inodes) of a directory tree (allocated blocks, each inode once); (0, 0) if missing."""
    from pyrun.linux.tree import tree_usage as usage
    try:
        _, allocated, inodes = usage(path)
    except OSError:  # the tree changed while we walked it (a container writes its layer)
        return 0, 0
    return allocated, inodes


__all__ = ["CpuRates", "cpu_rate", "container_stats", "sandbox_stats", "filesystem_usage", "tree_usage",
           "container_attributes", "sandbox_attributes"]
