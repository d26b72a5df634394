"""The typed records of the state store (pure: no file is read or written here).

Each file under the state root has one record type:

  pods/<id>/pod.json              PodRecord        (the CLI/CRI, under the pod lock)
  pods/<id>/sandbox.json          SandboxInfo      (the sandbox launcher)
  containers/<id>/container.json  ContainerRecord  (the CLI/CRI)
  containers/<id>/config.json     InitConfig       (the CLI/CRI; read by the monitor, the init and exec)
  containers/<id>/status.json     ContainerStatus  (the Python monitor)
  containers/<id>/exit.json       ContainerStatus  (the C monitor: csrc/monitor.c; its fields win)

Records are frozen (pyrun.frozen.Frozen: dataclasses without their import-time cost): a change is
`pyrun.frozen.replace(record, field=value)` (dataclasses.replace works too), and
only pyrun.runtime.state turns them into files. `to_dict()` gives the JSON document without
its version (the shape `pod inspect` and the CRI's verbose info always showed); the store adds
`"version": RECORD_VERSION` when it writes and hands the document to `decode()` when it reads:

  * a document without "version" is version 0, the unversioned layout of earlier pyruns:
    it is migrated (`_MIGRATIONS`) to the current version when read and written back in the
    current version the next time its writer saves it;
  * a version newer than RECORD_VERSION is refused with RecordError naming the file, never
    half understood. exit.json is the exception: the C monitor writes it unversioned, always.

A key the reader does not know is ignored, so a record written by this version with an extra
field added later is still read by this one (fields are only ever added within a version).
"""
from __future__ import annotations

import functools
from collections.abc import Mapping

from pyrun.errors import RecordError
from pyrun.frozen import Frozen, Record, field, field_names
from pyrun.linux.procs import ProcessRef

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a CLI command's start-up)
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar

    T = TypeVar("T")

RECORD_VERSION = 1


# --- helpers -------------------------------------------------------------------------------------

@functools.cache
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(field_names(cls))


def _known(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of `data` that are fields of `cls` (unknown keys are ignored, see the module docstring)."""
    names = _field_names(cls)
    return {k: v for k, v in data.items() if k in names}


def _ref(d: Any) -> ProcessRef | None:
    if isinstance(d, ProcessRef):
        return d
    return ProcessRef.from_dict(dict(d)) if isinstance(d, Mapping) else None


def _ref_dict(ref: ProcessRef | None) -> dict[str, Any] | None:
    return ref.to_dict() if ref is not None else None


def _plain(value: Any) -> Any:
    """A record value as JSON data: records and process refs become dicts, tuples (of records or
    strings) lists. A mapping is JSON data already (a manifest, labels, a security plan): copied,
    never walked, so a deeply nested manifest costs no recursion here."""
    if isinstance(value, ProcessRef):
        return value.to_dict()
    if isinstance(value, Record) and hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return dict(value)
    return value


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


# --- parts ---------------------------------------------------------------------------------------


class ContainerEntry(Frozen):
    """A pod's entry for one of its containers (the pod record's "containers" list)."""
    name: str
    id: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ContainerEntry":
        return cls(name=d["name"], id=d["id"])

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "id": self.id}


class PodCgroup(Frozen):
    """The pod's cgroup (rendered below each hierarchy's root) and the pause process's leaf.
    owned: False for a CRI cgroup_parent, which belongs to the kubelet (only leaves are pyrun's).
    made_in: for a cgroup that is not owned, the hierarchies (mount points) where pyrun had to make
    it because the kubelet does not manage them; removed there with the pod."""
    path: str
    owned: bool = True
    sandbox: str | None = None
    made_in: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PodCgroup":
        known = _known(cls, d)
        if "made_in" in known:
            known["made_in"] = tuple(known["made_in"])
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        return _drop_none({"path": self.path, "owned": self.owned, "sandbox": self.sandbox,
                           "made_in": list(self.made_in) or None})


class ContainerCgroup(Frozen):
    """A container's cgroup; prune: remove empty parent levels after it (not below a CRI cgroup_parent)."""
    path: str
    prune: bool = True

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ContainerCgroup":
        return cls(**_known(cls, d))

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "prune": self.prune}


