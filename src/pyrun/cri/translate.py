"""CRI messages <-> pyrun's spec objects and records (pure: no I/O, no grpc).

Requests arrive as runtime.v1 messages (the v1alpha2 adapter parses its wire bytes
as v1, see pyrun.cri.server). What the kubelet sent is kept verbatim in the
records under "cri" (metadata, labels, annotations, image, mounts, namespace
options), because the kubelet rebuilds its pods from exactly those values.

Resources: the CRI's LinuxContainerResources are converted to the spec's
normalised Resources (cpu millicores, memory bytes), and the cgroups layer
turns them back into shares/quota the kubelet's way:
  request milli = ceil(shares * 1000 / 1024)    (milli_cpu_to_shares inverts it exactly)
  limit milli   = ceil(quota * 1000 / period)   (exact for the kubelet's period, 100000 µs)
A cpu_shares of 0 (unset, e.g. crictl) means "no request" and a quota <= 0 "no limit".

Security: LinuxSandboxSecurityContext (+ LinuxPodSandboxConfig.sysctls) becomes the pod's
securityContext dict and LinuxContainerSecurityContext the container's, in the manifest's shape, so
pyrun.runtime.security merges and applies them exactly as for `pyrun pod create`, plus three keys only
a CRI request carries (CRI_ONLY_KEYS): runAsUsername, maskedPaths and readonlyPaths. As in containerd 1.6:
the masked/read-only paths are exactly the request's (the kubelet sends its defaults, or none for procMount
Unmasked; a request without them gets none), a container without a seccomp profile runs Unconfined (the
CRI's default), run_as_username is looked up in the container's /etc/passwd, and run_as_group without a
user is refused. Not translated: add_ambient_capabilities (derived from the added ones), apparmor,
selinux, namespace target_id.

Names: a pyrun pod is named <name> (attempt 0) or <name>_<attempt>, a container
likewise, because the kubelet makes a new sandbox/container per attempt while the
old one still exists; "_" cannot occur in a Kubernetes name, so these never clash. A pod deleted and
made again under the same name (a new uid) while its old sandbox still exists gets
<name>_<uid prefix>.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from cri_api.v1 import api_pb2 as pb

from pyrun.errors import SpecError
from pyrun.runtime.records import (ContainerCri, ContainerRecord, ContainerStatus, CriMount, CriPortMapping,
                                   MountSpec, PodCri, PodRecord)
from pyrun.runtime.status import pod_status
from pyrun.spec.model import ContainerSpec, DeviceSpec, EnvVar, PodSpec, PortSpec, Resources

RUNTIME_HANDLERS = ("", "pyrun")
_PROTOCOLS = {pb.TCP: "TCP", pb.UDP: "UDP", pb.SCTP: "SCTP"}
_PAGE_SIZES = {"2MB": "hugepages-2Mi", "1GB": "hugepages-1Gi"}
_CONTAINER_STATES = {"created": pb.CONTAINER_CREATED, "running": pb.CONTAINER_RUNNING,
                     "exited": pb.CONTAINER_EXITED, "unknown": pb.CONTAINER_UNKNOWN}
MAX_HOSTNAME = 63


# --- names ---------------------------------------------------------------------------------------

MAX_NAME = 253  # a Kubernetes object name (DNS-1123 subdomain) is at most this long


def _check_name(value: str, field: str) -> str:
    """A CRI name or namespace: non-empty, at most 253 characters, no "/" and no control characters
    (it becomes part of file names and of the `pod ls` table)."""
    if not value or "/" in value or value in (".", ".."):
        raise SpecError([(field, f"{value!r} is not a valid name (non-empty, no '/')")])
    if len(value) > MAX_NAME:
        raise SpecError([(field, f"{value[:20]!r}... is longer than {MAX_NAME} characters")])
    if any(c < " " or "\x7f" <= c <= "\x9f" for c in value):
        raise SpecError([(field, f"{value!r} must not contain control characters")])
    return value


def attempt_name(name: str, attempt: int) -> str:
    """The pyrun name of a CRI object: name for attempt 0, name_<attempt> after that."""
    return name if attempt == 0 else f"{name}_{attempt}"


def uid_name(name: str, uid: str) -> str:
    """A sandbox name that cannot clash with another uid's pod of the same name."""
    return f"{name}_{uid.replace('-', '')[:12]}"


