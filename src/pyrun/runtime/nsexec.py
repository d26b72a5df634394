"""Run a command inside a running container: `pyrun exec` and the CRI's Exec/ExecSync.

`run(cdir, argv, env, cwd)` runs in the CLI process itself (`pyrun exec` with --explain, or
for a container without an exec profile: otherwise the CLI execs the C helper of
pyrun.runtime.execprofile; it exits right after) or in a child the CRI server's zygote forks (pyrun.runtime.spawn, entry "exec"). It opens the
container's namespaces from /proc/<pid>/ns of its workload, joins its cgroups,
setns(2)es into each (the mount namespace last), then forks (a PID namespace only
applies to children) and the child execs the command as the container's user with
the container's environment and the container's security settings, through the same
pyrun.runtime.finalize sequence the container's init ran (user, rlimits, seccomp, bounding set,
setuid, capabilities, no_new_privs, chdir), so an exec gets exactly what the container's pid 1 has.
The exit code is passed through.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from pyrun import explain
from pyrun.errors import InvalidState
from pyrun.linux import syscalls as linux
from pyrun.linux.caps import preload as preload_caps
from pyrun.linux.procs import ProcessRef
from pyrun.runtime import finalize, security
from pyrun.runtime.records import ContainerStatus, InitConfig
from pyrun.runtime.status import require_running

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (`pyrun exec`'s start-up)
if TYPE_CHECKING:
    from typing import Callable

NS_ORDER = ("ipc", "uts", "net", "pid", "cgroup", "mnt")


def _load(cdir: Path) -> tuple[InitConfig, ContainerStatus]:
    from pyrun.runtime.state import read_config, read_status
    return read_config(cdir), read_status(cdir)


def enter(cdir: Path, argv: list[str], extra_env: list[str] | None = None, cwd: str | None = None,
          *, entered: Callable[[InitConfig], None] | None = None, forked: Callable[[], None] | None = None) -> int:
    """Join the container, run `argv` in a forked child, return its exit code. entered: called with the
    container's config once inside every namespace (the container's root is this process's root; nothing
    can be imported any more), before the fork; forked: called in this process once the command's process
    is forked (before waiting for it)."""
    config, status = _load(cdir)
    preload_caps()  # after setns into the mount namespace the host's Python library is out of sight
    security.preload(security.from_config(config))
    ref = status.workload
    require_running(config.name, status)
    if ref is None or not ref.alive():
        raise InvalidState(f"container {config.name} exited")
    fds = {kind: os.open(f"/proc/{ref.pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC) for kind in NS_ORDER}
    if ProcessRef.of(ref.pid) != ref:
        raise InvalidState(f"container {config.name} exited")
    for procs in config.cgroup_procs:
        linux.write_file(procs, str(os.getpid()))
    explain.emit(explain.argv("nsenter", f"--target={ref.pid}", "--ipc", "--uts", "--net", "--pid", "--mount",
                              "--", *argv))
    for kind in NS_ORDER:
        if os.readlink(f"/proc/self/ns/{kind}") != os.readlink(f"/proc/{ref.pid}/ns/{kind}"):
            _setns_fd(fds[kind], kind)
        os.close(fds[kind])
    if entered is not None:
        entered(config)
    pid = os.fork()
    if pid == 0:
        try:
            _child(config, argv, extra_env or [], cwd)
        except BaseException as e:  # noqa: BLE001
            os.write(2, f"pyrun exec: {e}\n".encode())
            os._exit(126 if not isinstance(e, FileNotFoundError) else 127)
    if forked is not None:
        forked()
    _, wstatus = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(wstatus)
    return 128 - code if code < 0 else code


def _setns_fd(fd: int, kind: str) -> None:
    from pyrun.errors import SyscallError
    lib = linux._need_lib()
    if lib.setns(fd, linux.NAMESPACE_FLAGS[kind]) != 0:
        raise SyscallError.from_errno(linux._ffi.errno, f"setns {kind}")


def _child(config: InitConfig, argv: list[str], extra_env: list[str], cwd: str | None) -> None:
    """Become the container's process (pyrun.runtime.finalize, as its init did) and exec `argv`."""
    final = finalize.become_container_process(security.from_config(config), config.process,
                                              container=config.name, args=argv,
                                              extra_env=extra_env, cwd=cwd)
    finalize.load_late_seccomp(final)
    finalize.exec_command(final)


