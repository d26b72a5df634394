"""The CRI's RuntimeService and ImageService on top of pyrun.runtime.

One method per RPC, named like it, taking a runtime.v1 request and returning the
v1 response; the server adapts runtime.v1alpha2 at the wire level and maps errors
to status codes (pyrun.cri.errors). Everything but the translation goes through
pyrun.runtime.api.Runtime, the CLI's way in too: the per-pod lock serialises every change
and the state on disk is shared with the CLI. This module never touches the state store,
cgroups, monitors or namespaces itself; nothing but caches lives in it, so a restarted
server picks up where it was.

Exec, Attach and PortForward check their request here and return a URL of the streaming server
(pyrun.cri.streaming) under a single-use token; the session runs when the client connects there.
Security contexts (RunPodSandbox's and CreateContainer's) are translated by pyrun.cri.translate into
the securityContext dicts the CLI path uses, so a CRI container gets the same isolation.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
import time

from cri_api.v1 import api_pb2 as pb

import pyrun
from pyrun.config import Config
from pyrun.cri import filters, stats, translate
from pyrun.cri.errors import Unimplemented
from pyrun.errors import NotFound, SpecError
from pyrun.runtime.api import ContainerRecord, PodRecord, Runtime

CRI_VERSION = "0.1.0"
FS_INFO_TTL = 10.0  # s: ImageFsInfo walks the image store at most this often


pause_alive = Runtime.pause_alive


class RuntimeService:
    def __init__(self, cfg: Config, streaming=None, rt: Runtime | None = None):
        """streaming: the pyrun.cri.streaming.StreamServer Exec/Attach/PortForward hand out URLs of
        (None: those RPCs answer UNIMPLEMENTED); rt: the server's Runtime (one is made if None)."""
        self.cfg = cfg
        self.streaming = streaming
        self.rt = rt if rt is not None else Runtime(cfg)
        self._network: tuple[bool, str, str] | None = None

    # --- helpers ---------------------------------------------------------------------------------
    def _pod(self, wanted: str) -> PodRecord:
        return self.rt.read_pod(filters.resolve_id(wanted, self.rt.pod_ids(), "pod sandbox"))

    def _cid(self, wanted: str) -> str:
        return filters.resolve_id(wanted, self.rt.container_ids(), "container")

    def _container(self, wanted: str) -> ContainerRecord:
        return self.rt.container(self._cid(wanted))

    # --- runtime info ----------------------------------------------------------------------------
    def Version(self, req, api: str = "v1"):
        return pb.VersionResponse(version=CRI_VERSION, runtime_name="pyrun", runtime_version=pyrun.__version__,
                                  runtime_api_version=api)

    def network_status(self) -> tuple[bool, str, str]:
        """(ready, reason, message) of pod networking; checked once (binaries don't come and go),
        except with --network cni, where the config is read again each time (it may come later)."""
        if self.cfg.network_mode == "cni":
            return self.rt.cni_status()
        if self._network is None:
            import importlib.util
            if not self.cfg.pod_network:
                self._network = (False, "NetworkModeNone", "pyrun runs with --network none: pods get only loopback")
            elif shutil.which("nft") is None:
                self._network = (False, "NftMissing", "the nft binary is not installed (needed for pod NAT)")
            elif importlib.util.find_spec("pyroute2") is None:
                self._network = (False, "Pyroute2Missing", "pyroute2 is not installed (needed for veth/bridge)")
            else:
                self._network = (True, "", "")
        return self._network

    def Status(self, req):
        ready, reason, message = self.network_status()
        conditions = [pb.RuntimeCondition(type="RuntimeReady", status=True),
                      pb.RuntimeCondition(type="NetworkReady", status=ready, reason=reason, message=message)]
        info = {"config": json.dumps({"root": str(self.cfg.root), "data_root": str(self.cfg.data_root),
                                      "cgroup_parent": self.cfg.cgroup_parent,
                                      "network": self.cfg.network_mode})} if req.verbose else {}
        return pb.StatusResponse(status=pb.RuntimeStatus(conditions=conditions), info=info)

    def RuntimeConfig(self, req):
        return pb.RuntimeConfigResponse(linux=pb.LinuxRuntimeConfiguration(cgroup_driver=pb.CGROUPFS))

    def UpdateRuntimeConfig(self, req):
        return pb.UpdateRuntimeConfigResponse()  # the pod CIDR comes from pyrun's network settings

    # --- sandboxes -------------------------------------------------------------------------------
    def RunPodSandbox(self, req):
        config = req.config
        spec = translate.pod_spec(config)
        override = translate.cgroup_parent_override(config.linux.cgroup_parent, self.cfg.cgroup_parent)
        cri = translate.sandbox_cri(config, req.runtime_handler)
        spec = dataclasses.replace(spec, name=self._sandbox_name(spec))
        pod = self.rt.create_sandbox(spec, log_dir=config.log_directory or None, cri=cri,
                                     cgroup_parent_override=override)
        return pb.RunPodSandboxResponse(pod_sandbox_id=pod.id)

    def _sandbox_name(self, spec) -> str:
        """The pod's name, or name_<uid prefix> while a pod of another uid (deleted and created again,
        as a StatefulSet's pods are) still holds it: the kubelet removes the old sandbox only later.
        While the holder stays, the same uid and attempt map to the same name, so a second
        RunPodSandbox for them fails with AlreadyExists."""
        holder = self.rt.name_holder(spec.namespace, spec.name)
        if holder is None or not spec.uid:
            return spec.name
        try:
            uid = self.rt.read_pod(holder).uid
        except (NotFound, ValueError, OSError):
            return spec.name
        return spec.name if uid == spec.uid else translate.uid_name(spec.name, spec.uid)

    def StopPodSandbox(self, req):
        pod = self._pod(req.pod_sandbox_id)  # unknown id: NOT_FOUND, as containerd answers
        if pod.state != "removing":  # as containerd: the sandbox's cgroup and netns go with its stop
            self.rt.stop(pod.id, grace=0, release=True)
        return pb.StopPodSandboxResponse()

    def RemovePodSandbox(self, req):
        try:
            pod_id = filters.resolve_id(req.pod_sandbox_id, self.rt.pod_ids(), "pod sandbox")
        except NotFound:
            return pb.RemovePodSandboxResponse()  # already removed: success (CRI: idempotent)
        self.rt.destroy(pod_id)
        return pb.RemovePodSandboxResponse()

    def PodSandboxStatus(self, req):
        pod = self._pod(req.pod_sandbox_id)
        info = {"info": json.dumps(pod.to_dict(), sort_keys=True)} if req.verbose else {}
        return pb.PodSandboxStatusResponse(status=translate.pod_sandbox_status(pod, pause_alive(pod)), info=info,
                                           timestamp=time.time_ns())

    def _sandboxes(self, flt) -> list[tuple[PodRecord, pb.PodSandbox]]:
        out = []
        for pod in self.rt.pods():
            if flt is not None and not filters.id_matches(pod.id, flt.id):
                continue
            sandbox = translate.pod_sandbox(pod, pause_alive(pod))
            if filters.sandbox_matches(sandbox, flt):
                out.append((pod, sandbox))
        return out

    def ListPodSandbox(self, req):
        flt = req.filter if req.HasField("filter") else None
        return pb.ListPodSandboxResponse(items=[s for _, s in self._sandboxes(flt)])

    # --- containers ------------------------------------------------------------------------------
    def CreateContainer(self, req):
        pod = self._pod(req.pod_sandbox_id)
        config = req.config
        sc = config.linux.security_context
        c = translate.container_spec(config, sandbox_privileged=bool(pod.cri and pod.cri.privileged))
        log_path = translate.container_log_path(pod.cri.log_directory if pod.cri else "", config.log_path)
        mounts = translate.extra_mounts(config)
        for m in mounts:  # like containerd: a missing host path becomes a directory
            if not os.path.lexists(m.source):
                os.makedirs(m.source, mode=0o755, exist_ok=True)
        rec = self.rt.create_container(pod.id, c, log_path=log_path, extra_mounts=mounts,
                                       cri=translate.container_cri(config),
                                       pod_spec=translate.pod_spec_of_record(pod, sc),
                                       wait=False)  # as containerd: the init's set-up is StartContainer's
        return pb.CreateContainerResponse(container_id=rec.id)

    def StartContainer(self, req):
        self.rt.start_container(self._cid(req.container_id))
        return pb.StartContainerResponse()

    def StopContainer(self, req):
        cid = self._cid(req.container_id)
        self.rt.stop_container(cid, float(max(0, req.timeout)))
        return pb.StopContainerResponse()

    def RemoveContainer(self, req):
        try:
            cid = self._cid(req.container_id)
        except NotFound:
            return pb.RemoveContainerResponse()  # already removed: success (CRI: idempotent)
        self.rt.remove_container(cid, force=True, background=True)  # its layer and directory: by a worker
        return pb.RemoveContainerResponse()

    def ContainerStatus(self, req):
        rec = self._container(req.container_id)
        info = {"info": json.dumps(rec.to_dict(), sort_keys=True)} if req.verbose else {}
        return pb.ContainerStatusResponse(status=translate.container_status(rec), info=info)

    def _containers(self, flt) -> list[tuple[ContainerRecord, pb.Container]]:
        out = []
        for pod in self.rt.pods():
            if flt is not None and not filters.id_matches(pod.id, flt.pod_sandbox_id):
                continue
            for cid in pod.container_ids():
                if flt is not None and not filters.id_matches(cid, flt.id):
                    continue
                try:
                    rec = self.rt.container(cid)
                except (NotFound, ValueError):
                    continue  # being created or removed right now
                c = translate.container(rec)
                if filters.container_matches(c, flt):
                    out.append((rec, c))
        return out

    def ListContainers(self, req):
        flt = req.filter if req.HasField("filter") else None
        return pb.ListContainersResponse(containers=[c for _, c in self._containers(flt)])

    def UpdateContainerResources(self, req):
        cid = self._cid(req.container_id)
        if req.HasField("linux"):
            self.rt.update_resources(cid, translate.resources(req.linux))
        return pb.UpdateContainerResourcesResponse()

    def ReopenContainerLog(self, req):
        self.rt.reopen_log(self._cid(req.container_id))
        return pb.ReopenContainerLogResponse()

    def ExecSync(self, req):
        # forked by the zygote, in its own session so a timeout kills the command too
        result = self.rt.exec_sync(self._cid(req.container_id), list(req.cmd),
                                   req.timeout if req.timeout > 0 else None)
        return pb.ExecSyncResponse(stdout=result.stdout, stderr=result.stderr, exit_code=result.exit_code)

    def _stream_url(self, kind: str, plan) -> str:
        if self.streaming is None:
            raise Unimplemented(f"{kind}: the streaming server is not running (pyrun cri serve starts it)")
        return self.streaming.url(kind, plan)

    @staticmethod
    def _check_streams(req) -> None:
        if not (req.stdin or req.stdout or req.stderr):
            raise SpecError([("stdout", "one of stdin, stdout or stderr must be true")])
        if req.tty and req.stderr:
            raise SpecError([("stderr", "tty and stderr cannot both be true (a terminal has one output)")])

    def Exec(self, req):
        from pyrun.cri.remotecommand import ExecPlan
        handle = self.rt.exec(self._cid(req.container_id), list(req.cmd))
        self._check_streams(req)
        plan = ExecPlan(argv=list(req.cmd), job=handle, stdin=req.stdin, stdout=req.stdout, stderr=req.stderr,
                        tty=req.tty, container=handle.container)
        return pb.ExecResponse(url=self._stream_url("exec", plan))

    def Attach(self, req):
        from pyrun.cri.remotecommand import AttachPlan
        target = self.rt.attach(self._cid(req.container_id))
        if req.stdin:
            raise Unimplemented(f"attaching stdin to container {target.container} is not supported by pyrun: its "
                                "monitor does not keep the workload's stdin open (attach without -i/--stdin)")
        self._check_streams(req)
        plan = AttachPlan(log_path=target.log_path, stdout=req.stdout, stderr=req.stderr, tty=req.tty,
                          running=target.running, container=target.container)
        return pb.AttachResponse(url=self._stream_url("attach", plan))

    def PortForward(self, req):
        from pyrun.cri.portforward import ForwardPlan
        pod = self._pod(req.pod_sandbox_id)
        target = self.rt.port_forward(pod.id)
        for i, port in enumerate(req.port):
            if not 0 < port < 1 << 16:
                raise SpecError([(f"port[{i}]", f"{port} is out of range (1-65535)")])
        plan = ForwardPlan(dial=target.dial, ports=tuple(req.port), pod=target.pod)
        return pb.PortForwardResponse(url=self._stream_url("portforward", plan))

    # --- stats -----------------------------------------------------------------------------------
    def _container_stats(self, rec: ContainerRecord, c: pb.Container) -> pb.ContainerStats:
        usage = self.rt.container_usage(rec)
        used, inodes = usage.writable or (0, 0)
        writable = stats.filesystem_usage(usage.writable_dir, used, inodes, usage.timestamp_ns)
        return stats.container_stats(stats.container_attributes(c), usage.stats, usage.timestamp_ns,
                                     usage.cpu_nanocores, writable)

    def ContainerStats(self, req):
        rec = self._container(req.container_id)
        return pb.ContainerStatsResponse(stats=self._container_stats(rec, translate.container(rec)))

    def ListContainerStats(self, req):
        self.rt.forget_removed()
        flt = req.filter if req.HasField("filter") else None
        return pb.ListContainerStatsResponse(stats=[self._container_stats(r, c) for r, c in self._containers(flt)])

    def _sandbox_stats(self, pod: PodRecord, sandbox: pb.PodSandbox) -> pb.PodSandboxStats:
        usage = self.rt.pod_usage(pod)
        flt = pb.ContainerFilter(pod_sandbox_id=pod.id)
        containers = [self._container_stats(r, c) for r, c in self._containers(flt)]
        return stats.sandbox_stats(stats.sandbox_attributes(sandbox), usage.stats, usage.timestamp_ns,
                                   usage.cpu_nanocores, containers)

    def PodSandboxStats(self, req):
        pod = self._pod(req.pod_sandbox_id)
        return pb.PodSandboxStatsResponse(stats=self._sandbox_stats(pod, translate.pod_sandbox(pod, pause_alive(pod))))

    def ListPodSandboxStats(self, req):
        self.rt.forget_removed()
        flt = req.filter if req.HasField("filter") else None
        items = self._sandboxes(pb.PodSandboxFilter(id=flt.id, label_selector=flt.label_selector) if flt else None)
        return pb.ListPodSandboxStatsResponse(stats=[self._sandbox_stats(p, s) for p, s in items])


