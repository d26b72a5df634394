"""pyrun.cgroups.view: what a container sees at /sys/fs/cgroup, from its cgroup.procs files and the host's mounts."""
from __future__ import annotations

from pyrun.cgroups.layout import parse_mountinfo
from pyrun.cgroups.view import CgroupView, container_view

HYBRID = """\
30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
"""
UNIFIED = "30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"


def procs(*dirs):
    return [f"{d}/pyrun/pod/c1/cgroup.procs" for d in dirs]


def test_v1_and_hybrid_bind_each_hierarchy_under_its_mount_name_with_comount_links():
    view = container_view(procs("/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/unified"),
                          parse_mountinfo(HYBRID))
    assert view == CgroupView(binds=(("/sys/fs/cgroup/cpu,cpuacct/pyrun/pod/c1", "cpu,cpuacct"),
                                     ("/sys/fs/cgroup/memory/pyrun/pod/c1", "memory"),
                                     ("/sys/fs/cgroup/unified/pyrun/pod/c1", "unified")),
                              links=(("cpu", "cpu,cpuacct"), ("cpuacct", "cpu,cpuacct")))


def test_pure_v2_is_a_cgroup_namespace():
    assert container_view(procs("/sys/fs/cgroup"), parse_mountinfo(UNIFIED)) == CgroupView(namespace=True)


def test_no_cgroups_or_a_directory_outside_every_mount_shows_nothing():
    assert container_view([], parse_mountinfo(HYBRID)) == CgroupView()
    assert container_view(["/elsewhere/x/cgroup.procs"], parse_mountinfo(HYBRID)) == CgroupView()
