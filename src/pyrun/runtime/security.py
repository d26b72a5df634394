"""A container's effective security settings (pure) and the init steps that apply them.

`effective_security(pod, container, ...)` merges the pod's and the container's securityContext the
way Kubernetes does (the container's field wins; supplementalGroups, fsGroup and sysctls are
pod-only) into one JSON document that goes into the container's config.json under "security":

  privileged, run_as_non_root, groups (fsGroup + supplementalGroups), supplemental_groups_policy,
  fs_group, capabilities (names), ambient_capabilities (what a non-root user keeps), no_new_privs, seccomp {type, profile, plan}, read_only_rootfs,
  masked_paths, readonly_paths, sysctls {name: value}, rlimits {NAME: [soft, hard]}, warnings.

Kubernetes defaults: allowPrivilegeEscalation unset means escalation is allowed (no_new_privs off;
the kubelet only sets it for an explicit false). privileged means every capability, no masked or
read-only /proc paths, a writable /sys and no seccomp filter. A CRI request's masked and read-only
lists are used as sent (the kubelet sends empty ones for procMount "Unmasked", which a manifest may
not ask for: pyrun.spec.security). The seccomp default when no profile is given is Config.seccomp_default (default
"RuntimeDefault", like kubelet --seccomp-default; a CRI request always names one, Unconfined if
nothing else, see pyrun.cri.translate).

Config fields read here:
  seccomp_default        "RuntimeDefault" (default) or "Unconfined"
  seccomp_profile_root   directory of Localhost profiles (default /var/lib/pyrun/seccomp; the
                         environment variable PYRUN_SECCOMP_PROFILE_ROOT also sets it)
  rlimit_nofile          RLIMIT_NOFILE for containers: N or "soft:hard" (default 1048576, as containerd)
  rlimit_nproc           RLIMIT_NPROC: N or "soft:hard" (default: left as inherited)
"""
from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a CLI command's start-up)
if TYPE_CHECKING:
    from typing import Mapping, Sequence

from pyrun import explain
from pyrun.errors import PyrunError
from pyrun.linux.caps import ambient_capabilities, container_capabilities
from pyrun.runtime.records import SecurityPlan