class ImageService:
    def __init__(self, cfg: Config, rt: Runtime | None = None):
        self.cfg = cfg
        self.rt = rt if rt is not None else Runtime(cfg)
        self.images = self.rt.open_images()
        self._fs: tuple[float, tuple[str, int, int]] | None = None
        self._fs_lock = threading.Lock()

    @staticmethod
    def _message(same_id: list) -> pb.Image:
        from pyrun.images import reference
        first = same_id[0]
        user = str(((first.config or {}).get("config") or {}).get("User") or "")
        uid_part = user.partition(":")[0]
        return pb.Image(
            id=first.id, repo_tags=[i.name for i in same_id],
            repo_digests=sorted({f"{reference.parse(i.name).repository}@{i.manifest_digest}" for i in same_id}),
            size=first.size, spec=pb.ImageSpec(image=first.id),
            uid=pb.Int64Value(value=int(uid_part)) if uid_part.isdigit() else None,
            username="" if uid_part.isdigit() else uid_part)

    def _grouped(self, images: list) -> list[pb.Image]:
        by_id: dict[str, list] = {}
        for image in images:
            by_id.setdefault(image.id, []).append(image)
        return [self._message(group) for group in by_id.values()]

    def ListImages(self, req):
        wanted = req.filter.image.image if req.HasField("filter") else ""
        if wanted:
            try:
                image = self.images.resolve(wanted)
            except NotFound:
                return pb.ListImagesResponse()
            return pb.ListImagesResponse(images=self._grouped([i for i in self.images.list() if i.id == image.id]))
        return pb.ListImagesResponse(images=self._grouped(self.images.list()))

    def ImageStatus(self, req):
        try:
            image = self.images.resolve(req.image.image)
        except NotFound:
            return pb.ImageStatusResponse()  # the CRI's "not present": image unset, no error
        same = [i for i in self.images.list() if i.id == image.id] or [image]
        info = {"info": json.dumps({"config": image.config}, sort_keys=True)} if req.verbose else {}
        return pb.ImageStatusResponse(image=self._message(same), info=info)

    def PullImage(self, req):
        if not req.image.image:
            raise SpecError([("image.image", "no image given")])
        from pyrun.images.pull import pull_image
        image = pull_image(self.images, req.image.image, translate.auth_dict(req.auth))
        return pb.PullImageResponse(image_ref=image.id)

    def RemoveImage(self, req):
        try:
            self.images.remove(req.image.image, force=True)  # untag; layers stay while containers use them
        except NotFound:
            pass  # already gone: success (CRI: idempotent)
        return pb.RemoveImageResponse()

    def ImageFsInfo(self, req):
        now = time.monotonic()
        with self._fs_lock:
            if self._fs is None or now - self._fs[0] > FS_INFO_TTL:
                self._fs = (now, self.rt.image_fs_usage())
            root, used, inodes = self._fs[1]
        usage = stats.filesystem_usage(root, used, inodes, time.time_ns())
        return pb.ImageFsInfoResponse(image_filesystems=[usage])

