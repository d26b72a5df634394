"""Pod lifecycle: create (sandbox + containers), start, stop, remove — with rollback.

`create` reserves the pod's name first (so two concurrent creates cannot both make
it), then every step that makes something registers its undo on an ExitStack; if
any later step fails, the stack unwinds and nothing is left. The same idempotent
undo functions make up `destroy`, used by `pod rm -f` and by `pyrun gc` after a
crash; it undoes in the reverse order of the create.

The steps themselves (cgroups, the sandbox, the network, the container's monitor, ...)
go through `self.platform`, a PodSteps (pyrun.runtime.steps): the host by default, a
recording fake in the unit tests.
"""
from __future__ import annotations

import contextlib
import os
import _thread  # threading.Lock is _thread.allocate_lock; importing threading costs the CLI
from pathlib import Path

from pyrun.config import Config
from pyrun.errors import InvalidState, NotFound
from pyrun.frozen import replace
from pyrun.runtime import container as ctr
from pyrun.runtime import faults, resources, supervise
from pyrun.linux.procs import ProcessRef
from pyrun.runtime.host_steps import HostSteps
from pyrun.runtime.reaper import Reaper
from pyrun.runtime.records import (HOST_PID, ContainerCgroup, ContainerCri, ContainerEntry, ContainerRecord,
                                   InitConfig, MountSpec, PodCgroup, PodCri, PodRecord, ProcessSpec, Resources)
from pyrun.runtime.status import PodStatus, pod_status
from pyrun.runtime.state import (CONTAINER_RUNNING, POD_CREATING,
                                 POD_REMOVING, POD_RUNNING, POD_STOPPED, POD_TRANSITIONS, StateStore,
                                 check_transition, new_id, now_ns)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a CLI command's start-up)
if TYPE_CHECKING:
    from typing import Any

    from pyrun.runtime.steps import PodSteps


