import os

import pytest

from pyrun import explain
from pyrun.cgroups import CgroupPath, Limits
from pyrun.errors import CgroupError

from _cgroups_unit_helpers import fake_tree

MI = 1024 * 1024
LIMITS = Limits(cpu_shares=512, cpu_quota=50000, cpu_period=100000, memory_max=64 * MI,
                hugetlb={"2MB": 4 * MI}, pids_max=10)
POD = "/pyrun/kubepods/burstable/pod1"
CTR = POD + "/c1"


@pytest.fixture
def lines():
    rec = explain.record()
    yield rec
    explain.stop_recording()


def make(tree, limits=LIMITS):
    cg = tree.cgroups
    pod = cg.pod_path("Burstable", "1")
    cg.create(pod, Limits(cpu_shares=2))
    ctr = cg.container_path(pod, "c1")
    cg.create(ctr, limits)
    return pod, ctr


def test_v2_create_enables_controllers_top_down_and_writes_limits(tmp_path, lines):
    tree = fake_tree(tmp_path, "v2")
    make(tree)
    root = tmp_path
    for level in ("", "/pyrun", "/pyrun/kubepods", "/pyrun/kubepods/burstable", POD):
        for c in ("cpu", "memory", "pids", "hugetlb"):
            assert f"echo +{c} > {root}{level}/cgroup.subtree_control" in lines
    assert f"echo +cpu > {root}{CTR}/cgroup.subtree_control" not in lines  # never in the leaf
    assert tree.read("cpu", CTR, "cpu.weight") == "20"
    assert tree.read("cpu", CTR, "cpu.max") == "50000 100000"
    assert f"echo '50000 100000' > {root}{CTR}/cpu.max" in lines
    assert tree.read("memory", CTR, "memory.max") == str(64 * MI)
    assert not tree.file("memory", CTR, "memory.swap.max").exists()  # no swap accounting here
    assert tree.read("pids", CTR, "pids.max") == "10"
    assert tree.read("hugetlb", CTR, "hugetlb.2MB.max") == str(4 * MI)
    assert tree.read("cpu", POD, "cpu.weight") == "1"


def test_v2_already_enabled_controllers_are_not_written_again(tmp_path, lines):
    tree = fake_tree(tmp_path, "v2")
    (tmp_path / "cgroup.subtree_control").write_text("cpu memory pids hugetlb\n")
    tree.cgroups.create(CgroupPath.parse("/pyrun/x"), Limits(cpu_shares=2))
    assert not any(line.endswith(f"{tmp_path}/cgroup.subtree_control") for line in lines)


def test_v2_optional_files_written_where_present(tmp_path):
    tree = fake_tree(tmp_path, "v2")
    tree.put("memory", CTR, "memory.swap.max", "max")
    tree.put("hugetlb", CTR, "hugetlb.2MB.rsvd.max", "max")
    make(tree)
    assert tree.read("memory", CTR, "memory.swap.max") == "0"
    assert tree.read("hugetlb", CTR, "hugetlb.2MB.rsvd.max") == str(4 * MI)


def test_v1_create_writes_each_hierarchy(tmp_path, lines):
    tree = fake_tree(tmp_path, "v1")
    tree.put("memory", CTR, "memory.memsw.limit_in_bytes", "9223372036854771712")
    make(tree)
    assert tree.file("cpu", CTR, "cpu.shares") == tmp_path / ("cpu,cpuacct" + CTR) / "cpu.shares"
    assert tree.read("cpu", CTR, "cpu.shares") == "512"
    assert tree.read("cpu", CTR, "cpu.cfs_period_us") == "100000"
    assert tree.read("cpu", CTR, "cpu.cfs_quota_us") == "50000"
    assert tree.read("memory", CTR, "memory.limit_in_bytes") == str(64 * MI)
    assert tree.read("memory", CTR, "memory.memsw.limit_in_bytes") == str(64 * MI)
    assert tree.read("pids", CTR, "pids.max") == "10"
    assert tree.read("hugetlb", CTR, "hugetlb.2MB.limit_in_bytes") == str(4 * MI)
    assert (tmp_path / "freezer" / CTR.lstrip("/")).is_dir()
    assert not any("subtree_control" in line for line in lines)
    assert tree.read("cpu", POD, "cpu.shares") == "2"


