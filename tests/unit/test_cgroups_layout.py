import pytest

from pyrun.cgroups.layout import detect_layout, parse_mountinfo, parse_proc_cgroups
from pyrun.errors import CgroupError

from _cgroups_unit_helpers import MOUNTINFO_HYBRID, MOUNTINFO_V1, MOUNTINFO_V2, PROC_CGROUPS, layout


def where(lay, controller):
    h = lay.hierarchy_for(controller)
    return None if h is None else (h.version, h.mount_point)


def test_pure_v2():
    lay = layout("v2")
    assert lay.mode == "unified"
    for c in ("cpu", "cpuacct", "memory", "pids", "hugetlb", "freezer"):
        assert where(lay, c) == (2, "/sys/fs/cgroup")
    assert [h.mount_point for h in lay.used_hierarchies()] == ["/sys/fs/cgroup"]


def test_v1_with_comounts():
    lay = layout("v1", proc_cgroups="")  # no /proc/cgroups: options decide
    assert lay.mode == "legacy"
    assert where(lay, "cpu") == where(lay, "cpuacct") == (1, "/sys/fs/cgroup/cpu,cpuacct")
    assert where(lay, "hugetlb") == (1, "/sys/fs/cgroup/hugetlb")
    assert lay.hierarchy_for("cpu").controllers == {"cpu", "cpuacct"}
    used = [h.mount_point for h in lay.used_hierarchies()]
    assert used == ["/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids",
                    "/sys/fs/cgroup/hugetlb", "/sys/fs/cgroup/freezer"]


def test_hybrid_this_vm():
    lay = layout("hybrid")
    assert lay.mode == "hybrid"
    assert where(lay, "cpu") == (1, "/sys/fs/cgroup/cpu")
    assert where(lay, "cpuacct") == (1, "/sys/fs/cgroup/cpuacct")
    assert where(lay, "memory") == (1, "/sys/fs/cgroup/memory")
    assert where(lay, "freezer") == (1, "/sys/fs/cgroup/freezer")
    assert where(lay, "hugetlb") == (2, "/sys/fs/cgroup/unified")
    assert "/sys/fs/cgroup/unified" in [h.mount_point for h in lay.used_hierarchies()]


def test_missing_controller_is_named_only_on_require():
    lay = layout("hybrid", v2_controllers="")
    assert lay.hierarchy_for("hugetlb") is None
    with pytest.raises(CgroupError, match=r"the cgroup controller `hugetlb` is not available under "
                                          r"/sys/fs/cgroup/unified: it is not in /sys/fs/cgroup/unified/"
                                          r"cgroup.controllers \(which lists nothing\)"):
        lay.require("hugetlb")


def test_disabled_controller():
    lay = layout("v2", proc_cgroups=PROC_CGROUPS.replace("memory\t4\t21\t1", "memory\t0\t1\t0"))
    with pytest.raises(CgroupError, match="`memory` is not available on this kernel: /proc/cgroups"):
        lay.require("memory")


def test_v1_without_v2_mount_names_the_reason():
    lay = layout("v1")
    with pytest.raises(CgroupError, match="no cgroup v1 hierarchy mounts it and there is no cgroup2 mount"):
        lay.require("rdma")


def test_parse_mountinfo_unescapes_and_skips_other_filesystems():
    text = MOUNTINFO_V2 + r"50 27 0:40 / /mnt/my\040cg rw - cgroup2 cgroup2 rw" + "\n"
    mounts = parse_mountinfo(text)
    assert [m.mount_point for m in mounts] == ["/sys/fs/cgroup", "/mnt/my cg"]


def test_bind_mounted_subtree_prefers_the_real_root():
    text = "60 1 0:27 /docker/abc /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n" \
           "61 1 0:27 / /host/cpu rw - cgroup cgroup rw,cpu\n"
    lay = detect_layout(text, PROC_CGROUPS, lambda mp: "")
    assert where(lay, "cpu") == (1, "/host/cpu")


def test_parse_proc_cgroups():
    assert parse_proc_cgroups(PROC_CGROUPS)["hugetlb"] is True
    assert "#subsys_name" not in parse_proc_cgroups(PROC_CGROUPS)


def test_mountinfo_of_each_layout_parses():
    for text in (MOUNTINFO_V1, MOUNTINFO_V2, MOUNTINFO_HYBRID):
        assert parse_mountinfo(text)
