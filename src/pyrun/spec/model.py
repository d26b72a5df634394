"""The Pod model pyrun runs: frozen dataclasses built by pyrun.spec.parse."""
from __future__ import annotations

from pyrun.frozen import Frozen, field

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs import time; annotations are strings anyway
    from typing import Any

RESOURCE_NAMES = ("cpu", "memory", "hugepages-2Mi", "hugepages-1Gi")


class Resources(Frozen):
    """Normalised resources: "cpu" in millicores, "memory"/"hugepages-*" in bytes.

    Kubernetes defaulting is applied: a limit without a request makes the request equal the limit.
    """

    requests: dict[str, int] = field(default_factory=dict)
    limits: dict[str, int] = field(default_factory=dict)


class FieldRef(Frozen):
    """valueFrom.fieldRef: field_path is e.g. "metadata.name" or "metadata.labels['app']"."""

    field_path: str


class EnvVar(Frozen):
    name: str
    value: str | None = None
    field_ref: FieldRef | None = None


class PortSpec(Frozen):
    name: str | None
    container_port: int
    host_port: int | None = None
    host_ip: str | None = None
    protocol: str = "TCP"


class DeviceSpec(Frozen):
    """A host device the container asks for (CRI ContainerConfig.devices): made at container_path
    inside the container and allowed in its device cgroup with `permissions` (letters of "rwm")."""

    host_path: str
    container_path: str
    permissions: str = "rwm"
    field: str = ""  # where it was asked for ("config.devices[0]"), for errors found on the host


MOUNT_PROPAGATIONS = ("None", "HostToContainer", "Bidirectional")


class VolumeMount(Frozen):
    """mount_propagation: "None" (rprivate), "HostToContainer" (rslave) or "Bidirectional" (rshared)."""

    name: str
    mount_path: str
    read_only: bool = False
    sub_path: str = ""
    mount_propagation: str = "None"


class Handler(Frozen):
    """What a probe or a lifecycle hook does (pyrun.spec.probes).

    kind "exec" (command), "httpGet" (port, path, host, scheme HTTP/HTTPS, headers), "tcpSocket"
    (port, host) or "grpc" (port, service). port: a number (a named port is resolved at parse time);
    host "": the pod's address."""

    kind: str
    command: tuple[str, ...] = ()
    port: int = 0
    host: str = ""
    path: str = "/"
    scheme: str = "HTTP"
    headers: tuple[tuple[str, str], ...] = ()
    service: str = ""


class Probe(Frozen):
    """A liveness, readiness or startup probe, with the Kubernetes defaults (seconds)."""

    handler: Handler
    initial_delay: int = 0
    period: int = 10
    timeout: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3


class Lifecycle(Frozen):
    """A container's lifecycle hooks."""

    post_start: Handler | None = None
    pre_stop: Handler | None = None


class ContainerSpec(Frozen):
    """security_context is in the manifest's shape; one made from a CRI request may also carry
    runAsUsername, maskedPaths and readonlyPaths (pyrun.cri.translate.CRI_ONLY_KEYS)."""

    name: str
    image: str
    image_pull_policy: str = "IfNotPresent"
    command: tuple[str, ...] | None = None
    args: tuple[str, ...] | None = None
    env: tuple[EnvVar, ...] = ()
    working_dir: str | None = None
    ports: tuple[PortSpec, ...] = ()
    resources: Resources = field(default_factory=Resources)
    volume_mounts: tuple[VolumeMount, ...] = ()
    security_context: dict[str, Any] = field(default_factory=dict)
    tty: bool = False
    stdin: bool = False
    stdin_once: bool = False
    devices: tuple[DeviceSpec, ...] = ()
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    startup_probe: Probe | None = None
    lifecycle: Lifecycle = field(default_factory=Lifecycle)


class VolumeSpec(Frozen):
    """A pod volume. kind "emptyDir" (medium "" or "Memory", size_limit bytes) or "hostPath"."""

    name: str
    kind: str
    medium: str = ""
    size_limit: int | None = None
    host_path: str | None = None
    host_path_type: str = ""


class PodSpec(Frozen):
    name: str
    namespace: str = "default"
    uid: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    hostname: str = ""
    share_process_namespace: bool = False
    host_pid: bool = False
    host_ipc: bool = False
    termination_grace_period: int = 30
    restart_policy: str = "Always"
    host_network: bool = False
    dns_policy: str = "ClusterFirst"
    # Kept in the manifest's shape (what pyrun.netns.dns takes): {"nameservers": [...], "searches": [...],
    # "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]} and [{"ip": ..., "hostnames": [...]}].
    dns_config: dict[str, Any] = field(default_factory=dict)
    host_aliases: tuple[dict[str, Any], ...] = ()
    containers: tuple[ContainerSpec, ...] = ()
    volumes: tuple[VolumeSpec, ...] = ()
    security_context: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def container(self, name: str) -> ContainerSpec:
        """The container called `name` (KeyError if there is none)."""
        for c in self.containers:
            if c.name == name:
                return c
        raise KeyError(name)


class LoadedPod(Frozen):
    """A parsed, validated pod and the warnings found on the way (never printed here)."""

    pod: PodSpec
    warnings: list[str] = field(default_factory=list)


class ProcessSpec(Frozen):
    """What a container's init execs: argv, environment ("K=V"), working directory, OCI user string."""

    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    user: str
