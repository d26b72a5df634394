"""Where each cgroup controller lives: cgroup v2, v1, or hybrid (pure parsing + one host reader).

Read once from /proc/self/mountinfo (proc(5)) and /proc/cgroups:

- unified (pure v2): one `cgroup2` mount; its controllers are the words in
  <mount>/cgroup.controllers. cpu usage ("cpuacct") and freezing are core v2
  features, so they map to the v2 hierarchy too; so is device access (an eBPF
  program attached to the cgroup, not a controller in cgroup.controllers).
- legacy (v1): one `cgroup` mount per hierarchy, whose super options name its
  controllers; comounts such as `cpu,cpuacct` share one hierarchy (one directory
  tree). Named hierarchies (name=systemd) hold no controller and are ignored.
- hybrid: both. A controller bound to a v1 hierarchy is absent from
  cgroup.controllers; what is left (often only hugetlb) lives on the v2 mount,
  typically /sys/fs/cgroup/unified.

/proc/cgroups says whether a controller is compiled in and enabled (enabled=0 after
`cgroup_disable=`). A missing controller is not an error here: `require()` raises
CgroupError only when a limit needs it.
"""
from __future__ import annotations

import os

from pyrun.errors import CgroupError
from pyrun.frozen import Frozen, replace
from pyrun.linux.mounts import unescape as _unescape

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a pod create's start-up)
if TYPE_CHECKING:
    from typing import Callable, Literal

CONTROLLERS = ("cpu", "cpuacct", "memory", "pids", "hugetlb", "freezer", "devices")
# v1 controllers that are core in v2 (devices: a BPF_PROG_TYPE_CGROUP_DEVICE program, no files)
_V2_CORE = {"cpuacct": "cpu.stat", "freezer": "cgroup.freeze", "devices": "BPF_CGROUP_DEVICE"}


class Mount(Frozen):
    root: str
    mount_point: str
    fstype: str
    super_options: tuple[str, ...]


class Hierarchy(Frozen):
    version: Literal[1, 2]
    mount_point: str
    controllers: frozenset[str]


class Layout(Frozen):
    hierarchies: tuple[Hierarchy, ...]
    disabled: frozenset[str] = frozenset()

    @property
    def mode(self) -> Literal["unified", "legacy", "hybrid"]:
        versions = {h.version for h in self.hierarchies}
        return "hybrid" if versions == {1, 2} else "unified" if versions == {2} else "legacy"

    @property
    def unified(self) -> Hierarchy | None:
        return next((h for h in self.hierarchies if h.version == 2), None)

    def hierarchy_for(self, controller: str) -> Hierarchy | None:
        """The hierarchy `controller` is bound to, or None."""
        if controller in self.disabled:
            return None
        for h in self.hierarchies:
            if h.version == 1 and controller in h.controllers:
                return h
        v2 = self.unified
        if v2 is not None and (controller in v2.controllers or
                               (controller in _V2_CORE and not self._on_v1(controller))):
            return v2
        return None

    def _on_v1(self, controller: str) -> bool:
        return any(h.version == 1 and controller in h.controllers for h in self.hierarchies)

    def require(self, controller: str) -> Hierarchy:
        h = self.hierarchy_for(controller)
        if h is None:
            raise CgroupError(f"the cgroup controller `{controller}` is not available {self._why_missing(controller)}")
        return h

    def _why_missing(self, controller: str) -> str:
        if controller in self.disabled:
            return "on this kernel: /proc/cgroups lists it as disabled (cgroup_disable= on the kernel command line?)"
        v2 = self.unified
        if v2 is not None:
            listed = " ".join(sorted(v2.controllers)) or "nothing"
            return (f"under {v2.mount_point}: it is not in {v2.mount_point}/cgroup.controllers (which lists "
                    f"{listed}) and no cgroup v1 hierarchy has it")
        return "on this host: no cgroup v1 hierarchy mounts it and there is no cgroup2 mount"

    def used_hierarchies(self) -> tuple[Hierarchy, ...]:
        """Every hierarchy pyrun puts a cgroup in: those of its controllers, and the v2 one (cgroup.kill)."""
        used = {self.hierarchy_for(c) for c in CONTROLLERS} | {self.unified}
        return tuple(h for h in self.hierarchies if h in used)

    def rebased(self, old_root: str, new_root: str) -> "Layout":
        """The same layout with mount points under old_root moved to new_root (tests on temp dirs)."""
        def move(p: str) -> str:
            rel = os.path.relpath(p, old_root)
            return p if rel.startswith("..") else os.path.normpath(os.path.join(new_root, rel))
        return replace(self, hierarchies=tuple(replace(h, mount_point=move(h.mount_point)) for h in self.hierarchies))


