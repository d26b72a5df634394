"""The side effects of a pod's life, as one typed seam (youki's pattern: inject the platform).

PodRuntime (pyrun.runtime.pod) decides *what* to do and in which order: the state
transitions, the records, the rollback. Every step that touches the kernel, the host
or a helper process goes through a `PodSteps`: the real one is
pyrun.runtime.host_steps.HostSteps; unit tests pass a recording fake
(tests/unit/_fake_platform.py) that can fail at any step, so the create order, the
rollback at each step and the state transitions are tested without root.

Each step that makes something has an undo, idempotent and safe to call when the
step failed half-way or never ran (a rollback and `pyrun gc` call them blindly):

  reserve_name            release_name
  make_pod_dir            remove_pod_dir
  create_pod_cgroup       remove_cgroup        (also for a container's cgroup)
  launch_sandbox          kill_sandbox         (the pause process; its namespaces are pinned in the pod dir)
  attach_network          detach_network
  make_container_dir      remove_container_dir
  make_writable_layer     remove_writable_layer
  create_container_cgroup remove_cgroup
  spawn_container         kill_container       (the monitor and the container's init)

Records themselves (pod.json, container.json) are written by the StateStore into the
directories made here. Pure: this module only declares types (the records are pyrun.runtime.records).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pyrun.runtime.records import ContainerCgroup, DeviceNode, PodCgroup, PodNetwork, PodRecord, SecurityPlan

if TYPE_CHECKING:
    from pyrun.linux.procs import ProcessRef
    from pyrun.spec.model import ContainerSpec, PodSpec, VolumeSpec

# A pod's or a container's cgroup record, or None when there is none.
CgroupRecord = PodCgroup | ContainerCgroup | None


class ImageInfo(Protocol):
    """What creating a container needs of an image."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def config(self) -> dict[str, Any]: ...


class ImageSource(Protocol):
    def resolve(self, ref: str) -> Any: ...  # an ImageInfo; NotFound if there is no such image

    def layer_dirs(self, image: Any) -> Sequence[Path]: ...  # lowerdir order: top layer first


class PodSteps(Protocol):
    """Everything PodRuntime's create, start, stop and remove do outside the state store."""

    # --- bookkeeping ---
    def collect_crashed(self, destroy: Callable[[str], object]) -> None:
        """Finish, with `destroy` (PodRuntime.destroy), the pods whose creator or remover died (pyrun.runtime.gc)."""

    def reserve_name(self, namespace: str, name: str, pod_id: str) -> None:
        """Atomic: AlreadyExists if another pod holds namespace/name."""

    def release_name(self, namespace: str, name: str, pod_id: str) -> None: ...

    def make_pod_dir(self, pod_id: str) -> Path: ...

    def remove_pod_dir(self, pod_id: str) -> None:
        """Unmount what is under it (pinned namespaces, volumes), then remove it, the record last."""

    # --- images ---
    def open_images(self) -> ImageSource: ...

    # --- cgroups ---
    def create_pod_cgroup(self, pod: PodRecord, spec: PodSpec) -> PodCgroup:
        """The pod's cgroup and its sandbox leaf; a failure half-way removes what it made."""

    def create_container_cgroup(self, pod: PodRecord, container: ContainerSpec, cid: str,
                                devices: list[DeviceNode]) -> ContainerCgroup | None: ...

    def cgroup_files(self, record: CgroupRecord) -> tuple[list[str], str | None]:
        """(cgroup.procs files a new process joins, the memory.events file to watch for OOM kills)."""

    def kill_cgroup(self, record: CgroupRecord) -> None: ...

    def remove_cgroup(self, record: CgroupRecord) -> None: ...

    # --- the sandbox and its network ---
    def launch_sandbox(self, pod_dir: Path, spec: PodSpec, cgroup: CgroupRecord) -> ProcessRef:
        """Start the pause process in the pod's new namespaces and pin them under pod_dir/ns."""

    def kill_sandbox(self, pod_id: str) -> None: ...

    def release_namespaces(self, pod_id: str) -> None:
        """Unmount the pod's pinned namespaces (its processes are gone; idempotent)."""

    def attach_network(self, pod: PodRecord, spec: PodSpec) -> PodNetwork | None: ...

    def detach_network(self, pod: PodRecord) -> None: ...

    def write_etc_files(self, pod_dir: Path, pod: PodRecord, spec: PodSpec) -> None: ...

    def prepare_volumes(self, pod_dir: Path, volumes: Sequence[VolumeSpec]) -> dict[str, str]: ...

    # --- containers ---
    def make_container_dir(self, cid: str) -> Path: ...

    def remove_container_dir(self, cid: str) -> None: ...

    def make_writable_layer(self, cid: str) -> Path: ...

    def remove_writable_layer(self, cid: str) -> None: ...

    def container_security(self, spec: PodSpec, container: ContainerSpec, pod: PodRecord) -> SecurityPlan:
        """The effective security settings (reads this process's limits and capabilities)."""

    def spawn_container(self, cdir: Path) -> ProcessRef:
        """Start the monitor, which forks the init; returns once the container is created."""

    def begin_container(self, cdir: Path) -> Any:
        """spawn_container without the wait: returns at once a handle whose wait() returns the init
        once the container is created (pyrun.runtime.container.Launch)."""

    def start_container(self, cdir: Path, name: str) -> int:
        """Release a created container: its init execs the workload; returns the workload's pid."""

    def stop_containers(self, cids: Sequence[str], grace: float) -> None:
        """SIGTERM every workload together, SIGKILL after grace; wait for (or kill) their monitors."""

    def kill_container(self, cid: str) -> None:
        """SIGKILL whatever is left of a container: its workload and its monitor."""