def escape_expansion(text: str) -> str:
    """Make $(VAR) expansion an identity: the kubelet has expanded already, pyrun must not again."""
    return text.replace("$", "$$")


# --- sandbox -------------------------------------------------------------------------------------

def _dns(config: pb.PodSandboxConfig) -> tuple[str, dict]:
    """(dnsPolicy, dnsConfig in the manifest's shape). No DNS config: the node's resolv.conf."""
    if not config.HasField("dns_config"):
        return "Default", {}
    d = config.dns_config
    options = []
    for opt in d.options:
        name, sep, value = opt.partition(":")
        options.append({"name": name, "value": value} if sep else {"name": name})
    dns = {"nameservers": list(d.servers), "searches": list(d.searches), "options": options}
    return ("None" if d.servers else "Default"), dns


def namespace_options(config: pb.PodSandboxConfig) -> dict[str, int]:
    ns = config.linux.security_context.namespace_options
    return {"network": ns.network, "pid": ns.pid, "ipc": ns.ipc}


def pod_spec(config: pb.PodSandboxConfig) -> PodSpec:
    """The PodSpec of a sandbox (no containers; port mappings ride on a placeholder "POD" entry)."""
    meta = config.metadata
    name = _check_name(meta.name, "config.metadata.name")
    namespace = _check_name(meta.namespace or "default", "config.metadata.namespace")
    ns = namespace_options(config)
    policy, dns = _dns(config)
    ports = tuple(PortSpec(name=None, container_port=p.container_port, host_port=p.host_port or None,
                           host_ip=p.host_ip or None, protocol=_PROTOCOLS.get(p.protocol, "TCP"))
                  for p in config.port_mappings)
    placeholder = (ContainerSpec(name="POD", image="", ports=ports),) if ports else ()
    spec = PodSpec(
        name=attempt_name(name, meta.attempt), namespace=namespace, uid=meta.uid or None,
        labels=dict(config.labels), annotations=dict(config.annotations),
        hostname=(config.hostname or name)[:MAX_HOSTNAME],
        share_process_namespace=ns["pid"] == pb.POD, host_network=ns["network"] == pb.NODE,
        host_pid=ns["pid"] == pb.NODE, host_ipc=ns["ipc"] == pb.NODE,
        dns_policy=policy, dns_config=dns, containers=placeholder, security_context=pod_security_context(config),
        raw={},
    )
    validate_sandbox(spec, spec.security_context, hostname_given=bool(config.hostname))
    return spec


def cgroup_parent_override(cgroup_parent: str, server_parent: str) -> str | None:
    """The pod cgroup the kubelet asked for, checked to lie below the server's --cgroup-parent."""
    from pyrun.cgroups.names import CgroupPath
    from pyrun.errors import CgroupError
    if not cgroup_parent:
        return None
    field = "config.linux.cgroup_parent"
    if cgroup_parent.endswith(".slice"):
        raise SpecError([(field, f"{cgroup_parent!r} is a systemd slice; pyrun uses the cgroupfs driver")])
    try:
        path, parent = CgroupPath.parse(cgroup_parent), CgroupPath.parse(server_parent)
    except CgroupError as e:
        raise SpecError([(field, str(e))]) from None
    if not path.is_within(parent) or path == parent:
        raise SpecError([(field, f"{cgroup_parent} is not below the runtime's cgroup parent /{server_parent.strip('/')}"
                                 f" (start `pyrun --cgroup-parent <parent> cri serve` with the kubelet's cgroup root)")])
    return path.cgroupfs


def sandbox_cri(config: pb.PodSandboxConfig, runtime_handler: str) -> PodCri:
    """What the pod record keeps for the CRI, exactly as sent."""
    if runtime_handler not in RUNTIME_HANDLERS:
        raise SpecError([("runtime_handler", f"unknown runtime handler {runtime_handler!r} (pyrun has only \"\")")])
    meta = config.metadata
    return PodCri(
        metadata={"name": meta.name, "uid": meta.uid, "namespace": meta.namespace, "attempt": meta.attempt},
        labels=dict(config.labels), annotations=dict(config.annotations),
        log_directory=config.log_directory, runtime_handler=runtime_handler,
        namespace_options=namespace_options(config),
        port_mappings=tuple(CriPortMapping(protocol=p.protocol, container_port=p.container_port,
                                           host_port=p.host_port, host_ip=p.host_ip) for p in config.port_mappings),
        cgroup_parent=config.linux.cgroup_parent,
        security_context=pod_security_context(config),
        privileged=bool(config.linux.security_context.privileged),
    )