def test_hybrid_puts_hugetlb_on_cgroup2(tmp_path, lines):
    tree = fake_tree(tmp_path, "hybrid")
    make(tree)
    assert tree.read("cpu", CTR, "cpu.shares") == "512"
    assert tree.read("memory", CTR, "memory.limit_in_bytes") == str(64 * MI)
    assert tree.file("hugetlb", CTR, "x").parent == tmp_path / ("unified" + CTR)
    assert tree.read("hugetlb", CTR, "hugetlb.2MB.max") == str(4 * MI)
    assert f"echo +hugetlb > {tmp_path}/unified/cgroup.subtree_control" in lines
    assert not any("+cpu" in line for line in lines)  # cpu lives on v1 here


def test_missing_controller_fails_only_when_a_limit_needs_it(tmp_path):
    tree = fake_tree(tmp_path, "hybrid", v2_controllers="")
    cg = tree.cgroups
    pod, ctr = make(tree, Limits(cpu_shares=2, pids_max=5))  # no hugepages: fine
    assert tree.read("pids", CTR, "pids.max") == "5"
    with pytest.raises(CgroupError, match=f"the cgroup controller `hugetlb` is not available under "
                                          f"{tmp_path}/unified: "):
        cg.create(cg.container_path(pod, "c2"), Limits(hugetlb={"2MB": 2 * MI}))
    assert not (tmp_path / "memory" / POD.lstrip("/") / "c2").exists()  # failed before creating anything


def test_v2_controller_refused_by_the_kernel_is_named(tmp_path):
    tree = fake_tree(tmp_path, "v2")
    (tmp_path / "pyrun").mkdir()
    (tmp_path / "pyrun" / "cgroup.subtree_control").symlink_to("/nonexistent/dir/x")  # writing fails: ENOENT
    with pytest.raises(CgroupError, match=rf"`cpu` is not available under {tmp_path}/pyrun: writing \+cpu to "):
        tree.cgroups.create(CgroupPath.parse("/pyrun/a"), Limits(cpu_shares=2))


def test_a_refused_value_names_file_and_value(tmp_path):
    tree = fake_tree(tmp_path, "v2")
    (tmp_path / "pyrun" / "a" / "pids.max").mkdir(parents=True)
    with pytest.raises(CgroupError, match=rf"cannot write '10' to {tmp_path}/pyrun/a/pids.max: Is a directory"):
        tree.cgroups.create(CgroupPath.parse("/pyrun/a"), Limits(pids_max=10))


def test_create_is_idempotent(tmp_path):
    tree = fake_tree(tmp_path, "hybrid")
    make(tree)
    make(tree)
    assert tree.read("cpu", CTR, "cpu.shares") == "512"


def test_outside_parent_is_refused(tmp_path):
    cg = fake_tree(tmp_path, "v2").cgroups
    for bad in ("/other", "/pyrunx/a", "/"):
        with pytest.raises(CgroupError, match="outside pyrun's parent /pyrun"):
            cg.create(CgroupPath.parse(bad))
        with pytest.raises(CgroupError, match="outside"):
            cg.remove(CgroupPath.parse(bad))


def test_add_process_and_procs_files(tmp_path):
    tree = fake_tree(tmp_path, "hybrid")
    _, ctr = make(tree)
    files = tree.cgroups.procs_files(ctr)
    assert f"{tmp_path}/cpu{CTR}/cgroup.procs" in files
    assert f"{tmp_path}/unified{CTR}/cgroup.procs" in files
    assert f"{tmp_path}/freezer{CTR}/cgroup.procs" in files
    assert f"{tmp_path}/devices{CTR}/cgroup.procs" in files
    assert len(files) == 7  # cpu, cpuacct, memory, freezer, pids, devices, unified
    tree.cgroups.add_process(ctr, 4242)
    assert all(open(f).read() == "4242" for f in files)


def test_paths_for_inspect(tmp_path):
    tree = fake_tree(tmp_path, "v1")
    paths = tree.cgroups.paths(CgroupPath.parse(CTR))
    assert paths["cpu"] == paths["cpuacct"] == f"{tmp_path}/cpu,cpuacct{CTR}"
    assert paths["hugetlb"] == f"{tmp_path}/hugetlb{CTR}"


