"""A container's init: the forked child of the monitor that becomes the workload.

It runs in a process that the monitor forked right after it was freshly started
(single-threaded, no locks held). The monitor has already put it in the pod's PID
namespace (setns/unshare of pid applies to children) and in its cgroups. Steps, in
order, each reported by name if it fails:

  join namespaces   setns(2) into the pod's net, ipc and uts namespaces
  sysctls           the pod's securityContext.sysctls, written in the joined net/ipc namespaces
  mount namespace   unshare(CLONE_NEWNS); mount --make-rprivate /
  rootfs            mount -t overlay (image layers + the container's upper/work)
  /proc /dev /sys   fresh proc, tmpfs /dev with device nodes, devpts, shm, mqueue, ro sysfs
  mounts            /etc/hostname, /etc/hosts, /etc/resolv.conf and the volumes
  masked paths      /dev/null or an empty ro tmpfs over /proc/kcore & co; /proc/sys & co read-only
  pivot_root        the rootfs becomes /, the host's root is detached
  read-only rootfs  readOnlyRootFilesystem: remount / read-only
  user              resolve the user in the container's /etc/passwd and /etc/group; runAsNonRoot
  rlimits           RLIMIT_NOFILE (and NPROC) as planned at create time
  seccomp           (without no_new_privs) loading a filter needs CAP_SYS_ADMIN: load it now
  bounding set      drop every other capability from the bounding set; keep-caps on
  setuid            setgroups/setgid/setuid
  capabilities      effective/permitted/inheritable; a non-root user's added caps into ambient
  no_new_privs      allowPrivilegeEscalation: false
  chdir             into the working directory
  ... report `ready`, wait for `start` ...
  parent death signal  PR_SET_PDEATHSIG SIGKILL: the workload dies with its monitor (and a monitor
                    already dead stops the start)
  seccomp           (with no_new_privs) as late as possible: as few calls as possible run after it
  exec              execve(2) the workload (PATH from the container's env)

Settings come from config["security"] (pyrun.runtime.security.effective_security); a config
without it (older pyrun) gets the default capabilities and nothing else.

Fail closed: any exception ends in `error` to the monitor and _exit(1); the
workload is never executed after a failed step.
"""
from __future__ import annotations

import os
import signal
import socket

from pyrun import explain
from pyrun.linux import syscalls as linux
from pyrun.runtime import faults, rootfs, sync
# Everything the init needs after pivot_root must be imported now: the host's
# filesystem, and with it the Python library, is gone after that step.
from pyrun.linux import caps
from pyrun.linux.caps import preload as _preload_caps
from pyrun.runtime import security, seccomp
from pyrun.runtime.users import resolve_in_root


class Step:
    """Names the set-up step in progress, so a failure says which one failed."""

    def __init__(self) -> None:
        self.name = "start"

    def __call__(self, name: str) -> None:
        self.name = name
        faults.check("init-" + name.replace(" ", "-").replace("/", ""))


def run(config: dict, sock: socket.socket) -> None:
    """Never returns: execs the workload or exits 1 after reporting the failed step."""
    step = Step()
    try:
        sync.recv(sock, "go", timeout=120, peer="monitor")
        process = _set_up(config, step)
        sync.send(sock, "ready")
        sync.recv(sock, "start", peer="monitor")
        step("parent death signal")
        _die_with_monitor(sock)
        late = process.get("seccomp_late")
        if late:
            step("seccomp")
            seccomp.load(late["plan"], late["type"])
        step("exec")
        _exec(process, sock)
    except BaseException as e:  # noqa: BLE001 - fail closed on anything
        try:
            sync.send_error(sock, step.name, _describe(e))
        finally:
            os._exit(1)


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