class PodNetwork(Frozen):
    """The pod's network attachment: the bridge's (pyrun.netns.pod.Attachment) or, with mode "cni",
    what the CNI result said (pyrun.netns.cni.protocol.summary: ip, prefix_len, gateway, mac,
    interfaces). `pending` while it is being made (so that gc detaches a pod whose creator died
    half-way); `mode` is the --network that made it (none recorded: the bridge)."""
    ip: str | None = None
    prefix_len: int | None = None
    gateway: str | None = None
    mac: str | None = None
    host_ifname: str | None = None
    ifname: str | None = None
    bridge: str | None = None
    interfaces: tuple[str | None, ...] | None = None
    mode: str | None = None
    pending: bool = False

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "PodNetwork | None":
        if not d:
            return None
        d = _known(cls, d)
        if d.get("interfaces") is not None:
            d["interfaces"] = tuple(d["interfaces"])
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        d = _drop_none({name: _plain(getattr(self, name)) for name in field_names(self) if name != "pending"})
        if self.pending:
            d["pending"] = True
        return d


class ProcessSpec(Frozen):
    """What a container runs: resolved args, env, working directory and user."""
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "ProcessSpec":
        d = d or {}
        return cls(args=tuple(d.get("args") or ()), env=tuple(d.get("env") or ()), cwd=d.get("cwd") or "/",
                   user=d.get("user") or "")

    def to_dict(self) -> dict[str, Any]:
        return {"args": list(self.args), "env": list(self.env), "cwd": self.cwd, "user": self.user}


class Resources(Frozen):
    """A container's resource requests and limits as written in its spec (resource name -> quantity)."""
    requests: Mapping[str, Any] = field(default_factory=dict)
    limits: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "Resources":
        d = d or {}
        return cls(requests=dict(d.get("requests") or {}), limits=dict(d.get("limits") or {}))

    def to_dict(self) -> dict[str, Any]:
        return {"requests": dict(self.requests), "limits": dict(self.limits)}


class StepError(Frozen):
    """A failed step: which one, and what it said."""
    step: str
    message: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "StepError | None":
        if not d:
            return None
        return cls(step=str(d.get("step") or "?"), message=str(d.get("message") or ""))

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "message": self.message}


# --- what a CRI caller sent (kept as sent: the kubelet rebuilds its pods from it) -----------------


class CriPortMapping(Frozen):
    protocol: int = 0
    container_port: int = 0
    host_port: int = 0
    host_ip: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CriPortMapping":
        return cls(**_known(cls, d))

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in field_names(self)}


class CriMount(Frozen):
    container_path: str
    host_path: str
    readonly: bool = False
    selinux_relabel: bool = False
    propagation: int = 0

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CriMount":
        return cls(**_known(cls, d))

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in field_names(self)}


class PodCri(Frozen):
    """RunPodSandbox's config as sent. metadata: pb.PodSandboxMetadata's fields (name, uid, namespace,
    attempt); namespace_options: pb.NamespaceOption's (network, pid, ipc)."""
    metadata: Mapping[str, Any]
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    log_directory: str = ""
    runtime_handler: str = ""
    namespace_options: Mapping[str, int] = field(default_factory=dict)
    port_mappings: tuple[CriPortMapping, ...] = ()
    cgroup_parent: str = ""
    security_context: Mapping[str, Any] = field(default_factory=dict)
    privileged: bool = False

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "PodCri | None":
        if not d:
            return None
        d = _known(cls, d)
        return cls(**{**d, "metadata": dict(d.get("metadata") or {}), "labels": dict(d.get("labels") or {}),
                      "annotations": dict(d.get("annotations") or {}),
                      "namespace_options": dict(d.get("namespace_options") or {}),
                      "port_mappings": tuple(CriPortMapping.from_dict(p) for p in d.get("port_mappings") or ()),
                      "security_context": dict(d.get("security_context") or {})})

    def to_dict(self) -> dict[str, Any]:
        return {name: _plain(getattr(self, name)) for name in field_names(self)}


class ContainerCri(Frozen):
    """CreateContainer's config as sent. metadata: pb.ContainerMetadata's fields (name, attempt)."""
    metadata: Mapping[str, Any]
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    image: str = ""
    log_path: str = ""
    mounts: tuple[CriMount, ...] = ()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "ContainerCri | None":
        if not d:
            return None
        d = _known(cls, d)
        return cls(**{**d, "metadata": dict(d.get("metadata") or {}), "labels": dict(d.get("labels") or {}),
                      "annotations": dict(d.get("annotations") or {}),
                      "mounts": tuple(CriMount.from_dict(m) for m in d.get("mounts") or ())})

    def to_dict(self) -> dict[str, Any]:
        return {name: _plain(getattr(self, name)) for name in field_names(self)}


