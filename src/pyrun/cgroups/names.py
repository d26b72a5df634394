"""Cgroup names in the kubelet's layout (pure).

A cgroup is named by a tuple of components, relative to every hierarchy's root,
exactly as pkg/kubelet/cm names them (CgroupName = []string):

    <parent...>/kubepods/pod<uid>/<container-id>              Guaranteed
    <parent...>/kubepods/burstable/pod<uid>/<container-id>    Burstable
    <parent...>/kubepods/besteffort/pod<uid>/<container-id>   BestEffort

The parent defaults to "pyrun" (Config.cgroup_parent) and may be a path such as
"/kubepods/burstable/pod123" (a CRI `cgroup_parent`). The cgroupfs rendering is
the directory below a hierarchy's mount point; the systemd rendering
(`pyrun-kubepods-burstable-pod123.slice`) is for display only.
"""
from __future__ import annotations


from pyrun.errors import CgroupError
from pyrun.frozen import Frozen

QOS_CLASSES = ("Guaranteed", "Burstable", "BestEffort")
KUBEPODS = "kubepods"
_QOS_LEVEL = {"Guaranteed": (), "Burstable": ("burstable",), "BestEffort": ("besteffort",)}


def check_component(name: str, what: str = "cgroup name component") -> str:
    """A component must be one plain directory name."""
    if not name or name in (".", "..") or "/" in name or "\0" in name or "\n" in name:
        raise CgroupError(f"invalid {what} {name!r}: must be a non-empty directory name without '/'")
    return name


class CgroupPath(Frozen):
    """A cgroup name: components below each hierarchy's root, e.g. ("pyrun", "kubepods", "pod1")."""

    components: tuple[str, ...]

    def __post_init__(self) -> None:
        for c in self.components:
            check_component(c)

    @classmethod
    def parse(cls, path: str) -> "CgroupPath":
        """"/kubepods/burstable" or "pyrun" -> components (empty parts are dropped)."""
        return cls(tuple(p for p in path.split("/") if p))

    def child(self, name: str) -> "CgroupPath":
        return CgroupPath(self.components + (check_component(name),))

    @property
    def parent(self) -> "CgroupPath":
        return CgroupPath(self.components[:-1])

    @property
    def cgroupfs(self) -> str:
        """The path below a hierarchy's mount point: "/pyrun/kubepods/pod1"."""
        return "/" + "/".join(self.components)

    @property
    def systemd(self) -> str:
        """The kubelet's systemd rendering, for display: "pyrun-kubepods-pod1.slice".

        Like the kubelet, a "-" inside a component becomes "_" (systemd uses "-" for nesting).
        """
        if not self.components:
            return "-.slice"
        return "-".join(c.replace("-", "_") for c in self.components) + ".slice"

    def is_within(self, other: "CgroupPath") -> bool:
        """True when self is `other` or below it."""
        return self.components[: len(other.components)] == other.components

    def __str__(self) -> str:
        return self.cgroupfs


def qos_path(parent: CgroupPath, qos: str) -> CgroupPath:
    """<parent>/kubepods[/burstable|/besteffort]."""
    if qos not in _QOS_LEVEL:
        raise CgroupError(f"unknown QoS class {qos!r}: expected one of {', '.join(QOS_CLASSES)}")
    return CgroupPath(parent.components + (KUBEPODS,) + _QOS_LEVEL[qos])


def pod_path(parent: CgroupPath, qos: str, pod_uid: str) -> CgroupPath:
    """<parent>/kubepods[/<qos>]/pod<uid>; a "-" in the uid stays (cgroupfs allows it)."""
    return qos_path(parent, qos).child("pod" + check_component(pod_uid, "pod uid"))


def container_path(pod: CgroupPath, container_id: str) -> CgroupPath:
    return pod.child(check_component(container_id, "container id"))
