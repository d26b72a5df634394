"""The last steps before a container process execs: the one security sequence of pyrun.

Both ways into a container end here, so they cannot drift apart:
  * the container's init (pyrun.runtime.init), after its mounts and pivot_root;
  * an exec helper (pyrun.runtime.nsexec), after it joined the running container's namespaces.
Either way the process becomes exactly the container's process: same user, groups, rlimits,
bounding set, capabilities, no_new_privs and seccomp filter. (`pyrun exec`'s C helper, csrc/become.c,
applies the same settings in the same order from the exec profile the init's result is recorded in:
pyrun.runtime.execprofile.) The order is runc's:

  user            resolve the user in the container's /etc/passwd and /etc/group; runAsNonRoot
  rlimits         RLIMIT_NOFILE (and NPROC) as planned at create time
  seccomp         without no_new_privs: loading a filter needs CAP_SYS_ADMIN, so load it while root
  bounding set    drop every capability not kept; keep-caps on (permitted survives setuid)
  setuid          setgroups / setgid / setuid
  capabilities    effective = permitted = inheritable = kept; a non-root user's added caps into ambient
  no_new_privs    allowPrivilegeEscalation: false
  chdir           into the working directory
  ... (the init reports `ready` and waits for `start` here) ...
  seccomp         with no_new_privs: as late as possible, so as few calls as possible run after it
  exec            execve(2) the command (PATH from the container's environment)

`step` names each step before it runs (the init reports the failed step by that name, and failure
injection hooks onto it); any exception leaves the caller to fail closed.
"""
from __future__ import annotations

import os
import signal

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a CLI command's start-up)
if TYPE_CHECKING:
    from typing import Callable, Sequence

from pyrun import explain
from pyrun.frozen import Record
from pyrun.linux import caps
from pyrun.runtime import seccomp, security
from pyrun.runtime.execprofile import container_env, merge_env
from pyrun.runtime.records import ProcessSpec, SeccompPlan, SecurityPlan
from pyrun.runtime.users import resolve_in_root


class Finalized(Record):
    """What is left after `become_container_process`: the command, its environment and the late seccomp;
    and who the process became (the exec profile records it: pyrun.runtime.execprofile)."""
    args: list[str]
    env: list[str]
    late_seccomp: SeccompPlan | None = None
    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = ()
    home: str = "/"


def _no_step(name: str) -> None:
    pass


def become_container_process(sec: SecurityPlan, process: ProcessSpec, *, container: str,
                             args: list[str] | None = None, extra_env: Sequence[str] = (), cwd: str | None = None,
                             step: Callable[[str], None] = _no_step) -> Finalized:
    """Apply the container's credentials and security to this process (see the module docstring).

    process: config.json's process (args, env, cwd, user). args/extra_env/cwd override it for an exec.
    """
    step("user")
    user_spec = process.user
    user = resolve_in_root(user_spec)
    security.check_non_root(sec, user.uid, user_spec, container)
    groups = security.container_groups(sec, user.groups)

    step("rlimits")
    for warning in security.apply_rlimits(sec.rlimits):
        explain.emit(f"# warning: {warning}")  # stderr is the container's log: not the place

    plan = sec.seccomp.plan
    no_new_privs = sec.no_new_privs
    if plan and not no_new_privs:
        step("seccomp")
        seccomp.load(dict(plan), sec.seccomp.type or "")

    keep = list(sec.capabilities)
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
    caps.apply_sets(keep, list(sec.ambient_capabilities) if user.uid != 0 else [])

    if no_new_privs:
        step("no_new_privs")
        security.set_no_new_privs()

    step("chdir")
    workdir = cwd or process.cwd or "/"
    try:
        os.chdir(workdir)
    except FileNotFoundError:
        raise FileNotFoundError(f"working directory {workdir} does not exist in the container") from None

    env = merge_env(container_env(process.env, user.home), extra_env)
    late = sec.seccomp if plan and no_new_privs else None
    return Finalized(args=list(args if args is not None else process.args), env=env, late_seccomp=late,
                     uid=user.uid, gid=user.gid, groups=tuple(groups), home=user.home)


def load_late_seccomp(final: Finalized, step: Callable[[str], None] = _no_step) -> None:
    """With no_new_privs the filter goes on last, right before execve."""
    late = final.late_seccomp
    if late is not None and late.plan:
        step("seccomp")
        seccomp.load(dict(late.plan), late.type or "")


def exec_command(final: Finalized) -> None:
    """execve(2) the command with the container's environment; never returns."""
    args = final.args
    env = dict(e.split("=", 1) for e in final.env)
    env.pop(explain.ENV, None)
    explain.emit(explain.argv("exec", *args))
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores these; the workload must not inherit that
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.execvpe(args[0], args, env)
    except FileNotFoundError:
        raise FileNotFoundError(f"{args[0]!r}: executable file not found in $PATH "
                                f"({env.get('PATH', '')})") from None
    except PermissionError:
        raise PermissionError(f"{args[0]!r}: permission denied") from None