# --- pod -----------------------------------------------------------------------------------------

_OFF_BY_DEFAULT = frozenset({"host_pid", "host_ipc"})  # written only when true (added later: older pods lack them)


class PodRecord(Frozen):
    """pods/<id>/pod.json. `spec` is the manifest as given (re-validated when containers are made);
    `cri` what a CRI caller sent to RunPodSandbox (None for `pyrun pod create`)."""
    id: str
    name: str
    namespace: str = "default"
    uid: str = ""
    state: str = "creating"
    created_at: int = 0
    hostname: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    qos: str = "BestEffort"
    share_pid: bool = False
    host_network: bool = False
    host_pid: bool = False   # the node's PID namespace (hostPID / namespace_options.pid NODE)
    host_ipc: bool = False   # the node's IPC namespace and /dev/shm (hostIPC / namespace_options.ipc NODE)
    grace_period: float = 30
    warnings: tuple[str, ...] = ()
    spec: Mapping[str, Any] = field(default_factory=dict)
    containers: tuple[ContainerEntry, ...] = ()
    log_dir: str = ""
    creator: ProcessRef | None = None   # while creating: gc finishes the job if it died
    remover: ProcessRef | None = None   # while removing: likewise
    cgroup: PodCgroup | None = None
    pause: ProcessRef | None = None
    namespaces: Mapping[str, str] = field(default_factory=dict)  # kind -> pinned nsfs file
    network: PodNetwork | None = None
    volumes: Mapping[str, str] = field(default_factory=dict)     # volume name -> host path
    cri: PodCri | None = None
    cgroup_parent_override: str | None = None  # the CRI's cgroup_parent, used exactly

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PodRecord":
        d = _known(cls, d)
        return cls(**{
            **d,
            "labels": dict(d.get("labels") or {}), "annotations": dict(d.get("annotations") or {}),
            "warnings": tuple(d.get("warnings") or ()), "spec": d.get("spec") or {},
            "containers": tuple(ContainerEntry.from_dict(e) for e in d.get("containers") or ()),
            "creator": _ref(d.get("creator")), "remover": _ref(d.get("remover")), "pause": _ref(d.get("pause")),
            "cgroup": PodCgroup.from_dict(d["cgroup"]) if d.get("cgroup") else None,
            "namespaces": dict(d.get("namespaces") or {}), "network": PodNetwork.from_dict(d.get("network")),
            "volumes": dict(d.get("volumes") or {}), "cri": PodCri.from_dict(d.get("cri")),
        })

    def to_dict(self) -> dict[str, Any]:
        d = {name: _plain(getattr(self, name)) for name in field_names(self)
             if name not in _OFF_BY_DEFAULT or getattr(self, name)}
        return _drop_none(d)

    # small questions asked in many places
    def container_ids(self) -> list[str]:
        return [e.id for e in self.containers]

    def entry(self, name_or_id: str) -> ContainerEntry | None:
        """The container called `name_or_id`, or whose id starts with it."""
        for e in self.containers:
            if e.name == name_or_id or e.id.startswith(name_or_id):
                return e
        return None

    @property
    def ip(self) -> str | None:
        return self.network.ip if self.network else None

    @property
    def net_namespace(self) -> str | None:
        return self.namespaces.get("net")


class SandboxInfo(Frozen):
    """pods/<id>/sandbox.json: the pause process the sandbox launcher started, and the namespace kinds."""
    pause: ProcessRef | None = None
    namespaces: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SandboxInfo":
        return cls(pause=_ref(d.get("pause")), namespaces=tuple(d.get("namespaces") or ()))

    def to_dict(self) -> dict[str, Any]:
        return {"pause": _ref_dict(self.pause), "namespaces": list(self.namespaces)}


# --- container -----------------------------------------------------------------------------------