def pod_spec_of_record(pod: PodRecord, sc: pb.LinuxContainerSecurityContext | None = None) -> PodSpec:
    """The PodSpec a container is created against: env HOSTNAME, downward values, and the pod security
    context as sent to RunPodSandbox (plus the container's supplemental groups when `sc` is given)."""
    pod_ctx = dict(pod.cri.security_context) if pod.cri else {}
    if sc is not None:
        pod_ctx = container_pod_context(pod_ctx, sc)
    return PodSpec(name=pod.name, namespace=pod.namespace, uid=pod.uid or None,
                   labels=dict(pod.labels), annotations=dict(pod.annotations),
                   hostname=pod.hostname, host_network=pod.host_network, host_pid=pod.host_pid,
                   host_ipc=pod.host_ipc, security_context=pod_ctx, raw={})


# --- containers ----------------------------------------------------------------------------------

def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def resources(res: pb.LinuxContainerResources) -> Resources:
    """CRI LinuxContainerResources -> normalised Resources (see the module docstring)."""
    requests: dict[str, int] = {}
    limits: dict[str, int] = {}
    if res.cpu_shares > 0:
        requests["cpu"] = _ceil_div(res.cpu_shares * 1000, 1024)
    if res.cpu_quota > 0:
        period = res.cpu_period if res.cpu_period > 0 else 100000
        limits["cpu"] = _ceil_div(res.cpu_quota * 1000, period)
    if res.memory_limit_in_bytes > 0:
        limits["memory"] = res.memory_limit_in_bytes
    for h in res.hugepage_limits:
        if h.page_size in _PAGE_SIZES and h.limit > 0:
            limits[_PAGE_SIZES[h.page_size]] = h.limit
    return Resources(requests=requests, limits=limits)


# --- security contexts ---------------------------------------------------------------------------

_SECCOMP_TYPES = {pb.SecurityProfile.RuntimeDefault: "RuntimeDefault", pb.SecurityProfile.Unconfined: "Unconfined",
                  pb.SecurityProfile.Localhost: "Localhost"}
_SECCOMP_PATHS = {"runtime/default": "RuntimeDefault", "docker/default": "RuntimeDefault",
                  "unconfined": "Unconfined"}
_SANDBOX_SC = "config.linux.security_context"
CRI_SECCOMP_DEFAULT = {"type": "Unconfined"}  # no profile in a request: the CRI's default (as containerd)
# Container security context keys only the CRI sets (never valid in a manifest; read by pyrun.spec.process
# and pyrun.runtime.security).
CRI_ONLY_KEYS = ("runAsUsername", "maskedPaths", "readonlyPaths")
_CONTAINER_SC = "config.linux.security_context"


def _ids(sc, field: str) -> dict:
    """runAsUser / runAsGroup from the Int64Value wrappers (unset wrapper: not given)."""
    from pyrun.spec.security import MAX_ID
    out = {}
    for name, key in (("run_as_user", "runAsUser"), ("run_as_group", "runAsGroup")):
        if sc.HasField(name):
            value = getattr(sc, name).value
            if not 0 <= value <= MAX_ID:
                raise SpecError([(f"{field}.{name}", f"{value} is out of range (0-{MAX_ID})")])
            out[key] = value
    return out


def _groups(sc, field: str) -> list[int]:
    from pyrun.spec.security import MAX_ID
    for i, g in enumerate(sc.supplemental_groups):
        if not 0 <= g <= MAX_ID:
            raise SpecError([(f"{field}.supplemental_groups[{i}]", f"{g} is out of range (0-{MAX_ID})")])
    return list(sc.supplemental_groups)