class PodRuntime:
    def __init__(self, cfg: Config, platform: PodSteps | None = None):
        """platform: where the side effects go (pyrun.runtime.steps); the host unless a test fakes it."""
        self.cfg = cfg
        self.store = StateStore(cfg.root)
        self.platform = platform if platform is not None else HostSteps(cfg, self.store)
        # containers this process is creating, and those created with wait=False until their start or
        # removal: id -> (pod id, a pyrun.runtime.container.Launch, whose wait() ends when the init is
        # ready or failed; None while the create runs, or after a create that waited)
        self._launching: dict[str, tuple[str, Any]] = {}
        self._launching_lock = _thread.allocate_lock()
        self.reaper = Reaper()  # what remove_container(background=True) leaves to finish

    # --- create ---------------------------------------------------------------------------------
    def create(self, loaded, start: bool = True) -> PodRecord:
        """Create (and by default start) a pod from a validated spec; returns the pod record.

        The sandbox is made first; if anything after it fails, the whole pod is destroyed.
        """
        spec = loaded.pod
        images = self.platform.open_images()
        for c in spec.containers:  # NotFound before anything exists
            images.resolve(c.image)
        pod = self.create_sandbox(spec, loaded.warnings, ready=False)
        try:
            for c in spec.containers:
                self.create_container(pod.id, c, commit=False)
            faults.check("containers")
            if start:
                for entry in self.store.read_pod(pod.id).containers:
                    self.start_container(entry.id)
            with self.store.pod_lock(pod.id):
                pod = replace(self.store.read_pod(pod.id), state=POD_RUNNING, creator=None)
                self.store.write_pod(pod, sync=True)  # the commit point: the only fsync of a create
        except BaseException:
            self.destroy(pod.id)
            raise
        return pod

    def create_sandbox(self, spec, warnings=(), *, ready: bool = True, log_dir: str | None = None,
                       cri: PodCri | None = None, cgroup_parent_override: str | None = None) -> PodRecord:
        """Reserve the name, then make the pod cgroup, the pause process with its pinned
        namespaces, the pod network, /etc files and volumes. Each step registers its undo.

        cri: what a CRI caller sent (kept as sent); cgroup_parent_override: its cgroup_parent."""
        from pyrun.spec.qos import qos_class
        from pyrun.runtime import sandbox
        self.store.ensure()
        steps = self.platform
        steps.collect_crashed(self.destroy)
        pod_id = new_id()
        with contextlib.ExitStack() as undo:
            steps.reserve_name(spec.namespace, spec.name, pod_id)
            undo.callback(steps.release_name, spec.namespace, spec.name, pod_id)
            pod_dir = steps.make_pod_dir(pod_id)
            undo.callback(steps.remove_pod_dir, pod_id)
            pod = PodRecord(
                id=pod_id, name=spec.name, namespace=spec.namespace, uid=spec.uid or _uuid(),
                state=POD_CREATING, created_at=now_ns(), hostname=spec.hostname,
                labels=dict(spec.labels), annotations=dict(spec.annotations),
                qos=qos_class(spec), share_pid=spec.share_process_namespace,
                host_network=spec.host_network, host_pid=spec.host_pid, host_ipc=spec.host_ipc,
                grace_period=spec.termination_grace_period,
                warnings=tuple(warnings), spec=spec.raw, containers=(),
                creator=ProcessRef.of(os.getpid()), log_dir=log_dir or str(pod_dir / "logs"),
                cri=cri, cgroup_parent_override=cgroup_parent_override,
            )
            self.store.write_pod(pod)
            faults.check("pod-dir")

            cgroup: PodCgroup | None = None
            undo.callback(lambda: steps.remove_cgroup(cgroup))  # the cgroup once made (a failed make undoes itself)
            cgroup = steps.create_pod_cgroup(pod, spec)
            pod = replace(pod, cgroup=cgroup)
            self.store.write_pod(pod)
            faults.check("pod-cgroup")

            undo.callback(steps.kill_sandbox, pod_id)
            pause = steps.launch_sandbox(pod_dir, spec, pod.cgroup)
            pod = replace(pod, pause=pause, namespaces={
                k: str(pod_dir / "ns" / k)
                for k in sandbox.namespace_kinds(spec.share_process_namespace, spec.host_network, spec.host_ipc)})
            self.store.write_pod(pod)
            faults.check("sandbox")

            from pyrun.runtime import podnet
            if podnet.wants_network(self.cfg, spec):
                pod = replace(pod, network=podnet.pending(self.cfg))  # so a crash from here on is detached by gc
                self.store.write_pod(pod)
                undo.callback(steps.detach_network, pod)
                pod = replace(pod, network=steps.attach_network(pod, spec))
            steps.write_etc_files(pod_dir, pod, spec)
            self.store.write_pod(pod)
            faults.check("network")

            pod = replace(pod, volumes=steps.prepare_volumes(pod_dir, spec.volumes))
            faults.check("volumes")
            if ready:
                pod = replace(pod, state=POD_RUNNING, creator=None)
            self.store.write_pod(pod, sync=ready)  # not ready: create() commits once the containers run
            undo.pop_all()
        return pod

    def pod_spec(self, pod: PodRecord):
        """The PodSpec a pod was made from (re-validated from the stored manifest)."""
        from pyrun.spec import parse_pod
        return parse_pod(dict(pod.spec), source=f"pod {pod.name}").pod

    def create_container(self, pod_id: str, c, *, log_path: str | None = None, extra_mounts: list[MountSpec] = (),
                         cri: ContainerCri | None = None, pod_spec=None, commit: bool = True,
                         wait: bool = True) -> ContainerRecord:
        """Create one container in an existing sandbox: rootfs dirs, cgroup, monitor + init (state created).

        pod_spec: the PodSpec for env/fieldRef resolution; by default re-parsed from the stored manifest.
        commit: fsync the container record at the end (False when the caller commits the whole pod).
        extra_mounts: more bind mounts; cri: what a CRI caller sent.
        wait: return once the init is set up (its namespaces, mounts, pivot_root, user); False (the CRI, as
        containerd, whose CreateContainer leaves the runc work to StartContainer): return once the monitor
        is started, and let the next call about the container wait for the init (start_container raises
        what failed; the monitor records the container exited, reason StartError, as containerd does).
        A user given by name is looked up in the image's /etc/passwd by the init: that create waits,
        so an unknown name stays an error of the create.
        """
        images = self.platform.open_images()
        image = images.resolve(c.image)
        cid = new_id()
        with self._launching_lock:  # listed from here on: created (not unknown) until its monitor says otherwise
            self._launching[cid] = (pod_id, None)
        try:
            return self._create_container_entry(pod_id, c, cid, image, images, log_path, extra_mounts, cri,
                                                pod_spec, commit, wait)
        finally:
            with self._launching_lock:
                if self._launching.get(cid, (None, None))[1] is None:  # done with; a Launch stays till start
                    self._launching.pop(cid, None)

    def _create_container_entry(self, pod_id: str, c, cid: str, image, images, log_path: str | None,
                                extra_mounts, cri: ContainerCri | None, pod_spec, commit: bool,
                                wait: bool) -> ContainerRecord:
        from pyrun.errors import AlreadyExists
        with self.store.pod_lock(pod_id):
            pod = self.store.read_pod(pod_id)
            if pod.state not in (POD_CREATING, POD_RUNNING):
                raise InvalidState(f"pod {pod.name} is {pod.state}; containers can only join a ready pod")
            if any(e.name == c.name for e in pod.containers):
                raise AlreadyExists(f"pod {pod.name} already has a container named {c.name!r}")
            pod = replace(pod, containers=(*pod.containers, ContainerEntry(name=c.name, id=cid)))
            self.store.write_pod(pod)
        try:
            return self._create_container(pod, pod_spec or self.pod_spec(pod), c, cid, image, images, log_path,
                                          list(extra_mounts), cri, commit, wait)
        except BaseException:
            self.remove_container(cid, force=True)
            self._forget_container(pod_id, cid)  # if it failed before its record was written
            raise

    def _create_container(self, pod: PodRecord, spec, c, cid: str, image, images, log_path: str | None,
                          extra_mounts: list[MountSpec], cri: ContainerCri | None, commit: bool,
                          wait: bool = True) -> ContainerRecord:
        from pyrun.runtime.volumes import check_propagation, mount_list
        from pyrun.spec.process import resolve_process
        steps = self.platform
        mounts = mount_list(c, pod.volumes, self.store.pod_dir(pod.id) / "etc", pod.host_network,
                            pod.host_ipc) + list(extra_mounts)
        check_propagation(mounts, str(self.store.container_dir(cid) / "rootfs"))
        cdir = steps.make_container_dir(cid)
        writable = steps.make_writable_layer(cid)  # after cdir: gc never takes it for an orphan
        proc = resolve_process(c, (image.config or {}).get("config") or {}, spec, pod_ip=pod.ip,
                               node_name=os.uname().nodename)
        log_path = log_path or str(Path(pod.log_dir) / c.name / "0.log")
        rec = ContainerRecord(
            id=cid, pod_id=pod.id, name=c.name, image=c.image, image_id=image.id, image_name=image.name,
            created_at=now_ns(), log_path=log_path,
            process=ProcessSpec(args=tuple(proc.args), env=tuple(proc.env), cwd=proc.cwd, user=proc.user),
            resources=Resources(requests=dict(c.resources.requests), limits=dict(c.resources.limits)), cri=cri)
        self.store.write_container(rec)
        devices = resources.requested_devices(c)
        rec = replace(rec, cgroup=steps.create_container_cgroup(pod, c, cid, devices))
        self.store.write_container(rec, sync=commit)  # the record is complete: its commit point
        namespaces: dict[str, str | None] = dict(pod.namespaces)
        namespaces.setdefault("pid", HOST_PID if pod.host_pid else None)
        sec = steps.container_security(spec, c, pod)
        procs, oom_events = steps.cgroup_files(rec.cgroup)
        config = ctr.init_config(
            cid=cid, name=c.name, pod_id=pod.id, cdir=cdir, writable=writable,
            lower=[str(d) for d in images.layer_dirs(image)], namespaces=namespaces,
            mounts=mounts,
            process=rec.process, capabilities=sec.capabilities,
            cgroup_procs=procs, oom_events=oom_events, log_path=log_path, security=sec, devices=devices,
            supervision=None if cri is not None or pod.cri is not None else  # the kubelet supervises CRI containers
            supervise.plan(spec.restart_policy, c, pod.grace_period, pod.ip),
            tty=c.tty, stdin=c.stdin, stdin_once=c.stdin_once)
        ctr.write_config(cdir, config)
        if wait or names_a_user(rec.process.user):
            steps.spawn_container(cdir)
        else:
            with self._launching_lock:
                self._launching[cid] = (pod.id, steps.begin_container(cdir))
        return rec

    def settle(self, cid: str, strict: bool = False) -> None:
        """Wait until a container created with wait=False is set up (at once for any other). A set-up
        that failed raises with strict (start_container: as often as it is asked, until the container is
        removed), and is otherwise left to the container's status (exited, StartError)."""
        with self._launching_lock:
            launch = self._launching.get(cid, (None, None))[1]
        if launch is None:
            return
        try:
            launch.wait()
        except Exception:
            if strict:
                raise

    def _launched(self, cid: str) -> None:
        """The container's start or removal consumed what its set-up left."""
        with self._launching_lock:
            self._launching.pop(cid, None)

    def _in_flight(self, cid: str) -> bool:
        """Whether this process is still creating the container, or has not yet heard from its set-up: its
        monitor may not have written monitor.json yet, which does not make it unknown."""
        with self._launching_lock:
            entry = self._launching.get(cid)
        return entry is not None and (entry[1] is None or not entry[1].finished())

    def state_of(self, cid: str) -> ContainerRecord:
        """The container's record with its status (pyrun.runtime.container.state_of): created while its
        monitor is still being started by this process."""
        return ctr.state_of(self.store, cid, launching=self._in_flight(cid))

    def settle_pod(self, pod_id: str) -> None:
        """settle() every container of a pod still setting up (before the pod is stopped or removed)."""
        with self._launching_lock:
            cids = [cid for cid, (pod, _) in self._launching.items() if pod == pod_id]
        for cid in cids:
            self.settle(cid)

    def start_container(self, cid: str) -> int:
        """Release a created container: its init execs the workload. Returns the workload's pid.
        InvalidState unless it is created (and its monitor alive to start it)."""
        self.settle(cid, strict=True)
        rec = ctr.state_of(self.store, cid)
        ctr.require_created(rec)
        pid = self.platform.start_container(self.store.container_dir(cid), rec.name)
        self._launched(cid)
        return pid

    def stop_container(self, cid: str, grace: float) -> None:
        self.settle(cid)
        rec = self.store.read_container(cid)
        self.platform.stop_containers([cid], grace)
        self.platform.kill_cgroup(rec.cgroup)  # also what a dead monitor left (its workload's children)
        ctr.record_lost_exit(self.store, cid)

    def remove_container(self, cid: str, force: bool = False, background: bool = False) -> None:
        """Remove a container (kill it first with force) and drop it from its pod (idempotent).

        background (a long-running caller: the CRI server): once its processes are killed and its cgroup
        removed (quick then; and a cgroup under the kubelet's parent would be found by nobody if this
        process died), drop it from its pod and remove its record, so it is gone for every caller; its
        writable layer and directory are removed by self.reaper (pyrun.runtime.reaper)."""
        self.settle(cid)
        try:
            rec = ctr.state_of(self.store, cid)
        except NotFound:
            self._launched(cid)
            return
        if not force and rec.status.state == CONTAINER_RUNNING:
            raise InvalidState(f"container {rec.name} is running: stop it first")
        if background:
            self.platform.kill_container(cid)
            self.platform.remove_cgroup(rec.cgroup)
            self._forget_entry(rec.pod_id, cid)
            self.store.forget_container(cid)
            self._launched(cid)
            self.reaper.submit(f"container {rec.name} ({cid[:12]})", lambda: self._undo_container(cid, None))
            return
        self._undo_container(cid, rec.cgroup)
        self._forget_container(rec.pod_id, cid)
        self._launched(cid)

    def _undo_container(self, cid: str, cgroup: ContainerCgroup | None) -> None:
        """Undo a container's create steps in reverse: its processes, cgroup, writable layer, directory
        (idempotent)."""
        self.platform.kill_container(cid)
        if cgroup:
            self.platform.remove_cgroup(cgroup)
        self.platform.remove_writable_layer(cid)
        self.platform.remove_container_dir(cid)

    def _forget_container(self, pod_id: str, cid: str) -> None:
        """Remove a container's directories and its pod's entry for it (idempotent)."""
        self._undo_container(cid, None)
        self._forget_entry(pod_id, cid)

    def _forget_entry(self, pod_id: str, cid: str) -> None:
        """Drop the pod's entry for a container (idempotent)."""
        with contextlib.suppress(NotFound, FileNotFoundError), self.store.pod_lock(pod_id):
            pod = self.store.read_pod(pod_id)
            if any(e.id == cid for e in pod.containers):
                self.store.write_pod(replace(pod, containers=tuple(e for e in pod.containers if e.id != cid)))

    # --- queries --------------------------------------------------------------------------------
    def get(self, ref: str) -> PodRecord:
        return self.store.find_pod(ref)

    def containers(self, pod: PodRecord) -> list[ContainerRecord]:
        out = []
        for entry in pod.containers:
            with contextlib.suppress(NotFound):
                out.append(self.state_of(entry.id))
        return out

    def find_container(self, pod: PodRecord, name: str) -> ContainerRecord:
        entry = pod.entry(name)
        if entry is not None:
            return self.state_of(entry.id)
        names = ", ".join(e.name for e in pod.containers)
        raise NotFound(f"pod {pod.name} has no container {name!r} (containers: {names})")

    def init_config(self, cid: str) -> InitConfig | None:
        """A container's config.json (None if it has none yet)."""
        from pyrun.runtime.state import read_config
        try:
            return read_config(self.store.container_dir(cid))
        except FileNotFoundError:
            return None

    def observe(self, pod: PodRecord) -> tuple[list[ContainerRecord], PodStatus]:
        """The pod's containers (with their reported status) and the pod's status: the liveness
        facts are gathered here, the status itself is pyrun.runtime.status.pod_status (pure)."""
        containers = self.containers(pod)
        return containers, pod_status(pod, containers, pause_alive(pod))

    def list(self) -> list[PodRecord]:
        from pyrun.runtime import gc
        pods = self.store.pods()
        if gc.collect_crashed(self.cfg, self.destroy, pods):  # read once; again only if a crashed pod was removed
            pods = self.store.pods()
        return pods

    # --- stop and remove ------------------------------------------------------------------------
    def stop(self, ref: str, grace: float | None = None, release: bool = False) -> PodRecord:
        """Stop every container and the sandbox, detach the network. release (the CRI's StopPodSandbox,
        as containerd's deletes the sandbox's task and its network namespace): also remove what a
        stopped pod no longer needs, its cgroups (left empty by the stop) and its pinned namespaces
        (their processes are gone), instead of at the removal (which finds them gone)."""
        pod = self.get(ref)
        self.settle_pod(pod.id)
        with self.store.pod_lock(pod.id):
            pod = self.store.read_pod(pod.id)
            if pod.state == POD_CREATING:
                raise InvalidState(f"pod {pod.name} is still being created")
            check_transition(POD_TRANSITIONS, pod.state, POD_STOPPED, f"pod {pod.name}")  # before any step
            grace = pod.grace_period if grace is None else grace
            self._stop_containers(pod, grace)
            self.platform.kill_sandbox(pod.id)
            self.platform.detach_network(pod)  # a stopped pod holds no address, veth or hostPort (as containerd)
            if release:
                self.platform.remove_cgroup(pod.cgroup)
                self.platform.release_namespaces(pod.id)
            pod = replace(pod, state=POD_STOPPED)
            self.store.write_pod(pod, sync=True)
        return pod

    def _stop_containers(self, pod: PodRecord, grace: float) -> None:
        ids = pod.container_ids()
        self.platform.stop_containers(ids, grace)  # all containers get SIGTERM together, as the kubelet does
        for cid in ids:
            self.platform.kill_cgroup(self._container_cgroup(cid))
            ctr.record_lost_exit(self.store, cid)

    def _container_cgroup(self, cid: str) -> ContainerCgroup | None:
        with contextlib.suppress(NotFound):
            return self.store.read_container(cid).cgroup
        return None

    def remove(self, ref: str, force: bool = False) -> list[str]:
        """`pod rm`: refused for a running pod or one being created unless forced; returns the ids of
        the containers removed with it."""
        return self.remove_pod(self.get(ref), force)

    def remove_pod(self, pod: PodRecord, force: bool = False) -> list[str]:
        if pod.state == POD_RUNNING and not force:
            raise InvalidState(f"pod {pod.name} is running: stop it first, or use rm -f")
        if pod.state == POD_CREATING and not force:
            raise InvalidState(f"pod {pod.name} is being created; use rm -f if its creator died")
        return self.destroy(pod.id)

    def destroy(self, pod_id: str) -> list[str]:
        """Remove everything a pod made, whatever state it is in (idempotent). Returns the ids of its
        containers (as its record, read under the pod's lock, listed them)."""
        self.settle_pod(pod_id)
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(self.store.pod_lock(pod_id))
            except FileNotFoundError:
                return []  # already removed (by a concurrent rm or gc)
            try:
                pod: PodRecord | None = self.store.read_pod(pod_id)
            except (NotFound, ValueError):
                pod = None  # no record (a creator died right after mkdir): remove what is there
            if pod is not None:
                pod = replace(pod, state=POD_REMOVING,
                              remover=ProcessRef.of(os.getpid()))  # gc finishes the job if we die
                self.store.write_pod(pod)
            faults.check("remove")  # tests freeze a removal here and kill it: gc must finish the job
            failed: list[OSError] = []  # a layer that can't be removed stops only the final step
            for cid in reversed(pod.container_ids() if pod else []):  # the reverse of the create, as its rollback
                try:
                    self._undo_container(cid, self._container_cgroup(cid))
                except OSError as e:
                    failed.append(e)
                self._launched(cid)
            if pod is not None:
                self.platform.detach_network(pod)
            self.platform.kill_sandbox(pod_id)
            self.platform.remove_cgroup(pod.cgroup if pod else None)
            if failed:  # keep the record (state removing): `pod rm` or `gc` finishes the job later
                raise failed[0]
            self.platform.remove_pod_dir(pod_id)
        if pod is not None and pod.name:
            self.platform.release_name(pod.namespace, pod.name, pod_id)
        return list(pod.container_ids()) if pod else []


def names_a_user(user: str) -> bool:
    """Whether a container's user (USER[:GROUP]) names a user or group, to be looked up in the image (pure)."""
    return any(part and not part.isdigit() for part in user.split(":"))


def pause_alive(pod: PodRecord) -> bool:
    """Whether the pod's pause process still runs (reads /proc)."""
    return pod.pause is not None and pod.pause.alive()


def _uuid() -> str:
    """A random (version 4) UUID, as str(uuid.uuid4()), without importing uuid (and platform)."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

