"""securityContext (pod: PodSecurityContext, container: SecurityContext): field checks.

The contexts stay plain dicts in the model (what the runtime reads is computed by
pyrun.runtime.security.effective_security); here every field is type- and value-checked,
and the combinations Kubernetes' API validation refuses are refused, each naming its field.
"""
from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from pyrun.linux.caps import normalize as normalize_capability
from pyrun.spec.fields import Fields, suggest
from pyrun.spec.report import Report, join, type_name

MAX_ID = 2**31 - 1
SECCOMP_TYPES = ("RuntimeDefault", "Unconfined", "Localhost")
SUPPLEMENTAL_GROUPS_POLICIES = ("Merge", "Strict")
PROC_MOUNTS = ("Default", "Unmasked")

_KINDS = {
    "PodSecurityContext": Fields(
        frozenset({"runAsUser", "runAsGroup", "runAsNonRoot", "supplementalGroups", "supplementalGroupsPolicy",
                   "fsGroup", "fsGroupChangePolicy", "sysctls", "seccompProfile"}),
        frozenset({"seLinuxOptions", "windowsOptions", "appArmorProfile", "seLinuxChangePolicy"})),
    "SecurityContext": Fields(
        frozenset({"runAsUser", "runAsGroup", "runAsNonRoot", "capabilities", "privileged",
                   "readOnlyRootFilesystem", "allowPrivilegeEscalation", "seccompProfile", "procMount"}),
        frozenset({"seLinuxOptions", "windowsOptions", "appArmorProfile"})),
    "Capabilities": Fields(frozenset({"add", "drop"})),
    "SeccompProfile": Fields(frozenset({"type", "localhostProfile"})),
    "Sysctl": Fields(frozenset({"name", "value"})),
}

# Kubernetes' namespaced sysctls (pkg/apis/core/validation, sysctl.go): the only ones a pod may set,
# since any other one would change the whole node.
_NAMESPACED_PREFIXES = ("net.", "kernel.shm", "kernel.msg", "fs.mqueue.")
_NAMESPACED_EXACT = ("kernel.sem",)
_SYSCTL_NAME = re.compile(r"([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?")


def sysctl_dotted(name: str) -> str:
    """"net/ipv4/ip_forward" -> "net.ipv4.ip_forward" (Kubernetes accepts both separators)."""
    if "/" not in name:
        return name
    return name.replace(".", "\0").replace("/", ".").replace("\0", "/")


def sysctl_path(name: str) -> str:
    """The file under /proc/sys of a sysctl name in either notation ("a.b/c" with "/" keeps dots)."""
    if "/" in name:
        return name
    return name.replace(".", "/")


def is_namespaced_sysctl(name: str) -> bool:
    dotted = sysctl_dotted(name)
    return dotted in _NAMESPACED_EXACT or dotted.startswith(_NAMESPACED_PREFIXES)