def _set_up(config: dict, step: Step) -> dict:
    ns = config["namespaces"]
    sec = security.from_config(config)
    _preload_caps()
    security.preload(sec)
    step("join namespaces")
    joined = set()
    for kind in ("ipc", "uts", "net"):
        if ns.get(kind):
            linux.setns(ns[kind], kind)
            joined.add(kind)

    if sec.get("sysctls"):
        step("sysctls")
        security.apply_sysctls(sec["sysctls"], joined)

    step("mount namespace")
    linux.unshare(["mnt"])
    linux.make_private("/")

    step("rootfs")
    fs = config["rootfs"]
    root = fs["target"]
    rootfs.mount_overlay(fs["lower"], fs["upper"], fs["work"], root)

    step("mount /proc")
    rootfs.mount_proc(root)
    step("mount /dev")
    rootfs.mount_dev(root)
    step("mount /sys")
    rootfs.mount_sys(root)
    if sec.get("privileged"):
        security.make_sys_writable(root)

    for m in config.get("mounts", []):
        step(f"mount {m['destination']}")
        rootfs.bind_into(root, m["source"], m["destination"], m.get("readonly", False))

    step("masked paths")
    security.mask_paths(root, sec.get("masked_paths", []), sec.get("readonly_paths", []))

    step("pivot_root")
    linux.pivot_root(root)

    if sec.get("read_only_rootfs"):
        step("read-only rootfs")
        security.remount_root_readonly()

    process = config["process"]
    step("user")
    user = resolve_in_root(process.get("user", ""))
    security.check_non_root(sec, user.uid, process.get("user", ""), config.get("name", "?"))
    groups = security.container_groups(sec, user.groups)

    step("rlimits")
    for warning in security.apply_rlimits(sec.get("rlimits", {})):
        explain.emit(f"# warning: {warning}")  # stderr is the container's log: not the place

    plan = (sec.get("seccomp") or {}).get("plan")
    if plan and not sec.get("no_new_privs"):
        step("seccomp")
        seccomp.load(plan, sec["seccomp"]["type"])

    keep = sec.get("capabilities", [])
    step("bounding set")
    caps.drop_bounding(keep)
    caps.set_keep_caps(True)

    step("setuid")
    if user.uid != 0 or user.gid != 0 or groups:
        explain.emit(explain.argv("setpriv", f"--reuid={user.uid}", f"--regid={user.gid}",
                                  "--groups=" + ",".join(map(str, groups)) if groups else "--clear-groups"))
    os.setgroups(list(groups))
    os.setgid(user.gid)
    os.setuid(user.uid)

    step("capabilities")
    caps.apply_sets(keep, sec.get("ambient_capabilities", []) if user.uid != 0 else [])

    if sec.get("no_new_privs"):
        step("no_new_privs")
        security.set_no_new_privs()

    step("chdir")
    cwd = process.get("cwd") or "/"
    try:
        os.chdir(cwd)
    except FileNotFoundError:
        raise FileNotFoundError(f"working directory {cwd} does not exist in the container") from None

    env = list(process["env"])
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={user.home}")
    late = sec["seccomp"] if plan and sec.get("no_new_privs") else None
    return {"args": process["args"], "env": env, "seccomp_late": late}


def _exec(process: dict, sock: socket.socket) -> None:
    args = process["args"]
    env = dict(e.split("=", 1) for e in process["env"])
    explain.emit(explain.argv("exec", *args))
    os.set_inheritable(sock.fileno(), False)  # EOF on the monitor's end means exec succeeded
    explain_fd = os.environ.get(explain.ENV, "")
    if explain_fd.isdigit():
        os.set_inheritable(int(explain_fd), False)  # the workload must not hold the CLI's stderr
    env.pop(explain.ENV, None)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores these; the workload must not inherit that
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.execvpe(args[0], args, env)
    except FileNotFoundError:
        raise FileNotFoundError(f"{args[0]!r}: executable file not found in $PATH "
                                f"({env.get('PATH', '')})") from None
    except PermissionError:
        raise PermissionError(f"{args[0]!r}: permission denied") from None
