"""A container's init: the forked child of the monitor that becomes the workload.

It runs in a process that the monitor forked right after it was freshly started
(single-threaded, no locks held). The monitor has already put it in the pod's PID
namespace (setns/unshare of pid applies to children) and in its cgroups. Steps, in
order, each reported by name if it fails:

  join namespaces   setns(2) into the pod's net, ipc and uts namespaces
  sysctls           the pod's securityContext.sysctls, written in the joined net/ipc namespaces
  mount namespace   unshare(CLONE_NEWNS); mount --make-rprivate / (rslave/rshared for a volume's
                    mount propagation, see pyrun.runtime.rootfs)
  rootfs            mount -t overlay (image layers + the container's upper/work)
  /proc /dev /sys   fresh proc, tmpfs /dev with device nodes, devpts, shm, mqueue, ro sysfs
  /sys/fs/cgroup    the container's own cgroups (pyrun.cgroups.view): a cgroup namespace and cgroup2 on
                    v2, binds of its directories on a tmpfs on v1/hybrid; read-only unless privileged
  mounts            /etc/hostname, /etc/hosts, /etc/resolv.conf and the volumes
  masked paths      /dev/null or an empty ro tmpfs over /proc/kcore & co; /proc/sys & co read-only
  pivot_root        the rootfs becomes /, the host's root is detached
  read-only rootfs  readOnlyRootFilesystem: remount / read-only
  user ... chdir     pyrun.runtime.finalize: user, rlimits, seccomp, bounding set, setuid,
                    capabilities, no_new_privs, chdir (the same sequence `pyrun exec` runs)
  terminal          tty: true: a pty of the container's devpts becomes stdio, its master goes to the monitor
  ... report `ready`, wait for `start` ...
  parent death signal  PR_SET_PDEATHSIG SIGKILL: the workload dies with its monitor (and a monitor
                    already dead stops the start)
  seccomp           (with no_new_privs) as late as possible: as few calls as possible run after it
  exec              execve(2) the workload (PATH from the container's env)

Settings come from InitConfig.security (pyrun.runtime.security.effective_security); a config
without it is refused (fail closed: never run without seccomp and capability settings).

Fail closed: any exception ends in `error` to the monitor and _exit(1); the
workload is never executed after a failed step.
"""
from __future__ import annotations

import os
import signal
import socket

from pyrun import explain
from pyrun.cgroups.layout import parse_mountinfo
from pyrun.cgroups.view import CgroupView, container_view
from pyrun.linux import syscalls as linux
from pyrun.runtime import faults, rootfs, sync
# Everything the init needs after pivot_root must be imported now: the host's
# filesystem, and with it the Python library, is gone after that step.
from pyrun.linux import pty
from pyrun.linux.caps import preload as _preload_caps
from pyrun.runtime import finalize, security
from pyrun.runtime.records import InitConfig


class Step:
    """Names the set-up step in progress, so a failure says which one failed."""

    def __init__(self) -> None:
        self.name = "start"

    def __call__(self, name: str) -> None:
        self.name = name
        faults.check("init-" + name.replace(" ", "-").replace("/", ""))


def run(config: InitConfig, sock: socket.socket) -> None:
    """Never returns: execs the workload or exits 1 after reporting the failed step."""
    step = Step()
    try:
        sync.recv(sock, "go", timeout=120, peer="monitor")
        final = _set_up(config, step)
        became = {"uid": final.uid, "gid": final.gid, "groups": list(final.groups), "home": final.home}
        if config.tty:
            step("terminal")
            _send_ready_on_terminal(sock, became)
        else:
            sync.send(sock, "ready", **became)
        sync.recv(sock, "start", peer="monitor")
        step("parent death signal")
        _die_with_monitor(sock)
        finalize.load_late_seccomp(final, step)
        step("exec")
        _exec(final, sock)
    except BaseException as e:  # noqa: BLE001 - fail closed on anything
        try:
            sync.send_error(sock, step.name, _describe(e))
        finally:
            os._exit(1)


def _send_ready_on_terminal(sock: socket.socket, became: dict) -> None:
    """A tty container: a pty of its own devpts (/dev/ptmx after pivot_root, opened as the container's
    user, who then owns /dev/pts/0), the slave its stdin/stdout/stderr and controlling terminal (the init
    leads its own session), the master sent to the monitor with `ready`, as runc's console socket does."""
    explain.emit("# open /dev/ptmx: the workload's terminal; its master goes to the monitor")
    master, slave, _ = pty.open_pair()
    pty.become_stdio_and_ctty(slave)
    sync.send_fd(sock, "ready", master, **became)
    os.close(master)