def parse_mountinfo(text: str) -> list[Mount]:
    """The cgroup and cgroup2 mounts in a /proc/<pid>/mountinfo text (proc(5))."""
    mounts = []
    for line in text.splitlines():
        if " - " not in line:
            continue
        pre, post = line.split(" - ", 1)
        pre_f, post_f = pre.split(), post.split()
        if len(pre_f) < 5 or len(post_f) < 3 or post_f[0] not in ("cgroup", "cgroup2"):
            continue
        mounts.append(Mount(root=_unescape(pre_f[3]), mount_point=_unescape(pre_f[4]), fstype=post_f[0],
                            super_options=tuple(post_f[2].split(","))))
    return mounts


def parse_proc_cgroups(text: str) -> dict[str, bool]:
    """/proc/cgroups -> {controller: enabled}."""
    out = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) == 4 and not line.startswith("#") and f[3].isdigit():
            out[f[0]] = f[3] == "1"
    return out


_V1_MOUNT_OPTIONS = {"rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec", "xattr", "none", "all",
                     "clone_children", "noprefix", "cpuset_v2_mode", "sane_behavior", "favordynmods"}


def _is_controller(option: str, enabled: dict[str, bool]) -> bool:
    if enabled:
        return option in enabled
    return "=" not in option and option not in _V1_MOUNT_OPTIONS


def _preferred(mounts: list[Mount], cgroup_root: str) -> list[Mount]:
    """Order duplicates (bind mounts of one hierarchy): root "/" first, then under cgroup_root."""
    root = cgroup_root.rstrip("/") + "/"
    return sorted(mounts, key=lambda m: (m.root != "/", not (m.mount_point + "/").startswith(root)))


def detect_layout(mountinfo: str, proc_cgroups: str, read_v2_controllers: Callable[[str], str],
                  cgroup_root: str = "/sys/fs/cgroup") -> Layout:
    """Build the Layout. read_v2_controllers(mount_point) returns <mount_point>/cgroup.controllers."""
    mounts = _preferred(parse_mountinfo(mountinfo), cgroup_root)
    enabled = parse_proc_cgroups(proc_cgroups)
    hierarchies: list[Hierarchy] = []
    seen: set[frozenset[str]] = set()
    for m in mounts:
        if m.fstype != "cgroup":
            continue
        ctrls = frozenset(o for o in m.super_options if _is_controller(o, enabled))
        if ctrls and ctrls not in seen:
            seen.add(ctrls)
            hierarchies.append(Hierarchy(1, m.mount_point, ctrls))
    v2 = next((m for m in mounts if m.fstype == "cgroup2"), None)
    if v2 is not None:
        hierarchies.append(Hierarchy(2, v2.mount_point, frozenset(read_v2_controllers(v2.mount_point).split())))
    disabled = frozenset(c for c, on in enabled.items() if not on)
    return Layout(tuple(hierarchies), disabled)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        raise CgroupError(f"cannot read {path}: {e.strerror}") from None


def read_host_layout(cgroup_root: str = "/sys/fs/cgroup", mountinfo_path: str = "/proc/self/mountinfo",
                     proc_cgroups_path: str = "/proc/cgroups") -> Layout:
    """Detect this host's layout (/proc/cgroups may be absent on future kernels: then nothing is disabled)."""
    try:
        proc_cgroups = _read(proc_cgroups_path)
    except CgroupError:
        proc_cgroups = ""
    layout = detect_layout(_read(mountinfo_path), proc_cgroups,
                           lambda mp: _read(os.path.join(mp, "cgroup.controllers")), cgroup_root)
    if not layout.hierarchies:
        raise CgroupError(f"no cgroup or cgroup2 filesystem is mounted (nothing in {mountinfo_path})")
    return layout

