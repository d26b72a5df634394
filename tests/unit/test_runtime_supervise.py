"""pyrun.runtime.supervise: what a container's monitor is asked to look after, and how it is told."""
from __future__ import annotations

from pyrun.runtime import supervise
from pyrun.runtime.records import InitConfig, RootfsSpec, ProcessSpec, Supervision
from pyrun.runtime.state import read_status, write_status
from pyrun.runtime.records import ContainerStatus
from pyrun.runtime.status import container_ready, container_reason
from pyrun.spec import parse_pod


def container(**fields):
    data = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox", **fields}]}}
    return parse_pod(data).pod.containers[0]


def test_nothing_to_do_costs_nothing():
    assert supervise.plan("Never", container(), 30, "10.0.0.2") is None


def test_plan_carries_policy_probes_and_hooks():
    sup = supervise.plan("Never", container(livenessProbe={"exec": {"command": ["true"]}},
                                            lifecycle={"preStop": {"exec": {"command": ["sh"]}}}), 5, "10.0.0.2")
    assert sup.restart_policy == "Never" and set(sup.probes) == {"liveness"} and set(sup.hooks) == {"pre_stop"}
    assert supervise.plan("Always", container(), 30, None) == Supervision(restart_policy="Always", grace_period=30)


def test_argv_encodes_every_string_in_hex():
    sup = supervise.plan("OnFailure", container(
        readinessProbe={"httpGet": {"port": 80, "path": "/a b".replace(" ", "%20"),
                                    "httpHeaders": [{"name": "X", "value": "y z"}]}, "periodSeconds": 2},
        livenessProbe={"exec": {"command": ["sh", "-c", "test -f /x"]}}), 3, "10.0.0.2")
    argv = supervise.supervise_argv(sup, python="/py", netns="/ns/net", cgroup_procs=("/cg/procs",), workdir="/",
                                    seccomp_bpf=None, state=None)
    opts = dict(zip(argv[::2], argv[1::2]))
    assert opts["--restart-policy"] == "onfailure" and opts["--grace"] == "3" and opts["--pod-ip"] == "10.0.0.2"
    assert opts["--probe-liveness"] == "0 10 1 1 3 exec " + ",".join(w.encode().hex() for w in
                                                                      ["sh", "-c", "test -f /x"])
    words = opts["--probe-readiness"].split()
    assert words[:7] == ["0", "2", "1", "1", "3", "http", "80"]
    assert bytes.fromhex(words[8]) == b"/a%20b" and bytes.fromhex(words[9]) == b"X: y z\r\n"
    assert words[7] == "-"  # no host: the pod's address
    assert "--sup-state" not in opts and opts["--seccomp-bpf"] == ""


def test_supervision_round_trips_in_the_config():
    sup = Supervision(restart_policy="Always", grace_period=2, pod_ip="10.0.0.3",
                      probes={"liveness": {"period": 1}}, hooks={})
    config = InitConfig(id="x", name="c", pod_id="p", namespaces={}, rootfs=RootfsSpec((), "u", "w", "t"),
                        process=ProcessSpec(), log_path="/l", supervision=sup)
    assert InitConfig.from_dict(config.to_dict()).supervision == sup
    assert "supervision" not in InitConfig.from_dict({**config.to_dict(), "supervision": None}).to_dict()


def test_status_merges_the_monitors_supervision_file(tmp_path):
    write_status(tmp_path, ContainerStatus(state="running", pid=5, started_at=1))
    (tmp_path / "sup.json").write_text('{"restart_count": 2, "ready": false, "state": "waiting", '
                                       '"reason": "CrashLoopBackOff", "last_state": {"exit_code": 1}}')
    status = read_status(tmp_path)
    assert (status.state, status.reason, status.restart_count) == ("waiting", "CrashLoopBackOff", 2)
    assert container_reason(status) == "CrashLoopBackOff" and not container_ready(status)
    (tmp_path / "sup.json").write_text('{"restart_count": 2, "ready": true}')
    assert container_ready(read_status(tmp_path))
    (tmp_path / "sup.json").write_text('{"restart_count": 2, "ready": false}')
    assert not container_ready(read_status(tmp_path))


def test_probe_helper_grpc_health_wire_format():
    from pyrun.runtime import probehelper
    assert probehelper.health_request("") == b""
    assert probehelper.health_request("db") == b"\x0a\x02db"
    assert probehelper.health_request("x" * 200)[:3] == b"\x0a\xc8\x01"
    assert probehelper.health_status(b"\x08\x01") == 1
    assert probehelper.health_status(b"\x08\x02") == 2
    assert probehelper.health_status(b"") == 0
    assert probehelper.health_status(b"\x12\x01z\x08\x03") == 3  # an unknown string field first


def test_probe_helper_headers():
    from pyrun.runtime import probehelper
    assert probehelper.parse_headers("X-A: b c\r\nHost: h\r\n") == [("X-A", "b c"), ("Host", "h")]
    assert probehelper.parse_headers("") == []
