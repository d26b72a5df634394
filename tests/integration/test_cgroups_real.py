"""The cgroups layer on the real kernel (this VM is hybrid: cpu/memory/pids on v1, hugetlb on cgroup2)."""
import os
import signal
import subprocess
import time

import pytest

from pyrun.cgroups import Limits, read_host_layout

from _cgroups_helpers import alive, needs_root, python, read, start_in, throwaway_cgroups

pytestmark = [pytest.mark.integration, needs_root]

MI = 1024 * 1024


@pytest.fixture
def env():
    with throwaway_cgroups() as pair:
        yield pair


def test_host_layout_is_detected():
    layout = read_host_layout()
    for c in ("cpu", "memory", "pids"):
        assert layout.require(c)
    if layout.mode == "hybrid":
        assert layout.hierarchy_for("cpu").version == 1


def test_create_pod_and_container_and_read_limits_back(env):
    cg, _ = env
    pod = cg.pod_path("Burstable", "uid-1")
    cg.create(pod, Limits(cpu_shares=1024, cpu_quota=100000, cpu_period=100000, memory_max=128 * MI,
                          pids_max=4096))
    ctr = cg.container_path(pod, "c1")
    hugetlb = {"2MB": 4 * MI} if cg.layout.hierarchy_for("hugetlb") else {}
    cg.create(ctr, Limits(cpu_shares=512, cpu_quota=50000, cpu_period=100000, memory_max=64 * MI,
                          hugetlb=hugetlb, pids_max=10))
    cg.create(ctr, Limits(cpu_shares=512, cpu_quota=50000, cpu_period=100000, memory_max=64 * MI,
                          hugetlb=hugetlb, pids_max=10))  # idempotent
    paths = cg.paths(ctr)
    assert all(os.path.isdir(d) for d in paths.values())
    cpu_h = cg.layout.hierarchy_for("cpu")
    if cpu_h.version == 1:
        assert read(paths["cpu"] + "/cpu.shares") == "512"
        assert read(paths["cpu"] + "/cpu.cfs_quota_us") == "50000"
        assert read(paths["cpu"] + "/cpu.cfs_period_us") == "100000"
        assert read(paths["cpu"].rsplit("/", 1)[0] + "/cpu.shares") == "1024"
    else:
        assert read(paths["cpu"] + "/cpu.weight") == "20"
        assert read(paths["cpu"] + "/cpu.max") == "50000 100000"
    mem_v1 = cg.layout.hierarchy_for("memory").version == 1
    mem_file = "/memory.limit_in_bytes" if mem_v1 else "/memory.max"
    assert read(paths["memory"] + mem_file) == str(64 * MI)
    if mem_v1 and os.path.exists(paths["memory"] + "/memory.memsw.limit_in_bytes"):
        assert read(paths["memory"] + "/memory.memsw.limit_in_bytes") == str(64 * MI)
    assert read(paths["pids"] + "/pids.max") == "10"
    if hugetlb:
        h = cg.layout.hierarchy_for("hugetlb")
        name = "hugetlb.2MB.max" if h.version == 2 else "hugetlb.2MB.limit_in_bytes"
        assert read(paths["hugetlb"] + "/" + name) == str(4 * MI)
    stats = cg.stats(ctr)
    assert stats.memory_limit == 64 * MI and stats.pids_current == 0 and stats.cpu_usage_ns == 0
    cg.remove(pod)
    assert not any(os.path.exists(d) for d in paths.values())
    assert not any(os.path.exists(d) for d in cg.paths(cg.parent).values())  # the empty levels went too


def test_memory_hog_is_oom_killed(env):
    cg, procs = env
    ctr = cg.container_path(cg.pod_path("Guaranteed", "oom"), "hog")
    cg.create(ctr, Limits(cpu_shares=2, memory_max=64 * MI))
    hog = start_in(cg, ctr, python("b = []\nwhile True: b.append(bytearray(1 << 20))"))
    procs.append(hog)
    assert hog.wait(timeout=60) == -signal.SIGKILL
    assert cg.oom_killed(ctr)
    oom_lines = read(cg.oom_events_file(ctr)).splitlines()
    assert "oom_kill 1" in oom_lines or any(line.startswith("oom_kill ") and line != "oom_kill 0"
                                            for line in oom_lines)
    assert cg.stats(ctr).memory_limit == 64 * MI


def test_busy_loop_is_throttled(env):
    cg, procs = env
    ctr = cg.container_path(cg.pod_path("Burstable", "cpu"), "busy")
    cg.create(ctr, Limits(cpu_shares=204, cpu_quota=20000, cpu_period=100000))  # 0.2 cpu
    busy = start_in(cg, ctr, python("while True: pass"))
    procs.append(busy)
    time.sleep(1.5)
    stats = cg.stats(ctr)
    assert stats.cpu_nr_throttled >= 5
    assert stats.cpu_throttled_ns > 0
    assert stats.cpu_usage_ns < 0.6e9  # ≈ 0.3 s of CPU in 1.5 s, far from the 1.5 s unthrottled
    cg.kill_all(ctr)
    assert busy.wait(timeout=5) == -signal.SIGKILL


