"""cgroup Stats -> CRI ContainerStats / PodSandboxStats (pure).

The samples and the CPU rate between two (`usage_nano_cores`) come from the runtime
(pyrun.runtime.api.Runtime.container_usage / pod_usage, pyrun.runtime.stats).
"""
from __future__ import annotations

from cri_api.v1 import api_pb2 as pb


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


__all__ = ["container_stats", "sandbox_stats", "filesystem_usage", "container_attributes", "sandbox_attributes"]
