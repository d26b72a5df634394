"""The Prometheus endpoint scraped by a real Prometheus (Debian's package, started by the test on
127.0.0.1 with its own config and storage): the pods' series arrive with cAdvisor's names and labels,
a CPU-burning container's rate rises, an OOM kill increments container_oom_events_total, and the
CRI server's operation histograms count its RPCs."""
from __future__ import annotations

import os

import pytest
from _cri_helpers import run_pod, running_server
from _prometheus import BINARY, free_port, metrics_server, prometheus

pytestmark = pytest.mark.skipif(not os.path.exists(BINARY),
                                reason="needs Debian's prometheus (scripts/apt-ensure.sh --no-services prometheus)")

HOG = ("until [ -e /tmp/go ]; do sleep 0.2; done; "
       "x=$(head -c 100000000 /dev/zero | tr '\\0' a); sleep 1000")


def one(result: list[dict]) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def test_prometheus_scrapes_cpu_memory_and_oom_kills(pyrun, write_pod, tmp_path):
    pyrun("pod", "create", write_pod("burn", [
        {"name": "burn", "command": ["sh", "-c", "while :; do :; done"], "resources": {"limits": {"cpu": "500m"}}},
        {"name": "idle", "command": ["sleep", "1000"]}]))
    pyrun("pod", "create", write_pod("oom", [{"name": "hog", "command": ["sh", "-c", HOG],
                                              "resources": {"limits": {"memory": "24Mi"}}}]))
    argv = pyrun.argv("metrics", "serve", "--listen", "127.0.0.1:0")
    with metrics_server(argv, tmp_path / "metrics.log") as target, prometheus(tmp_path, [target]) as prom:
        series = prom.wait_for('container_cpu_usage_seconds_total{pod="burn",container="burn"}')
        labels = series[0]["metric"]
        assert labels["namespace"] == "default" and labels["cpu"] == "total"
        assert "demo" in labels["image"]
        assert labels["id"].startswith(f"/{pyrun.cgroup_parent}/kubepods/") and labels["id"].count("/") >= 4
        # the pod's own cgroup: container="" and image="", as cAdvisor shows it (Prometheus drops empty labels)
        pod = prom.wait_for('container_memory_working_set_bytes{pod="burn",container=""}')
        assert "image" not in pod[0]["metric"] and pod[0]["metric"]["id"] == labels["id"].rsplit("/", 1)[0]
        assert one(prom.query('container_spec_cpu_quota{pod="burn",container="burn"}')) == 50000
        assert one(prom.query('container_spec_cpu_period{pod="burn",container="burn"}')) == 100000
        assert prom.query('container_spec_cpu_quota{pod="burn",container="idle"}') == []  # no limit: absent
        assert one(prom.query('container_spec_memory_limit_bytes{pod="oom",container="hog"}')) == 24 * 1024 * 1024
        assert one(prom.query('container_processes{pod="burn",container="idle"}')) == 1

        # the burner's CPU rate rises above the idle container's
        rate = 'rate(container_cpu_usage_seconds_total{pod="burn",container="%s"}[5s])'
        prom.wait_for(rate % "burn" + " > 0.05")
        assert one(prom.query(rate % "burn")) > one(prom.query(rate % "idle"))

        # an OOM kill: 0 before, at least 1 after
        oom = 'container_oom_events_total{pod="oom",container="hog"}'
        assert one(prom.wait_for(oom)) == 0
        pyrun("exec", "oom", "hog", "--", "touch", "/tmp/go")
        prom.wait_for(oom + " >= 1")
        assert prom.query(f"max_over_time({oom}[1m])") and one(prom.query(f"min_over_time({oom}[1m])")) == 0
        assert all(t["health"] == "up" for t in prom.targets())


def test_cri_metrics_listen_exports_operations(demo_layout):
    port = free_port()
    with running_server(demo_layout, "pyrun-crimet", args=("--metrics-listen", f"127.0.0.1:{port}")) as e:
        rt, _, pb, channel = e["server"].stubs()
        with channel, prometheus(e["tmp"], [f"127.0.0.1:{port}"]) as prom:
            sid, cid = run_pod(rt, pb, "metered", e["tmp"])
            rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["true"], timeout=10))
            with pytest.raises(Exception):
                rt.StartContainer(pb.StartContainerRequest(container_id="0" * 64))
            prom.wait_for('container_cpu_usage_seconds_total{namespace="ns",pod="metered",container="main"}')
            count = 'pyrun_operation_duration_seconds_count{operation="%s",method="%s"}'
            assert one(prom.wait_for(count % ("create", "RunPodSandbox"))) == 1
            assert one(prom.query(count % ("create", "CreateContainer"))) == 1
            assert one(prom.query(count % ("exec", "ExecSync"))) == 1
            assert one(prom.query(count % ("start", "StartContainer"))) == 2  # one OK, one NOT_FOUND
            errors = prom.query('pyrun_operation_errors_total{operation="start"}')
            assert [(r["metric"]["code"], r["value"][1]) for r in errors] == [("NOT_FOUND", "1")]
            rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
            rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
            prom.wait_for(count % ("stop", "StopPodSandbox"))