def _obj(report: Report, value: Any, path: str, kind: str) -> dict[str, Any]:
    """Like Report.obj, for the kinds this module owns (unknown field → error, ignored → warning)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        report.error(path, f"must be an object, not {type_name(value)}")
        return {}
    fields = _KINDS[kind]
    for key, item in value.items():
        here = join(path, str(key))
        if key in fields.supported:
            continue
        if key in fields.ignored:
            if item is not None:
                report.warn(here, "not supported by pyrun; ignored")
            continue
        report.error(here, "unknown field" + suggest(str(key), fields.known()))
    return value


def _id(report: Report, data: dict[str, Any], key: str, path: str) -> int | None:
    number = report.integer(data, key, path)
    if number is not None and not 0 <= number <= MAX_ID:
        report.error(join(path, key), f"{number} is out of range (0-{MAX_ID})")
        return None
    return number


def _seccomp(report: Report, value: Any, path: str) -> None:
    data = _obj(report, value, path, "SeccompProfile")
    if value is None or not isinstance(value, dict):
        return
    kind = report.string(data, "type", path, required=True)
    local = report.string(data, "localhostProfile", path)
    if kind is not None and kind not in SECCOMP_TYPES:
        report.error(join(path, "type"), f'"{kind}" must be one of {", ".join(SECCOMP_TYPES)}')
    if kind == "Localhost":
        if not local:
            report.error(join(path, "localhostProfile"), 'required when type is "Localhost"')
        elif local.startswith("/") or ".." in local.split("/") or "\0" in local:
            report.error(join(path, "localhostProfile"),
                         f'"{local}" must be a path relative to the seccomp profile directory, without ".."')
    elif local is not None:
        report.error(join(path, "localhostProfile"), 'may only be set when type is "Localhost"')


def _capabilities(report: Report, value: Any, path: str) -> dict[str, list[str]]:
    data = _obj(report, value, path, "Capabilities")
    out: dict[str, list[str]] = {}
    for key in ("add", "drop"):
        names = []
        for here, item in report.items(data, key, path):
            if not isinstance(item, str):
                report.error(here, f"must be a string, not {type_name(item)}")
            elif (name := normalize_capability(item)) is None:
                report.error(here, f'unknown capability "{item}" (a name like NET_BIND_SERVICE, or ALL)')
            else:
                names.append(name)
        out[key] = names
    return out


def _common(report: Report, data: dict[str, Any], path: str) -> None:
    _id(report, data, "runAsUser", path)
    _id(report, data, "runAsGroup", path)
    report.boolean(data, "runAsNonRoot", path)
    _seccomp(report, data.get("seccompProfile"), join(path, "seccompProfile"))


def container_security_context(report: Report, value: Any, path: str) -> dict[str, Any]:
    """spec.containers[i].securityContext, checked; returned as given."""
    if value is None:
        return {}
    data = _obj(report, value, path, "SecurityContext")
    if not isinstance(value, dict):
        return {}
    _common(report, data, path)
    caps = _capabilities(report, data.get("capabilities"), join(path, "capabilities"))
    privileged = report.boolean(data, "privileged", path)
    report.boolean(data, "readOnlyRootFilesystem", path)
    escalation = data.get("allowPrivilegeEscalation")
    report.boolean(data, "allowPrivilegeEscalation", path, default=True)
    proc_mount = report.string(data, "procMount", path)
    if proc_mount not in (None, *PROC_MOUNTS):
        report.error(join(path, "procMount"), f'"{proc_mount}" must be one of {", ".join(PROC_MOUNTS)}')
    elif proc_mount == "Unmasked":  # Kubernetes allows it only with hostUsers: false
        report.error(join(path, "procMount"),
                     '"Unmasked" needs spec.hostUsers: false (a user namespace), which pyrun does not support: '
                     "without one the container's root is the node's root, and a writable /proc/sys would let it "
                     "change the node")
    if escalation is False and privileged:
        report.error(join(path, "allowPrivilegeEscalation"), "cannot be false when privileged is true")
    if escalation is False and "SYS_ADMIN" in caps.get("add", ()):
        report.error(join(path, "allowPrivilegeEscalation"),
                     "cannot be false when capabilities.add contains SYS_ADMIN")
    return dict(value)


def pod_security_context(report: Report, value: Any, path: str, host_network: bool = False,
                         host_ipc: bool = False) -> dict[str, Any]:
    """spec.securityContext, checked; returned as given."""
    if value is None:
        return {}
    data = _obj(report, value, path, "PodSecurityContext")
    if not isinstance(value, dict):
        return {}
    _common(report, data, path)
    _id(report, data, "fsGroup", path)
    for here, item in report.items(data, "supplementalGroups", path):
        if isinstance(item, bool) or not isinstance(item, int):
            report.error(here, f"must be an integer, not {type_name(item)}")
        elif not 0 <= item <= MAX_ID:
            report.error(here, f"{item} is out of range (0-{MAX_ID})")
    policy = report.string(data, "supplementalGroupsPolicy", path)
    if policy not in (None, *SUPPLEMENTAL_GROUPS_POLICIES):
        report.error(join(path, "supplementalGroupsPolicy"),
                     f'"{policy}" must be one of {", ".join(SUPPLEMENTAL_GROUPS_POLICIES)}')
    change = report.string(data, "fsGroupChangePolicy", path)
    if change not in (None, "Always", "OnRootMismatch"):
        report.error(join(path, "fsGroupChangePolicy"), f'"{change}" must be one of Always, OnRootMismatch')
    _sysctls(report, data, path, host_network, host_ipc)
    return dict(value)


def _sysctls(report: Report, data: dict[str, Any], path: str, host_network: bool, host_ipc: bool) -> None:
    seen: set[str] = set()
    for here, item in report.items(data, "sysctls", path):
        entry = _obj(report, item, here, "Sysctl")
        name = report.string(entry, "name", here, required=True)
        value = report.string(entry, "value", here)
        if value is None and isinstance(item, dict) and "value" not in item:
            report.error(join(here, "value"), "required")
        if not name:
            continue
        field = join(here, "name")
        dotted = sysctl_dotted(name)
        if len(name) > 253 or not _SYSCTL_NAME.fullmatch(name):
            report.error(field, f'"{name}" is not a valid sysctl name')
        elif not is_namespaced_sysctl(name):
            report.error(field, f'"{name}" is not a namespaced sysctl: setting it would change the whole node '
                                "(allowed: net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*)")
        elif host_network and dotted.startswith("net."):
            report.error(field, f'"{name}" may not be set when hostNetwork is true (it would change the node)')
        elif host_ipc and not dotted.startswith("net."):
            report.error(field, f'"{name}" may not be set when hostIPC is true (it would change the node)')
        if dotted in seen:
            report.error(field, f'duplicate sysctl "{name}"')
        seen.add(dotted)