@pytest.mark.parametrize("kind", ["v2", "v1", "hybrid"])
def test_remove_subtree_and_empty_levels(tmp_path, kind):
    tree = fake_tree(tmp_path, kind)
    cg = tree.cgroups
    pod, ctr = make(tree)
    other = cg.pod_path("Burstable", "2")
    cg.create(other)
    cg.remove(pod)
    assert not any(os.path.exists(d) for d in cg.paths(pod).values())
    assert all(os.path.isdir(d) for d in cg.paths(other).values())  # the sibling and its levels stay
    cg.remove(other)
    assert not any(os.path.exists(d) for d in cg.paths(cg.parent).values())  # pyrun/ itself is gone
    cg.remove(other)  # idempotent


def test_remove_keeps_a_parent_pyrun_does_not_own(tmp_path):
    tree = fake_tree(tmp_path, "v2", parent="/kubepods/pod9", own_parent=False)
    cg = tree.cgroups
    pod = cg.pod_path("Guaranteed", "1")
    assert str(pod) == "/kubepods/pod9/kubepods/pod1"
    cg.create(pod)
    cg.remove(pod)
    assert not (tmp_path / "kubepods" / "pod9" / "kubepods").exists()
    assert (tmp_path / "kubepods" / "pod9").is_dir()


def test_kill_all_on_an_empty_cgroup_returns(tmp_path):
    tree = fake_tree(tmp_path, "v2")
    _, ctr = make(tree)
    tree.put("cpu", CTR, "cgroup.procs", "")
    tree.cgroups.kill_all(ctr)


def test_stats_v2(tmp_path):
    tree = fake_tree(tmp_path, "v2")
    _, ctr = make(tree)
    tree.put("cpu", CTR, "cpu.stat", "usage_usec 2000\nnr_throttled 4\nthrottled_usec 30\n")
    tree.put("memory", CTR, "memory.current", "5000\n")
    tree.put("memory", CTR, "memory.stat", "inactive_file 1000\n")
    tree.put("memory", CTR, "memory.events", "oom 1\noom_kill 1\n")
    tree.put("pids", CTR, "pids.current", "3\n")
    tree.put("hugetlb", CTR, "hugetlb.2MB.current", "2097152\n")
    s = tree.cgroups.stats(ctr)
    assert (s.cpu_usage_ns, s.cpu_nr_throttled, s.cpu_throttled_ns) == (2_000_000, 4, 30_000)
    assert (s.memory_usage, s.memory_working_set, s.memory_limit) == (5000, 4000, 64 * MI)
    assert (s.pids_current, s.hugetlb_usage) == (3, {"2MB": 2097152})
    assert tree.cgroups.oom_killed(ctr)


