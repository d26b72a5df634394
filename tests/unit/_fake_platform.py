"""A recording fake of pyrun.runtime.steps.PodSteps, for unit tests of PodRuntime without root.

Every call is recorded in order (`calls`). A step that makes something adds its resource to
`made`; its undo removes it again and is recorded as `effective` only if it did. A test can
tell the fake to fail at the Nth forward step (`fail_at=N`, 1-based): it raises FakeFailure
before doing anything, and `made_at_failure` keeps what existed then, so a test can check the
rollback undid exactly that, in reverse order.

No kernel is touched: directories are made in the state root (a temp dir), so the real
StateStore can write its records into them; the monitor's files (monitor.json, status.json,
exit.json) are written as the monitor would. Processes that must read as alive (pause, the
monitors) are one stand-in process of the test's, never signalled: every signal goes
through this fake.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from pyrun.errors import NotFound, PyrunError
from pyrun.linux.procs import ProcessRef
from pyrun.runtime import state
from pyrun.runtime.records import (ContainerCgroup, ContainerStatus, PodCgroup, PodNetwork, PodRecord, SandboxInfo,
                                   SeccompPlan, SecurityPlan)
from pyrun.runtime.state import CONTAINER_CREATED, CONTAINER_EXITED, CONTAINER_RUNNING, StateStore, now_ns

# undo step -> the kind of resource it removes (the step that made it is in MAKES)
UNDOES = {"release_name": "name", "remove_pod_dir": "pod_dir", "remove_cgroup": "cgroup",
          "kill_sandbox": "sandbox", "detach_network": "network", "remove_container_dir": "container_dir",
          "remove_writable_layer": "layer", "kill_container": "processes"}
MAKES = {"reserve_name": "name", "make_pod_dir": "pod_dir", "create_pod_cgroup": "cgroup",
         "create_container_cgroup": "cgroup", "launch_sandbox": "sandbox", "attach_network": "network",
         "make_container_dir": "container_dir", "make_writable_layer": "layer", "spawn_container": "processes"}
# steps that only ask (no side effect worth failing at)
QUERIES = {"cgroup_files"}


class FakeFailure(PyrunError):
    """The failure a test asked the fake for."""


@dataclass
class Call:
    step: str
    key: tuple | None = None      # the resource made or undone: (kind, id)
    undo: bool = False
    effective: bool = True        # for an undo: it removed something that had been made
    args: tuple = ()


@dataclass(frozen=True)
class FakeImage:
    name: str
    id: str
    config: dict = field(default_factory=lambda: {"config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]}})


class FakeImages:
    def __init__(self, missing: set[str]):
        self.missing = missing

    def resolve(self, ref: str) -> FakeImage:
        if ref in self.missing:
            raise NotFound(f"image {ref!r} not found")
        return FakeImage(name=ref, id="sha256:" + "ab" * 32)

    def layer_dirs(self, image: FakeImage) -> list[Path]:
        return [Path("/fake/layers/top"), Path("/fake/layers/base")]


class FakePlatform:
    def __init__(self, store: StateStore, stand_in: ProcessRef, fail_at: int | None = None):
        self.store = store
        self.stand_in = stand_in          # reads as alive; never signalled
        self.fail_at = fail_at
        self.calls: list[Call] = []
        self.made: list[tuple] = []
        self.made_at_failure: list[tuple] | None = None
        self.forward_steps = 0
        self.missing_images: set[str] = set()
        self.monitors_alive: set[str] = set()
        self.hooks: dict[str, Callable[..., None]] = {}  # step -> called with the step's arguments first

    # --- recording ------------------------------------------------------------------------------
    def _step(self, step: str, key: tuple | None = None, *args: Any) -> None:
        """A forward step: count it, fail it if asked, record it (and what it makes)."""
        if step in self.hooks:
            self.hooks[step](*args)
        if step not in QUERIES:
            self.forward_steps += 1
            if self.fail_at == self.forward_steps:
                self.made_at_failure = list(self.made)
                self.calls.append(Call(step, key, args=args, effective=False))
                raise FakeFailure(f"fake failure at step {self.forward_steps} ({step})")
        self.calls.append(Call(step, key, args=args))
        if key is not None:
            self.made.append(key)

    def _undo(self, step: str, key: tuple | None, *args: Any) -> bool:
        if step in self.hooks:
            self.hooks[step](*args)
        effective = key is not None and key in self.made
        if effective:
            self.made.remove(key)
        self.calls.append(Call(step, key, undo=True, effective=effective, args=args))
        return effective

    def names(self, *, undo: bool | None = None) -> list[str]:
        return [c.step for c in self.calls if undo is None or c.undo == undo]

    def effective_undos(self) -> list[tuple]:
        return [c.key for c in self.calls if c.undo and c.effective]

    # --- bookkeeping ------------------------------------------------------------------------------
    def collect_crashed(self, destroy: Callable[[str], object]) -> None:
        self._step("collect_crashed")

    def reserve_name(self, namespace: str, name: str, pod_id: str) -> None:
        self._step("reserve_name", ("name", f"{namespace}/{name}"), namespace, name, pod_id)
        self.store.reserve_name(namespace, name, pod_id)

    def release_name(self, namespace: str, name: str, pod_id: str) -> None:
        if self.store.name_holder(namespace, name) == pod_id:
            self._undo("release_name", ("name", f"{namespace}/{name}"), namespace, name, pod_id)
            self.store.release_name(namespace, name, pod_id)
        else:
            self._undo("release_name", None, namespace, name, pod_id)

    def make_pod_dir(self, pod_id: str) -> Path:
        self._step("make_pod_dir", ("pod_dir", pod_id), pod_id)
        pod_dir = self.store.pod_dir(pod_id)
        pod_dir.mkdir()
        return pod_dir

    def remove_pod_dir(self, pod_id: str) -> None:
        self._undo("remove_pod_dir", ("pod_dir", pod_id), pod_id)
        shutil.rmtree(self.store.pod_dir(pod_id), ignore_errors=True)

    def open_images(self) -> FakeImages:
        self._step("open_images")
        return FakeImages(self.missing_images)

    # --- cgroups ------------------------------------------------------------------------------------
    def create_pod_cgroup(self, pod: PodRecord, spec: Any) -> PodCgroup:
        self._step("create_pod_cgroup", ("cgroup", f"pod{pod.uid}"), pod.id)
        return PodCgroup(path=f"pod{pod.uid}", sandbox=f"pod{pod.uid}/pause", owned=True)

    def create_container_cgroup(self, pod: PodRecord, container: Any, cid: str, devices: list) -> ContainerCgroup | None:
        if pod.cgroup is None:
            self._step("create_container_cgroup", None, cid)
            return None
        path = f"{pod.cgroup.path}/{cid}"
        self._step("create_container_cgroup", ("cgroup", path), cid)
        return ContainerCgroup(path=path, prune=True)

    def cgroup_files(self, record: PodCgroup | ContainerCgroup | None) -> tuple[list[str], str | None]:
        self._step("cgroup_files")
        return ([f"/fake/cgroup/{record.path}/cgroup.procs"], None) if record else ([], None)

    def kill_cgroup(self, record: PodCgroup | ContainerCgroup | None) -> None:
        self._step("kill_cgroup", None, record)

    def remove_cgroup(self, record: PodCgroup | ContainerCgroup | None) -> None:
        self._undo("remove_cgroup", ("cgroup", record.path) if record else None, record)

    # --- the sandbox and its network ----------------------------------------------------------------
    def launch_sandbox(self, pod_dir: Path, spec: Any, cgroup: PodCgroup | None) -> ProcessRef:
        self._step("launch_sandbox", ("sandbox", pod_dir.name), pod_dir.name)
        state.write_sandbox(pod_dir, SandboxInfo(pause=self.stand_in))
        return self.stand_in

    def kill_sandbox(self, pod_id: str) -> None:
        self._undo("kill_sandbox", ("sandbox", pod_id), pod_id)

    def release_namespaces(self, pod_id: str) -> None:
        """Part of the sandbox here (the fake pins nothing): an undo that takes nothing."""
        self._undo("release_namespaces", None, pod_id)

    def attach_network(self, pod: PodRecord, spec: Any) -> PodNetwork:
        self._step("attach_network", ("network", pod.id), pod.id)
        return PodNetwork(ip="10.88.0.7", ifname="eth0")

    def detach_network(self, pod: PodRecord) -> None:
        self._undo("detach_network", ("network", pod.id) if pod.network else None, pod.id)

    def write_etc_files(self, pod_dir: Path, pod: PodRecord, spec: Any) -> None:
        self._step("write_etc_files", None, pod_dir.name)

    def prepare_volumes(self, pod_dir: Path, volumes: Any) -> dict[str, str]:
        self._step("prepare_volumes", None, pod_dir.name)
        return {v.name: str(pod_dir / "volumes" / v.name) for v in volumes}

    # --- containers ---------------------------------------------------------------------------------
    def make_container_dir(self, cid: str) -> Path:
        self._step("make_container_dir", ("container_dir", cid), cid)
        cdir = self.store.container_dir(cid)
        (cdir / "rootfs").mkdir(parents=True)
        return cdir

    def remove_container_dir(self, cid: str) -> None:
        self._undo("remove_container_dir", ("container_dir", cid), cid)
        shutil.rmtree(self.store.container_dir(cid), ignore_errors=True)

    def make_writable_layer(self, cid: str) -> Path:
        self._step("make_writable_layer", ("layer", cid), cid)
        return Path("/fake/data/containers") / cid

    def remove_writable_layer(self, cid: str) -> None:
        self._undo("remove_writable_layer", ("layer", cid), cid)

    def container_security(self, spec: Any, container: Any, pod: PodRecord) -> SecurityPlan:
        self._step("container_security", None, container.name)
        return SecurityPlan(capabilities=("CAP_CHOWN", "CAP_KILL"), seccomp=SeccompPlan(type="Unconfined"))

    def spawn_container(self, cdir: Path) -> ProcessRef:
        """As the monitor: monitor.json, then status.json (created, the init's pid)."""
        cid = cdir.name
        self._step("spawn_container", ("processes", cid), cid)
        state.write_monitor(cdir, self.stand_in)
        state.write_status(cdir, ContainerStatus(state=CONTAINER_CREATED, pid=self.stand_in.pid,
                                                 start_time=self.stand_in.start_time))
        self.monitors_alive.add(cid)
        return self.stand_in

    def begin_container(self, cdir: Path) -> Any:
        """As spawn_container; the handle's wait() returns the stand-in."""
        ref = self.spawn_container(cdir)
        return SimpleNamespace(wait=lambda timeout=None: ref, finished=lambda: True)

    def start_container(self, cdir: Path, name: str) -> int:
        self._step("start_container", None, cdir.name)
        self._monitor_saves(cdir.name, state=CONTAINER_RUNNING, started_at=now_ns())
        return self.stand_in.pid

    def stop_containers(self, cids: Any, grace: float) -> None:
        """As SIGTERM would: each workload with a live monitor exits 143, its monitor records it and exits."""
        self._step("stop_containers", None, tuple(cids), grace)
        for cid in cids:
            if cid in self.monitors_alive:
                self._exit(cid, 143, "SIGTERM")

    def kill_container(self, cid: str) -> None:
        if self._undo("kill_container", ("processes", cid), cid) and cid in self.monitors_alive:
            self._exit(cid, 137, "SIGKILL")

    # --- what the monitor would write ---------------------------------------------------------------
    def _monitor_saves(self, cid: str, **changes: Any) -> None:
        cdir = self.store.container_dir(cid)
        state.write_status(cdir, replace(state.read_status(cdir), **changes))

    def _exit(self, cid: str, code: int, signal: str) -> None:
        state.write_exit(self.store.container_dir(cid),
                         ContainerStatus(state=CONTAINER_EXITED, exit_code=code, reason="Error", signal=signal,
                                         finished_at=now_ns()))
        self.monitor_gone(cid)
        if ("processes", cid) in self.made:
            self.made.remove(("processes", cid))

    def monitor_gone(self, cid: str) -> None:
        """The container's monitor died (or exited): its monitor.json names a process that is gone."""
        self.monitors_alive.discard(cid)
        gone = ProcessRef(self.stand_in.pid, self.stand_in.start_time + 1)  # same pid, another process
        state.write_monitor(self.store.container_dir(cid), gone)
