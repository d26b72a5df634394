"""The one way into pyrun's runtime: `Runtime`, used by both front ends (pyrun.cli, pyrun.cri).

The front ends parse arguments or translate protobuf; everything that touches the state store,
cgroups, monitors, namespaces or helper processes happens behind this object:

  lifecycle   create (a whole pod, or a sandbox and containers one by one), start, stop, remove, gc
  queries     get, list, observe (status), inspect, containers by id
  exec        exec_sync (timeout, output cap), exec (streamed: any stdio, a tty), exec_here (`pyrun exec`)
  output      logs (read, follow across rotation), attach, reopen_log
  resources   stats (one cgroup sample and the CPU rate), update_resources, metrics_targets (Prometheus)
  network     port_forward (a dialer into the pod's network namespace)
  images      open_images, images_in_use (the image store the containers use)

pyproject.toml's import-linter contracts keep it that way: pyrun.cli and pyrun.cri import from
pyrun.runtime only this module, pyrun.runtime.status and pyrun.runtime.logs (the CRI log format).
Records are returned as the store keeps them (pyrun.runtime.records, re-exported here: frozen
dataclasses); `require_running` is the one "container must be running" check.
"""
from __future__ import annotations

import contextlib
import os
import _thread  # threading.Lock is _thread.allocate_lock; importing threading costs the CLI
import time
from pathlib import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a CLI command's start-up)
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator

from pyrun.config import Config
from pyrun.errors import CgroupError, InvalidState, NotFound, RecordError, UsageError
from pyrun.frozen import Frozen, replace
from pyrun.runtime.exec import MAX_EXEC_SYNC_OUTPUT, ExecHandle, ExecResult, require_command
from pyrun.runtime.pod import PodRuntime
from pyrun.runtime.records import (ContainerCgroup, ContainerCri, ContainerRecord, MountSpec, PodCgroup, PodCri,
                                   PodRecord)
from pyrun.runtime.stats import CpuRates, Usage, pod_key, tree_usage
from pyrun.runtime.status import PodStatus, may_still_write, pod_status, require_running

__all__ = ["Runtime", "AttachTarget", "ExecHandle", "ExecResult", "PortTarget", "Usage", "PodStatus",
           "MAX_EXEC_SYNC_OUTPUT", "helpers", "PodRecord", "ContainerRecord", "PodCri", "ContainerCri", "MountSpec"]


class AttachTarget(Frozen):
    """A running container's output (its CRI log, and whether it may still write to it) and input.

    tty: the container runs on a terminal (its output is one stream); open_input(): the workload's
    input from its monitor, ours to close (a tty's master, which also takes TIOCSWINSZ; or its stdin
    pipe, which a stdin_once container gives out once), None without one."""

    container: str
    log_path: str
    running: Callable[[], bool]
    tty: bool = False
    open_input: Callable[[], int | None] | None = None


class PortTarget(Frozen):
    """A pod whose ports can be reached: dial(port) is a connected socket (NetworkError if refused)."""

    pod: str
    dial: Callable[[int], object]