MASKED_PATHS = ("/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                "/sys/devices/virtual/powercap")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
DEFAULT_SECCOMP_PROFILE_ROOT = "/var/lib/pyrun/seccomp"
DEFAULT_NOFILE = 1048576
RLIMIT_NAMES = ("NOFILE", "NPROC")


def _pick(key: str, container: dict, pod: dict):
    """The container's value of `key`, else the pod's (Kubernetes' DetermineEffectiveSecurityContext)."""
    for ctx in (container, pod):
        if ctx.get(key) is not None:
            return ctx[key]
    return None


def profile_root(configured: str | None = None) -> str:
    """Where Localhost profiles live: Config.seccomp_profile_root, $PYRUN_SECCOMP_PROFILE_ROOT, the default."""
    return str(configured or os.environ.get("PYRUN_SECCOMP_PROFILE_ROOT")
               or DEFAULT_SECCOMP_PROFILE_ROOT)


def parse_limit(value) -> tuple[int, int]:
    """1024 or "1024" -> (1024, 1024); "1024:4096" -> (1024, 4096); "unlimited" is -1 (pure)."""
    def one(text) -> int:
        text = str(text).strip()
        return -1 if text in ("unlimited", "-1") else int(text)
    soft, _, hard = str(value).partition(":")
    s = one(soft)
    h = one(hard) if hard else s
    if h != -1 and (s == -1 or s > h):
        raise ValueError(f"soft limit {soft} is above the hard limit {hard}")
    return s, h


def plan_rlimits(current: dict[str, tuple[int, int]], can_raise: bool, *, nofile: int | str | None = None,
                 nproc: int | str | None = None) -> tuple[dict, list[str]]:
    """The rlimits containers get, and warnings (pure). nofile/nproc: Config.rlimit_nofile/rlimit_nproc.

    A hard limit above the current one needs CAP_SYS_RESOURCE (setrlimit(2)); without it the
    current hard limit is used (and the soft one capped to it), with a warning. -1 is unlimited.
    """
    wanted: dict[str, tuple[int, int]] = {}
    for name, key, value in (("NOFILE", "rlimit_nofile", nofile or DEFAULT_NOFILE), ("NPROC", "rlimit_nproc", nproc)):
        if value is None:
            continue
        try:
            wanted[name] = parse_limit(value)
        except ValueError as e:
            raise PyrunError(f"configuration {key}={value!r}: {e}") from None
    out, warnings = {}, []
    for name, (soft, hard) in wanted.items():
        cur_soft, cur_hard = current.get(name, (-1, -1))
        above = cur_hard != -1 and (hard == -1 or hard > cur_hard)
        if above and not can_raise:
            warnings.append(f"RLIMIT_{name}: raising the hard limit to {_show(hard)} needs CAP_SYS_RESOURCE; "
                            f"using the current hard limit {_show(cur_hard)}")
            hard = cur_hard
            soft = hard if soft == -1 or soft > hard else soft
        out[name] = [soft, hard]
    return out, warnings


def _show(n: int) -> str:
    return "unlimited" if n == -1 else str(n)


def default_seccomp_plan() -> dict:
    """The seccomp plan of a container that asks for nothing: RuntimeDefault with the default
    capabilities (pure; what effective_security renders for it)."""
    from pyrun.runtime import seccomp
    return seccomp.render(seccomp.runtime_default_profile(), container_capabilities(), "RuntimeDefault")


def effective_security(pod_ctx: dict, ctr_ctx: dict, *, host_network: bool = False,
                       seccomp_default: str | None = None, seccomp_profile_root: str | None = None,
                       last_cap: int = 40, held: list[str] | None = None, rlimits: dict | None = None,
                       rlimit_warnings: list[str] = ()) -> dict:
    """The merged, defaulted security settings of one container (pure; see the module docstring).

    The seccomp plan is rendered here too except for Localhost profiles, whose file the caller reads
    (`with_localhost_profile`). `held`: the capabilities pyrun itself holds (None: all); a capability
    asked for that pyrun lacks is left out with a warning, as runc leaves out what is not in its
    bounding set (a process cannot grant what it lacks).
    """
    from pyrun.runtime import seccomp
    pod_ctx, ctr_ctx = pod_ctx or {}, ctr_ctx or {}
    privileged = bool(ctr_ctx.get("privileged"))
    caps_spec = ctr_ctx.get("capabilities") or {}
    caps = container_capabilities(caps_spec.get("add") or (), caps_spec.get("drop") or (), privileged, last_cap)
    warnings = list(rlimit_warnings)
    if held is not None:
        missing = [c for c in caps if c not in held]
        caps = [c for c in caps if c in held]
        if missing and not privileged:
            warnings.append(f"capabilities {', '.join(missing)} left out: pyrun itself does not hold them "
                            "(its permitted set)")
    groups = sorted({*(pod_ctx.get("supplementalGroups") or ()),
                     *([pod_ctx["fsGroup"]] if pod_ctx.get("fsGroup") is not None else [])})
    profile = _pick("seccompProfile", ctr_ctx, pod_ctx) or {"type": seccomp_default or "RuntimeDefault"}
    kind = "Unconfined" if privileged else profile.get("type", "RuntimeDefault")
    sec = {"type": kind, "profile": profile.get("localhostProfile") if kind == "Localhost" else None}
    if kind == "RuntimeDefault":
        sec["plan"] = seccomp.render(seccomp.runtime_default_profile(), caps, "RuntimeDefault")
    elif kind == "Localhost":
        sec["path"] = os.path.join(profile_root(seccomp_profile_root), profile["localhostProfile"])
    return {
        "privileged": privileged,
        "run_as_non_root": bool(_pick("runAsNonRoot", ctr_ctx, pod_ctx)),
        "run_as_user": _pick("runAsUser", ctr_ctx, pod_ctx),
        "run_as_group": _pick("runAsGroup", ctr_ctx, pod_ctx),
        "groups": groups,
        "supplemental_groups_policy": pod_ctx.get("supplementalGroupsPolicy") or "Merge",
        "fs_group": pod_ctx.get("fsGroup"),
        "capabilities": caps,
        "ambient_capabilities": ambient_capabilities(caps, caps_spec.get("add") or ()),
        "no_new_privs": ctr_ctx.get("allowPrivilegeEscalation") is False,
        "seccomp": sec,
        "read_only_rootfs": bool(ctr_ctx.get("readOnlyRootFilesystem")),
        "masked_paths": [] if privileged else masked_paths(ctr_ctx),
        "readonly_paths": [] if privileged else readonly_paths(ctr_ctx),
        "sysctls": {s["name"]: str(s["value"]) for s in pod_ctx.get("sysctls") or ()},
        "rlimits": dict(rlimits or {}),
        "warnings": warnings,
    }


def masked_paths(ctr_ctx: Mapping) -> list[str]:
    """What is masked in /proc and /sys: a CRI request's list as sent (maskedPaths, possibly empty, as
    containerd applies it), else pyrun's defaults."""
    if ctr_ctx.get("maskedPaths") is not None:
        return list(ctr_ctx["maskedPaths"])
    return list(MASKED_PATHS)


def readonly_paths(ctr_ctx: Mapping) -> list[str]:
    """Likewise for the read-only paths (readonlyPaths)."""
    if ctr_ctx.get("readonlyPaths") is not None:
        return list(ctr_ctx["readonlyPaths"])
    return list(READONLY_PATHS)


def with_localhost_profile(sec: dict, read=None) -> dict:
    """Read and render a Localhost profile into sec["seccomp"]["plan"] (at create time: the file is on the
    host, and later changes to it do not change a created container)."""
    from pathlib import Path
    from pyrun.runtime import seccomp
    s = sec["seccomp"]
    if s["type"] != "Localhost":
        return sec
    path = Path(s["path"])
    profile = (read or seccomp.read_localhost_profile)(path.parent, path.name)
    try:
        s["plan"] = seccomp.render(profile, sec["capabilities"], str(path))
    except ValueError as e:
        raise PyrunError(f"seccomp profile {e}") from None
    return sec


def from_config(config) -> SecurityPlan:
    """config.json's "security" (InitConfig.security). Fail closed: a config without it (written by a pyrun
    older than the security settings, or damaged) is refused rather than run with defaults that would mean
    no seccomp."""
    sec = config.security
    if not isinstance(sec, SecurityPlan):
        name = config.name
        problem = f" ({config.security_problem})" if getattr(config, "security_problem", None) else ""
        raise PyrunError(f"container {name!r}: config.json has no complete \"security\" section (seccomp, "
                         f"capabilities){problem}; refusing to run it without its security settings (remove the "
                         "pod and create it again)")
    return sec


def summary(sec: SecurityPlan | None) -> dict:
    """What `pod inspect` shows: everything but the rendered seccomp rules."""
    if sec is None:
        return {"seccomp": {"type": None, "profile": None, "rules": 0}}
    out = {k: v for k, v in sec.to_dict().items() if k != "seccomp"}
    s = sec.seccomp
    out["seccomp"] = {"type": s.type, "profile": s.profile,
                      "rules": len(s.plan.get("rules", [])) if s.plan else 0}
    return out


# --- host side: at container creation ------------------------------------------------------------

def container_security(cfg, pod_spec, container, pod) -> SecurityPlan:
    """Everything above for one container being created: effective settings, rlimits planned against
    this process's limits (the monitor and init inherit them), the Localhost profile read, and the
    pod's emptyDirs given to fsGroup. The result goes into config.json as "security"."""
    from pyrun.linux.caps import held_capabilities, last_cap
    current, can_raise = current_rlimits()
    limits, warnings = plan_rlimits(current, can_raise, nofile=cfg.rlimit_nofile, nproc=cfg.rlimit_nproc)
    sec = effective_security(pod_spec.security_context, container.security_context,
                             host_network=pod.host_network, seccomp_default=cfg.seccomp_default,
                             seccomp_profile_root=cfg.seccomp_profile_root, last_cap=last_cap(),
                             held=held_capabilities(),
                             rlimits=limits, rlimit_warnings=warnings)
    with_localhost_profile(sec)
    try:
        plan = SecurityPlan.from_dict(sec)
    except ValueError as e:
        raise PyrunError(f"container {container.name!r}: {e}") from None
    apply_fs_group(pod_spec.volumes, pod.volumes, plan.fs_group)
    return plan


def current_rlimits() -> tuple[dict[str, tuple[int, int]], bool]:
    """This process's NOFILE/NPROC limits and whether it holds CAP_SYS_RESOURCE (inherited by the init)."""
    import resource
    current = {name: resource.getrlimit(getattr(resource, "RLIMIT_" + name)) for name in RLIMIT_NAMES}
    return current, _has_capability(24)  # CAP_SYS_RESOURCE


def _has_capability(number: int, status: str = "/proc/self/status") -> bool:
    with open(status) as f:
        for line in f:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> number & 1)
    return False