class ContainerStatus(Frozen):
    """status.json (the Python monitor) with exit.json (the C monitor's exit record) merged over it.

    state: created, running, exited, waiting (a supervised container in its restart back-off) or
    unknown (as reported when the monitor is gone).
    reason: Completed, Error, OOMKilled, StartError, NeverStarted, MonitorGone, CrashLoopBackOff.

    A supervised container (InitConfig.supervision) also has what the C monitor writes to sup.json:
    restart_count, last_state (the previous instance: exit_code, reason, signal, started_at,
    finished_at), ready (readiness), started (the startup probe passed), probes (kind -> result,
    message, at), next_start_at and backoff_seconds while waiting, and the log offsets where the
    current and the previous instance's output starts (log_start, previous_log_start).
    """
    state: str = "created"
    pid: int | None = None
    start_time: int | None = None
    started_at: int | None = None
    finished_at: int | None = None
    exit_code: int | None = None
    reason: str | None = None
    signal: str | None = None
    error: StepError | None = None
    restart_count: int | None = None
    last_state: Mapping[str, Any] | None = None
    ready: bool | None = None
    started: bool | None = None
    probes: Mapping[str, Any] | None = None
    next_start_at: int | None = None
    backoff_seconds: int | None = None
    log_start: int | None = None
    previous_log_start: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ContainerStatus":
        d = _known(cls, d)
        return cls(**{**d, "state": d.get("state") or "created", "error": StepError.from_dict(d.get("error"))})

    def to_dict(self) -> dict[str, Any]:
        return _drop_none({name: _plain(getattr(self, name)) for name in field_names(self)})

    def merged(self, exit_doc: Mapping[str, Any]) -> "ContainerStatus":
        """This status with the fields of an exit record (exit.json) over it."""
        return ContainerStatus.from_dict({**self.to_dict(), **exit_doc})

    @property
    def workload(self) -> ProcessRef | None:
        """The workload (the init before it execs) while the container has not exited."""
        return ProcessRef(self.pid, self.start_time or 0) if self.pid and self.state != "exited" else None


class ContainerRecord(Frozen):
    """containers/<id>/container.json; `status` is not in that file: the store reads it from the
    monitor's files (ContainerStatus) and `to_dict` includes it as "status", as the CRI's verbose info shows."""
    id: str
    pod_id: str
    name: str
    image: str = ""
    image_id: str = ""
    image_name: str | None = None
    created_at: int = 0
    log_path: str = ""
    process: ProcessSpec = field(default_factory=ProcessSpec)
    resources: Resources = field(default_factory=Resources)
    cgroup: ContainerCgroup | None = None
    cri: ContainerCri | None = None
    status: ContainerStatus = field(default_factory=ContainerStatus)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ContainerRecord":
        d = _known(cls, d)
        return cls(**{
            **d, "process": ProcessSpec.from_dict(d.get("process")), "resources": Resources.from_dict(d.get("resources")),
            "cgroup": ContainerCgroup.from_dict(d["cgroup"]) if d.get("cgroup") else None,
            "cri": ContainerCri.from_dict(d.get("cri")), "status": ContainerStatus.from_dict(d.get("status") or {}),
        })

    def to_dict(self) -> dict[str, Any]:
        return _drop_none({name: _plain(getattr(self, name)) for name in field_names(self)})

    def file_dict(self) -> dict[str, Any]:
        """container.json's document: the record without the monitor's status."""
        d = self.to_dict()
        d.pop("status", None)
        return d


class RootfsSpec(Frozen):
    """The overlay: image layer dirs (lower), the writable layer (upper, work), the mount point (target)."""
    lower: tuple[str, ...]
    upper: str
    work: str
    target: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RootfsSpec":
        return cls(lower=tuple(d.get("lower") or ()), upper=d["upper"], work=d["work"], target=d["target"])

    def to_dict(self) -> dict[str, Any]:
        return {"lower": list(self.lower), "upper": self.upper, "work": self.work, "target": self.target}


PROPAGATIONS = ("", "rslave", "rshared")  # MountSpec.propagation: "" is rprivate


