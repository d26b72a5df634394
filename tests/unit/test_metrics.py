"""The Prometheus endpoint's pure parts: cgroup files -> Sample, Sample -> cAdvisor series, labels,
the operation metrics, the listen address; and one scrape over loopback against a fake source."""
from __future__ import annotations

import urllib.request
from dataclasses import replace

import pytest
from _cgroups_unit_helpers import fake_tree
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pyrun.cgroups import CgroupPath, Sample, cpu, memory
from pyrun.cgroups.limits import shares_to_weight
from pyrun.errors import UsageError
from pyrun.metrics import series
from pyrun.metrics.collector import ContainerCollector
from pyrun.metrics.operations import OperationMetrics, operation_of
from pyrun.metrics.server import MetricsServer, build_registry, parse_listen
from pyrun.runtime.metrics_source import MetricsSource, Target
from pyrun.runtime.records import ContainerCgroup, ContainerEntry, ContainerRecord, PodCgroup, PodRecord
from pyrun.runtime.state import StateStore

MI = 1024 * 1024
POD_CG = "/pyrun/kubepods/burstable/podu1"
CTR_CG = POD_CG + "/c1"


def reader(files):
    return files.get


# --- cgroup files -> Sample values -------------------------------------------------------------

def test_cpu_spec_v2_and_v1():
    assert cpu.spec_v2(reader({"cpu.max": "50000 100000\n", "cpu.weight": "20\n"})) == {
        "cpu_quota": 50000, "cpu_period": 100000, "cpu_shares": cpu.weight_to_shares(20)}
    assert cpu.spec_v2(reader({"cpu.max": "max 100000\n"})) == {"cpu_quota": None, "cpu_period": 100000,
                                                                "cpu_shares": None}
    assert cpu.spec_v1(reader({"cpu.cfs_quota_us": "-1\n", "cpu.cfs_period_us": "100000\n", "cpu.shares": "1024\n"})) \
        == {"cpu_quota": None, "cpu_period": 100000, "cpu_shares": 1024}
    assert cpu.spec_v1(reader({}))["cpu_quota"] is None


@pytest.mark.parametrize("shares", [2, 102, 512, 1024, 262144])
def test_weight_to_shares_inverts_shares_to_weight_closely(shares):
    back = cpu.weight_to_shares(shares_to_weight(shares))
    assert abs(back - shares) <= 262142 // 9999 + 1  # v2's weight is coarser than v1's shares


def test_memory_usage_and_spec_v2_and_v1():
    v2 = reader({"memory.current": "1000\n", "memory.stat": "anon 600\ninactive_file 300\n",
                 "memory.max": "max\n", "memory.events": "low 0\nmax 4\noom 1\noom_kill 1\n"})
    assert memory.usage_v2(v2) == {"memory_usage": 1000, "memory_working_set": 700, "memory_rss": 600,
                                   "memory_failcnt": 4, "oom_kills": 1}
    assert memory.spec_v2(v2) == {"memory_limit": None}
    v1 = reader({"memory.usage_in_bytes": "5000\n", "memory.limit_in_bytes": str(64 * MI),
                 "memory.stat": "rss 1\ntotal_rss 4000\ntotal_inactive_file 1000\n",
                 "memory.failcnt": "3\n", "memory.oom_control": "under_oom 0\noom_kill 2\n"})
    assert memory.usage_v1(v1) == {"memory_usage": 5000, "memory_working_set": 4000, "memory_rss": 4000,
                                   "memory_failcnt": 3, "oom_kills": 2}
    assert memory.spec_v1(v1) == {"memory_limit": 64 * MI}
    assert memory.usage_v1(reader({}))["oom_kills"] is None