def test_stats_hybrid(tmp_path):
    tree = fake_tree(tmp_path, "hybrid")
    _, ctr = make(tree)
    tree.put("cpuacct", CTR, "cpuacct.usage", "777\n")
    tree.put("cpu", CTR, "cpu.stat", "nr_periods 3\nnr_throttled 2\nthrottled_time 99\n")
    tree.put("memory", CTR, "memory.usage_in_bytes", "100\n")
    tree.put("memory", CTR, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    s = tree.cgroups.stats(ctr)
    assert (s.cpu_usage_ns, s.cpu_nr_throttled, s.cpu_throttled_ns) == (777, 2, 99)
    assert (s.memory_usage, s.memory_limit, s.pids_current) == (100, 64 * MI, None)
    assert not tree.cgroups.oom_killed(ctr)


def test_oom_events_file(tmp_path):
    assert fake_tree(tmp_path / "a", "v2").cgroups.oom_events_file(CgroupPath.parse(CTR)) == \
        f"{tmp_path}/a{CTR}/memory.events"
    assert fake_tree(tmp_path / "b", "hybrid").cgroups.oom_events_file(CgroupPath.parse(CTR)) == \
        f"{tmp_path}/b/memory{CTR}/memory.oom_control"


# --- issue 15: sub-cgroups a container made (delegated v2) may be deep; walks are iterative and bounded ---

def _nest(top, depth: int, procs_at_bottom: str) -> None:
    """top/s/s/.../s (depth levels, made fd-relative: deeper than PATH_MAX) with a cgroup.procs at the bottom."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("s", dir_fd=fd)
            nfd = os.open("s", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        wfd = os.open("cgroup.procs", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(wfd, procs_at_bottom.encode())
        os.close(wfd)
    finally:
        os.close(fd)


def test_sub_cgroups_deeper_than_path_max_are_read_and_removed(tmp_path):
    import sys
    tree = fake_tree(tmp_path, "v2")
    cg = tree.cgroups
    _, ctr = make(tree)
    top = cg.paths(ctr)["memory"]
    _nest(top, 2100, "4242\n")  # "s/" x 2100: longer than PATH_MAX (the deep-tree helpers test 5,000 levels)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)  # recursion per level would blow up here
    try:
        assert cg.pids(ctr) == {4242}
        _nest_clear_bottom(top)  # the process left
        cg.remove(ctr)
    finally:
        sys.setrecursionlimit(limit)
    assert not os.path.exists(top)


def _nest_clear_bottom(top) -> None:
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        while "s" in os.listdir(fd):
            nfd = os.open("s", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        wfd = os.open("cgroup.procs", os.O_WRONLY | os.O_TRUNC, dir_fd=fd)
        os.close(wfd)
    finally:
        os.close(fd)


def test_a_subtree_past_the_bound_is_an_error_naming_the_cgroup(tmp_path, monkeypatch):
    from pyrun.cgroups import driver
    monkeypatch.setattr(driver, "MAX_SUBTREE", 10)
    tree = fake_tree(tmp_path, "v2")
    cg = tree.cgroups
    _, ctr = make(tree)
    top = cg.paths(ctr)["memory"]
    for i in range(20):
        os.mkdir(f"{top}/sub{i}")
    with pytest.raises(CgroupError, match=f"cgroup {top} has more than 10 cgroups below it"):
        cg.remove(ctr)
    monkeypatch.setattr(driver, "MAX_SUBTREE", 100)
    cg.remove(ctr)  # a later call with room finishes
    assert not os.path.exists(top)


def test_check_usable_names_a_missing_controller(tmp_path):
    tree = fake_tree(tmp_path, "v2", v2_controllers="cpu pids")
    with pytest.raises(CgroupError, match="the cgroup controller `memory` is not available"):
        tree.cgroups.check_usable()
    fake_tree(tmp_path / "ok", "v2").cgroups.check_usable()  # nothing made
    assert not (tmp_path / "ok" / "pyrun").exists()


def test_a_parent_the_kubelet_leaves_out_of_v2_is_removed_there_with_its_pods(tmp_path):
    """kubelet 1.20 on a hybrid host makes the pod cgroup in the v1 hierarchies only: pyrun makes
    it in the v2 tree (hugetlb) and must take it out again, levels included once unused."""
    tree = fake_tree(tmp_path, "hybrid", parent="/kubepods", own_parent=False)
    cg = tree.cgroups
    pods = [CgroupPath.parse(f"/kubepods/burstable/pod{i}") for i in (1, 2)]
    v1 = [m for c, m in tree.mounts.items() if c != "unified" and c != "hugetlb"]
    for pod in pods:
        for mount in v1:  # what the kubelet made
            (mount / "kubepods" / "burstable" / pod.components[-1]).mkdir(parents=True, exist_ok=True)
    made = [cg.unmanaged_hierarchies(pod) for pod in pods]
    assert made[0] == made[1] == (str(tree.mounts["unified"]),)
    for pod in pods:
        cg.create(pod)
        cg.create(cg.container_path(pod, "pause"))
    unified = tree.mounts["unified"]
    cg.remove(cg.container_path(pods[0], "pause"), prune_parents=False)
    cg.remove_made(pods[0], made[0])
    assert not (unified / "kubepods" / "burstable" / "pod1").exists()
    assert (unified / "kubepods" / "burstable" / "pod2").is_dir()  # in use: its levels stay
    assert all((m / "kubepods" / "burstable" / "pod1").is_dir() for m in v1)  # the kubelet's
    cg.remove(cg.container_path(pods[1], "pause"), prune_parents=False)
    cg.remove_made(pods[1], made[1])
    assert not (unified / "kubepods" / "burstable").exists()
    assert (unified / "kubepods").is_dir()  # the driver's parent stays
    cg.remove_made(pods[1], made[1])  # idempotent