def apply_fs_group(volumes, sources: dict[str, str], fs_group: int | None) -> None:
    """Give fsGroup the pod's emptyDir volumes, like the kubelet's SetVolumeOwnership: group-owned by
    fsGroup, group read/write, setgid directories (new files inherit the group). hostPath is left alone."""
    if fs_group is None:
        return
    import stat
    for vol in volumes:
        if vol.kind != "emptyDir" or vol.name not in sources:
            continue
        explain.emit(explain.argv("chgrp", "-R", str(fs_group), sources[vol.name]) + " && "
                     + explain.argv("chmod", "-R", "g+rwX,g+s", sources[vol.name]))
        from pyrun.linux.tree import apply_each

        def give_group(dir_fd: int, name: str, st: os.stat_result) -> None:
            if stat.S_ISLNK(st.st_mode):
                return
            os.chown(name, -1, fs_group, dir_fd=dir_fd, follow_symlinks=False)
            extra_bits = stat.S_IRGRP | stat.S_IWGRP
            if stat.S_ISDIR(st.st_mode):
                extra_bits |= stat.S_IXGRP | stat.S_ISGID
            os.chmod(name, stat.S_IMODE(st.st_mode) | extra_bits, dir_fd=dir_fd)

        apply_each(sources[vol.name], give_group)  # iterative, fd-relative: no recursion, no symlink followed