@pytest.mark.parametrize("kind", ["v2", "v1", "hybrid"])
def test_sample_reads_every_layout(tmp_path, kind):
    tree = fake_tree(tmp_path, kind)
    cg = tree.cgroups
    if kind == "v2":
        tree.put("cpu", CTR_CG, "cpu.stat", "usage_usec 2000\nnr_throttled 3\nthrottled_usec 50\n")
        tree.put("cpu", CTR_CG, "cpu.max", "25000 100000\n")
        tree.put("cpu", CTR_CG, "cpu.weight", "1\n")
        tree.put("memory", CTR_CG, "memory.current", "8192\n")
        tree.put("memory", CTR_CG, "memory.max", f"{64 * MI}\n")
        tree.put("memory", CTR_CG, "memory.stat", "anon 4096\ninactive_file 4096\n")
        tree.put("memory", CTR_CG, "memory.events", "max 0\noom_kill 2\n")
    else:
        tree.put("cpu", CTR_CG, "cpu.stat", "nr_throttled 3\nthrottled_time 50000\n")
        tree.put("cpuacct", CTR_CG, "cpuacct.usage", "2000000\n")
        tree.put("cpu", CTR_CG, "cpu.cfs_quota_us", "25000\n")
        tree.put("cpu", CTR_CG, "cpu.cfs_period_us", "100000\n")
        tree.put("cpu", CTR_CG, "cpu.shares", "2\n")
        tree.put("memory", CTR_CG, "memory.usage_in_bytes", "8192\n")
        tree.put("memory", CTR_CG, "memory.limit_in_bytes", f"{64 * MI}\n")
        tree.put("memory", CTR_CG, "memory.stat", "total_rss 4096\ntotal_inactive_file 4096\n")
        tree.put("memory", CTR_CG, "memory.failcnt", "0\n")
        tree.put("memory", CTR_CG, "memory.oom_control", "oom_kill_disable 0\noom_kill 2\n")
    tree.put("pids", CTR_CG, "cgroup.procs", "10\n11\n12\n")
    s = cg.sample(CgroupPath.parse(CTR_CG))
    assert s == Sample(cpu_usage_ns=2_000_000, cpu_nr_throttled=3, cpu_throttled_ns=50_000, cpu_quota=25000,
                       cpu_period=100000, cpu_shares=2, memory_usage=8192, memory_working_set=4096,
                       memory_limit=64 * MI, memory_rss=4096, memory_failcnt=0, oom_kills=2, processes=3)
    assert cg.sample(CgroupPath.parse(POD_CG + "/gone")) is None


# --- Sample -> series ------------------------------------------------------------------------------

FULL = Sample(cpu_usage_ns=3_500_000_000, cpu_nr_throttled=7, cpu_throttled_ns=250_000_000, cpu_quota=50000,
              cpu_period=100000, cpu_shares=512, memory_usage=10 * MI, memory_working_set=8 * MI,
              memory_limit=64 * MI, memory_rss=6 * MI, memory_failcnt=1, oom_kills=2, processes=4)


def target(sample=FULL, container="app", started=1_700_000_000_500_000_000):
    return Target("team-a", "web", container, "docker.io/library/busybox:1.36" if container else "",
                  CTR_CG if container else POD_CG, started, sample)


def test_labels_are_cadvisors():
    assert series.LABELS == ("namespace", "pod", "container", "image", "id")
    assert series.label_values(target()) == ("team-a", "web", "app", "docker.io/library/busybox:1.36", CTR_CG)
    assert series.label_values(target(container="")) == ("team-a", "web", "", "", POD_CG)


def test_values_map_sample_to_cadvisor_units():
    v = series.values(target(), now=1_800_000_000.0)
    assert v == {
        "container_cpu_usage_seconds_total": 3.5, "container_cpu_cfs_throttled_periods_total": 7,
        "container_cpu_cfs_throttled_seconds_total": 0.25, "container_memory_working_set_bytes": 8 * MI,
        "container_memory_rss": 6 * MI, "container_memory_usage_bytes": 10 * MI, "container_memory_failcnt": 1,
        "container_oom_events_total": 2, "container_spec_memory_limit_bytes": 64 * MI,
        "container_spec_cpu_quota": 50000, "container_spec_cpu_period": 100000, "container_spec_cpu_shares": 512,
        "container_processes": 4, "container_start_time_seconds": 1_700_000_000.5,
        "container_last_seen": 1_800_000_000.0}
    assert {s.name for s in series.SERIES} == set(v)


def test_unlimited_and_unknown_values():
    v = series.values(target(replace(FULL, memory_limit=None, cpu_quota=None)), now=1.0)
    assert v["container_spec_memory_limit_bytes"] == 0  # cAdvisor: 0 = no limit
    assert "container_spec_cpu_quota" not in v  # cAdvisor: absent without a quota
    bare = series.values(target(Sample(cpu_usage_ns=1), started=None), now=1.0)
    assert set(bare) == {"container_cpu_usage_seconds_total", "container_last_seen"}  # nothing made up as 0


def exposition(targets, now=5.0) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ContainerCollector(lambda: targets, clock=lambda: now))
    return generate_latest(registry).decode()


