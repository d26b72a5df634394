"""parse_pod: a manifest dict → validated, defaulted PodSpec (every problem reported at once)."""
from __future__ import annotations


TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from pyrun.errors import SpecError
from pyrun.frozen import replace
from pyrun.spec import names
from pyrun.spec.container import parse_container
from pyrun.spec.model import LoadedPod, PodSpec
from pyrun.spec.report import Report, join, type_name
from pyrun.spec.security import pod_security_context
from pyrun.spec.validate import nul_bytes, validate_pod
from pyrun.spec.volumes import parse_volume

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirst", "Default", "None", "ClusterFirstWithHostNet")
MAX_NAMESERVERS = 3
MAX_SEARCHES = 32


def default_hostname(pod_name: str) -> str:
    """The pod name capped at 63 characters, without a trailing "-" or "." (kubelet truncatePodHostnameIfNeeded)."""
    if len(pod_name) <= 63:
        return pod_name
    return pod_name[:63].rstrip("-.")


def _jsonable(value: Any) -> Any:
    """A JSON-serialisable deep copy (YAML may produce dates and non-string keys)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):  # datetime.date/datetime from YAML timestamps
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _metadata(report: Report, value: Any) -> dict[str, Any]:
    if value is None:
        report.error("metadata", "required")
    data = report.obj(value, "metadata", "ObjectMeta")
    name = report.string(data, "name", "metadata", required=True)
    if name and (problem := names.dns_subdomain(name)):
        report.error("metadata.name", problem)
    namespace = report.string(data, "namespace", "metadata") or "default"
    if problem := names.dns_label(namespace):
        report.error("metadata.namespace", problem)
    labels = report.string_map(data, "labels", "metadata")
    for key, text in labels.items():
        if problem := names.qualified_name(key) or names.label_value(text):
            report.error(f"metadata.labels[{key!r}]", problem)
    annotations = report.string_map(data, "annotations", "metadata")
    for key in annotations:
        if problem := names.qualified_name(key):
            report.error(f"metadata.annotations[{key!r}]", problem)
    return {"name": name or "", "namespace": namespace, "uid": report.string(data, "uid", "metadata") or None,
            "labels": labels, "annotations": annotations}


def _dns_config(report: Report, value: Any) -> dict[str, Any]:
    path = "spec.dnsConfig"
    data = report.obj(value, path, "PodDNSConfig")
    nameservers = report.strings(data, "nameservers", path) or ()
    for i, server in enumerate(nameservers):
        if problem := names.ip_address(server):
            report.error(f"{path}.nameservers[{i}]", problem)
    if len(nameservers) > MAX_NAMESERVERS:
        report.error(f"{path}.nameservers", f"at most {MAX_NAMESERVERS} nameservers (got {len(nameservers)})")
    searches = report.strings(data, "searches", path) or ()
    for i, domain in enumerate(searches):
        if problem := names.dns_subdomain(domain.removesuffix(".")):
            report.error(f"{path}.searches[{i}]", problem)
    if len(searches) > MAX_SEARCHES:
        report.error(f"{path}.searches", f"at most {MAX_SEARCHES} search domains (got {len(searches)})")
    options = []
    for here, item in report.items(data, "options", path):
        option = report.obj(item, here, "PodDNSConfigOption")
        name = report.string(option, "name", here, required=True)
        text = report.string(option, "value", here)
        options.append({"name": name or ""} if text is None else {"name": name or "", "value": text})
    return {"nameservers": list(nameservers), "searches": list(searches), "options": options}


def _host_alias(report: Report, value: Any, path: str) -> dict[str, Any]:
    data = report.obj(value, path, "HostAlias")
    ip = report.string(data, "ip", path, required=True) or ""
    if ip and (problem := names.ip_address(ip)):
        report.error(join(path, "ip"), problem)
    hostnames = report.strings(data, "hostnames", path) or ()
    for i, hostname in enumerate(hostnames):
        if problem := names.dns_subdomain(hostname):
            report.error(f"{path}.hostnames[{i}]", problem)
    return {"ip": ip, "hostnames": list(hostnames)}


def _choice(report: Report, data: dict[str, Any], key: str, choices: tuple[str, ...], default: str) -> str:
    value = report.string(data, key, "spec")
    if value is None or value == "":
        return default
    if value not in choices:
        report.error(f"spec.{key}", f'"{value}" must be one of {", ".join(choices)}')
    return value


def _spec(report: Report, value: Any, meta: dict[str, Any]) -> PodSpec:
    if value is None:
        report.error("spec", "required")
    data = report.obj(value, "spec", "PodSpec")
    hostname = report.string(data, "hostname", "spec")
    if hostname and (problem := names.dns_label(hostname)):
        report.error("spec.hostname", problem)
    grace = report.integer(data, "terminationGracePeriodSeconds", "spec")
    if grace is not None and grace < 0:
        report.error("spec.terminationGracePeriodSeconds", f"{grace} must be greater than or equal to 0")
    restart = _choice(report, data, "restartPolicy", RESTART_POLICIES, "Always")
    if data.get("hostUsers") is False:
        report.error("spec.hostUsers", "false (a user namespace) is not supported by pyrun")
    report.boolean(data, "hostUsers", "spec", default=True)
    host_network = report.boolean(data, "hostNetwork", "spec")
    host_ipc = report.boolean(data, "hostIPC", "spec")
    share_pid, host_pid = (report.boolean(data, key, "spec") for key in ("shareProcessNamespace", "hostPID"))
    if share_pid and host_pid:
        report.error("spec.shareProcessNamespace", "may not be true when hostPID is true")
    containers = report.items(data, "containers", "spec")
    if not containers and not any(p[0] == "spec.containers" for p in report.problems):
        report.error("spec.containers", "required: at least one container")
    return PodSpec(
        **meta,
        hostname=hostname or default_hostname(meta["name"]),
        share_process_namespace=share_pid,
        host_pid=host_pid,
        host_ipc=host_ipc,
        termination_grace_period=30 if grace is None else grace,
        restart_policy=restart,
        host_network=host_network,
        dns_policy=_choice(report, data, "dnsPolicy", DNS_POLICIES, "ClusterFirst"),
        dns_config=_dns_config(report, data.get("dnsConfig")),
        host_aliases=tuple(_host_alias(report, item, here) for here, item in report.items(data, "hostAliases", "spec")),
        containers=tuple(parse_container(report, item, here, host_network) for here, item in containers),
        volumes=tuple(parse_volume(report, item, here) for here, item in report.items(data, "volumes", "spec")),
        security_context=pod_security_context(report, data.get("securityContext"), "spec.securityContext",
                                              host_network, host_ipc),
    )


def _build(report: Report, data: Any) -> PodSpec | None:
    if not isinstance(data, dict):
        report.error("", f"the manifest must be an object (a Pod), not {type_name(data)}")
        return None
    report.obj(data, "", "Pod")
    api = data.get("apiVersion")
    if api != "v1":
        report.error("apiVersion", "required: must be \"v1\"" if api is None else f'"{api}" must be "v1"')
    kind = data.get("kind")
    if kind != "Pod":
        report.error("kind", "required: must be \"Pod\"" if kind is None else f'"{kind}" must be "Pod"')
    meta = _metadata(report, data.get("metadata"))
    pod = _spec(report, data.get("spec"), meta)
    return replace(pod, raw=_jsonable(data))


def parse_pod(data: Any, source: str = "") -> LoadedPod:
    """Validate and default a Pod manifest (a dict from JSON/YAML). Raises SpecError listing every problem."""
    report = Report()
    report.problems.extend(nul_bytes(data))
    pod = _build(report, data)
    if pod is not None:
        validate_pod(report, pod)
    if report.problems or pod is None:
        problems = list(dict.fromkeys(report.problems))  # a path check may repeat the NUL byte finding
        raise SpecError(problems, source=source or None)
    return LoadedPod(pod, report.warnings)