# --- init steps (in the container's init, see pyrun.runtime.init) --------------------------------

def apply_sysctls(sysctls: Mapping[str, str], joined: set[str], proc: str = "/proc") -> None:
    """Write each sysctl under /proc/sys; the init has joined the pod's net and ipc namespaces, and
    /proc/sys/net and the IPC sysctls show the namespaces of the writing task (proc(5))."""
    from pyrun.linux import syscalls as linux
    from pyrun.spec.security import sysctl_dotted, sysctl_path
    for name, value in sysctls.items():
        kind = "net" if sysctl_dotted(name).startswith("net.") else "ipc"
        if kind not in joined:
            raise PyrunError(f"sysctl {name}: the pod has no {kind} namespace of its own; refusing to change "
                             "the node's value")
        linux.write_file(f"{proc}/sys/{sysctl_path(name)}", value)


def mask_paths(root: str, masked: Sequence[str], readonly: Sequence[str]) -> None:
    """runc's maskedPaths/readonlyPaths: /dev/null over files, an empty read-only tmpfs over
    directories; read-only paths are bound onto themselves read-only. Missing paths are skipped.
    Each mount acts on the path opened inside the rootfs (pyrun.runtime.rootfs.opened_in_root)."""
    import stat
    from pyrun.linux import syscalls as linux
    from pyrun.runtime.rootfs import opened_in_root, secure_join
    flags = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
    for path in readonly:
        if not os.path.lexists(secure_join(root, path)):
            continue
        with opened_in_root(root, path) as target:
            linux.mount(target, target, None, linux.MS_BIND | linux.MS_REC)
        with opened_in_root(root, path) as target:  # the new mount
            linux.mount(None, target, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | flags)
    for path in masked:
        if not os.path.lexists(secure_join(root, path)):
            continue
        with opened_in_root(root, path) as target:
            if stat.S_ISDIR(os.stat(target).st_mode):
                linux.mount("tmpfs", target, "tmpfs", flags | linux.MS_RDONLY, "size=0,mode=555")
            else:
                linux.mount(os.path.join(root, "dev", "null"), target, None, linux.MS_BIND)