def test_exposition_names_types_and_labels():
    text = exposition([target(container=""), target()])
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["container_cpu_usage_seconds"].type == "counter"
    assert families["container_memory_working_set_bytes"].type == "gauge"
    assert "# TYPE container_memory_failcnt untyped" in text
    cpu_samples = families["container_cpu_usage_seconds"].samples
    assert [s.labels["container"] for s in cpu_samples] == ["", "app"]
    assert cpu_samples[1].name == "container_cpu_usage_seconds_total"
    assert cpu_samples[1].labels == {"namespace": "team-a", "pod": "web", "container": "app", "cpu": "total",
                                     "image": "docker.io/library/busybox:1.36", "id": CTR_CG}
    assert 'container_oom_events_total{container="app",id="' + CTR_CG in text


def test_exposition_of_nothing_is_empty_families():
    text = exposition([])
    assert "container_cpu_usage_seconds_total{" not in text


# --- operations -------------------------------------------------------------------------------------

def test_operation_of_cri_methods():
    assert operation_of("RunPodSandbox") == operation_of("CreateContainer") == "create"
    assert operation_of("StartContainer") == "start"
    assert operation_of("StopPodSandbox") == operation_of("StopContainer") == "stop"
    assert operation_of("ExecSync") == operation_of("Exec") == "exec"
    assert operation_of("ListContainers") is None


def test_operation_metrics_count_latency_and_errors():
    registry = CollectorRegistry()
    ops = OperationMetrics(registry)
    ops.observe("CreateContainer", 0.2, "OK")
    ops.observe("CreateContainer", 0.3, "NOT_FOUND")
    ops.observe("ListPodSandbox", 0.1, "INTERNAL")  # not an operation: not counted
    get = registry.get_sample_value
    labels = {"operation": "create", "method": "CreateContainer"}
    assert get("pyrun_operation_duration_seconds_count", labels) == 2
    assert get("pyrun_operation_duration_seconds_sum", labels) == pytest.approx(0.5)
    assert get("pyrun_operation_errors_total", labels | {"code": "NOT_FOUND"}) == 1
    assert get("pyrun_operation_errors_total", labels | {"code": "OK"}) is None
    assert get("pyrun_operation_duration_seconds_count", {"operation": "list", "method": "ListPodSandbox"}) is None


# --- the listen address and one scrape over loopback ----------------------------------------------