def run(cdir: Path, argv: list[str], env: list[str] = (), cwd: str | None = None,
        forked: Callable[[], None] | None = None) -> int:
    """enter(), with errors reported on stderr as `pyrun: error: ...`; returns the exit code to exit with.
    The calling process has joined the container's namespaces and cgroups afterwards: it must exit."""
    try:
        return enter(cdir, argv, list(env), cwd, forked=forked)
    except Exception as e:  # noqa: BLE001 - report like the CLI does
        sys.stderr.write(f"pyrun: error: {e}\n")
        sys.stderr.flush()
        return getattr(e, "exit_code", 126)


def child_main(args: dict, sock=None) -> int:
    """The entry of an exec the CRI server's zygote forks (pyrun.runtime.spawn.ENTRIES["exec"]).

    With a sync socket (ExecSync), the caller's output pipes are left to the command once it is
    forked, and its exit code is sent as `exited` as soon as it is known: the caller has both
    without waiting for this process to exit and the zygote to reap it. With args["terminal"] (a tty
    exec), the socket carries the terminal's master instead (run_on_terminal)."""
    if args.get("terminal") and sock is not None:
        return run_on_terminal(sock, Path(args["cdir"]), list(args["argv"]), list(args.get("env") or []),
                               args.get("cwd"))
    forked = _leave_stdio_to_the_command if sock is not None else None
    code = run(Path(args["cdir"]), list(args["argv"]), list(args.get("env") or []), args.get("cwd"), forked)
    if sock is not None:
        with contextlib.suppress(OSError):
            from pyrun.runtime import sync
            sync.send(sock, "exited", code=code)
    return code


def _leave_stdio_to_the_command() -> None:
    """Point 0-2 at /dev/null: the command's end of the pipes is then the only one (EOF when it exits)."""
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def run_on_terminal(sock, cdir: Path, argv: list[str], env: list[str], cwd: str | None) -> int:
    """enter() with a pty of the container's own devpts as the command's stdio and controlling terminal
    (as runc's console): opened once inside the mount namespace, its master sent back on `sock`
    ("terminal", SCM_RIGHTS); a failure before that is sent there as an error, after it the terminal shows it."""
    from pyrun.errors import PyrunError
    from pyrun.linux import pty
    from pyrun.runtime import sync
    from pyrun.runtime.users import resolve_in_root
    sent = False

    def open_terminal(config: InitConfig) -> None:
        nonlocal sent
        master, slave, name = pty.open_pair()
        with contextlib.suppress(PyrunError, OSError):  # an unknown user: the command fails and says so
            os.fchown(slave, resolve_in_root(config.process.user).uid, -1)  # as runc: the user's terminal
        sync.send_fd(sock, "terminal", master, path=name)
        os.close(master)
        sent = True
        pty.become_stdio_and_ctty(slave)  # this process leads its own session (spawn's setsid)

    try:
        return enter(cdir, argv, env, cwd, entered=open_terminal)
    except Exception as e:  # noqa: BLE001 - reported to the server or on the terminal
        if not sent:
            with contextlib.suppress(OSError):
                sync.send_error(sock, "exec", str(e))
        else:
            sys.stderr.write(f"pyrun: error: {e}\n")
            sys.stderr.flush()
        return getattr(e, "exit_code", 126)
    finally:
        sock.close()


def job(cdir: Path, argv: list[str], env: list[str] = (), cwd: str | None = None, terminal: bool = False):
    """What a server hands pyrun.runtime.spawn to run `argv` in the container (stdio passed by the caller;
    with terminal, the exec opens a pty in the container and sends its master on the sync socket, see
    run_on_terminal)."""
    from pyrun.runtime.spawn import Job
    args = {"cdir": str(cdir), "argv": list(argv), "env": list(env), "cwd": cwd}
    return Job("exec", {**args, "terminal": True} if terminal else args, title=f"pyrun-exec {cdir}")