def make_sys_writable(root: str) -> None:
    """privileged: /sys read-write (remount the container's sysfs without MS_RDONLY)."""
    from pyrun.linux import syscalls as linux
    from pyrun.runtime.rootfs import secure_join
    linux.mount(None, secure_join(root, "/sys"), None,
                linux.MS_REMOUNT | linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)


def remount_root_readonly() -> None:
    """readOnlyRootFilesystem, after pivot_root: the overlay at / becomes read-only for this mount
    (MS_BIND|MS_REMOUNT changes only the mount's flags; /proc, /dev, volumes stay as they are)."""
    from pyrun.linux import syscalls as linux
    linux.mount(None, "/", None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY)


def check_non_root(sec: SecurityPlan, uid: int, user_spec: str, container: str) -> None:
    """runAsNonRoot: refuse to run as uid 0, like the kubelet's verifyRunAsNonRoot."""
    if sec.run_as_non_root and uid == 0:
        source = "runAsUser 0" if sec.run_as_user == 0 else \
            f"the image's user {user_spec!r}" if user_spec else "the image's default user (root)"
        raise PyrunError(f"runAsNonRoot is set but container {container!r} would run as root (uid 0, from "
                         f"{source}); set securityContext.runAsUser to a non-zero uid")


def container_groups(sec: SecurityPlan, image_groups: tuple[int, ...]) -> tuple[int, ...]:
    """Supplementary groups: the user's groups from /etc/group (unless policy Strict) + fsGroup +
    supplementalGroups (pure)."""
    own = () if sec.supplemental_groups_policy == "Strict" else tuple(image_groups)
    return tuple(sorted({*own, *sec.groups}))


def apply_rlimits(rlimits: Mapping[str, Sequence[int]]) -> list[str]:
    """setrlimit(2) each limit; a refused raise falls back to the current hard limit (warning returned,
    never an error: a container must not fail to start over a descriptor limit)."""
    import resource
    warnings = []
    for name, (soft, hard) in rlimits.items():
        which = getattr(resource, "RLIMIT_" + name)
        soft = resource.RLIM_INFINITY if soft == -1 else soft
        hard = resource.RLIM_INFINITY if hard == -1 else hard
        explain.emit(explain.argv("prlimit", f"--{name.lower()}={_show(soft)}:{_show(hard)}", "--pid", "$$"))
        try:
            resource.setrlimit(which, (soft, hard))
        except (ValueError, PermissionError, OSError):
            cur_hard = resource.getrlimit(which)[1]
            fallback = cur_hard if soft == resource.RLIM_INFINITY or (cur_hard != resource.RLIM_INFINITY
                                                                     and soft > cur_hard) else soft
            resource.setrlimit(which, (fallback, cur_hard))
            warnings.append(f"RLIMIT_{name}: {_show(soft)}:{_show(hard)} refused; using "
                            f"{_show(fallback)}:{_show(cur_hard)}")
    return warnings


def set_no_new_privs() -> None:
    """PR_SET_NO_NEW_PRIVS: execve(2) can no longer grant privileges (setuid bits, file caps)."""
    import prctl
    explain.emit(explain.argv("setpriv", "--no-new-privs"))
    prctl.set_no_new_privs(1)


def preload(sec: SecurityPlan) -> None:
    """Load what the later steps need while the host's filesystem is visible."""
    import resource  # noqa: F401
    import prctl  # noqa: F401
    from pyrun.runtime import seccomp
    from pyrun.spec import security  # noqa: F401  (sysctl names)
    if sec.seccomp.plan:
        seccomp.preload()
