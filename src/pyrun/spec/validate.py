"""Checks across objects of a built pod (unique names, mount references, host ports, DNS) and
checks over a whole manifest (no NUL byte in any string)."""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from pyrun.spec.model import PodSpec
from pyrun.spec.report import Report, join


def nul_bytes(data: Any, root: str = "") -> list[tuple[str, str]]:
    """(field path, message) for every string (value or key) holding a NUL byte, anywhere in `data`.

    A NUL byte cannot reach the kernel (argv, environment, paths, xattrs are C strings), so it is refused
    at validation, naming the field, instead of failing later at exec or mount. Walks with an explicit
    stack (no recursion): the depth of a manifest is bounded by the loader, not by this function.
    """
    found: list[tuple[str, str]] = []
    stack: list[tuple[str, Any]] = [(root, data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if "\0" in value:
                found.append((path, "must not contain a NUL byte"))
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and "\0" in key:
                    found.append((path, f"field name {key!r} must not contain a NUL byte"))
                    continue
                here = join(path, str(key)) if _plain(key) else f"{path}[{key!r}]"
                stack.append((here, item))
        elif isinstance(value, (list, tuple)):
            stack.extend((join(path, i), item) for i, item in enumerate(value))
    found.reverse()
    return found


def _plain(key: object) -> bool:
    """A key that reads well as ".key" in a path (labels like "app.kubernetes.io/name" get ['...'])."""
    return isinstance(key, str) and key.replace("_", "a").isalnum()


def _unique_names(report: Report, path: str, items_names: list[str], what: str) -> None:
    seen: set[str] = set()
    for i, name in enumerate(items_names):
        if name and name in seen:
            report.error(join(join(path, i), "name"), f'duplicate {what} name "{name}"')
        seen.add(name)


def _mounts(report: Report, pod: PodSpec) -> None:
    volumes = {v.name for v in pod.volumes}
    for i, container in enumerate(pod.containers):
        seen: set[str] = set()
        for j, mount in enumerate(container.volume_mounts):
            here = f"spec.containers[{i}].volumeMounts[{j}]"
            if not mount.name or not mount.mount_path:
                continue  # already reported as required
            if mount.name not in volumes:
                report.error(join(here, "name"), f'no volume named "{mount.name}" in spec.volumes')
            normal = "/" + "/".join(p for p in mount.mount_path.split("/") if p)
            if normal in seen:
                report.error(join(here, "mountPath"), f'"{mount.mount_path}" is mounted twice in this container')
            seen.add(normal)
            if mount.mount_propagation == "Bidirectional" and not container.security_context.get("privileged"):
                report.error(join(here, "mountPropagation"),
                             "Bidirectional is allowed only in a privileged container (securityContext.privileged)")


def _host_ports(report: Report, pod: PodSpec) -> None:
    seen: dict[tuple[str, int], str] = {}
    for i, container in enumerate(pod.containers):
        for j, port in enumerate(container.ports):
            if port.host_port is None:
                continue
            here = f"spec.containers[{i}].ports[{j}].hostPort"
            key = (port.protocol, port.host_port)
            if key in seen:
                report.error(here, f"{port.host_port}/{port.protocol} is already used by {seen[key]}")
            else:
                seen[key] = here


def _dns(report: Report, pod: PodSpec) -> None:
    if pod.dns_policy == "None" and not pod.dns_config.get("nameservers"):
        report.error("spec.dnsConfig.nameservers", 'required when dnsPolicy is "None"')


def validate_pod(report: Report, pod: PodSpec) -> None:
    """Report every cross-object problem of `pod` into `report`."""
    _unique_names(report, "spec.containers", [c.name for c in pod.containers], "container")
    _unique_names(report, "spec.volumes", [v.name for v in pod.volumes], "volume")
    _mounts(report, pod)
    _host_ports(report, pod)
    _dns(report, pod)