def test_fork_bomb_stops_at_pids_max(env):
    cg, procs = env
    ctr = cg.container_path(cg.pod_path("BestEffort", "bomb"), "bomb")
    cg.create(ctr, Limits(cpu_shares=2, pids_max=10))
    bomb = start_in(cg, ctr, ["/bin/sh", "-c", "for i in $(seq 1 40); do sleep 60 & done; sleep 60"],
                    stderr=subprocess.PIPE)
    procs.append(bomb)
    deadline = time.monotonic() + 10
    while cg.stats(ctr).pids_current < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert cg.stats(ctr).pids_current <= 10  # counts a fork in progress too
    inside = cg.pids(ctr)
    assert 8 <= len(inside) <= 10
    pids_dir = cg.paths(ctr)["pids"]
    events = read(pids_dir + "/pids.events")
    assert int(events.split()[-1]) > 0  # "max N": forks refused
    cg.remove(ctr)  # kills the orphaned sleeps too (dash itself may have given up: "Cannot fork")
    bomb.wait(timeout=5)
    time.sleep(0.2)  # let init reap the orphans
    assert not [p for p in inside if p != bomb.pid and alive(p)], [open(f"/proc/{p}/stat").read() for p in inside if alive(p)]
    assert not os.path.exists(pids_dir)


def test_remove_kills_a_process_tree(env):
    cg, procs = env
    ctr = cg.container_path(cg.pod_path("BestEffort", "tree"), "tree")
    cg.create(ctr, Limits(cpu_shares=2))
    tree = start_in(cg, ctr, ["/bin/sh", "-c", "sleep 60 & sleep 60 & (sleep 60 &) ; wait"])
    procs.append(tree)
    deadline = time.monotonic() + 5
    while len(cg.pids(ctr)) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(cg.pids(ctr)) >= 4
    cg.remove(ctr)
    assert tree.wait(timeout=5) == -signal.SIGKILL
    assert not any(os.path.exists(d) for d in cg.paths(ctr).values())


def test_remove_takes_deep_sub_cgroups_with_a_process_at_the_bottom(env):
    """Issue 15: where a container's cgroup is delegated it can nest sub-cgroups; kill and remove walk
    them iteratively and fd-relative (here 200 levels in every hierarchy, a process at the bottom)."""
    cg, procs = env
    ctr = cg.container_path(cg.pod_path("BestEffort", "nest"), "nest")
    cg.create(ctr, Limits(cpu_shares=2))
    bottoms = []
    for procs_file in cg.procs_files(ctr):  # one per hierarchy pyrun uses
        top = os.path.dirname(procs_file)
        fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
        for _ in range(200):
            os.mkdir("n", dir_fd=fd)
            nfd = os.open("n", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        bottoms.append(fd)
    sleeper = subprocess.Popen(["sleep", "60"])
    procs.append(sleeper)
    try:
        for fd in bottoms:
            wfd = os.open("cgroup.procs", os.O_WRONLY, dir_fd=fd)
            os.write(wfd, str(sleeper.pid).encode())
            os.close(wfd)
    finally:
        for fd in bottoms:
            os.close(fd)
    assert cg.pids(ctr) == {sleeper.pid}
    cg.remove(ctr)
    assert sleeper.wait(timeout=5) == -signal.SIGKILL
    assert not any(os.path.exists(d) for d in cg.paths(ctr).values())


HUGE_2MB = 2 * MI
MAP_HUGETLB = 0x40000  # x86 and arm64 (mmap(2)); Python's mmap module lacks the constant

HUGE_PROBE = f"""
import mmap, sys
flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | {MAP_HUGETLB}
m = mmap.mmap(-1, 2 * {HUGE_2MB}, flags=flags)
m[0] = 1; m[{HUGE_2MB}] = 1
m.close()
print("2 pages ok", flush=True)
try:
    m = mmap.mmap(-1, 3 * {HUGE_2MB}, flags=flags)
except OSError as e:
    print("3 pages refused", e.errno, flush=True)
    sys.exit(0)
for i in range(3):
    m[i * {HUGE_2MB}] = 1  # without rsvd.max the third fault is a SIGBUS
print("3 pages mapped", flush=True)
"""


@pytest.fixture
def four_hugepages():
    path = "/proc/sys/vm/nr_hugepages"
    old = read(path)
    try:
        with open(path, "w") as f:
            f.write("4")
        if int(read(path)) < 4:
            pytest.skip("the kernel could not reserve 4 huge pages")
        yield
    finally:
        with open(path, "w") as f:
            f.write(old)


def test_hugetlb_limit_refuses_a_third_page(env, four_hugepages):
    cg, procs = env
    if cg.layout.hierarchy_for("hugetlb") is None:
        pytest.skip("no hugetlb controller")
    ctr = cg.container_path(cg.pod_path("Guaranteed", "huge"), "huge")
    cg.create(ctr, Limits(cpu_shares=2, hugetlb={"2MB": 2 * HUGE_2MB}))
    probe = start_in(cg, ctr, python(HUGE_PROBE), stdout=subprocess.PIPE, text=True)
    procs.append(probe)
    out, _ = probe.communicate(timeout=30)
    assert out.startswith("2 pages ok")
    if os.path.exists(cg.paths(ctr)["hugetlb"] + "/hugetlb.2MB.rsvd.max"):
        assert "3 pages refused 12" in out  # ENOMEM from mmap: the reservation is over rsvd.max
    else:
        assert probe.returncode == -signal.SIGBUS  # the third page fault is over hugetlb.2MB.max
    assert "3 pages mapped" not in out
