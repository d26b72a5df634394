"""What a container sees at /sys/fs/cgroup: its own cgroups, as runc shows them (pure).

- pure cgroup v2: a cgroup namespace rooted at the container's cgroup and a cgroup2 mount, so
  /sys/fs/cgroup is the container's cgroup (memory.max, cpu.max) and /proc/self/cgroup reads 0::/;
- v1 and hybrid: a tmpfs at /sys/fs/cgroup with a bind mount of the container's own directory of each
  hierarchy it is in, named as the host's mount point (memory, cpu,cpuacct, unified), plus a symlink
  per controller of a comount (cpu -> cpu,cpuacct), as runc does for v1.

pyrun.runtime.rootfs.mount_cgroup_view mounts it (read-only unless the container is privileged).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from pyrun.cgroups.layout import Mount


@dataclass(frozen=True)
class CgroupView:
    namespace: bool = False
    binds: tuple[tuple[str, str], ...] = ()  # (the container's host directory, name under /sys/fs/cgroup)
    links: tuple[tuple[str, str], ...] = ()  # (name, target) symlinks under /sys/fs/cgroup


def container_view(procs_files: list[str] | tuple[str, ...], mounts: list[Mount]) -> CgroupView:
    """The view of a container whose cgroups are the directories of `procs_files` (one cgroup.procs per
    hierarchy), given the host's cgroup mounts (pyrun.cgroups.layout.parse_mountinfo). No cgroups: empty."""
    if not procs_files or not mounts:
        return CgroupView()
    if all(m.fstype == "cgroup2" for m in mounts):
        return CgroupView(namespace=True)
    binds: dict[str, str] = {}
    links: dict[str, str] = {}
    for procs in procs_files:
        directory = os.path.dirname(procs)
        mount = _mount_of(directory, mounts)
        if mount is None:
            continue
        name = os.path.basename(mount.mount_point.rstrip("/"))
        if name in binds:
            continue
        binds[name] = directory
        if mount.fstype == "cgroup":
            for option in mount.super_options:
                if option in name.split(",") and option != name:
                    links[option] = name
    return CgroupView(binds=tuple((d, n) for n, d in binds.items()),
                      links=tuple((n, t) for n, t in links.items() if n not in binds))


def _mount_of(directory: str, mounts: list[Mount]) -> Mount | None:
    """The cgroup mount `directory` lies in (the longest mount point above it)."""
    best = None
    for m in mounts:
        point = m.mount_point.rstrip("/") or "/"
        if (directory + "/").startswith(point + "/") and (best is None or len(point) > len(best.mount_point)):
            best = m
    return best