def test_parse_listen():
    assert parse_listen("127.0.0.1:9101") == ("127.0.0.1", 9101)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad in ("9101", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:70000", ":9101"):
        with pytest.raises(UsageError, match="--metrics-listen"):
            parse_listen(bad, "--metrics-listen")


def test_scrape_over_loopback():
    registry, ops = build_registry(lambda: [target()], operations=True)
    server = MetricsServer("127.0.0.1:0", registry).start()
    as_prometheus_asks = {"Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
                          "Accept-Encoding": "gzip"}
    try:
        ops.observe("StartContainer", 0.01, "OK")
        with urllib.request.urlopen(urllib.request.Request(server.url, headers=as_prometheus_asks), timeout=10) as r:
            body = r.read().decode()
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert r.headers.get("Content-Encoding") is None
    finally:
        server.stop()
    assert 'container_memory_rss{container="app"' in body
    assert 'pyrun_operation_duration_seconds_count{method="StartContainer",operation="start"} 1.0' in body


def test_listen_on_a_busy_port_names_the_option():
    registry = CollectorRegistry()
    first = MetricsServer("127.0.0.1:0", registry).start()
    try:
        with pytest.raises(Exception, match=r"--metrics-listen"):
            MetricsServer(f"127.0.0.1:{first.port}", registry, "--metrics-listen").start()
    finally:
        first.stop()


# --- the runtime's source over a temp state root and a fake cgroup tree ------------------------------

def test_metrics_source_reads_records_and_cgroups(tmp_path):
    tree = fake_tree(tmp_path / "cg", "v2")
    store = StateStore(tmp_path / "root")
    store.ensure()
    store.pod_dir("p1").mkdir()
    store.write_pod(PodRecord(id="p1", name="web", namespace="team-a", created_at=1_000_000_000,
                              cgroup=PodCgroup(path=POD_CG, sandbox=POD_CG + "/pause"),
                              containers=(ContainerEntry(id="c1", name="app"), ContainerEntry(id="c2", name="gone"))))
    store.container_dir("c1").mkdir()
    store.write_container(ContainerRecord(id="c1", pod_id="p1", name="app", image="busybox",
                                          image_name="docker.io/library/busybox:1.36",
                                          cgroup=ContainerCgroup(path=CTR_CG)))
    (store.container_dir("c1") / "status.json").write_text('{"state": "running", "started_at": 2000000000}')
    store.container_dir("c2").mkdir()
    store.write_container(ContainerRecord(id="c2", pod_id="p1", name="gone", image="x",
                                          cgroup=ContainerCgroup(path=POD_CG + "/c2")))
    tree.put("cpu", POD_CG, "cpu.stat", "usage_usec 10\n")
    tree.put("cpu", CTR_CG, "cpu.stat", "usage_usec 7\n")
    tree.put("pids", CTR_CG, "cgroup.procs", "5\n6\n")
    tree.put("pids", POD_CG + "/pause", "cgroup.procs", "4\n")
    source = MetricsSource(store, lambda: tree.cgroups)  # the fake tree instead of the host's layout
    pod, ctr = source.targets()  # c2's cgroup does not exist: not exported
    assert (pod.namespace, pod.pod, pod.container, pod.image, pod.cgroup) == ("team-a", "web", "", "", POD_CG)
    assert pod.sample.processes == 3 and pod.sample.cpu_usage_ns == 10_000 and pod.started_at_ns == 1_000_000_000
    assert (ctr.container, ctr.image, ctr.cgroup, ctr.started_at_ns) == ("app", "docker.io/library/busybox:1.36",
                                                                         CTR_CG, 2_000_000_000)
    assert ctr.sample.processes == 2 and ctr.sample.cpu_usage_ns == 7_000


def test_metrics_source_rereads_limits_only_after_the_ttl(tmp_path):
    from pyrun.runtime import metrics_source
    tree = fake_tree(tmp_path / "cg", "v2")
    store = StateStore(tmp_path / "root")
    store.ensure()
    store.pod_dir("p1").mkdir()
    store.write_pod(PodRecord(id="p1", name="web", namespace="default", cgroup=PodCgroup(path=POD_CG)))
    tree.put("cpu", POD_CG, "cpu.stat", "usage_usec 10\n")
    tree.put("memory", POD_CG, "memory.max", "1000\n")
    now = [0.0]
    source = MetricsSource(store, lambda: tree.cgroups, clock=lambda: now[0])
    assert source.targets()[0].sample.memory_limit == 1000
    tree.put("memory", POD_CG, "memory.max", "2000\n")
    tree.put("cpu", POD_CG, "cpu.stat", "usage_usec 20\n")
    sample = source.targets()[0].sample
    assert (sample.cpu_usage_ns, sample.memory_limit) == (20_000, 1000)  # usage now, the limit from the cache
    now[0] = metrics_source.SPEC_TTL
    assert source.targets()[0].sample.memory_limit == 2000


# --- the CRI handler wrapper observes every RPC in one place ------------------------------------------

def test_cri_wrapper_observes_latency_and_status_code():
    pytest.importorskip("grpc")
    from cri_api.v1 import api_pb2 as pb

    from pyrun.cri.server import _wrap
    from pyrun.errors import NotFound

    class Context:
        def abort(self, code, detail):
            raise RuntimeError(code.name)

    def Request():
        return pb.StartContainerRequest(container_id="c" * 64)

    seen = []

    def observe(method, seconds, code):
        seen.append((method, code, seconds >= 0))

    def missing(request):
        raise NotFound("container cccc not found")

    assert _wrap("StartContainer", lambda r: "ok", observe)(Request(), Context()) == "ok"
    with pytest.raises(RuntimeError, match="NOT_FOUND"):
        _wrap("StartContainer", missing, observe)(Request(), Context())
    assert seen == [("StartContainer", "OK", True), ("StartContainer", "NOT_FOUND", True)]
    assert _wrap("Version", lambda r: "v")(Request(), Context()) == "v"  # without --metrics-listen: nothing observed


def test_cgroup_fs_read_reads_past_one_buffer(tmp_path):
    from pyrun.cgroups import fs
    big = tmp_path / "cgroup.procs"
    text = "".join(f"{pid}\n" for pid in range(100000, 100000 + 3 * fs.READ_SIZE // 7))
    big.write_text(text)
    assert fs.read(str(big)) == text
    exact = tmp_path / "exact"
    exact.write_text("x" * fs.READ_SIZE)
    assert fs.read(str(exact)) == "x" * fs.READ_SIZE
    assert fs.read(str(tmp_path / "missing")) is None
