"""Cgroups: the driver the runtime calls (create, add_process, kill_all, remove, stats).

One object works on every layout (v2, v1, hybrid): a cgroup name (CgroupPath) is
created as a directory in every hierarchy pyrun uses (those of cpu, cpuacct,
memory, pids, hugetlb, freezer, plus the v2 one for cgroup.kill), and each
controller's files are rendered for the version of the hierarchy it lives in.

- v2 needs controllers switched on top-down: `+cpu` in cgroup.subtree_control of
  every ancestor (cgroup-v2.rst, "Enabling and Disabling"). pyrun does it from
  the hierarchy root down to the new cgroup's parent (the root's subtree_control
  is empty where no systemd runs). v2 forbids processes in a cgroup that has
  controllers enabled for children ("no internal processes"): put processes
  only into container cgroups (the pause process too), never into a pod cgroup.
- The runtime adds a forked child with add_process() (or the child writes its
  pid to procs_files()) before it execs, so nothing runs unconstrained.
- kill_all(): cgroup.kill on v2 (kernel >= 5.14) kills the whole subtree; where
  the tasks are also in v1 hierarchies (hybrid/legacy), pyrun then freezes
  (v1 freezer.state / v2 cgroup.freeze), SIGKILLs every pid listed, thaws, and
  repeats until no pid is left, so a forking process cannot escape.
- devices (pyrun.cgroups.devices): a container's leaf denies every device but
  the allowed ones before its init joins it: v1 devices.deny/devices.allow, v2 a
  BPF_PROG_TYPE_CGROUP_DEVICE program attached to the leaf (rmdir detaches it).
- remove(): kill_all(), rmdir the subtree bottom-up in every hierarchy
  (retrying EBUSY while dying tasks leave), then rmdir the now-empty levels
  pyrun created up to the parent. Nothing outside the parent is touched.
"""
from __future__ import annotations

import errno
import os
import signal
import time

from pyrun.cgroups import cpu, devices, fs, hugetlb, memory, pids
from pyrun.cgroups.layout import CONTROLLERS, Hierarchy, Layout, read_host_layout
from pyrun.cgroups.limits import Limits
from pyrun.cgroups.names import CgroupPath, container_path, pod_path
from pyrun.errors import CgroupError
from pyrun.frozen import Frozen, field, replace
from pyrun.linux import syscalls as linux
from pyrun.linux import tree

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a pod create's start-up)
if TYPE_CHECKING:
    from typing import Callable, Iterator

LIMIT_CONTROLLERS = (cpu, memory, pids, hugetlb)
V2_CONTROLLERS = ("cpu", "memory", "pids", "hugetlb")  # what pyrun enables in cgroup.subtree_control
MAX_SUBTREE = 100_000  # cgroups below one of ours that kill/remove walk before giving up (a later call retries)


class Stats(Frozen):
    """One cgroup's usage; None where the controller is not available."""

    cpu_usage_ns: int | None = None
    cpu_nr_throttled: int | None = None
    cpu_throttled_ns: int | None = None
    memory_usage: int | None = None
    memory_working_set: int | None = None
    memory_limit: int | None = None
    pids_current: int | None = None
    hugetlb_usage: dict[str, int] = field(default_factory=dict)


class Sample(Frozen):
    """What the metrics export of one cgroup: usage, counters and what is set (None: not available).

    cpu_quota/cpu_period in µs (quota None: unlimited), cpu_shares as v1 counts them, memory_limit
    None when unlimited, processes: the pids in this cgroup's own cgroup.procs (not its children's).
    """

    cpu_usage_ns: int | None = None
    cpu_nr_throttled: int | None = None
    cpu_throttled_ns: int | None = None
    cpu_quota: int | None = None
    cpu_period: int | None = None
    cpu_shares: int | None = None
    memory_usage: int | None = None
    memory_working_set: int | None = None
    memory_limit: int | None = None
    memory_rss: int | None = None
    memory_failcnt: int | None = None
    oom_kills: int | None = None
    processes: int | None = None


def required_controllers(limits: Limits) -> list[str]:
    """The controllers that must exist for these limits to bite."""
    need = []
    if limits.cpu_shares is not None or limits.cpu_quota is not None:
        need.append("cpu")
    if limits.memory_max is not None:
        need.append("memory")
    if limits.pids_max is not None:
        need.append("pids")
    if limits.hugetlb:
        need.append("hugetlb")
    if limits.devices is not None:
        need.append("devices")  # fail closed: no device cgroup, no container
    return need


