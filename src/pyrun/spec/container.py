"""spec.containers[i]: build a ContainerSpec, reporting every problem with its field path."""
from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:  # keep typing out of the import path
    from collections.abc import Callable
    from typing import Any, TypeVar

    T = TypeVar("T")

from pyrun.spec import names
from pyrun.spec.model import MOUNT_PROPAGATIONS, ContainerSpec, EnvVar, FieldRef, PortSpec, VolumeMount
from pyrun.spec.report import Report, join, type_name
from pyrun.spec.probes import parse_lifecycle, parse_probe
from pyrun.spec.resources import parse_resources
from pyrun.spec.security import container_security_context

PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PROTOCOLS = ("TCP", "UDP", "SCTP")
FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
               "spec.serviceAccountName", "status.podIP", "status.hostIP")
_SUBSCRIPTED_FIELD = re.compile(r"metadata\.(labels|annotations)\['(.*)'\]")


def default_pull_policy(image: str) -> str:
    """Kubernetes SetDefaults_Container: "Always" for tag latest (or no tag and no digest), else "IfNotPresent"."""
    name, at, _digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.rpartition(":")[2] if ":" in last else ("" if at else "latest")
    return "Always" if tag == "latest" else "IfNotPresent"


def check_path(report: Report, path: str, value: str, absolute: bool) -> None:
    """Absolute (mountPath, hostPath, workingDir) or relative without ".." (subPath)."""
    if absolute and not value.startswith("/"):
        report.error(path, f'"{value}" must be an absolute path')
    if not absolute and value.startswith("/"):
        report.error(path, f'"{value}" must be a relative path')
    if not absolute and ".." in value.split("/"):
        report.error(path, f'"{value}" must not contain ".."')
    if "\0" in value:
        report.error(path, "must not contain a NUL byte")


def security_context(report: Report, value: Any, path: str) -> dict[str, Any]:
    """A container's securityContext, checked (pyrun.spec.security); kept as a plain dict."""
    return container_security_context(report, value, path)


def _field_ref(report: Report, value: Any, path: str) -> FieldRef:
    data = report.obj(value, path, "ObjectFieldSelector")
    api = report.string(data, "apiVersion", path)
    if api not in (None, "", "v1"):
        report.error(join(path, "apiVersion"), f'"{api}" is not supported (only "v1")')
    field_path = report.string(data, "fieldPath", path, required=True)
    if field_path is None:
        return FieldRef("")
    here = join(path, "fieldPath")
    sub = _SUBSCRIPTED_FIELD.fullmatch(field_path)
    if sub:
        problem = names.qualified_name(sub[2])
        if problem:
            report.error(here, problem)
    elif field_path not in FIELD_PATHS:
        report.error(here, f'"{field_path}" is not supported (supported: {", ".join(FIELD_PATHS)}, '
                           "metadata.labels['<key>'], metadata.annotations['<key>'])")
    return FieldRef(field_path)


def _env_var(report: Report, value: Any, path: str) -> EnvVar:
    data = report.obj(value, path, "EnvVar")
    name = report.string(data, "name", path, required=True)
    if name is not None:
        error, warning = names.env_name(name)
        if error:
            report.error(join(path, "name"), error)
        if warning:
            report.warn(join(path, "name"), warning)
    text = report.string(data, "value", path)
    ref = None
    if data.get("valueFrom") is not None:
        source_path = join(path, "valueFrom")
        source = report.obj(data["valueFrom"], source_path, "EnvVarSource")
        if text:
            report.error(source_path, "may not be given together with a non-empty value")
        if source.get("fieldRef") is not None:
            ref = _field_ref(report, source["fieldRef"], join(source_path, "fieldRef"))
        elif isinstance(data["valueFrom"], dict) and not set(source) & {"secretKeyRef", "configMapKeyRef",
                                                                          "resourceFieldRef", "fileKeyRef"}:
            report.error(source_path, "must specify fieldRef")
    return EnvVar(name or "", None if ref else (text or ""), ref)


