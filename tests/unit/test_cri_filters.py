"""List filters and label selectors (pure)."""
from __future__ import annotations

import pytest
from cri_api.v1 import api_pb2 as pb

from pyrun.cri import filters as f
from pyrun.errors import NotFound


def test_label_selector():
    assert f.labels_match({"a": "1", "b": "2"}, {"a": "1"})
    assert f.labels_match({"a": "1"}, {})
    assert not f.labels_match({"a": "1"}, {"a": "2"})
    assert not f.labels_match({}, {"a": ""})


def test_sandbox_filter():
    sb = pb.PodSandbox(id="abcdef", state=pb.SANDBOX_READY, labels={"io.kubernetes.pod.uid": "u1"})
    assert f.sandbox_matches(sb, None)
    assert f.sandbox_matches(sb, pb.PodSandboxFilter(id="abc"))
    assert not f.sandbox_matches(sb, pb.PodSandboxFilter(id="abd"))
    assert f.sandbox_matches(sb, pb.PodSandboxFilter(state=pb.PodSandboxStateValue(state=pb.SANDBOX_READY)))
    assert not f.sandbox_matches(sb, pb.PodSandboxFilter(state=pb.PodSandboxStateValue(state=pb.SANDBOX_NOTREADY)))
    assert f.sandbox_matches(sb, pb.PodSandboxFilter(label_selector={"io.kubernetes.pod.uid": "u1"}))
    assert not f.sandbox_matches(sb, pb.PodSandboxFilter(label_selector={"io.kubernetes.pod.uid": "u2"}))


def test_container_filter_and_stats_filter():
    c = pb.Container(id="c1234", pod_sandbox_id="p5678", state=pb.CONTAINER_EXITED, labels={"k": "v"})
    assert f.container_matches(c, pb.ContainerFilter(pod_sandbox_id="p56", id="c1"))
    assert not f.container_matches(c, pb.ContainerFilter(pod_sandbox_id="p9"))
    # state CONTAINER_CREATED is 0: an explicit state filter must still apply
    assert not f.container_matches(c, pb.ContainerFilter(state=pb.ContainerStateValue(state=pb.CONTAINER_CREATED)))
    assert f.container_matches(c, pb.ContainerFilter(state=pb.ContainerStateValue(state=pb.CONTAINER_EXITED)))
    assert f.container_matches(c, pb.ContainerStatsFilter(label_selector={"k": "v"}))
    assert not f.container_matches(c, pb.ContainerStatsFilter(label_selector={"k": "w"}))


def test_resolve_id():
    ids = ["aaa111", "aab222", "bbb333"]
    assert f.resolve_id("aaa111", ids, "pod") == "aaa111"
    assert f.resolve_id("b", ids, "pod") == "bbb333"
    for wanted in ("aa", "zz", ""):
        with pytest.raises(NotFound):
            f.resolve_id(wanted, ids, "pod")