class MountSpec(Frozen):
    """A bind mount into the container: host `source` at `destination`. propagation: "" (rprivate),
    "rslave" (mounts made on the host under source show up inside: HostToContainer) or "rshared"
    (both ways: Bidirectional)."""
    source: str
    destination: str
    readonly: bool = False
    propagation: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MountSpec":
        propagation = d.get("propagation") or ""
        if propagation not in PROPAGATIONS:
            raise RecordError(f"mount {d['destination']}: unknown propagation {propagation!r}")
        return cls(source=d["source"], destination=d["destination"], readonly=bool(d.get("readonly")),
                   propagation=propagation)

    def to_dict(self) -> dict[str, Any]:
        d = {"source": self.source, "destination": self.destination, "readonly": self.readonly}
        if self.propagation:
            d["propagation"] = self.propagation
        return d


class DeviceNode(Frozen):
    """A host device made in the container's /dev (pyrun.runtime.resources.requested_devices)."""
    path: str
    type: str  # "c" or "b"
    major: int
    minor: int
    mode: int
    uid: int
    gid: int
    permissions: str = "rwm"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DeviceNode":
        return cls(**_known(cls, d))

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in field_names(self)}


# --- the security plan (config.json's "security") ------------------------------------------------

def _bad(where: str, want: str, value: Any) -> ValueError:
    return ValueError(f"security.{where}: expected {want}, got {type(value).__name__} {value!r}")


def _opt_str(d: Mapping[str, Any], key: str, where: str) -> str | None:
    value = d.get(key)
    if value is not None and not isinstance(value, str):
        raise _bad(where + key, "a string", value)
    return value


def _opt_int(d: Mapping[str, Any], key: str) -> int | None:
    value = d.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise _bad(key, "an integer", value)
    return value


def _flag(d: Mapping[str, Any], key: str) -> bool:
    value = d.get(key, False)
    if not isinstance(value, bool):
        raise _bad(key, "true or false", value)
    return value


def _strings(d: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = d.get(key, ())
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise _bad(key, "a list of strings", value)
    return tuple(value)


def _ints(d: Mapping[str, Any], key: str) -> tuple[int, ...]:
    value = d.get(key, ())
    if not isinstance(value, (list, tuple)) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
        raise _bad(key, "a list of integers", value)
    return tuple(value)


def _sysctls(d: Mapping[str, Any]) -> dict[str, str]:
    value = d.get("sysctls", {})
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise _bad("sysctls", "an object of strings", value)
    return dict(value)


def _rlimits(d: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    value = d.get("rlimits", {})
    if not isinstance(value, Mapping):
        raise _bad("rlimits", "an object", value)
    out = {}
    for name, pair in value.items():
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or any(isinstance(n, bool) or not isinstance(n, int) for n in pair)):
            raise _bad(f"rlimits.{name}", "[soft, hard]", pair)
        out[str(name)] = (pair[0], pair[1])
    return out


class SeccompPlan(Frozen):
    """The seccomp part of a security plan: the profile's type ("RuntimeDefault", "Localhost",
    "Unconfined"), the Localhost profile's name and path, and `plan`, the rendered load plan
    (pyrun.runtime.seccomp.render; JSON data, kept as is). No plan: no filter is loaded."""
    type: str | None = None
    profile: str | None = None
    plan: Mapping[str, Any] | None = None
    path: str | None = None

    @classmethod
    def from_dict(cls, d: Any) -> "SeccompPlan":
        if not isinstance(d, Mapping):
            raise ValueError("security.seccomp: missing, or not an object")
        plan = d.get("plan")
        if plan is not None and not isinstance(plan, Mapping):
            raise _bad("seccomp.plan", "an object", plan)
        if plan is not None and not isinstance(d.get("type"), str):
            raise ValueError("security.seccomp.type: missing for a seccomp plan")
        return cls(type=_opt_str(d, "type", "seccomp."), profile=_opt_str(d, "profile", "seccomp."),
                   plan=dict(plan) if plan is not None else None, path=_opt_str(d, "path", "seccomp."))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type, "profile": self.profile}
        if self.plan is not None:
            d["plan"] = dict(self.plan)
        if self.path is not None:
            d["path"] = self.path
        return d