def seccomp_profile(sc, field: str) -> dict | None:
    """The seccompProfile of a CRI security context: `seccomp` (SecurityProfile), else the deprecated
    `seccomp_profile_path` ("runtime/default", "unconfined", "localhost/<abs path>": kubelet 1.20);
    None when neither is set (pyrun's default applies). A Localhost profile is an absolute path on
    the node, kept as localhostProfile (joining it to the profile root leaves it as it is)."""
    if sc.HasField("seccomp"):
        kind = _SECCOMP_TYPES.get(sc.seccomp.profile_type)
        if kind is None:
            raise SpecError([(f"{field}.seccomp.profile_type", f"unknown profile type {sc.seccomp.profile_type}")])
        ref, ref_field = sc.seccomp.localhost_ref, f"{field}.seccomp.localhost_ref"
    elif sc.seccomp_profile_path:
        path = sc.seccomp_profile_path
        kind = _SECCOMP_PATHS.get(path) or ("Localhost" if path.startswith("localhost/") else None)
        if kind is None:
            raise SpecError([(f"{field}.seccomp_profile_path", f"{path!r} is not runtime/default, unconfined or "
                                                               "localhost/<path>")])
        ref, ref_field = path.removeprefix("localhost/"), f"{field}.seccomp_profile_path"
    else:
        return None
    if kind != "Localhost":
        return {"type": kind}
    if not ref.startswith("/") or "\0" in ref:
        raise SpecError([(ref_field, f"{ref!r} must be an absolute path of a profile on the node")])
    return {"type": "Localhost", "localhostProfile": ref}


def sysctls(config: pb.PodSandboxConfig, host_network: bool, host_ipc: bool = False) -> list[dict]:
    """LinuxPodSandboxConfig.sysctls as the manifest's [{name, value}], namespaced ones only (like the
    API server: any other would change the whole node)."""
    from pyrun.spec.security import is_namespaced_sysctl, sysctl_dotted
    out = []
    for name, value in sorted(config.linux.sysctls.items()):
        field = f"config.linux.sysctls[{name}]"
        if not name or "\0" in name or ".." in name:
            raise SpecError([(field, f"{name!r} is not a valid sysctl name")])
        if not is_namespaced_sysctl(name):
            raise SpecError([(field, "not a namespaced sysctl: setting it would change the whole node "
                                     "(allowed: net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*)")])
        if host_network and sysctl_dotted(name).startswith("net."):
            raise SpecError([(field, "net.* sysctls may not be set for a pod in the node's network namespace")])
        if host_ipc and not sysctl_dotted(name).startswith("net."):
            raise SpecError([(field, "IPC sysctls may not be set for a pod in the node's IPC namespace")])
        out.append({"name": name, "value": value})
    return out


def pod_security_context(config: pb.PodSandboxConfig) -> dict:
    """LinuxSandboxSecurityContext + sysctls -> a PodSecurityContext dict (what pyrun.runtime.security
    merges under every container's own context). `privileged` and `readonly_rootfs` of the sandbox
    concern its pause process: privileged is kept in the record (a privileged container needs it),
    readonly_rootfs has nothing to act on (pyrun's pause has no rootfs)."""
    sc = config.linux.security_context
    ctx: dict[str, Any] = _ids(sc, _SANDBOX_SC)
    groups = _groups(sc, _SANDBOX_SC)
    if groups:
        ctx["supplementalGroups"] = groups
    if sc.supplemental_groups_policy == pb.Strict:
        ctx["supplementalGroupsPolicy"] = "Strict"
    # The CRI's default, written in explicitly: never left to whatever a missing setting would mean further
    # down (every container carries its own profile too, see container_security_context).
    ctx["seccompProfile"] = seccomp_profile(sc, _SANDBOX_SC) or dict(CRI_SECCOMP_DEFAULT)
    found = sysctls(config, sc.namespace_options.network == pb.NODE, sc.namespace_options.ipc == pb.NODE)
    if found:
        ctx["sysctls"] = found
    return ctx


def _capabilities(caps: pb.Capability, field: str) -> dict:
    from pyrun.spec.security import normalize_capability as normalize
    out = {}
    for key, attr in (("add", "add_capabilities"), ("drop", "drop_capabilities")):
        names = []
        for i, name in enumerate(getattr(caps, attr)):
            norm = normalize(name)
            if norm is None:
                raise SpecError([(f"{field}.capabilities.{attr}[{i}]",
                                  f"unknown capability {name!r} (CAP_NET_ADMIN, NET_ADMIN or ALL)")])
            names.append(norm)
        if names:
            out[key] = names
    return out