class Cgroups:
    """The cgroups of one pyrun instance, below `parent` in every hierarchy.

    root: re-root the layout's mount points from `layout_root` (/sys/fs/cgroup)
    to this directory (tests on temp dirs). own_parent: whether remove() may
    rmdir the parent itself once it is empty (False for a CRI-given parent).
    """

    def __init__(self, layout: Layout, parent: str | CgroupPath = "pyrun", root: str | os.PathLike | None = None,
                 *, own_parent: bool = True, layout_root: str = "/sys/fs/cgroup",
                 rmdir: Callable[..., None] = fs.rmdir):
        self.layout = layout.rebased(layout_root, os.fspath(root)) if root is not None else layout
        self.parent = parent if isinstance(parent, CgroupPath) else CgroupPath.parse(parent)
        if not self.parent.components:
            raise CgroupError("the cgroup parent must not be the root cgroup")
        self.own_parent = own_parent
        self._rmdir = rmdir
        self._hierarchies = self.layout.used_hierarchies()

    # --- names -----------------------------------------------------------------------------------

    def pod_path(self, qos: str, pod_uid: str) -> CgroupPath:
        return pod_path(self.parent, qos, pod_uid)

    def container_path(self, pod: CgroupPath, container_id: str) -> CgroupPath:
        return container_path(pod, container_id)

    def _check(self, path: CgroupPath) -> None:
        if not path.is_within(self.parent):
            raise CgroupError(f"cgroup {path} is outside pyrun's parent {self.parent}")

    def _dir(self, h: Hierarchy, path: CgroupPath) -> str:
        return os.path.join(h.mount_point, *path.components)

    def paths(self, path: CgroupPath) -> dict[str, str]:
        """{controller: directory} for `pod inspect`."""
        out = {}
        for c in CONTROLLERS:
            h = self.layout.hierarchy_for(c)
            if h is not None:
                out[c] = self._dir(h, path)
        return out

    def procs_files(self, path: CgroupPath) -> list[str]:
        """Every cgroup.procs file of the cgroup (one per hierarchy); write a pid (or "0" for yourself) to each."""
        return [os.path.join(self._dir(h, path), "cgroup.procs") for h in self._hierarchies]

    # --- start-up check ---------------------------------------------------------------------------

    def check_usable(self, controllers: tuple[str, ...] = ("cpu", "memory", "pids")) -> None:
        """For a server's start: the controllers pods need exist, and cgroups can be made below the
        parent in every hierarchy (its nearest existing level is writable). Creates nothing."""
        for c in controllers:
            self.layout.require(c)
        for h in self._hierarchies:
            level = self._dir(h, self.parent)
            while not os.path.isdir(level) and len(level) > len(h.mount_point):
                level = os.path.dirname(level)
            if not os.access(level, os.W_OK):
                raise CgroupError(f"cannot create cgroups under {level} (for the cgroup parent {self.parent}, "
                                  f"--cgroup-parent): {'read-only' if _read_only(level) else 'not writable'}")

    # --- create and join -------------------------------------------------------------------------

    def create(self, path: CgroupPath, limits: Limits | None = None) -> None:
        """mkdir -p the cgroup in every hierarchy (enabling v2 controllers on the way) and apply limits.

        Idempotent: an existing cgroup gets the limits written again.
        """
        self._check(path)
        limits = limits or Limits()
        required = required_controllers(limits)
        for c in required:
            self.layout.require(c)
        for h in self._hierarchies:
            if h.version == 2:
                self._enable_v2_controllers(h, path, required)
            fs.mkdir(self._dir(h, path))
        self.apply(path, limits)

    def _enable_v2_controllers(self, h: Hierarchy, path: CgroupPath, required: list[str]) -> None:
        wanted = [c for c in V2_CONTROLLERS if self.layout.hierarchy_for(c) is h]
        level = h.mount_point
        for component in path.components:
            if not wanted:
                return
            fs.mkdir(level)
            control = os.path.join(level, "cgroup.subtree_control")
            enabled = set((fs.read(control) or "").split())
            if level == h.mount_point:
                # The hierarchy's root is not ours: switch a controller on there only when a
                # limit needs it; otherwise use what the host already delegates.
                wanted = [c for c in wanted if c in enabled or c in required]
            for c in [c for c in wanted if c not in enabled]:
                err = fs.write_errno(control, f"+{c}")
                if err and c in required:
                    raise CgroupError(f"the cgroup controller `{c}` is not available under {level}: "
                                      f"writing +{c} to {control} failed: {os.strerror(err)}")
                if err:
                    wanted.remove(c)  # optional: not for this cgroup then
            level = os.path.join(level, component)

    def apply(self, path: CgroupPath, limits: Limits) -> None:
        """Write every controller's files for `limits` into the existing cgroup."""
        for module in LIMIT_CONTROLLERS:
            h = self.layout.hierarchy_for(module.CONTROLLER)
            if h is None:
                continue
            directory = self._dir(h, path)
            files = module.render_v2(limits) if h.version == 2 else module.render_v1(limits)
            items = list(files.items())
            if module is memory and h.version == 1:
                current = fs.read(os.path.join(directory, "memory.memsw.limit_in_bytes"))
                items = memory.order_v1(files, int(current) if current and current.strip().isdigit() else None)
            for name, value in items:
                file = os.path.join(directory, name)
                if name in module.OPTIONAL_FILES and not os.path.exists(file):
                    continue
                fs.write(file, value)
        if limits.devices is not None:
            self.apply_devices(path, limits.devices)

    def apply_devices(self, path: CgroupPath, rules: devices.DeviceRules) -> None:
        """Restrict device access: v1 devices.deny/devices.allow lines, v2 an attached eBPF program.

        On v2 a cgroup with no program of its own already has its ancestors' (ALLOW_MULTI), so
        "allow everything" attaches nothing.
        """
        h = self.layout.require(devices.CONTROLLER)
        directory = self._dir(h, path)
        if h.version == 1:
            for name, value in devices.render_v1(rules):
                fs.write(os.path.join(directory, name), value)
        elif not rules.allows_all:
            linux.bpf_attach_cgroup_device(directory, devices.encode(devices.program(rules)),
                                           devices.describe_v2(rules))

    def add_process(self, path: CgroupPath, pid: int) -> None:
        """Move `pid` into the cgroup in every hierarchy (cgroup.procs moves the whole thread group)."""
        for procs in self.procs_files(path):
            fs.write(procs, str(pid))

    # --- kill and remove -------------------------------------------------------------------------

    def _subtree(self, path: CgroupPath) -> Iterator[tuple[int, str, Callable[[], str]]]:
        """(parent_fd, name, where) for every existing directory of the cgroup and its descendants,
        deepest first, in all hierarchies; where() is the readable path (for messages).

        A container may make sub-cgroups where its cgroup is delegated, as deep as it likes: the walk is
        iterative and fd-relative (pyrun.linux.tree), so no recursion and no PATH_MAX, and bounded:
        past MAX_SUBTREE directories it stops with a CgroupError (a later remove/gc retries)."""
        for h in self._hierarchies:
            top = self._dir(h, path)
            for attempt in range(3):  # a sub-cgroup removed under the walk (by its own processes): again
                try:
                    yield from _bounded(top, tree.walk_dirs_bottom_up(top))
                    break
                except (FileNotFoundError, NotADirectoryError):
                    if not os.path.isdir(top):
                        break  # not in this hierarchy (or gone): nothing to yield
                    if attempt == 2:
                        raise CgroupError(f"cgroup {top} keeps changing while pyrun walks it") from None
            yield from _itself(top)

    def pids(self, path: CgroupPath) -> set[int]:
        """Every pid in the cgroup or below it, in any hierarchy."""
        found: set[int] = set()
        for fd, name, _ in self._subtree(path):
            found |= {int(p) for p in (fs.read_at(fd, f"{name}/cgroup.procs") or "").split()}
        return found

    def _freeze(self, path: CgroupPath, frozen: bool) -> None:
        h = self.layout.hierarchy_for("freezer")
        if h is None:
            return
        d = self._dir(h, path)
        if h.version == 1 and os.path.exists(os.path.join(d, "freezer.state")):
            fs.write_errno(os.path.join(d, "freezer.state"), "FROZEN" if frozen else "THAWED")
        elif h.version == 2 and os.path.exists(os.path.join(d, "cgroup.freeze")):
            fs.write_errno(os.path.join(d, "cgroup.freeze"), "1" if frozen else "0")

    def kill_all(self, path: CgroupPath, timeout: float = 5.0) -> None:
        """SIGKILL every process in the cgroup and its descendants; return when none is left."""
        self._check(path)
        v2 = self.layout.unified
        if v2 is not None:
            kill_file = os.path.join(self._dir(v2, path), "cgroup.kill")
            if os.path.exists(kill_file):
                fs.write_errno(kill_file, "1")
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            left = self.pids(path)
            if not left:
                return
            if time.monotonic() > deadline:
                raise CgroupError(f"processes {sorted(left)} in cgroup {path} survived SIGKILL for {timeout}s")
            self._freeze(path, True)
            try:
                for pid in sorted(left):
                    linux.kill(pid, signal.SIGKILL)
            finally:
                self._freeze(path, False)
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _rmdir_retry(self, parent_fd: int, name: str, where: Callable[[], str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._rmdir(name, dir_fd=parent_fd, shown=where)
                return
            except FileNotFoundError:
                return
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise CgroupError(f"cannot remove cgroup {where()}: {e.strerror}") from None
                time.sleep(0.02)

    def remove(self, path: CgroupPath, timeout: float = 5.0, prune_parents: bool = True) -> None:
        """Kill what is left, remove the cgroup subtree everywhere, then (unless told not to, for
        cgroups below a parent someone else owns) the empty levels up to the parent."""
        self._check(path)
        self.kill_all(path, timeout)
        for fd, name, where in self._subtree(path):
            self._rmdir_retry(fd, name, where, timeout)
        if prune_parents:
            self._prune_parents(path)

    def _prune_parents(self, path: CgroupPath) -> None:
        levels: list[CgroupPath] = []
        p = path.parent
        while p.is_within(self.parent) and (p != self.parent or self.own_parent):
            levels.append(p)
            if p == self.parent:
                break
            p = p.parent
        for h in self._hierarchies:
            for level in levels:
                try:
                    self._rmdir(self._dir(h, level))
                except FileNotFoundError:
                    continue
                except OSError:
                    break  # not empty (EBUSY / ENOTEMPTY): other pods live there

    def unmanaged_hierarchies(self, path: CgroupPath) -> tuple[str, ...]:
        """Mount points of the hierarchies where nobody else keeps `path`, so that pyrun, which makes
        it there (create() is mkdir -p), must remove it again (remove_made).

        A CRI cgroup_parent exists wherever the kubelet manages cgroups. It does not where it is
        missing, nor, ever, in a hybrid host's v2 tree: a kubelet (runc's libcontainer) uses cgroup
        v2 only when /sys/fs/cgroup itself is cgroup2. The hybrid rule matters when a pod's
        sandbox is made again: the first one made the v2 directory the second one finds."""
        self._check(path)
        hybrid = any(h.version == 1 for h in self._hierarchies)
        return tuple(h.mount_point for h in self._hierarchies
                     if (hybrid and h.version == 2) or not os.path.isdir(self._dir(h, path)))

    def remove_made(self, path: CgroupPath, mount_points: tuple[str, ...]) -> None:
        """Remove `path` and its empty ancestors below pyrun's parent in the hierarchies named by
        unmanaged_hierarchies(): nothing else makes cgroups there. A level still in use
        (another pod, a process) stops the pruning in that hierarchy."""
        self._check(path)
        top = len(self.parent.components)  # the parent itself stays (it is pyrun's, or the caller's)
        for h in self._hierarchies:
            if h.mount_point not in mount_points:
                continue
            for depth in range(len(path.components), top, -1):
                try:
                    self._rmdir(os.path.join(h.mount_point, *path.components[:depth]))
                except FileNotFoundError:
                    continue
                except OSError as e:
                    if e.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                        raise CgroupError(f"cannot remove cgroup {path} in {h.mount_point}: {e.strerror}") from None
                    break

    # --- observe ---------------------------------------------------------------------------------

    def _reader(self, controller: str, path: CgroupPath) -> tuple[Hierarchy | None, Callable[[str], str | None]]:
        h = self.layout.hierarchy_for(controller)
        d = self._dir(h, path) if h is not None else None
        return h, (lambda name: fs.read(f"{d}/{name}") if d else None)

    def _cpu_usage(self, path: CgroupPath) -> dict:
        """CPU time and throttling: from cpu.stat on v2 (also when only cpuacct maps to v2, as with the
        cpu controller not enabled there), else from v1's cpu and cpuacct."""
        cpu_h, read_cpu = self._reader("cpu", path)
        acct_h, read_acct = self._reader("cpuacct", path)
        if cpu_h is not None and cpu_h.version == 2:
            return cpu.stats_v2(read_cpu)
        if acct_h is not None and acct_h.version == 2:
            return cpu.stats_v2(read_acct)
        if cpu_h is not None or acct_h is not None:
            return cpu.stats_v1(read_cpu, read_acct)
        return {}

    def stats(self, path: CgroupPath) -> Stats:
        values: dict = self._cpu_usage(path)
        for module in (memory, pids, hugetlb):
            h, read = self._reader(module.CONTROLLER, path)
            if h is not None:
                values |= module.stats_v2(read) if h.version == 2 else module.stats_v1(read)
        return Stats(**values)

    def sample(self, path: CgroupPath) -> Sample | None:
        """One cgroup's whole Sample for the metrics; None when the cgroup does not exist (any more)."""
        usage = self.usage(path)
        if usage is None:
            return None
        return replace(usage, processes=self.process_count(path), **self.spec(path))

    def usage(self, path: CgroupPath) -> Sample | None:
        """The usage and counters of a Sample (no spec, no processes): what changes between scrapes.
        No hugetlb, so cheaper than stats(). None when the cgroup does not exist (any more)."""
        values: dict = self._cpu_usage(path)
        mem_h, read_mem = self._reader("memory", path)
        if mem_h is not None:
            values |= memory.usage_v2(read_mem) if mem_h.version == 2 else memory.usage_v1(read_mem)
        if not any(v is not None for v in values.values()):
            return None
        return Sample(**values)

    def spec(self, path: CgroupPath) -> dict[str, int | None]:
        """What is set: cpu_quota, cpu_period, cpu_shares, memory_limit (None where not available)."""
        values: dict = {}
        cpu_h, read_cpu = self._reader("cpu", path)
        if cpu_h is not None:
            values |= cpu.spec_v2(read_cpu) if cpu_h.version == 2 else cpu.spec_v1(read_cpu)
        mem_h, read_mem = self._reader("memory", path)
        if mem_h is not None:
            values |= memory.spec_v2(read_mem) if mem_h.version == 2 else memory.spec_v1(read_mem)
        return values

    def process_count(self, path: CgroupPath) -> int | None:
        """The pids in this cgroup's own cgroup.procs (of the pids hierarchy, else the first one pyrun uses)."""
        h = self.layout.hierarchy_for("pids") or (self._hierarchies[0] if self._hierarchies else None)
        text = None if h is None else fs.read(os.path.join(self._dir(h, path), "cgroup.procs"))
        return None if text is None else len(text.split())

    def oom_kills(self, path: CgroupPath) -> int:
        h, read = self._reader("memory", path)
        if h is None:
            return 0
        return memory.oom_kills_v2(read) if h.version == 2 else memory.oom_kills_v1(read)

    def oom_events_file(self, path: CgroupPath) -> str | None:
        """The file with the cgroup's "oom_kill N" line (v2 memory.events, v1 memory.oom_control), if any."""
        h = self.layout.hierarchy_for("memory")
        if h is None:
            return None
        return os.path.join(self._dir(h, path), "memory.events" if h.version == 2 else "memory.oom_control")

    def oom_killed(self, path: CgroupPath) -> bool:
        """Did the kernel OOM-kill a task of this cgroup (v2: or of a descendant)?"""
        return self.oom_kills(path) > 0


def _read_only(path: str) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


def _bounded(top: str, walk) -> Iterator[tuple[int, str, Callable[[], str]]]:
    """The items of a walk_dirs_bottom_up(top), with readable paths; CgroupError past MAX_SUBTREE."""
    try:
        for count, (fd, name, parts) in enumerate(walk, 1):
            if count > MAX_SUBTREE:
                raise CgroupError(f"cgroup {top} has more than {MAX_SUBTREE} cgroups below it; not walking further")
            yield fd, name, lambda: os.path.join(top, *parts())  # noqa: B023 - valid until next()
    finally:
        walk.close()


def _itself(top: str) -> Iterator[tuple[int, str, Callable[[], str]]]:
    """(parent_fd, name, where) of the directory `top` itself, if it exists."""
    try:
        parent_fd = os.open(os.path.dirname(top), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if os.path.isdir(top):
            yield parent_fd, os.path.basename(top), lambda: top
    finally:
        os.close(parent_fd)


def open_cgroups(config) -> Cgroups:
    """Detect this host's layout once and return the driver for config.cgroup_parent."""
    return Cgroups(read_host_layout(str(config.cgroup_root)), parent=config.cgroup_parent)