def _die_with_monitor(sock: socket.socket) -> None:
    """PR_SET_PDEATHSIG SIGKILL: the workload dies with its monitor instead of running on unwatched.

    Set after the last credential change (setuid and raising capabilities clear it) and
    before execve; the C monitor execs in place, so the parent stays the same process.
    execve of a set-user-ID or file-capability binary clears it again: a stop still kills
    through the cgroup. The monitor sends nothing after `start`, so a readable socket here
    means it died before the signal was armed: give up rather than run unwatched.
    """
    import prctl  # loaded before pivot_root (pyrun.linux.caps.preload)
    import select
    explain.emit(explain.argv("setpriv", "--pdeathsig", "KILL"))
    prctl.set_pdeathsig(signal.SIGKILL)
    if select.select([sock], [], [], 0)[0]:
        raise ChildProcessError("the container's monitor died before the workload started")


def _describe(e: BaseException) -> str:
    if isinstance(e, sync.SyncError):
        return str(e)
    return str(e) or type(e).__name__


def _set_up(config: InitConfig, step: Step) -> finalize.Finalized:
    ns = config.namespaces
    sec = security.from_config(config)
    _preload_caps()
    security.preload(sec)
    step("join namespaces")
    joined = set()
    for kind in ("ipc", "uts", "net"):
        if ns.get(kind):
            linux.setns(ns[kind], kind)
            joined.add(kind)

    if sec.sysctls:
        step("sysctls")
        security.apply_sysctls(sec.sysctls, joined)

    step("mount namespace")
    linux.unshare(["mnt"])
    propagation = root_propagation(config.mounts)
    linux.set_propagation("/", propagation)

    step("rootfs")
    fs = config.rootfs
    root = fs.target
    if propagation == "rshared":
        rootfs.make_rootfs_parent_private(root)
    rootfs.mount_overlay(list(fs.lower), fs.upper, fs.work, root)

    step("mount /proc")
    rootfs.mount_proc(root)
    step("mount /dev")
    rootfs.mount_dev(root)
    if config.devices:
        step("device nodes")
        rootfs.make_device_nodes(root, config.devices)
    step("mount /sys")
    rootfs.mount_sys(root)
    if sec.privileged:
        security.make_sys_writable(root)
    step("mount /sys/fs/cgroup")
    rootfs.mount_cgroup_view(root, _cgroup_view(config), readonly=not sec.privileged)

    for m in config.mounts:
        step(f"mount {m.destination}")
        rootfs.bind_into(root, m.source, m.destination, m.readonly,
                         None if propagation == "rprivate" else m.propagation or "rprivate")

    step("masked paths")
    security.mask_paths(root, list(sec.masked_paths), list(sec.readonly_paths))

    step("pivot_root")
    linux.pivot_root(root)

    if sec.read_only_rootfs:
        step("read-only rootfs")
        security.remount_root_readonly()

    return finalize.become_container_process(sec, config.process, container=config.name, step=step)


def _cgroup_view(config: InitConfig) -> CgroupView:
    """The container's own cgroups as runc shows them (pyrun.cgroups.view), from the host's cgroup
    mounts: this mount namespace is still a copy of the host's."""
    with open("/proc/self/mountinfo") as f:
        return container_view(config.cgroup_procs, parse_mountinfo(f.read()))


def root_propagation(mounts) -> str:
    """What / of the container's mount namespace becomes (pure): rshared if a mount is rshared,
    rslave if one is rslave, else rprivate (pyrun's default: nothing propagates either way)."""
    kinds = {m.propagation for m in mounts}
    return "rshared" if "rshared" in kinds else "rslave" if "rslave" in kinds else "rprivate"


def _exec(final: finalize.Finalized, sock: socket.socket) -> None:
    os.set_inheritable(sock.fileno(), False)  # EOF on the monitor's end means exec succeeded
    explain_fd = os.environ.get(explain.ENV, "")
    if explain_fd.isdigit():
        os.set_inheritable(int(explain_fd), False)  # the workload must not hold the CLI's stderr
    finalize.exec_command(final)