class SecurityPlan(Frozen):
    """config.json's "security": a container's merged, defaulted security settings
    (pyrun.runtime.security.effective_security describes each field).

    Fail closed: `from_dict` raises ValueError naming the field for a section that is not an object,
    lacks "seccomp" or "capabilities", or holds a value of the wrong type; it never fills in the
    seccomp or capability settings. The other fields default to what the init did for a missing key.
    """
    capabilities: tuple[str, ...]
    seccomp: SeccompPlan
    privileged: bool = False
    run_as_non_root: bool = False
    run_as_user: int | None = None
    run_as_group: int | None = None
    groups: tuple[int, ...] = ()
    supplemental_groups_policy: str = "Merge"
    fs_group: int | None = None
    ambient_capabilities: tuple[str, ...] = ()
    no_new_privs: bool = False
    read_only_rootfs: bool = False
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    sysctls: Mapping[str, str] = field(default_factory=dict)
    rlimits: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: Any) -> "SecurityPlan":
        if not isinstance(d, Mapping):
            raise ValueError("security: missing, or not an object")
        if "capabilities" not in d:
            raise ValueError("security.capabilities: missing")
        policy = d.get("supplemental_groups_policy") or "Merge"
        if not isinstance(policy, str):
            raise _bad("supplemental_groups_policy", "a string", policy)
        return cls(
            capabilities=_strings(d, "capabilities"), seccomp=SeccompPlan.from_dict(d.get("seccomp")),
            privileged=_flag(d, "privileged"), run_as_non_root=_flag(d, "run_as_non_root"),
            run_as_user=_opt_int(d, "run_as_user"), run_as_group=_opt_int(d, "run_as_group"),
            groups=_ints(d, "groups"), supplemental_groups_policy=policy, fs_group=_opt_int(d, "fs_group"),
            ambient_capabilities=_strings(d, "ambient_capabilities"), no_new_privs=_flag(d, "no_new_privs"),
            read_only_rootfs=_flag(d, "read_only_rootfs"), masked_paths=_strings(d, "masked_paths"),
            readonly_paths=_strings(d, "readonly_paths"), sysctls=_sysctls(d), rlimits=_rlimits(d),
            warnings=_strings(d, "warnings"))

    def to_dict(self) -> dict[str, Any]:
        """The JSON document, in effective_security's key order."""
        return {
            "privileged": self.privileged, "run_as_non_root": self.run_as_non_root,
            "run_as_user": self.run_as_user, "run_as_group": self.run_as_group, "groups": list(self.groups),
            "supplemental_groups_policy": self.supplemental_groups_policy, "fs_group": self.fs_group,
            "capabilities": list(self.capabilities), "ambient_capabilities": list(self.ambient_capabilities),
            "no_new_privs": self.no_new_privs, "seccomp": self.seccomp.to_dict(),
            "read_only_rootfs": self.read_only_rootfs, "masked_paths": list(self.masked_paths),
            "readonly_paths": list(self.readonly_paths), "sysctls": dict(self.sysctls),
            "rlimits": {name: list(pair) for name, pair in self.rlimits.items()}, "warnings": list(self.warnings),
        }


HOST_PID = "host"  # InitConfig.namespaces["pid"] of a hostPID pod's container


class Supervision(Frozen):
    """config.json's "supervision": what the container's monitor looks after for a `pyrun pod create`
    pod (never for a CRI container: the kubelet does that itself). restart_policy: Always, OnFailure or
    Never; probes: liveness/readiness/startup -> pyrun.spec.model.Probe as a dict; hooks: post_start/
    pre_stop -> Handler as a dict; grace_period: the pod's, for a liveness kill and a preStop hook;
    pod_ip: where httpGet and tcpSocket connect without a host."""
    restart_policy: str = "Never"
    grace_period: float = 30
    pod_ip: str | None = None
    probes: Mapping[str, Any] = field(default_factory=dict)
    hooks: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "Supervision | None":
        if not d:
            return None
        d = _known(cls, d)
        return cls(**{**d, "probes": dict(d.get("probes") or {}), "hooks": dict(d.get("hooks") or {})})

    def to_dict(self) -> dict[str, Any]:
        return {"restart_policy": self.restart_policy, "grace_period": self.grace_period, "pod_ip": self.pod_ip,
                "probes": dict(self.probes), "hooks": dict(self.hooks)}