def container_security_context(sc: pb.LinuxContainerSecurityContext, *, sandbox_privileged: bool = False) -> dict:
    """LinuxContainerSecurityContext -> a (container) SecurityContext dict (see the module docstring).

    The kubelet sends the effective context (pod values merged in), so this is the authority for the
    container. run_as_username (sent when the image's USER is a name) wins over run_as_user, as in
    containerd's generateUserString: the init resolves it in the container's /etc/passwd, with its
    primary group unless run_as_group is given. add_ambient_capabilities is not read (pyrun raises the
    added capabilities as ambient for a non-root user itself). apparmor and selinux options are ignored
    (pyrun has neither).
    """
    field = _CONTAINER_SC
    ctx: dict[str, Any] = _ids(sc, field)
    if sc.run_as_username:
        if "\0" in sc.run_as_username or ":" in sc.run_as_username:
            raise SpecError([(f"{field}.run_as_username", f"{sc.run_as_username!r} is not a user name")])
        ctx["runAsUsername"] = sc.run_as_username
    elif "runAsGroup" in ctx and "runAsUser" not in ctx:
        raise SpecError([(f"{field}.run_as_group", f"user group \"{ctx['runAsGroup']}\" is specified without user "
                                                   "(give run_as_user or run_as_username)")])
    ctx["maskedPaths"] = _paths(sc.masked_paths, f"{field}.masked_paths")
    ctx["readonlyPaths"] = _paths(sc.readonly_paths, f"{field}.readonly_paths")
    caps = _capabilities(sc.capabilities, field)
    if caps:
        ctx["capabilities"] = caps
    if sc.privileged:
        if not sandbox_privileged:
            raise SpecError([(f"{field}.privileged", "a privileged container needs a privileged sandbox "
                                                     "(config.linux.security_context.privileged of RunPodSandbox)")])
        if sc.no_new_privs:
            raise SpecError([(f"{field}.no_new_privs", "cannot be true when privileged is true")])
        ctx["privileged"] = True
    if sc.readonly_rootfs:
        ctx["readOnlyRootFilesystem"] = True
    if sc.no_new_privs:
        ctx["allowPrivilegeEscalation"] = False
    ctx["seccompProfile"] = seccomp_profile(sc, field) or dict(CRI_SECCOMP_DEFAULT)
    return ctx


def _paths(paths, field: str) -> list[str]:
    """masked_paths / readonly_paths: absolute paths inside the container, without ".." or NUL."""
    for i, path in enumerate(paths):
        if not path.startswith("/") or "\0" in path or ".." in path.split("/"):
            raise SpecError([(f"{field}[{i}]", f"{path!r} must be an absolute path without '..'")])
    return list(paths)


def container_pod_context(pod_ctx: Mapping, sc: pb.LinuxContainerSecurityContext) -> dict:
    """The pod context one container is created against: the sandbox's, plus the container's
    supplemental_groups (the kubelet puts the pod's supplementalGroups and fsGroup there; pyrun reads
    groups from the pod context) and its supplemental_groups_policy."""
    ctx = dict(pod_ctx)
    groups = sorted({*ctx.get("supplementalGroups", ()), *_groups(sc, _CONTAINER_SC)})
    if groups:
        ctx["supplementalGroups"] = groups
    if sc.supplemental_groups_policy == pb.Strict:
        ctx["supplementalGroupsPolicy"] = "Strict"
    return ctx


# --- one validator: CRI requests go through the manifest's checks (pyrun.spec) ----------------------

_SNAKE = {"runAsUser": "run_as_user", "runAsGroup": "run_as_group", "readOnlyRootFilesystem": "readonly_rootfs",
          "allowPrivilegeEscalation": "no_new_privs", "supplementalGroups": "supplemental_groups",
          "supplementalGroupsPolicy": "supplemental_groups_policy", "containerPort": "container_port",
          "hostPort": "host_port", "hostIP": "host_ip", "add": "add_capabilities", "drop": "drop_capabilities",
          "workingDir": "working_dir", "nameservers": "servers"}