def _port(report: Report, value: Any, path: str, host_network: bool) -> PortSpec:
    data = report.obj(value, path, "ContainerPort")
    name = report.string(data, "name", path)
    if name is not None and (problem := names.port_name(name)):
        report.error(join(path, "name"), problem)
    container_port = report.integer(data, "containerPort", path)
    if "containerPort" not in data or data["containerPort"] is None:
        report.error(join(path, "containerPort"), "required")
    elif container_port is not None and not 1 <= container_port <= 65535:
        report.error(join(path, "containerPort"), f"{container_port} is out of range (1-65535)")
    host_port = report.integer(data, "hostPort", path) or None
    if host_port is not None and not 1 <= host_port <= 65535:
        report.error(join(path, "hostPort"), f"{host_port} is out of range (1-65535)")
    if host_network and container_port:
        if host_port is None:
            host_port = container_port  # Kubernetes defaulting for hostNetwork pods
        elif host_port != container_port:
            report.error(join(path, "hostPort"), "must equal containerPort when hostNetwork is true")
    host_ip = report.string(data, "hostIP", path) or None
    if host_ip is not None and (problem := names.ip_address(host_ip)):
        report.error(join(path, "hostIP"), problem)
    protocol = report.string(data, "protocol", path) or "TCP"
    if protocol not in PROTOCOLS:
        report.error(join(path, "protocol"), f'"{protocol}" must be one of {", ".join(PROTOCOLS)}')
    return PortSpec(name or None, container_port or 0, host_port, host_ip, protocol)


def _volume_mount(report: Report, value: Any, path: str) -> VolumeMount:
    data = report.obj(value, path, "VolumeMount")
    name = report.string(data, "name", path, required=True)
    mount_path = report.string(data, "mountPath", path, required=True)
    if mount_path:
        check_path(report, join(path, "mountPath"), mount_path, absolute=True)
    sub_path = report.string(data, "subPath", path) or ""
    if sub_path:
        check_path(report, join(path, "subPath"), sub_path, absolute=False)
    read_only = report.boolean(data, "readOnly", path)
    propagation = report.string(data, "mountPropagation", path) or "None"
    if propagation not in MOUNT_PROPAGATIONS:
        report.error(join(path, "mountPropagation"), f'"{propagation}" must be one of {", ".join(MOUNT_PROPAGATIONS)}')
    return VolumeMount(name or "", mount_path or "", read_only, sub_path, propagation)


def _list(report: Report, data: dict[str, Any], key: str, path: str, build: Callable[..., T], *extra: Any) -> tuple[T, ...]:
    """Build every item; a broken item still yields a placeholder so indices in later messages stay right."""
    return tuple(build(report, item, here, *extra) for here, item in report.items(data, key, path))


def _check_port_names(report: Report, path: str, ports: tuple[PortSpec, ...]) -> None:
    seen: set[str] = set()
    for i, port in enumerate(ports):
        if port.name and port.name in seen:
            report.error(join(join(join(path, "ports"), i), "name"), f'duplicate port name "{port.name}"')
        if port.name:
            seen.add(port.name)


def parse_container(report: Report, value: Any, path: str, host_network: bool = False) -> ContainerSpec:
    """Build one container at `path` (e.g. "spec.containers[0]"), reporting every problem."""
    if not isinstance(value, dict):
        report.error(path, f"must be an object, not {type_name(value)}")
        return ContainerSpec(name="", image="")
    data = report.obj(value, path, "Container")
    name = report.string(data, "name", path, required=True)
    if name and (problem := names.dns_label(name)):
        report.error(join(path, "name"), problem)
    image = report.string(data, "image", path, required=True)
    if image and image != image.strip():
        report.error(join(path, "image"), "must not have leading or trailing whitespace")
    policy = report.string(data, "imagePullPolicy", path) or default_pull_policy(image or "")
    if policy not in PULL_POLICIES:
        report.error(join(path, "imagePullPolicy"), f'"{policy}" must be one of {", ".join(PULL_POLICIES)}')
    working_dir = report.string(data, "workingDir", path) or None
    if working_dir:
        check_path(report, join(path, "workingDir"), working_dir, absolute=True)
    ports = _list(report, data, "ports", path, _port, host_network)
    _check_port_names(report, path, ports)
    return ContainerSpec(
        name=name or "",
        image=image or "",
        image_pull_policy=policy,
        command=report.strings(data, "command", path) or None,  # an empty list means "not set", as in k8s
        args=report.strings(data, "args", path) or None,
        env=_list(report, data, "env", path, _env_var),
        working_dir=working_dir,
        ports=ports,
        resources=parse_resources(report, data.get("resources"), join(path, "resources")),
        volume_mounts=_list(report, data, "volumeMounts", path, _volume_mount),
        security_context=security_context(report, data.get("securityContext"), join(path, "securityContext")),
        tty=report.boolean(data, "tty", path),
        stdin=report.boolean(data, "stdin", path),
        liveness_probe=parse_probe(report, data.get("livenessProbe"), join(path, "livenessProbe"), ports,
                                   "livenessProbe"),
        readiness_probe=parse_probe(report, data.get("readinessProbe"), join(path, "readinessProbe"), ports,
                                    "readinessProbe"),
        startup_probe=parse_probe(report, data.get("startupProbe"), join(path, "startupProbe"), ports,
                                  "startupProbe"),
        lifecycle=parse_lifecycle(report, data.get("lifecycle"), join(path, "lifecycle"), ports),
    )