class InitConfig(Frozen):
    """containers/<id>/config.json: what the monitor, the init and an exec need.

    namespaces: kind -> pinned nsfs file of the pod (pid: None for a PID namespace of its own, HOST_PID
    to stay in the node's).
    tty: the workload runs on a pty of the container's devpts whose master the monitor holds; stdin: the
    monitor holds the write end of the workload's stdin pipe (an attach gets it); stdin_once: it lets go
    of it once an attach has it, so the workload reads EOF when that attach ends (pyrun.runtime.monitor).
    security: the container's security plan (SecurityPlan). A section that is missing or damaged
    reads as None, with what is wrong in `security_problem` (so that the monitor, inspect and rm still
    read the config), and security.from_config refuses to run such a container.
    """
    id: str
    name: str
    pod_id: str
    namespaces: Mapping[str, str | None]
    rootfs: RootfsSpec
    process: ProcessSpec
    log_path: str
    mounts: tuple[MountSpec, ...] = ()
    capabilities: tuple[str, ...] = ()
    cgroup_procs: tuple[str, ...] = ()
    oom_events: str | None = None
    security: SecurityPlan | None = None
    devices: tuple[DeviceNode, ...] = ()
    supervision: Supervision | None = None
    tty: bool = False
    stdin: bool = False
    stdin_once: bool = False
    security_problem: str | None = field(default=None, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "InitConfig":
        d = _known(cls, d)
        return cls(**{
            **d, "namespaces": dict(d.get("namespaces") or {}), "rootfs": RootfsSpec.from_dict(d["rootfs"]),
            "process": ProcessSpec.from_dict(d.get("process")),
            "mounts": tuple(MountSpec.from_dict(m) for m in d.get("mounts") or ()),
            "capabilities": tuple(d.get("capabilities") or ()), "cgroup_procs": tuple(d.get("cgroup_procs") or ()),
            "devices": tuple(DeviceNode.from_dict(n) for n in d.get("devices") or ()),
            "supervision": Supervision.from_dict(d.get("supervision")),
            **_security(d.get("security")),
        })

    def to_dict(self) -> dict[str, Any]:
        d = {name: _plain(getattr(self, name)) for name in field_names(self) if name != "security_problem"}
        for optional in ("security", "supervision"):
            if d[optional] is None:
                del d[optional]
        return d


def _security(section: Any) -> dict[str, Any]:
    """InitConfig's security fields from config.json's "security" (see InitConfig)."""
    if section is None:
        return {"security": None, "security_problem": None}
    if isinstance(section, SecurityPlan):
        return {"security": section, "security_problem": None}
    try:
        return {"security": SecurityPlan.from_dict(section), "security_problem": None}
    except ValueError as e:
        return {"security": None, "security_problem": str(e)}


# --- versions ------------------------------------------------------------------------------------

def _same_keys(d: dict[str, Any]) -> dict[str, Any]:
    """Version 0 -> 1: version 1 introduced the "version" key itself; every other key kept its
    name and meaning, and fields missing in old records take their defaults."""
    return d


# per record type: migration from version N (the key) to N + 1
_MIGRATIONS: dict[type, dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    PodRecord: {0: _same_keys}, ContainerRecord: {0: _same_keys}, InitConfig: {0: _same_keys},
    SandboxInfo: {0: _same_keys}, ContainerStatus: {0: _same_keys},
}


def decode(cls: type[T], data: Any, source: str) -> T:
    """A record from its JSON document (`source` names the file in errors): version checked,
    older versions migrated; RecordError if it is newer than this pyrun or not a record."""
    if not isinstance(data, Mapping):
        raise RecordError(f"{source}: not a {cls.__name__} record (a JSON object was expected)")
    data = dict(data)
    version = data.pop("version", 0)
    if not isinstance(version, int) or version < 0:
        raise RecordError(f"{source}: bad record version {version!r}")
    if version > RECORD_VERSION:
        raise RecordError(f"{source}: record version {version} is newer than this pyrun understands "
                          f"(version {RECORD_VERSION}); use the pyrun that wrote it, or remove the object")
    steps = _MIGRATIONS.get(cls, {})
    while version < RECORD_VERSION:
        data = steps.get(version, _same_keys)(data)
        version += 1
    try:
        record: T = cls.from_dict(data)  # type: ignore[attr-defined]
        return record
    except (KeyError, TypeError, ValueError) as e:
        raise RecordError(f"{source}: damaged {cls.__name__} record ({type(e).__name__}: {e})") from None


def encode(record: Any) -> dict[str, Any]:
    """The JSON document of a record, with its version."""
    doc = record.file_dict() if isinstance(record, ContainerRecord) else record.to_dict()
    return {"version": RECORD_VERSION, **doc}