# (manifest path prefix, CRI path prefix), first match wins; what follows is renamed with _SNAKE.
_CONTAINER_PATHS = ((r"config\.env\[(\d+)\]\.name", r"config.envs[\1].key"), (r"config\.env\[", "config.envs["),
                    (r"config\.image$", "config.image.image"), (r"config\.resources", "config.linux.resources"),
                    (r"config\.securityContext", "config.linux.security_context"), (r"config\.", "config."))
_SANDBOX_PATHS = ((r"spec\.containers\[0\]\.ports", "config.port_mappings"), (r"spec\.dnsConfig", "config.dns_config"),
                  (r"spec\.hostname", "config.hostname"),
                  (r"spec\.securityContext\.sysctls\[\d+\]", "config.linux.sysctls"),
                  (r"spec\.securityContext", "config.linux.security_context"), (r"spec\.", "config."))


def _cri_path(path: str, table: tuple[tuple[str, str], ...]) -> str:
    """A manifest field path as the CRI field it came from ("config.env[0].name" -> "config.envs[0].key")."""
    for pattern, replacement in table:
        m = re.match(pattern, path)
        if m:
            rest = re.sub(r"[A-Za-z]+", lambda w: _SNAKE.get(w[0], w[0]), path[m.end():])
            return m.expand(replacement) + rest
    return path


def _spec_problems(build, table: tuple[tuple[str, str], ...]) -> None:
    """Run a pyrun.spec check (`build(report)`); SpecError naming the CRI fields if it finds problems."""
    from pyrun.spec.report import Report
    report = Report()
    build(report)
    if report.problems:
        raise SpecError(list(dict.fromkeys((_cri_path(p, table), m) for p, m in report.problems)))


def _without_seccomp(ctx: Mapping) -> dict:
    """A security context for the spec's checks: the CRI's seccomp is checked by seccomp_profile() (a
    Localhost profile is an absolute node path there, a relative one in a manifest), and the CRI-only
    keys by container_security_context()."""
    return {k: v for k, v in ctx.items() if k != "seccompProfile" and k not in CRI_ONLY_KEYS}


def validate_container(config: pb.ContainerConfig, security: Mapping) -> None:
    """The manifest's container checks (pyrun.spec.container) on a CreateContainer config: env names,
    working_dir, image, command, the security context. The name is checked by _check_name (CRI names
    carry attempts and need not be DNS labels); resources are integers already."""
    from pyrun.spec.container import parse_container
    manifest: dict[str, Any] = {
        "name": "c", "image": config.image.image, "command": list(config.command) or None,
        "args": list(config.args) or None, "env": [{"name": kv.key, "value": kv.value} for kv in config.envs],
        "workingDir": config.working_dir or None, "securityContext": _without_seccomp(security) or None,
        "tty": config.tty, "stdin": config.stdin}
    _spec_problems(lambda report: parse_container(report, manifest, "config"), _CONTAINER_PATHS)


def validate_sandbox(spec: PodSpec, security: Mapping, hostname_given: bool) -> None:
    """The manifest's pod checks (pyrun.spec) on a RunPodSandbox config: DNS servers and search domains,
    port mappings (ranges, protocols, a host port used twice), the hostname when one is given, the pod
    security context and sysctls."""
    from pyrun.spec.pod import parse_pod
    ports = [{"containerPort": p.container_port, **({"hostPort": p.host_port} if p.host_port else {}),
              **({"hostIP": p.host_ip} if p.host_ip else {}), "protocol": p.protocol}
             for c in spec.containers for p in c.ports]
    pod_spec: dict[str, Any] = {
        "containers": [{"name": "pod", "image": "pause", "ports": ports}], "hostNetwork": spec.host_network,
        "dnsPolicy": spec.dns_policy, "dnsConfig": spec.dns_config or None,
        "securityContext": _without_seccomp(security) or None}
    if hostname_given:
        pod_spec["hostname"] = spec.hostname
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pod"}, "spec": pod_spec}

    def build(report) -> None:
        try:
            parse_pod(manifest)
        except SpecError as e:
            report.problems.extend(e.problems)
    _spec_problems(build, _SANDBOX_PATHS)


