"""The real PodSteps (pyrun.runtime.steps): the kernel, the host and the helper processes.

Each method is a thin call into the module that does the work; PodRuntime keeps the order
and the rollback. Heavy imports stay inside the methods (`pod ls` loads none of them).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a CLI command's start-up)

from pyrun.config import Config
from pyrun.linux.procs import ProcessRef
from pyrun.runtime import container as ctr
from pyrun.runtime import resources, storage
from pyrun.runtime.records import ContainerCgroup, DeviceNode, PodCgroup, PodNetwork, PodRecord, SecurityPlan
from pyrun.runtime.state import StateStore

if TYPE_CHECKING:
    from typing import Any
    from pyrun.runtime.steps import CgroupRecord, ImageSource


class HostSteps:
    def __init__(self, cfg: Config, store: StateStore):
        self.cfg = cfg
        self.store = store

    # --- bookkeeping ---
    def collect_crashed(self, destroy: Callable[[str], object]) -> None:
        from pyrun.runtime import gc
        gc.collect_crashed(self.cfg, destroy)

    def reserve_name(self, namespace: str, name: str, pod_id: str) -> None:
        self.store.reserve_name(namespace, name, pod_id)

    def release_name(self, namespace: str, name: str, pod_id: str) -> None:
        self.store.release_name(namespace, name, pod_id)

    def make_pod_dir(self, pod_id: str) -> Path:
        pod_dir = self.store.pod_dir(pod_id)
        pod_dir.mkdir(mode=0o711)
        return pod_dir

    def remove_pod_dir(self, pod_id: str) -> None:
        """Everything but the record first, so a removal that fails half-way leaves a pod in `removing`
        that `pod rm` or `gc` can finish; iterative, as emptyDir volumes may be any depth."""
        from pyrun.linux.mounts import unmount_under
        from pyrun.linux.tree import remove_tree
        pod_dir = self.store.pod_dir(pod_id)
        if pod_dir.exists():
            unmount_under(pod_dir)
            for entry in sorted(os.listdir(pod_dir), key=lambda n: n in ("pod.json", "lock")):
                remove_tree(pod_dir / entry)
            remove_tree(pod_dir)

    # --- images ---
    def open_images(self) -> ImageSource:
        return storage.open_images(self.cfg)

    # --- cgroups ---
    def create_pod_cgroup(self, pod: PodRecord, spec: Any) -> PodCgroup:
        record = resources.plan_pod_cgroup(self.cfg, pod)
        try:
            return resources.create_pod_cgroup(self.cfg, record, pod.qos, spec)
        except BaseException:
            resources.remove_cgroup(self.cfg, record)  # what was made of it: the caller never saw the record
            raise

    def create_container_cgroup(self, pod: PodRecord, container: Any, cid: str,
                                devices: list[DeviceNode]) -> ContainerCgroup | None:
        return resources.create_container_cgroup(self.cfg, pod, container, cid, devices)

    def cgroup_files(self, record: CgroupRecord) -> tuple[list[str], str | None]:
        return resources.procs_files(self.cfg, record), resources.oom_events_file(self.cfg, record)

    def kill_cgroup(self, record: CgroupRecord) -> None:
        resources.kill_cgroup(self.cfg, record)

    def remove_cgroup(self, record: CgroupRecord) -> None:
        resources.remove_cgroup(self.cfg, record)

    # --- the sandbox and its network ---
    def launch_sandbox(self, pod_dir: Path, spec: Any, cgroup: CgroupRecord) -> ProcessRef:
        from pyrun.runtime import sandbox
        return sandbox.launch(pod_dir, spec.hostname, spec.share_process_namespace, spec.host_network,
                              spec.host_ipc, cgroup_procs=resources.procs_files(self.cfg, cgroup),
                              meanwhile=lambda: _import_create_modules(self.cfg, spec))

    def kill_sandbox(self, pod_id: str) -> None:
        from pyrun.linux.procs import terminate
        from pyrun.runtime.state import read_sandbox
        info = read_sandbox(self.store.pod_dir(pod_id))
        if info is not None and info.pause is not None:
            terminate([info.pause], 2.0)

    def release_namespaces(self, pod_id: str) -> None:
        from pyrun.linux.mounts import unmount_under
        unmount_under(self.store.pod_dir(pod_id) / "ns")

    def attach_network(self, pod: PodRecord, spec: Any) -> PodNetwork | None:
        from pyrun.runtime import podnet
        return podnet.attach(self.cfg, pod, spec)

    def detach_network(self, pod: PodRecord) -> None:
        from pyrun.runtime import podnet
        podnet.detach(self.cfg, pod)

    def write_etc_files(self, pod_dir: Path, pod: PodRecord, spec: Any) -> None:
        from pyrun.runtime import podnet
        podnet.write_etc_files(pod_dir / "etc", pod, spec)

    def prepare_volumes(self, pod_dir: Path, volumes: Sequence[Any]) -> dict[str, str]:
        from pyrun.runtime.volumes import prepare_volumes
        return prepare_volumes(pod_dir, volumes)

    # --- containers ---
    def make_container_dir(self, cid: str) -> Path:
        cdir = self.store.container_dir(cid)
        cdir.mkdir(mode=0o711)
        ctr.make_dirs(cdir)
        return cdir

    def remove_container_dir(self, cid: str) -> None:
        ctr.remove_dir(self.store, cid)

    def make_writable_layer(self, cid: str) -> Path:
        return storage.make_writable_layer(self.cfg, cid)

    def remove_writable_layer(self, cid: str) -> None:
        storage.remove_writable_layer(self.cfg, cid)

    def container_security(self, spec: Any, container: Any, pod: PodRecord) -> SecurityPlan:
        from pyrun.runtime.security import container_security
        return container_security(self.cfg, spec, container, pod)

    def spawn_container(self, cdir: Path) -> ProcessRef:
        return ctr.spawn_monitor(cdir)

    def begin_container(self, cdir: Path) -> ctr.Launch:
        return ctr.begin_monitor(cdir)

    def start_container(self, cdir: Path, name: str) -> int:
        return ctr.start(cdir, name)

    def stop_containers(self, cids: Sequence[str], grace: float) -> None:
        """All workloads get SIGTERM together, as the kubelet does; then their monitors record the exits."""
        from pyrun.linux.procs import kill_now, terminate, wait_pids_gone
        inits, monitors, supervised = [], [], False
        for cid in cids:
            init, monitor = ctr.processes(self.store, cid)
            if ctr.request_stop(self.store.container_dir(cid), grace):
                supervised = True  # its monitor runs preStop, then SIGTERM, SIGKILL after the grace period
            elif init:
                inits.append(init)
            if monitor:
                monitors.append(monitor)
        terminate(inits, grace)
        if not wait_pids_gone(monitors, 10.0 + (grace if supervised else 0)):
            kill_now(monitors)

    def kill_container(self, cid: str) -> None:
        ctr.kill(self.store, cid)


# What the rest of a create imports (the network and /etc files, volumes, a container's process, security
# and monitor; pyroute2 for a bridge pod): imported while the sandbox launcher works, instead of after it.
CREATE_MODULES = ("pyrun.runtime.podnet", "pyrun.netns.dns", "pyrun.runtime.volumes", "pyrun.spec.process",
                  "pyrun.runtime.security", "pyrun.runtime.seccomp", "pyrun.runtime.monitor", "pyrun.runtime.init")


def _import_create_modules(cfg: Config, spec: Any) -> None:
    import importlib
    for name in CREATE_MODULES:
        importlib.import_module(name)
    from pyrun.runtime import podnet
    podnet.preload(cfg, spec)
    from pyrun.runtime.spawn import preload_seccomp
    preload_seccomp()
