"""Fixtures for the cgroups unit tests: mountinfo texts and fake cgroup trees in temp dirs."""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

from pyrun.cgroups import Cgroups, detect_layout

# Pure cgroup v2 (a systemd-less qemu guest or a modern distribution).
MOUNTINFO_V2 = """\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
24 26 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
27 24 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
"""

# Legacy cgroup v1 with the usual comounts (Debian 10 / CentOS 7 style).
MOUNTINFO_V1 = """\
25 24 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:4 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:5 - cgroup cgroup rw,xattr,name=systemd
29 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,cpu,cpuacct
30 25 0:28 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,memory
31 25 0:29 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,pids
32 25 0:30 / /sys/fs/cgroup/hugetlb rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,hugetlb
33 25 0:31 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,freezer
34 25 0:32 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,net_cls,net_prio
"""

# This VM: hybrid, every controller on v1 except hugetlb, which is on cgroup2 at /unified.
MOUNTINFO_HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

PROC_CGROUPS = """\
#subsys_name\thierarchy\tnum_cgroups\tenabled
cpuset\t3\t1\t1
cpu\t1\t1\t1
cpuacct\t2\t1\t1
blkio\t7\t1\t1
memory\t4\t21\t1
devices\t5\t1\t1
freezer\t6\t1\t1
net_cls\t0\t1\t1
perf_event\t0\t1\t1
net_prio\t0\t1\t1
hugetlb\t0\t1\t1
pids\t8\t1\t1
"""

V2_CONTROLLERS = "cpuset cpu io memory hugetlb pids rdma misc"

MOUNTINFO = {"v2": MOUNTINFO_V2, "v1": MOUNTINFO_V1, "hybrid": MOUNTINFO_HYBRID}
DEFAULT_V2_CONTROLLERS = {"v2": V2_CONTROLLERS, "v1": "", "hybrid": "hugetlb"}


def layout(kind: str, v2_controllers: str | None = None, proc_cgroups: str = PROC_CGROUPS):
    text = DEFAULT_V2_CONTROLLERS[kind] if v2_controllers is None else v2_controllers
    return detect_layout(MOUNTINFO[kind], proc_cgroups, lambda mp: text)


def fake_rmdir(path: str, dir_fd: int | None = None, shown=None) -> None:
    """rmdir as cgroupfs does it: control files go with the directory, child cgroups make it EBUSY."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
    try:
        entries = list(os.scandir(fd))
        if any(e.is_dir(follow_symlinks=False) for e in entries):
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
        for e in entries:
            os.unlink(e.name, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(path, dir_fd=dir_fd)


@dataclass
class FakeTree:
    """A temp dir shaped like /sys/fs/cgroup for one layout."""

    kind: str
    root: Path
    cgroups: Cgroups
    mounts: dict[str, Path] = field(default_factory=dict)

    def file(self, controller: str, cgroup: str, name: str) -> Path:
        return self.mounts[controller] / cgroup.lstrip("/") / name

    def read(self, controller: str, cgroup: str, name: str) -> str:
        return self.file(controller, cgroup, name).read_text()

    def put(self, controller: str, cgroup: str, name: str, text: str) -> None:
        p = self.file(controller, cgroup, name)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def fake_tree(tmp_path: Path, kind: str, v2_controllers: str | None = None, parent: str = "pyrun",
              **kw) -> FakeTree:
    lay = layout(kind, v2_controllers)
    cg = Cgroups(lay, parent=parent, root=tmp_path, rmdir=fake_rmdir, **kw)
    tree = FakeTree(kind, tmp_path, cg)
    for controller, directory in cg.paths(cg.parent).items():
        mount = Path(directory[: -len(cg.parent.cgroupfs)])
        mount.mkdir(parents=True, exist_ok=True)
        tree.mounts[controller] = mount
    v2 = cg.layout.unified
    if v2 is not None:
        Path(v2.mount_point).mkdir(parents=True, exist_ok=True)
        (Path(v2.mount_point) / "cgroup.controllers").write_text(
            (DEFAULT_V2_CONTROLLERS[kind] if v2_controllers is None else v2_controllers) + "\n")
        (Path(v2.mount_point) / "cgroup.subtree_control").write_text("")
        tree.mounts["unified"] = Path(v2.mount_point)
    return tree


@dataclass
class Res:
    """Stands in for pyrun.spec's Resources."""

    requests: dict = field(default_factory=dict)
    limits: dict = field(default_factory=dict)