def container_spec(config: pb.ContainerConfig, *, sandbox_privileged: bool = False) -> ContainerSpec:
    """The ContainerSpec of a CreateContainer config."""
    meta = config.metadata
    name = _check_name(meta.name, "config.metadata.name")
    if not config.image.image:
        raise SpecError([("config.image.image", "no image given")])
    security = container_security_context(config.linux.security_context, sandbox_privileged=sandbox_privileged)
    validate_container(config, security)
    return ContainerSpec(
        name=attempt_name(name, meta.attempt), image=config.image.image,
        command=tuple(escape_expansion(a) for a in config.command) or None,
        args=tuple(escape_expansion(a) for a in config.args) or None,
        env=tuple(EnvVar(kv.key, escape_expansion(kv.value)) for kv in config.envs),
        working_dir=config.working_dir or None,
        resources=resources(config.linux.resources),
        security_context=security,
        tty=config.tty, stdin=config.stdin,
        devices=devices(config.devices),
    )


def devices(requested) -> tuple[DeviceSpec, ...]:
    """ContainerConfig.devices: absolute paths, permissions of "rwm" (empty means all three)."""
    out = []
    for i, dev in enumerate(requested):
        field = f"config.devices[{i}]"
        for name in ("host_path", "container_path"):
            value = getattr(dev, name)
            if not value.startswith("/") or "\0" in value or ".." in value.split("/"):
                raise SpecError([(f"{field}.{name}", f"{value!r} must be an absolute path without '..'")])
        perms = dev.permissions or "rwm"
        if set(perms) - set("rwm"):
            raise SpecError([(f"{field}.permissions", f"{perms!r}: only the letters r, w and m are allowed")])
        out.append(DeviceSpec(dev.host_path, dev.container_path, "".join(c for c in "rwm" if c in perms), field))
    return tuple(out)


_PROPAGATION = {pb.PROPAGATION_PRIVATE: "", pb.PROPAGATION_HOST_TO_CONTAINER: "rslave",
                pb.PROPAGATION_BIDIRECTIONAL: "rshared"}


def extra_mounts(config: pb.ContainerConfig) -> list[MountSpec]:
    """ContainerConfig.mounts with their propagation (private, rslave, rshared), as containerd makes them."""
    out = []
    for i, m in enumerate(config.mounts):
        if not m.container_path.startswith("/") or not m.host_path.startswith("/"):
            raise SpecError([(f"config.mounts[{i}]", "container_path and host_path must be absolute")])
        if m.propagation not in _PROPAGATION:
            raise SpecError([(f"config.mounts[{i}].propagation", f"unknown propagation {m.propagation}")])
        out.append(MountSpec(source=m.host_path, destination=m.container_path, readonly=bool(m.readonly),
                             propagation=_PROPAGATION[m.propagation]))
    return out


def container_log_path(log_directory: str, log_path: str) -> str | None:
    """<log_directory>/<log_path> as the kubelet means it; None (pyrun's default) when either is missing."""
    if not log_directory or not log_path:
        return None
    if log_path.startswith("/"):
        raise SpecError([("config.log_path", "must be relative to the sandbox's log_directory")])
    if ".." in log_path.split("/"):
        raise SpecError([("config.log_path", "must not contain '..'")])
    return log_directory.rstrip("/") + "/" + log_path


def container_cri(config: pb.ContainerConfig) -> ContainerCri:
    """What the container record keeps for the CRI, exactly as sent."""
    meta = config.metadata
    return ContainerCri(
        metadata={"name": meta.name, "attempt": meta.attempt},
        labels=dict(config.labels), annotations=dict(config.annotations),
        image=config.image.image, log_path=config.log_path,
        mounts=tuple(CriMount(container_path=m.container_path, host_path=m.host_path, readonly=m.readonly,
                              selinux_relabel=m.selinux_relabel, propagation=m.propagation) for m in config.mounts),
    )


# --- records -> CRI ------------------------------------------------------------------------------

def _pod_cri(pod: PodRecord) -> PodCri:
    """The CRI view of a pod record; pods made by `pyrun pod create` get one derived from the record."""
    if pod.cri is not None:
        return pod.cri
    return PodCri(
        metadata={"name": pod.name, "uid": pod.uid, "namespace": pod.namespace, "attempt": 0},
        labels=pod.labels, annotations=pod.annotations, runtime_handler="",
        namespace_options={"network": pb.NODE if pod.host_network else pb.POD,
                           "pid": pb.NODE if pod.host_pid else pb.POD if pod.share_pid else pb.CONTAINER,
                           "ipc": pb.NODE if pod.host_ipc else pb.POD},
    )