class Runtime:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self._pods = PodRuntime(cfg)
        self._store = self._pods.store
        self._rates = CpuRates()
        self._cg: Any = None  # a pyrun.cgroups driver, once opened
        self._cg_lock = _thread.allocate_lock()
        self._metrics: Any = None  # a pyrun.runtime.metrics_source.MetricsSource, once asked for

    # --- lifecycle -----------------------------------------------------------------------------
    def create(self, loaded, start: bool = True) -> PodRecord:
        """A whole pod from a validated manifest (pyrun.spec.load_pod_file), started by default."""
        return self._pods.create(loaded, start=start)

    def create_sandbox(self, spec, warnings=(), *, log_dir: str | None = None, cri: PodCri | None = None,
                       cgroup_parent_override: str | None = None) -> PodRecord:
        return self._pods.create_sandbox(spec, warnings, log_dir=log_dir, cri=cri,
                                         cgroup_parent_override=cgroup_parent_override)

    def create_container(self, pod_id: str, c, **kw) -> ContainerRecord:
        """One container in a ready pod (PodRuntime.create_container: wait=False returns before its init
        is set up; start_container then raises what failed in the set-up)."""
        return self._pods.create_container(pod_id, c, **kw)

    def start_container(self, cid: str) -> int:
        """InvalidState unless the container is created (the check is PodRuntime's)."""
        return self._pods.start_container(cid)

    def stop_container(self, cid: str, grace: float) -> None:
        self._pods.stop_container(cid, grace)

    def remove_container(self, cid: str, force: bool = False, background: bool = False) -> None:
        """background (a server): return once the container is gone from its pod and its record; what
        is left of it is removed by a worker thread (finished before its pod stops or goes, and by close())."""
        self._pods.remove_container(cid, force=force, background=background)
        self._rates.forget(cid)

    def close(self) -> None:
        """For a server on its way out: finish what it left to finish in the background (removals)."""
        self._pods.reaper.close()

    def stop(self, ref: str, grace: float | None = None, release: bool = False) -> PodRecord:
        """release: remove the stopped pod's cgroups and pinned namespaces now rather than with the pod
        (the CRI's stop, as containerd's)."""
        return self._pods.stop(ref, grace, release=release)

    def remove(self, ref: str, force: bool = False) -> None:
        pod = self.get(ref)
        self._forget_pod_rates(pod.id, self._pods.remove_pod(pod, force=force))

    def destroy(self, pod_id: str) -> None:
        """Remove everything a pod made, whatever state it is in (idempotent)."""
        self._forget_pod_rates(pod_id, self._pods.destroy(pod_id))

    def _forget_pod_rates(self, pod_id: str, container_ids: list[str]) -> None:
        for key in [pod_key(pod_id), *container_ids]:
            self._rates.forget(key)

    def gc(self) -> dict:
        """`pyrun gc`: crashed pods, orphaned containers, names, writable layers, network allocations."""
        from pyrun.runtime.gc import collect_all
        return collect_all(self.cfg, self._pods.destroy)

    def ensure_state_root(self) -> None:
        self._store.ensure()

    def check_start(self) -> None:
        """For a server's start: what every pod needs, each missing piece named (creates nothing): the
        cgroup controllers and a writable cgroup parent, a data root on a filesystem overlayfs can use."""
        from pyrun.runtime import storage
        self._cgroups().check_usable()
        if storage.owner_of(Path(self.cfg.data_root)) is None:
            storage.check_filesystem(Path(self.cfg.data_root))

    def prepare_roots(self) -> None:
        """The state root (errors name --root) and the data root, claimed for it (errors name
        --data-root); a data root that fails takes back a state root this call made."""
        from pyrun.runtime import storage
        made = not os.path.lexists(self.cfg.root)
        self._store.ensure()
        try:
            storage.claim(self.cfg)
        except BaseException:
            if made:  # leave nothing behind
                from pyrun.linux.tree import remove_tree
                remove_tree(self.cfg.root)
            raise

    def recover(self) -> list[str]:
        """At a server's start: remove the pods a killed pyrun left half-made; their ids."""
        from pyrun.runtime.gc import collect_crashed
        self._store.ensure()
        return collect_crashed(self.cfg, self._pods.destroy)

    # --- network -------------------------------------------------------------------------------
    def check_network(self, ref: str) -> list[str]:
        """CNI CHECK of a --network cni pod: the networks checked (NetworkError naming the plugin)."""
        from pyrun.runtime import podnet
        return podnet.check(self.cfg, self.get(ref))

    def cni_status(self) -> tuple[bool, str, str]:
        """(ready, reason, message) of --network cni, read again on each call (the config may come later)."""
        from pyrun.runtime import podnet
        return podnet.cni_status(self.cfg)

    # --- queries -------------------------------------------------------------------------------
    def get(self, ref: str) -> PodRecord:
        """A pod by name, namespace/name or id prefix."""
        return self._pods.get(ref)

    def list_pods(self) -> list[PodRecord]:
        """Every pod (after removing what crashed commands left)."""
        return self._pods.list()

    def pods(self) -> list[PodRecord]:
        """Every pod, as stored now (no clean-up first: the CRI lists often)."""
        return self._store.pods()

    def pod_ids(self) -> list[str]:
        return self._store.pod_ids()

    def container_ids(self) -> list[str]:
        return self._store.container_ids()

    def read_pod(self, pod_id: str) -> PodRecord:
        return self._store.read_pod(pod_id)

    def name_holder(self, namespace: str, name: str) -> str | None:
        """The id of the pod holding a name, or None."""
        return self._store.name_holder(namespace, name)

    def container(self, cid: str) -> ContainerRecord:
        """A container's record with its status (unknown when its monitor died); one created with
        wait=False is reported once its init is set up (created, or exited: StartError)."""
        self._pods.settle(cid)
        return self._pods.state_of(cid)

    def containers(self, pod: PodRecord) -> list[ContainerRecord]:
        return self._pods.containers(pod)

    def find_container(self, pod: PodRecord, name: str) -> ContainerRecord:
        return self._pods.find_container(pod, name)

    def pick_container(self, pod: PodRecord, name: str | None) -> ContainerRecord:
        """The named container, or the pod's only one when no name is given."""
        if name:
            return self.find_container(pod, name)
        entries = pod.containers
        if len(entries) != 1:
            names = ", ".join(e.name for e in entries)
            raise UsageError(f"pod {pod.name} has {len(entries)} containers; name one of: {names}")
        return self.find_container(pod, entries[0].name)

    def observe(self, pod: PodRecord) -> tuple[list[ContainerRecord], PodStatus]:
        """The pod's containers (with their reported status) and the pod's status."""
        return self._pods.observe(pod)

    @staticmethod
    def pause_alive(pod: PodRecord) -> bool:
        from pyrun.runtime.pod import pause_alive
        return pause_alive(pod)

    def inspect(self, pod: PodRecord) -> dict:
        """`pyrun pod inspect`: the pod as the kernel sees it."""
        from pyrun.runtime.inspect import inspect_pod
        return inspect_pod(self._pods, pod)

    # --- exec ----------------------------------------------------------------------------------
    def _running(self, cid: str) -> ContainerRecord:
        rec = self.container(cid)
        require_running(rec.name, rec.status)
        return rec

    def exec(self, cid: str, argv, env=(), cwd: str | None = None) -> ExecHandle:
        """A command to run in running container `cid` (started by the caller, with its stdio)."""
        rec = self._running(cid)
        argv = require_command(argv)
        return ExecHandle(self._store.container_dir(rec.id), rec.name, tuple(argv), tuple(env), cwd)

    def exec_sync(self, cid: str, argv, timeout: float | None, cap: int = MAX_EXEC_SYNC_OUTPUT) -> ExecResult:
        """Run a command to its end; each output stream capped at `cap` bytes; DeadlineExceeded after timeout."""
        return self.exec(cid, argv).run_sync(timeout, cap)

    def exec_here(self, pod_ref: str, container: str, argv, env=(), cwd: str | None = None) -> int:
        """`pyrun exec`: run the command from this process, which joins the container: exit right after."""
        c = self.find_container(self.get(pod_ref), container)
        return self.exec(c.id, argv, env, cwd).run_here()

    # --- output --------------------------------------------------------------------------------
    def _may_still_write(self, cid: str) -> bool:
        try:
            return may_still_write(self.container(cid).status)
        except (NotFound, ValueError, OSError):
            return False

    def attach(self, cid: str) -> AttachTarget:
        """A running container's output, for a follower (pyrun.runtime.logs.LogFollower)."""
        from pyrun.runtime.monitor import attach_input
        from pyrun.runtime.state import read_config
        rec = self._running(cid)
        cdir = self._store.container_dir(rec.id)
        try:
            config = read_config(cdir)
            tty, has_input = config.tty, config.tty or config.stdin
        except (OSError, ValueError, RecordError):  # its output can still be followed
            tty = has_input = False
        return AttachTarget(rec.name, rec.log_path, lambda: self._may_still_write(rec.id), tty=tty,
                            open_input=(lambda: attach_input(cdir)) if has_input else None)

    def logs(self, pod_ref: str, container: str | None = None, *, follow: bool = False,
             timestamps: bool = False, previous: bool = False) -> Iterator[bytes]:
        """`pyrun logs`: a container's output as it wrote it; following, until it exits (across rotations).
        previous: the output of the container's previous instance (a restarted container's)."""
        from pyrun.runtime.logs import LogFollower, previous_entries, render_entries
        c = self.pick_container(self.get(pod_ref), container)
        if previous:
            yield render_entries(previous_entries(c.log_path, c.name, c.status), timestamps=timestamps)
            return
        with LogFollower(c.log_path) as follower:
            for lines in follower.batches(follow=follow, running=lambda: self._may_still_write(c.id)):
                yield render_entries(lines, timestamps=timestamps)

    def reopen_log(self, cid: str) -> None:
        """Make the monitor write to a new file at the log path (after the kubelet renamed the old one)."""
        from pyrun.runtime.monitor import request
        rec = self._running(cid)
        request(self._store.container_dir(rec.id), "reopen-log")

    # --- resources -----------------------------------------------------------------------------
    def _cgroups(self):
        """The cgroups driver, layout detected once per Runtime."""
        with self._cg_lock:
            if self._cg is None:
                from pyrun.cgroups import open_cgroups
                self._cg = open_cgroups(self.cfg)
            return self._cg

    def _cgroup_stats(self, record: PodCgroup | ContainerCgroup | None, strict: bool):
        from pyrun.cgroups import CgroupPath
        if record is None:
            return None
        try:
            return self._cgroups().stats(CgroupPath.parse(record.path))
        except (CgroupError, OSError):
            if strict:
                raise
            return None  # e.g. a pod made with another --cgroup-parent

    def _usage(self, key: str, name: str, record: PodCgroup | ContainerCgroup | None, strict: bool = False) -> Usage:
        now = time.time_ns()
        st = self._cgroup_stats(record, strict)
        return Usage(name, now, st, self._rates.sample(key, now, getattr(st, "cpu_usage_ns", None)))

    def container_usage(self, rec: ContainerRecord, writable: bool = True) -> Usage:
        """One sample of a container's cgroup (and the size of its writable layer)."""
        from pyrun.runtime.storage import writable_layer
        usage = self._usage(rec.id, rec.name, rec.cgroup)
        if not writable:
            return usage
        return replace(usage, writable=tree_usage(writable_layer(self.cfg, rec.id) / "upper"),
                       writable_dir=str(self.cfg.writable_dir))

    def pod_usage(self, pod: PodRecord) -> Usage:
        """One sample of a pod's cgroup."""
        return self._usage(pod_key(pod.id), pod.name, pod.cgroup)

    def forget_removed(self) -> None:
        """Drop CPU samples of containers and pods that no longer exist (removed by another process too)."""
        self._rates.forget_except(set(self.container_ids()) | {pod_key(p) for p in self.pod_ids()})

    def stats(self, pod_ref: str | None = None) -> list[Usage]:
        """`pyrun stats`: each pod (of every pod without pod_ref), then each of its containers; the
        CPU rate is since this Runtime's previous call (None the first time)."""
        pods = [self.get(pod_ref)] if pod_ref else self.pods()
        out = []
        for pod in pods:
            if pod.cgroup is None:
                continue
            out.append(self._usage(pod_key(pod.id), f"{pod.name} (pod)", pod.cgroup, strict=True))
            for entry in pod.containers:
                rec = self._store.read_container(entry.id)
                if rec.cgroup is not None:
                    out.append(self._usage(rec.id, f"{pod.name}/{entry.name}", rec.cgroup, strict=True))
        return out

    def metrics_targets(self) -> list:
        """Every pod and container with one cgroup sample each (pyrun.runtime.metrics_source.Target), for the
        Prometheus endpoint (pyrun.metrics): files only, no process started."""
        with self._cg_lock:
            if self._metrics is None:
                from pyrun.runtime.metrics_source import MetricsSource
                self._metrics = MetricsSource(self._store, self._cgroups)
        return self._metrics.targets()

    def update_resources(self, cid: str, resources) -> ContainerRecord:
        """New limits for a container's cgroup (a pyrun.spec ResourceRequirements); returns the record."""
        from pyrun.runtime.update import update_resources
        return update_resources(self._store, self._cgroups(), cid, resources)

    def image_fs_usage(self) -> tuple[str, int, int]:
        """(directory, bytes, inodes) of the image store."""
        root = self.open_images().root
        used, inodes = tree_usage(root)
        return str(Path(root)), used, inodes

    # --- network -------------------------------------------------------------------------------
    def port_forward(self, pod_id: str) -> PortTarget:
        """A ready pod's ports, dialled from inside its network namespace (the node's for hostNetwork)."""
        import functools

        from pyrun.netns.dial import connect_in_netns
        pod = self.read_pod(pod_id)
        if not pod_status(pod, (), self.pause_alive(pod)).sandbox_ready:
            raise InvalidState(f"pod sandbox {pod.name} is not ready")
        netns = None if pod.host_network else pod.net_namespace
        if netns is None and not pod.host_network:
            raise InvalidState(f"pod sandbox {pod.name} has no network namespace")
        return PortTarget(pod.name, functools.partial(connect_in_netns, netns))

    # --- images --------------------------------------------------------------------------------
    def open_images(self):
        """The image store of this data root (pyrun.images.store.ImageStore)."""
        from pyrun.runtime.storage import open_images
        return open_images(self.cfg)

    def images_in_use(self) -> set[str]:
        """Ids of the images some container was made from (prune keeps them)."""
        from pyrun.runtime.storage import images_in_use
        return images_in_use(self.cfg)


@contextlib.contextmanager
def helpers():
    """For a threaded server (pyrun cri serve): start the zygote every helper process is forked from
    (before any thread exists), and stop it on the way out. Enter it first; entered again inside,
    it uses the zygote already there."""
    from pyrun.runtime import spawn, zygote
    if spawn.current_zygote() is not None:
        yield spawn.current_zygote()
        return
    client = zygote.start()
    spawn.use_zygote(client)
    try:
        yield client
    finally:
        spawn.use_zygote(None)
        client.stop()
