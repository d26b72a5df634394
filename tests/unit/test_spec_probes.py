"""Probes and lifecycle hooks in a manifest (pyrun.spec.probes): defaults, validation, named ports."""
from __future__ import annotations

import pytest

from pyrun.errors import SpecError
from pyrun.spec import parse_pod
from pyrun.spec.model import Handler, Probe

C0 = "spec.containers[0]"


def pod(**container) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                                     "ports": [{"name": "http", "containerPort": 8080}], **container}]}}


def problems(data: dict) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        parse_pod(data)
    return dict(info.value.problems)


def test_defaults_are_kubernetes_ones():
    c = parse_pod(pod(livenessProbe={"exec": {"command": ["cat", "/tmp/healthy"]}})).pod.containers[0]
    assert c.liveness_probe == Probe(Handler("exec", command=("cat", "/tmp/healthy")), initial_delay=0, period=10,
                                     timeout=1, success_threshold=1, failure_threshold=3)
    assert c.readiness_probe is None and c.startup_probe is None


def test_http_probe_with_a_named_port_headers_and_scheme():
    c = parse_pod(pod(readinessProbe={"httpGet": {"port": "http", "path": "/healthz", "scheme": "HTTPS",
                                                  "httpHeaders": [{"name": "X-A", "value": "b"}]},
                                      "periodSeconds": 2, "successThreshold": 2})).pod.containers[0]
    assert c.readiness_probe.handler == Handler("httpGet", port=8080, path="/healthz", scheme="HTTPS",
                                                headers=(("X-A", "b"),))
    assert (c.readiness_probe.period, c.readiness_probe.success_threshold) == (2, 2)


def test_tcp_and_grpc_probes():
    c = parse_pod(pod(startupProbe={"tcpSocket": {"port": 80, "host": "127.0.0.1"}, "failureThreshold": 30},
                      livenessProbe={"grpc": {"port": 9000, "service": "health"}})).pod.containers[0]
    assert c.startup_probe.handler == Handler("tcpSocket", port=80, host="127.0.0.1")
    assert c.startup_probe.failure_threshold == 30
    assert c.liveness_probe.handler == Handler("grpc", port=9000, service="health")


@pytest.mark.parametrize("probe, path, words", [
    ({"exec": {"command": ["true"]}, "periodSeconds": -1}, "livenessProbe.periodSeconds", "≥ 1"),
    ({"exec": {"command": ["true"]}, "initialDelaySeconds": -3}, "livenessProbe.initialDelaySeconds", "≥ 0"),
    ({"exec": {"command": ["true"]}, "successThreshold": 2}, "livenessProbe.successThreshold", "must be 1"),
    ({"exec": {"command": []}}, "livenessProbe.exec.command", "required"),
    ({}, "livenessProbe", "exactly one handler"),
    ({"exec": {"command": ["true"]}, "tcpSocket": {"port": 1}}, "livenessProbe", "exactly one handler"),
    ({"tcpSocket": {"port": "nope"}}, "livenessProbe.tcpSocket.port", "names no port"),
    ({"tcpSocket": {"port": 70000}}, "livenessProbe.tcpSocket.port", "out of range"),
    ({"grpc": {"port": "http"}}, "livenessProbe.grpc.port", "an integer"),
    ({"httpGet": {"port": 80, "path": "x y"}}, "livenessProbe.httpGet.path", "absolute path"),
    ({"httpGet": {"port": 80, "scheme": "FTP"}}, "livenessProbe.httpGet.scheme", "one of"),
    ({"httpGet": {"port": 80, "host": "example.com"}}, "livenessProbe.httpGet.host", "address"),
    ({"exec": {"command": ["true"]}, "periodSecond": 1}, "livenessProbe.periodSecond", "did you mean"),
    # what the C monitor's fixed buffers take (a probe it cannot parse must never pass silently)
    ({"exec": {"command": ["x"] * 64}}, "livenessProbe.exec.command", "at most 63"),
    ({"exec": {"command": ["x" * 4000, "y" * 100]}}, "livenessProbe.exec.command", "at most 4095"),
    ({"httpGet": {"port": 80, "path": "/" + "p" * 1023}}, "livenessProbe.httpGet.path", "at most 1023"),
    ({"httpGet": {"port": 80, "httpHeaders": [{"name": "X", "value": "v" * 2048}]}},
     "livenessProbe.httpGet.httpHeaders", "at most 2047"),
    ({"grpc": {"port": 80, "service": "s" * 1024}}, "livenessProbe.grpc.service", "at most 1023"),
])
def test_bad_probes_name_the_field(probe, path, words):
    found = problems(pod(livenessProbe=probe))
    assert f"{C0}.{path}" in found, found
    assert words in found[f"{C0}.{path}"]


def test_hooks_exec_and_http_only():
    c = parse_pod(pod(lifecycle={"postStart": {"exec": {"command": ["touch", "/tmp/started"]}},
                                 "preStop": {"httpGet": {"port": "http", "path": "/quit"}}})).pod.containers[0]
    assert c.lifecycle.post_start == Handler("exec", command=("touch", "/tmp/started"))
    assert c.lifecycle.pre_stop == Handler("httpGet", port=8080, path="/quit")
    found = problems(pod(lifecycle={"preStop": {"sleep": {"seconds": 1}}}))
    assert f"{C0}.lifecycle.preStop.sleep" in found


def test_the_largest_probes_pyrun_takes_are_accepted():
    parse_pod(pod(livenessProbe={"exec": {"command": ["x" * 62] * 63}},
                  readinessProbe={"httpGet": {"port": 80, "path": "/" + "p" * 1022,
                                              "httpHeaders": [{"name": "X", "value": "v" * 2042}]}}))