def sandbox_state(pod: PodRecord, pause_alive: bool) -> int:
    """READY exactly when `pod ls` would not say NotReady/Stopped/...: the shared pyrun.runtime.status."""
    return pb.SANDBOX_READY if pod_status(pod, (), pause_alive).sandbox_ready else pb.SANDBOX_NOTREADY


def pod_sandbox(pod: PodRecord, pause_alive: bool) -> pb.PodSandbox:
    cri = _pod_cri(pod)
    return pb.PodSandbox(id=pod.id, metadata=pb.PodSandboxMetadata(**cri.metadata),
                         state=sandbox_state(pod, pause_alive), created_at=pod.created_at,
                         labels=cri.labels, annotations=cri.annotations, runtime_handler=cri.runtime_handler)


def pod_sandbox_status(pod: PodRecord, pause_alive: bool) -> pb.PodSandboxStatus:
    cri = _pod_cri(pod)
    ip = pod_status(pod, (), pause_alive).ip or ""  # none once StopPodSandbox gave the address back
    ns = pb.NamespaceOption(**{k: v for k, v in cri.namespace_options.items() if k in ("network", "pid", "ipc")})
    return pb.PodSandboxStatus(
        id=pod.id, metadata=pb.PodSandboxMetadata(**cri.metadata), state=sandbox_state(pod, pause_alive),
        created_at=pod.created_at, network=pb.PodSandboxNetworkStatus(ip=ip),
        linux=pb.LinuxPodSandboxStatus(namespaces=pb.Namespace(options=ns)),
        labels=cri.labels, annotations=cri.annotations, runtime_handler=cri.runtime_handler)


def _container_cri(rec: ContainerRecord) -> ContainerCri:
    if rec.cri is not None:
        return rec.cri
    return ContainerCri(metadata={"name": rec.name, "attempt": 0}, image=rec.image)


def container_state(rec: ContainerRecord) -> int:
    return _CONTAINER_STATES.get(rec.status.state, pb.CONTAINER_UNKNOWN)


def container(rec: ContainerRecord) -> pb.Container:
    cri = _container_cri(rec)
    return pb.Container(id=rec.id, pod_sandbox_id=rec.pod_id, metadata=pb.ContainerMetadata(**cri.metadata),
                        image=pb.ImageSpec(image=cri.image), image_ref=rec.image_id, image_id=rec.image_id,
                        state=container_state(rec), created_at=rec.created_at, labels=cri.labels,
                        annotations=cri.annotations)


def _message(status: ContainerStatus) -> str:
    if status.error is not None:
        return f"{status.error.step}: {status.error.message}"
    return ""


def container_status(rec: ContainerRecord) -> pb.ContainerStatus:
    cri = _container_cri(rec)
    status = rec.status
    state = container_state(rec)
    mounts = [pb.Mount(container_path=m.container_path, host_path=m.host_path, readonly=m.readonly,
                       selinux_relabel=m.selinux_relabel, propagation=m.propagation)
              for m in cri.mounts]
    return pb.ContainerStatus(
        id=rec.id, metadata=pb.ContainerMetadata(**cri.metadata), state=state,
        created_at=rec.created_at, started_at=status.started_at or 0,
        finished_at=status.finished_at or 0,
        exit_code=(status.exit_code or 0) if state == pb.CONTAINER_EXITED else 0,
        image=pb.ImageSpec(image=cri.image), image_ref=rec.image_id, image_id=rec.image_id,
        reason=status.reason or "", message=_message(status), labels=cri.labels, annotations=cri.annotations,
        mounts=mounts, log_path=rec.log_path)


def auth_dict(auth: pb.AuthConfig) -> dict | None:
    """A PullImage AuthConfig as a plain dict (only the fields set); None when nothing is set."""
    fields = ("username", "password", "auth", "server_address", "identity_token", "registry_token")
    out = {f: getattr(auth, f) for f in fields if getattr(auth, f)}
    return out or None
