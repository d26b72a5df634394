from pyrun.cgroups import cpu, hugetlb, memory, pids
from pyrun.cgroups.limits import Limits

MI = 1024 * 1024
FULL = Limits(cpu_shares=512, cpu_quota=50000, cpu_period=100000, memory_max=64 * MI,
              hugetlb={"2MB": 4 * MI, "1GB": 1 << 30}, pids_max=10)


def test_cpu_render():
    assert cpu.render_v2(FULL) == {"cpu.weight": "20", "cpu.max": "50000 100000"}
    assert list(cpu.render_v1(FULL).items()) == [("cpu.shares", "512"), ("cpu.cfs_period_us", "100000"),
                                                 ("cpu.cfs_quota_us", "50000")]
    assert cpu.render_v2(Limits(cpu_shares=2)) == {"cpu.weight": "1"}
    assert cpu.render_v1(Limits()) == {}


def test_memory_render():
    assert memory.render_v2(FULL) == {"memory.max": str(64 * MI), "memory.swap.max": "0"}
    assert memory.render_v1(FULL) == {"memory.limit_in_bytes": str(64 * MI),
                                      "memory.memsw.limit_in_bytes": str(64 * MI)}
    assert memory.render_v2(Limits()) == {}


def test_memory_v1_order_raises_memsw_first():
    files = memory.render_v1(Limits(memory_max=200))
    assert [k for k, _ in memory.order_v1(files, 100)][0] == "memory.memsw.limit_in_bytes"
    assert [k for k, _ in memory.order_v1(files, 300)][0] == "memory.limit_in_bytes"
    assert [k for k, _ in memory.order_v1(files, None)][0] == "memory.limit_in_bytes"


def test_pids_render():
    assert pids.render_v2(FULL) == pids.render_v1(FULL) == {"pids.max": "10"}
    assert pids.render_v2(Limits()) == {}


def test_hugetlb_render():
    assert hugetlb.render_v2(FULL) == {"hugetlb.1GB.max": str(1 << 30), "hugetlb.1GB.rsvd.max": str(1 << 30),
                                       "hugetlb.2MB.max": str(4 * MI), "hugetlb.2MB.rsvd.max": str(4 * MI)}
    assert hugetlb.render_v1(Limits(hugetlb={"2MB": 2 * MI})) == {
        "hugetlb.2MB.limit_in_bytes": str(2 * MI), "hugetlb.2MB.rsvd.limit_in_bytes": str(2 * MI)}


def reader(files):
    return files.get


def test_cpu_stats():
    v2 = reader({"cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 9\n"
                             "nr_throttled 3\nthrottled_usec 70\n"})
    assert cpu.stats_v2(v2) == {"cpu_usage_ns": 1500000, "cpu_nr_throttled": 3, "cpu_throttled_ns": 70000}
    v1cpu = reader({"cpu.stat": "nr_periods 5\nnr_throttled 2\nthrottled_time 12345\n"})
    v1acct = reader({"cpuacct.usage": "987654\n"})
    assert cpu.stats_v1(v1cpu, v1acct) == {"cpu_usage_ns": 987654, "cpu_nr_throttled": 2,
                                           "cpu_throttled_ns": 12345}


def test_memory_stats_working_set():
    v2 = reader({"memory.current": "1000\n", "memory.stat": "anon 600\ninactive_file 300\n",
                 "memory.max": "max\n"})
    assert memory.stats_v2(v2) == {"memory_usage": 1000, "memory_working_set": 700, "memory_limit": None}
    v1 = reader({"memory.usage_in_bytes": "1000\n", "memory.limit_in_bytes": "9223372036854771712\n",
                 "memory.stat": "inactive_file 10\ntotal_inactive_file 1200\n"})
    assert memory.stats_v1(v1) == {"memory_usage": 1000, "memory_working_set": 0, "memory_limit": None}
    v1_limited = reader({"memory.usage_in_bytes": "5\n", "memory.limit_in_bytes": "67108864\n"})
    assert memory.stats_v1(v1_limited)["memory_limit"] == 64 * MI


def test_oom_kill_counters():
    assert memory.oom_kills_v2(reader({"memory.events": "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n"})) == 1
    assert memory.oom_kills_v2(reader({})) == 0
    assert memory.oom_kills_v1(reader({"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"})) == 2
    assert memory.oom_kills_v1(reader({"memory.oom_control": "oom_kill_disable 0\n", "memory.failcnt": "7"})) == 7


def test_pids_and_hugetlb_stats():
    assert pids.stats_v2(reader({"pids.current": "3\n"})) == {"pids_current": 3}
    assert hugetlb.stats_v2(reader({"hugetlb.2MB.current": "4194304\n"})) == {"hugetlb_usage": {"2MB": 4194304}}
    assert hugetlb.stats_v1(reader({"hugetlb.1GB.usage_in_bytes": "0\n"})) == {"hugetlb_usage": {"1GB": 0}}
