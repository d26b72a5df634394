import pytest

from pyrun.cgroups.names import CgroupPath, container_path, pod_path
from pyrun.errors import CgroupError

PARENT = CgroupPath.parse("pyrun")


@pytest.mark.parametrize("qos, expected", [
    ("Guaranteed", "/pyrun/kubepods/pod123"),
    ("Burstable", "/pyrun/kubepods/burstable/pod123"),
    ("BestEffort", "/pyrun/kubepods/besteffort/pod123"),
])
def test_pod_path_follows_the_kubelet(qos, expected):
    assert pod_path(PARENT, qos, "123").cgroupfs == expected


def test_container_path_and_renderings():
    c = container_path(pod_path(CgroupPath.parse("/kubepods/burstable/pod-a"), "BestEffort", "u-1"), "abc")
    assert c.components == ("kubepods", "burstable", "pod-a", "kubepods", "besteffort", "podu-1", "abc")
    assert str(c) == "/kubepods/burstable/pod-a/kubepods/besteffort/podu-1/abc"
    assert pod_path(PARENT, "Burstable", "u-1").systemd == "pyrun-kubepods-burstable-podu_1.slice"


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "x\n"])
def test_bad_components_are_refused(bad):
    with pytest.raises(CgroupError, match="invalid container id"):
        container_path(PARENT, bad)


def test_unknown_qos():
    with pytest.raises(CgroupError, match="unknown QoS class"):
        pod_path(PARENT, "guaranteed", "1")


def test_is_within():
    pod = pod_path(PARENT, "Guaranteed", "1")
    assert pod.is_within(PARENT) and not PARENT.is_within(pod)
    assert not CgroupPath.parse("pyrunx/a").is_within(PARENT)
