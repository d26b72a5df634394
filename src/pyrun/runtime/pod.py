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
from pathlib import Path
from typing import TYPE_CHECKING

from pyrun.config import Config
from pyrun.errors import InvalidState, NotFound
from pyrun.runtime import container as ctr
from pyrun.runtime import faults, resources
from pyrun.linux.procs import ProcessRef
from pyrun.runtime.host_steps import HostSteps
from pyrun.runtime.status import PodStatus, pod_status
from pyrun.runtime.state import (CONTAINER_RUNNING, POD_CREATING,
                                 POD_REMOVING, POD_RUNNING, POD_STOPPED, POD_TRANSITIONS, StateStore,
                                 check_transition, new_id, now_ns)

if TYPE_CHECKING:
    from pyrun.runtime.steps import PodSteps


class PodRuntime:
    def __init__(self, cfg: Config, platform: PodSteps | None = None):
        """platform: where the side effects go (pyrun.runtime.steps); the host unless a test fakes it."""
        self.cfg = cfg
        self.store = StateStore(cfg.root)
        self.platform = platform if platform is not None else HostSteps(cfg, self.store)

    # --- create ---------------------------------------------------------------------------------
    def create(self, loaded, start: bool = True) -> dict:
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
                self.create_container(pod["id"], c, commit=False)
            faults.check("containers")
            if start:
                for entry in self.store.read_pod(pod["id"])["containers"]:
                    self.start_container(entry["id"])
            with self.store.pod_lock(pod["id"]):
                pod = self.store.read_pod(pod["id"])
                pod["state"] = POD_RUNNING
                pod.pop("creator", None)
                self.store.write_pod(pod, sync=True)  # the commit point: the only fsync of a create
        except BaseException:
            self.destroy(pod["id"])
            raise
        return pod

    def create_sandbox(self, spec, warnings=(), *, ready: bool = True, log_dir: str | None = None,
                       extra: dict | None = None) -> dict:
        """Reserve the name, then make the pod cgroup, the pause process with its pinned
        namespaces, the pod network, /etc files and volumes. Each step registers its undo."""
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
            pod = {
                "id": pod_id, "name": spec.name, "namespace": spec.namespace, "uid": spec.uid or _uuid(),
                "state": POD_CREATING, "created_at": now_ns(), "hostname": spec.hostname,
                "labels": dict(spec.labels), "annotations": dict(spec.annotations),
                "qos": qos_class(spec), "share_pid": spec.share_process_namespace,
                "host_network": spec.host_network, "grace_period": spec.termination_grace_period,
                "warnings": list(warnings), "spec": spec.raw, "containers": [],
                "creator": ProcessRef.of(os.getpid()).to_dict(), "log_dir": log_dir or str(pod_dir / "logs"),
                **(extra or {}),
            }
            self.store.write_pod(pod)
            faults.check("pod-dir")

            undo.callback(lambda: steps.remove_cgroup(pod.get("cgroup")))
            steps.create_pod_cgroup(pod, spec)
            self.store.write_pod(pod)
            faults.check("pod-cgroup")

            undo.callback(steps.kill_sandbox, pod_id)
            pause = steps.launch_sandbox(pod_dir, spec, pod.get("cgroup"))
            pod["pause"] = pause.to_dict()
            pod["namespaces"] = {k: str(pod_dir / "ns" / k)
                                 for k in sandbox.namespace_kinds(spec.share_process_namespace, spec.host_network)}
            self.store.write_pod(pod)
            faults.check("sandbox")

            from pyrun.runtime import podnet
            if podnet.wants_network(self.cfg, spec):
                pod["network"] = podnet.pending(self.cfg)  # so a crash from here on is detached by gc
                self.store.write_pod(pod)
                undo.callback(steps.detach_network, pod)
                pod["network"] = steps.attach_network(pod, spec)
            steps.write_etc_files(pod_dir, pod, spec)
            self.store.write_pod(pod)
            faults.check("network")

            pod["volumes"] = steps.prepare_volumes(pod_dir, spec.volumes)
            faults.check("volumes")
            if ready:
                pod["state"] = POD_RUNNING
                pod.pop("creator", None)
            self.store.write_pod(pod, sync=ready)  # not ready: create() commits once the containers run
            undo.pop_all()
        return pod

    def pod_spec(self, pod: dict):
        """The PodSpec a pod was made from (re-validated from the stored manifest)."""
        from pyrun.spec import parse_pod
        return parse_pod(pod["spec"], source=f"pod {pod['name']}").pod

    def create_container(self, pod_id: str, c, *, log_path: str | None = None, extra_mounts: list[dict] = (),
                         extra: dict | None = None, pod_spec=None, commit: bool = True) -> dict:
        """Create one container in an existing sandbox: rootfs dirs, cgroup, monitor + init (state created).

        pod_spec: the PodSpec for env/fieldRef resolution; by default re-parsed from the stored manifest.
        commit: fsync the container record at the end (False when the caller commits the whole pod).
        """
        from pyrun.errors import AlreadyExists
        images = self.platform.open_images()
        image = images.resolve(c.image)
        cid = new_id()
        with self.store.pod_lock(pod_id):
            pod = self.store.read_pod(pod_id)
            if pod["state"] not in (POD_CREATING, POD_RUNNING):
                raise InvalidState(f"pod {pod['name']} is {pod['state']}; containers can only join a ready pod")
            if any(e["name"] == c.name for e in pod["containers"]):
                raise AlreadyExists(f"pod {pod['name']} already has a container named {c.name!r}")
            pod["containers"].append({"name": c.name, "id": cid})
            self.store.write_pod(pod)
        try:
            return self._create_container(pod, pod_spec or self.pod_spec(pod), c, cid, image, images, log_path,
                                          list(extra_mounts), extra or {}, commit)
        except BaseException:
            self.remove_container(cid, force=True)
            self._forget_container(pod_id, cid)  # if it failed before its record was written
            raise

    def _create_container(self, pod: dict, spec, c, cid: str, image, images, log_path: str | None,
                          extra_mounts: list[dict], extra: dict, commit: bool) -> dict:
        from pyrun.runtime.volumes import mount_list
        from pyrun.spec.process import resolve_process
        steps = self.platform
        cdir = steps.make_container_dir(cid)
        writable = steps.make_writable_layer(cid)  # after cdir: gc never takes it for an orphan
        pod_ip = (pod.get("network") or {}).get("ip")
        proc = resolve_process(c, (image.config or {}).get("config") or {}, spec, pod_ip=pod_ip,
                               node_name=os.uname().nodename)
        log_path = log_path or str(Path(pod["log_dir"]) / c.name / "0.log")
        rec = {"id": cid, "pod_id": pod["id"], "name": c.name, "image": c.image, "image_id": image.id,
               "image_name": image.name, "created_at": now_ns(), "log_path": log_path,
               "process": {"args": list(proc.args), "env": list(proc.env), "cwd": proc.cwd, "user": proc.user},
               "resources": {"requests": dict(c.resources.requests), "limits": dict(c.resources.limits)},
               **extra}
        self.store.write_container(rec)
        devices = resources.requested_devices(c)
        rec["cgroup"] = steps.create_container_cgroup(pod, c, cid, devices)
        self.store.write_container(rec, sync=commit)  # the record is complete: its commit point
        namespaces = dict(pod["namespaces"])
        namespaces.setdefault("pid", None)
        sec = steps.container_security(spec, c, pod)
        procs, oom_events = steps.cgroup_files(rec["cgroup"])
        config = ctr.init_config(
            cid=cid, name=c.name, pod_id=pod["id"], cdir=cdir, writable=writable,
            lower=[str(d) for d in images.layer_dirs(image)], namespaces=namespaces,
            mounts=mount_list(c, pod.get("volumes") or {}, self.store.pod_dir(pod["id"]) / "etc",
                              pod["host_network"]) + extra_mounts,
            process=rec["process"], capabilities=sec["capabilities"],
            cgroup_procs=procs, oom_events=oom_events, log_path=log_path)
        config["security"] = sec
        config["devices"] = devices
        ctr.write_config(cdir, config)
        steps.spawn_container(cdir)
        return rec

    def start_container(self, cid: str) -> int:
        """Release a created container: its init execs the workload. Returns the workload's pid.
        InvalidState unless it is created (and its monitor alive to start it)."""
        rec = ctr.state_of(self.store, cid)
        ctr.require_created(rec)
        return self.platform.start_container(self.store.container_dir(cid), rec["name"])

    def stop_container(self, cid: str, grace: float) -> None:
        rec = self.store.read_container(cid)
        self.platform.stop_containers([cid], grace)
        self.platform.kill_cgroup(rec.get("cgroup"))  # also what a dead monitor left (its workload's children)
        ctr.record_lost_exit(self.store, cid)

    def remove_container(self, cid: str, force: bool = False) -> None:
        """Remove a container (kill it first with force) and drop it from its pod (idempotent)."""
        try:
            rec = ctr.state_of(self.store, cid)
        except NotFound:
            return
        if not force and rec["status"].get("state") == CONTAINER_RUNNING:
            raise InvalidState(f"container {rec['name']} is running: stop it first")
        self._undo_container(cid, rec.get("cgroup"))
        self._forget_container(rec["pod_id"], cid)

    def _undo_container(self, cid: str, cgroup: dict | None) -> None:
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
        with contextlib.suppress(NotFound, FileNotFoundError), self.store.pod_lock(pod_id):
            pod = self.store.read_pod(pod_id)
            pod["containers"] = [e for e in pod["containers"] if e["id"] != cid]
            self.store.write_pod(pod)

    # --- queries --------------------------------------------------------------------------------
    def get(self, ref: str) -> dict:
        return self.store.find_pod(ref)

    def containers(self, pod: dict) -> list[dict]:
        out = []
        for entry in pod.get("containers", []):
            with contextlib.suppress(NotFound):
                out.append(ctr.state_of(self.store, entry["id"]))
        return out

    def find_container(self, pod: dict, name: str) -> dict:
        for entry in pod.get("containers", []):
            if entry["name"] == name or entry["id"].startswith(name):
                return ctr.state_of(self.store, entry["id"])
        names = ", ".join(e["name"] for e in pod.get("containers", []))
        raise NotFound(f"pod {pod['name']} has no container {name!r} (containers: {names})")

    def observe(self, pod: dict) -> tuple[list[dict], PodStatus]:
        """The pod's containers (with their reported status) and the pod's status: the liveness
        facts are gathered here, the status itself is pyrun.runtime.status.pod_status (pure)."""
        containers = self.containers(pod)
        pause = ProcessRef.from_dict(pod.get("pause"))
        return containers, pod_status(pod, containers, pause is not None and pause.alive())

    def list(self) -> list[dict]:
        from pyrun.runtime import gc
        pods = self.store.pods()
        if gc.collect_crashed(self.cfg, self.destroy, pods):  # read once; again only if a crashed pod was removed
            pods = self.store.pods()
        return pods

    # --- stop and remove ------------------------------------------------------------------------
    def stop(self, ref: str, grace: float | None = None) -> dict:
        pod = self.get(ref)
        with self.store.pod_lock(pod["id"]):
            pod = self.store.read_pod(pod["id"])
            if pod["state"] == POD_CREATING:
                raise InvalidState(f"pod {pod['name']} is still being created")
            check_transition(POD_TRANSITIONS, pod["state"], POD_STOPPED, f"pod {pod['name']}")  # before any step
            grace = pod.get("grace_period", 30) if grace is None else grace
            self._stop_containers(pod, grace)
            self.platform.kill_sandbox(pod["id"])
            self.platform.detach_network(pod)  # a stopped pod holds no address, veth or hostPort (as containerd)
            pod["state"] = POD_STOPPED
            self.store.write_pod(pod, sync=True)
        return pod

    def _stop_containers(self, pod: dict, grace: float) -> None:
        ids = [e["id"] for e in pod.get("containers", [])]
        self.platform.stop_containers(ids, grace)  # all containers get SIGTERM together, as the kubelet does
        for cid in ids:
            self.platform.kill_cgroup(self._container_cgroup(cid))
            ctr.record_lost_exit(self.store, cid)

    def _container_cgroup(self, cid: str):
        with contextlib.suppress(NotFound):
            return self.store.read_container(cid).get("cgroup")
        return None

    def remove(self, ref: str, force: bool = False) -> None:
        pod = self.get(ref)
        if pod["state"] == POD_RUNNING and not force:
            raise InvalidState(f"pod {pod['name']} is running: stop it first, or use rm -f")
        if pod["state"] == POD_CREATING and not force:
            raise InvalidState(f"pod {pod['name']} is being created; use rm -f if its creator died")
        self.destroy(pod["id"])

    def destroy(self, pod_id: str) -> None:
        """Remove everything a pod made, whatever state it is in (idempotent)."""
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(self.store.pod_lock(pod_id))
            except FileNotFoundError:
                return  # already removed (by a concurrent rm or gc)
            try:
                pod = self.store.read_pod(pod_id)
            except (NotFound, ValueError):
                pod = {"id": pod_id, "containers": []}
            if "state" in pod:
                pod["state"] = POD_REMOVING
                pod["remover"] = ProcessRef.of(os.getpid()).to_dict()  # gc finishes the job if we die
                self.store.write_pod(pod)
            faults.check("remove")  # tests freeze a removal here and kill it: gc must finish the job
            failed: list[OSError] = []  # a layer that can't be removed stops only the final step
            for entry in reversed(pod.get("containers", [])):  # the reverse of the create, as its rollback
                try:
                    self._undo_container(entry["id"], self._container_cgroup(entry["id"]))
                except OSError as e:
                    failed.append(e)
            self.platform.detach_network(pod)
            self.platform.kill_sandbox(pod_id)
            self.platform.remove_cgroup(pod.get("cgroup"))
            if failed:  # keep the record (state removing): `pod rm` or `gc` finishes the job later
                raise failed[0]
            self.platform.remove_pod_dir(pod_id)
        if pod.get("name"):
            self.platform.release_name(pod.get("namespace", "default"), pod["name"], pod_id)


def _uuid() -> str:
    import uuid
    return str(uuid.uuid4())

