"""The per-container monitor (a "shim", like conmon or containerd-shim).

One small process per container, forked by pyrun.runtime.spawn (from the CLI, or from the
CRI server's zygote), titled `pyrun-monitor <container dir>` and detached (a second fork) from
its caller, so containers keep running after `pyrun` exits:

  * it forks the container's init (pyrun.runtime.init) into the pod's PID
    namespace (or a new one) and writes the child's pid into its cgroups
    *before* letting it continue, so nothing runs unconstrained;
  * it is the workload's parent: it reaps it and records exit code, finish time
    and reason (Completed, Error, OOMKilled) in status.json;
  * it copies the workload's stdout/stderr into the container log file in the
    CRI format (a tty container's terminal output, read from the pty's master, as stdout);
  * it holds the workload's input (stdin: true: its stdin pipe's write end; tty: true: the master of
    the pty the init opened in the container's devpts) and hands it to an attach (`attach` on
    ctl.sock, SCM_RIGHTS); with stdin_once it lets go of the pipe then, so the workload reads EOF
    when that attach ends (containerd's StdinOnce);
  * it listens on ctl.sock (SOCK_SEQPACKET) for `start`, `status`, `reopen-log` and
    `attach`, so `pyrun`/the CRI server can start a created container later.

See pyrun.runtime.sync for the message diagram.

Once the workload runs, the Python process (≈ 14 MiB RSS) is no longer needed:
it execve()s the small static C monitor (csrc/monitor.c -> pyrun/bin/monitor,
< 1 MiB RSS) in place. execve(2) keeps the pid (so monitor.json stays valid and
it is still the workload's parent) and the fds cleared of O_CLOEXEC:

  pyrun-monitor <cdir> (forked Python)         pyrun/bin/monitor (same pid)
    fork init, cgroups, go/ready
    status.json: created
    serve ctl.sock ... <- start
    init execs the workload (EOF)
    status.json: running
    execve(bin/monitor, --pid ... --stdout FD   --> replies start-ok on --reply FD
      --stderr FD --log-fd FD --ctl FD            copies pipes -> CRI log lines
      --reply FD --pending-stdout HEX ...)        answers status/reopen-log/start
                                                  waitpid, drain <= 1 s, OOM counter
                                                  exit.json (merged over status.json)
                                                  unlink ctl.sock, exit

If the monitor dies, its workload dies with it: the init arms PR_SET_PDEATHSIG (SIGKILL)
right before execve (pyrun.runtime.init), and no new monitor adopts a workload whose exit
status and output nobody could collect. The container then reads unknown (MonitorGone,
pyrun.runtime.status); a stop kills what is left through its cgroup and records the exit.

A container that is never started stays with the Python monitor. If the binary
is missing, the exec fails, or PYRUN_C_MONITOR=0, the Python monitor goes on
serving (the same protocol, the same log format) and records the exit itself.
"""
from __future__ import annotations

import contextlib
import errno
import os
import selectors
import signal
import socket
import sys
import time
from pathlib import Path

from pyrun import explain
from pyrun.frozen import replace
from pyrun.runtime import execprofile, sync
from pyrun.linux import syscalls as linux
from pyrun.runtime.logs import LineSplitter
from pyrun.linux.procs import ProcessRef
from pyrun.runtime.records import HOST_PID, ContainerStatus, StepError
from pyrun.runtime.state import (CONTAINER_CREATED, CONTAINER_EXITED, CONTAINER_RUNNING, now_ns, read_config,
                                 write_monitor, write_status)

CTL_SOCKET = "ctl.sock"
C_MONITOR = Path(__file__).resolve().parent.parent / "bin" / "monitor"
C_MONITOR_ENV = "PYRUN_C_MONITOR"  # "0": keep the Python monitor for the container's whole life


def c_monitor_enabled(env: dict | None = None, binary: Path = C_MONITOR) -> bool:
    """Whether to hand a started container over to the C monitor (default: yes, if it was built)."""
    env = os.environ if env is None else env
    return env.get(C_MONITOR_ENV, "1") != "0" and os.access(binary, os.X_OK)


def handoff_argv(*, binary: Path, cdir: Path, pid: int, start_time: int, started_at: int, stdout_fd: int,
                 stderr_fd: int, log_fd: int, log_path: Path, ctl_fd: int, reply_fd: int,
                 oom_events: str | None, oom_baseline: int, pending: dict[str, bytes],
                 supervise: list[str] = (), stdin_fd: int = -1, stdin_once: bool = False,
                 tty: bool = False) -> list[str]:
    """The C monitor's command line (pure); see csrc/monitor.c. A closed pipe is fd -1; no reply fd
    (a restarted instance: nobody asked) is -1. supervise: pyrun.runtime.supervise.supervise_argv.
    stdin_fd: what an attach gets (the stdin pipe's write end, or a tty's master, then also --stdout)."""
    argv = [str(binary), "--cdir", str(cdir), "--pid", str(pid), "--start-time", str(start_time),
            "--started-at", str(started_at), "--stdout", str(stdout_fd), "--stderr", str(stderr_fd),
            "--log-fd", str(log_fd), "--log-path", str(log_path), "--ctl", str(ctl_fd), "--reply", str(reply_fd),
            "--oom-events", oom_events or "", "--oom-baseline", str(oom_baseline)]
    for stream, data in pending.items():
        if data:
            argv += [f"--pending-{stream}", data.hex()]
    if stdin_fd >= 0:
        argv += ["--stdin", str(stdin_fd), "--stdin-once", str(int(stdin_once)), "--tty", str(int(tty))]
    return argv + list(supervise)


@contextlib.contextmanager
def _ctl_address(cdir: Path):
    """The address of cdir/ctl.sock for bind/connect: sun_path holds at most 108 bytes, so a long
    state root goes through an O_PATH descriptor of the directory (/proc/self/fd/N/ctl.sock)."""
    path = str(cdir / CTL_SOCKET)
    if len(path.encode()) < 100:
        yield path
        return
    dfd = os.open(cdir, os.O_PATH | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{dfd}/{CTL_SOCKET}"
    finally:
        os.close(dfd)


def connect(cdir: Path, timeout: float = 10.0) -> socket.socket:
    """Connect to a monitor's control socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(timeout)
    with _ctl_address(cdir) as address:
        s.connect(address)
    return s


def _connect_running(cdir: Path, timeout: float) -> socket.socket:
    try:
        return connect(cdir, timeout)
    except (FileNotFoundError, ConnectionRefusedError):
        from pyrun.errors import InvalidState
        raise InvalidState("the container's monitor is not running") from None


def request(cdir: Path, type_: str, timeout: float = 15.0, **fields) -> sync.Message:
    """Send one control request and return the reply (raises StepFailed on an error reply)."""
    with _connect_running(cdir, timeout) as s:
        sync.send(s, type_, **fields)
        return sync.recv(s, {type_ + "-ok"}, timeout=timeout, peer="container monitor")


def attach_input(cdir: Path, timeout: float = 15.0) -> int | None:
    """The workload's input from its monitor (`attach`): a tty's master or the stdin pipe's write end,
    ours to close; None if it has none (stdin: false, or stdin_once and an attach had it already)."""
    with _connect_running(cdir, timeout) as s:
        sync.send(s, "attach")
        return sync.recv_fd(s, "attach-ok", timeout=timeout, peer="container monitor")[1]


class Monitor:
    def __init__(self, cdir: Path, launcher: socket.socket | None, sup_state: str | None = None):
        """sup_state: the restart state a supervising C monitor handed over (a restarted instance)."""
        self.cdir = cdir
        self.config = read_config(cdir)
        self.launcher: socket.socket | None = launcher
        self.sup_state = sup_state
        self.status = ContainerStatus(state=CONTAINER_CREATED)
        self.child: ProcessRef | None = None
        self.init_sock: socket.socket | None = None
        self.log_path = Path(self.config.log_path)
        self.log = None
        self.oom_baseline = 0
        self.listener: socket.socket | None = None
        self.splitters: dict[int, LineSplitter] = {}
        self.stdin_w: int | None = None  # stdin: true: the write end of the workload's stdin (see attach)
        self.terminal: int | None = None  # tty: true: the pty's master (output, input, window size)
        self.became: dict = {}  # who the init became (its `ready`): the exec profile's user

    # --- status -------------------------------------------------------------------------------
    def save(self, **changes) -> None:
        self.status = replace(self.status, **changes)
        write_status(self.cdir, self.status)

    # --- start-up -----------------------------------------------------------------------------
    def start_init(self) -> None:
        """Fork the init into the pod's PID namespace, place it in its cgroups, wait for ready."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(self.log_path, "ab", buffering=0)
        out_w, err_w, in_r = self._make_stdio()
        mine, theirs = sync.socketpair()
        pid_ns = self.config.namespaces.get("pid")
        if pid_ns == HOST_PID:
            pass  # hostPID: the init stays in the node's PID namespace, where this monitor runs
        elif pid_ns:
            linux.setns(pid_ns, "pid")
        else:
            linux.unshare(["pid"])
        self.oom_baseline = self._oom_count()
        self._compile_seccomp_ahead()
        pid = os.fork()
        if pid == 0:  # the container's init
            try:
                mine.close()
                for fd in (self.out_r, self.err_r, self.stdin_w):
                    if fd is not None:
                        os.close(fd)
                self._child_stdio(in_r, out_w, err_w)
                from pyrun.runtime import init
                init.run(self.config, theirs)
            finally:
                os._exit(1)
        for fd in (out_w, err_w, in_r):
            if fd is not None:
                os.close(fd)
        theirs.close()
        self.init_sock = mine
        self.child = ProcessRef.of(pid)
        self.save(pid=pid, start_time=self.child.start_time)
        for procs in self.config.cgroup_procs:
            linux.write_file(procs, str(pid))
        sync.send(mine, "go")
        ready, terminal = sync.recv_fd(mine, "ready", timeout=120, peer="container init")
        self.became = ready.fields  # uid, gid, groups, home: for the exec profile
        if self.config.tty:
            if terminal is None:
                raise sync.SyncError("the container's init sent no terminal")
            self.terminal = self.out_r = terminal  # the workload's output, read as stdout
        elif terminal is not None:
            os.close(terminal)

    def _compile_seccomp_ahead(self) -> None:
        """Build the container's seccomp filter here, once: the init forked next loads it as built, and the
        exec profile's seccomp.bpf is written from it (pyrun.runtime.seccomp.compile_ahead). A plan that
        cannot be built is left to the init, which reports it at its seccomp step."""
        sec = self.config.security
        if sec is not None and sec.seccomp.plan:
            from pyrun.errors import PyrunError
            from pyrun.runtime import seccomp
            with contextlib.suppress(PyrunError, OSError, ValueError, TypeError):
                seccomp.compile_ahead(dict(sec.seccomp.plan))

    def _make_stdio(self) -> tuple[int | None, int | None, int | None]:
        """The workload's pipes: (stdout, stderr, stdin) ends for the init; self.out_r, err_r, stdin_w
        keep the others. A tty container gets none: its init makes a terminal its stdio."""
        self.out_r = self.err_r = None
        if self.config.tty:
            return None, None, None
        self.out_r, out_w = os.pipe()
        self.err_r, err_w = os.pipe()
        in_r = None
        if self.config.stdin:
            in_r, self.stdin_w = os.pipe()
        return out_w, err_w, in_r

    def _child_stdio(self, in_r: int | None, out_w: int | None, err_w: int | None) -> None:
        null = os.open("/dev/null", os.O_RDWR)
        os.dup2(null if in_r is None else in_r, 0)
        os.dup2(null if out_w is None else out_w, 1)
        os.dup2(null if err_w is None else err_w, 2)
        os.setsid()

    def _oom_count(self) -> int:
        path = self.config.oom_events
        if not path:
            return 0
        try:
            with open(path) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except OSError:
            pass
        return 0

    # --- control requests ---------------------------------------------------------------------
    def handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                msg = sync.recv(conn, {"start", "status", "reopen-log", "attach"}, timeout=5, peer="client")
            except (sync.SyncError, OSError, ValueError):
                return
            if msg.type == "status":
                sync.send(conn, "status-ok", **self.status.to_dict())
            elif msg.type == "reopen-log":
                self.log.close()
                self.log = open(self.log_path, "ab", buffering=0)
                sync.send(conn, "reopen-log-ok")
            elif msg.type == "start":
                self.start_workload(conn)
            elif msg.type == "attach":
                self.attach(conn)

    def attach(self, conn: socket.socket) -> None:
        """Hand the workload's input to an attach (as the C monitor does): the pty's master of a tty
        container, else its stdin pipe, which stdin_once lets go of, so the workload reads EOF once that
        attach closes it; attach-ok without a descriptor when there is none (any more)."""
        fd = self.terminal if self.terminal is not None else self.stdin_w
        if fd is None:
            sync.send(conn, "attach-ok", tty=False, stdin=False)
            return
        sync.send_fd(conn, "attach-ok", fd, tty=self.terminal is not None, stdin=True)
        if self.terminal is None and self.config.stdin_once:
            os.close(fd)
            self.stdin_w = None

    def start_workload(self, conn: socket.socket) -> None:
        if self.status.state != CONTAINER_CREATED or self.init_sock is None:
            sync.send_error(conn, "start", f"container is {self.status.state}, not created")
            return
        try:  # before the workload runs: a failure here must not leave it running without its monitor
            supervise = self._supervise_argv() if c_monitor_enabled() else []
        except Exception as e:  # noqa: BLE001 - e.g. ENOSPC writing seccomp.bpf: report it, start nothing
            self.save(error=StepError("supervise", f"the probes' and hooks' set-up: {e}"))
            sync.send_error(conn, "supervise", f"the probes' and hooks' set-up: {e}")
            return
        try:
            self._write_exec_profile()
        except Exception as e:  # noqa: BLE001 - fail closed: no start without the profile execs need
            self.save(error=StepError("exec profile", str(e)))
            sync.send_error(conn, "exec profile", str(e))
            return
        reply = self._release_init()
        if reply is None:
            self.save(state=CONTAINER_RUNNING, started_at=now_ns())
            if c_monitor_enabled():
                self.exec_c_monitor(conn, supervise)  # returns only if the exec failed
            if self.config.supervision is not None:
                print("pyrun monitor: restartPolicy, probes and hooks need the C monitor; this container gets none",
                      file=sys.stderr, flush=True)
            sync.send(conn, "start-ok", pid=self.child.pid)
        else:
            self.save(error=StepError(str(reply.get("step") or "exec"), str(reply.get("message") or "")))
            sync.send_error(conn, reply.get("step", "exec"), reply.get("message", ""))

    def exec_c_monitor(self, conn: socket.socket | None, supervise: list[str]) -> None:
        """Become pyrun/bin/monitor (same pid, same fds); it replies start-ok on `conn` (if any).
        supervise: _supervise_argv(), made before the workload started."""
        pipes = {"stdout": self.out_r, "stderr": self.err_r}
        fds = {name: fd if fd in self.splitters else -1 for name, fd in pipes.items()}
        reply_fd = conn.fileno() if conn is not None else -1
        stdin_fd = self.terminal if self.terminal is not None else self.stdin_w
        keep = [fd for fd in (*fds.values(), stdin_fd) if fd is not None and fd >= 0] + [
            self.log.fileno(), self.listener.fileno()]
        keep += [reply_fd] if reply_fd >= 0 else []
        argv = handoff_argv(binary=C_MONITOR, cdir=self.cdir, pid=self.child.pid, start_time=self.child.start_time,
                            started_at=self.status.started_at or 0, stdout_fd=fds["stdout"], stderr_fd=fds["stderr"],
                            log_fd=self.log.fileno(), log_path=self.log_path, ctl_fd=self.listener.fileno(),
                            reply_fd=reply_fd, oom_events=self.config.oom_events,
                            oom_baseline=self.oom_baseline,
                            pending={name: self.splitters[fd].buf for name, fd in pipes.items() if fd in self.splitters},
                            supervise=supervise,
                            stdin_fd=-1 if stdin_fd is None else stdin_fd, stdin_once=self.config.stdin_once,
                            tty=self.terminal is not None)
        for fd in keep:
            os.set_inheritable(fd, True)
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.execv(argv[0], argv)
        except OSError as e:
            print(f"pyrun monitor: exec {argv[0]}: {e}; the Python monitor goes on", file=sys.stderr, flush=True)
            for fd in keep:
                os.set_inheritable(fd, False)

    def _supervise_argv(self) -> list[str]:
        """The C monitor's restart/probe/hook arguments (none for a container without supervision)."""
        sup = self.config.supervision
        if sup is None:
            return []
        from pyrun.runtime.supervise import supervise_argv
        return supervise_argv(sup, python=sys.executable, netns=self.config.namespaces.get("net"),
                              cgroup_procs=self.config.cgroup_procs, workdir=self.config.process.cwd,
                              seccomp_bpf=self._seccomp_bpf(), state=self.sup_state)

    def _seccomp_bpf(self) -> str | None:
        """The container's seccomp filter as BPF (cdir/seccomp.bpf, made once), for exec probes and hooks
        (only when one runs: the C monitor loads it into them)."""
        sec = self.config.security
        has_exec = any(h.get("kind") == "exec" for h in (
            *[p["handler"] for p in self.config.supervision.probes.values()], *self.config.supervision.hooks.values()))
        if sec is None or not sec.seccomp.plan or not has_exec:
            return None
        return execprofile.write_seccomp_bpf(self.cdir, sec.seccomp.plan)

    def _write_exec_profile(self) -> None:
        """cdir/exec.json: what `pyrun exec` applies (pyrun.runtime.execprofile), as the init became it."""
        b = self.became
        execprofile.write(self.cdir, self.config, int(b["uid"]), int(b["gid"]), [int(g) for g in b["groups"]],
                          str(b["home"]))

    def restart(self, listener: socket.socket) -> None:
        """A restarted instance (the C monitor exec'd this process): a fresh init, started at once,
        then the C monitor again. An init that fails to start (it reported the failed step and exits 1)
        goes to the C monitor all the same, as an instance that exited at once: it records it and backs
        off before the next try, as the kubelet does with a container that cannot start."""
        self.listener = listener
        self.splitters = {}
        self.out_r = self.err_r = -1
        supervise: list[str] = []
        try:
            supervise = self._supervise_argv()
            self._kill_leftovers()
            self.start_init()
        except Exception as e:  # noqa: BLE001 - the C monitor must get an instance back, or nobody restarts
            self._failed_instance(e)
        else:
            self.splitters = {self.out_r: LineSplitter("stdout"), self.err_r: LineSplitter("stderr")}
            reply = self._release_init()
            if reply is not None:  # the init is a zombie until the C monitor reaps it
                self.save(started_at=now_ns(),
                          error=StepError(str(reply.get("step") or "exec"), str(reply.get("message") or "")))
            else:
                self.save(state=CONTAINER_RUNNING, started_at=now_ns())
        self.exec_c_monitor(None, supervise)  # returns only if the exec failed
        self.serve(listener)

    def _failed_instance(self, error: Exception) -> None:
        """An instance that could not be set up: its error recorded and, as its process, one that exits 1
        at once (the init, killed, if it was forked), so the C monitor records an exit and backs off."""
        step, message = (error.step, error.message) if isinstance(error, sync.StepFailed) else (
            "restart", str(error) or type(error).__name__)
        print(f"pyrun monitor: restart: {step}: {message}", file=sys.stderr, flush=True)
        if self.init_sock is not None:
            self.init_sock.close()
            self.init_sock = None
        if self.log is None:
            self.log = open(os.devnull, "ab", buffering=0)
        if self.child is not None and self.child.alive():
            self.child.signal(signal.SIGKILL)
        else:
            with contextlib.suppress(OSError):  # a PID namespace whose init is gone takes no fork
                linux.setns("/proc/self/ns/pid", "pid")
            pid = os.fork()
            if pid == 0:
                os._exit(1)
            self.child = ProcessRef.of(pid)
        self.save(pid=self.child.pid, start_time=self.child.start_time, started_at=now_ns(),
                  error=StepError(step, message))

    def _release_init(self) -> "sync.Message | None":
        """Tell the waiting init to exec the workload; None once it has (its socket closed on exec),
        else its error."""
        sync.send(self.init_sock, "start")
        try:
            reply = sync.wait_eof_or_message(self.init_sock, timeout=30)
        except sync.SyncError as e:
            reply = sync.Message("error", {"step": "exec", "message": str(e)})
        self.init_sock.close()
        self.init_sock = None
        return reply

    def _kill_leftovers(self) -> None:
        """What the previous instance left in the container's cgroups (in a shared PID namespace its
        children outlive it), so the next one starts clean; and the PID namespace to fork the init into."""
        for procs in self.config.cgroup_procs:
            with contextlib.suppress(OSError, ValueError):
                for pid in Path(procs).read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
        if not self.config.namespaces.get("pid"):  # unshare(CLONE_NEWPID) again needs our own one back first
            linux.setns("/proc/self/ns/pid", "pid")

    # --- the loop -----------------------------------------------------------------------------
    def serve(self, listener: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        self.listener = listener
        # the pipes not yet at EOF, and the bytes read from them but not yet written
        splitters = self.splitters = {fd: LineSplitter(name) for fd, name in ((self.out_r, "stdout"),
                                                                               (self.err_r, "stderr")) if fd is not None}
        for fd in splitters:
            sel.register(fd, selectors.EVENT_READ, "pipe")
        sel.register(listener, selectors.EVENT_READ, "ctl")
        pidfd = os.pidfd_open(self.child.pid)
        sel.register(pidfd, selectors.EVENT_READ, "exit")
        exited = False
        while not exited:
            for key, _ in sel.select():
                if key.data == "ctl":
                    conn, _ = listener.accept()
                    self.handle(conn)
                elif key.data == "pipe":
                    if not self._copy(key.fd, splitters[key.fd]):
                        sel.unregister(key.fd)
                        os.close(key.fd)
                        del splitters[key.fd]
                        if key.fd == self.terminal:
                            self.terminal = None
                elif key.data == "exit":
                    exited = True
        _, wstatus = os.waitpid(self.child.pid, 0)
        self._drain(splitters)
        self._record_exit(wstatus)

    def _copy(self, fd: int, splitter: LineSplitter) -> bool:
        try:
            data = os.read(fd, 65536)
        except OSError as e:  # EIO: a pty whose last slave closed (the workload exited)
            if e.errno != errno.EIO:
                raise
            data = b""
        if not data:
            for entry in splitter.flush(now_ns()):
                self.log.write(entry)
            return False
        for entry in splitter.feed(data, now_ns()):
            self.log.write(entry)
        return True

    def _drain(self, splitters: dict[int, LineSplitter]) -> None:
        """Copy what is left in the pipes; give up after a second if something still holds them open."""
        deadline = time.monotonic() + 1.0
        open_fds = set(splitters)
        while open_fds and time.monotonic() < deadline:
            import select
            ready, _, _ = select.select(list(open_fds), [], [], max(0.0, deadline - time.monotonic()))
            for fd in ready:
                if not self._copy(fd, splitters[fd]):
                    open_fds.discard(fd)
        for fd, splitter in splitters.items():
            for entry in splitter.flush(now_ns()):
                self.log.write(entry)

    def _record_exit(self, wstatus: int) -> None:
        outcome = exit_outcome(os.waitstatus_to_exitcode(wstatus), oom=self._oom_count() > self.oom_baseline,
                               started=self.status.state != CONTAINER_CREATED)
        self.save(state=CONTAINER_EXITED, finished_at=now_ns(), **outcome)


def exit_outcome(code: int, *, oom: bool, started: bool) -> dict:
    """exit_code, reason and signal of a workload that exited (pure). code: as os.waitstatus_to_exitcode
    gives it, negative for a signal; recorded as the shell does, 128 + the signal number."""
    signaled = code < 0
    if signaled:
        code = 128 - code
    if oom:
        reason = "OOMKilled"
    elif not started:
        reason = "NeverStarted"
    elif code == 0:
        reason = "Completed"
    else:
        reason = "Error"
    return {"exit_code": code, "reason": reason, "signal": _signal_name(code - 128) if signaled else None}


def _signal_name(number: int) -> str | None:
    """SIGTERM for 15; None for a real-time signal (SIGRTMIN+n has no name of its own, as in the C monitor)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return None


def _listen(cdir: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    path = cdir / CTL_SOCKET
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    with _ctl_address(cdir) as address:
        s.bind(address)
    os.chmod(path, 0o600)
    s.listen(16)
    return s


def run(cdir: Path, launcher: socket.socket) -> int:
    mon = Monitor(cdir, launcher)
    write_monitor(cdir, ProcessRef.of(os.getpid()))
    try:
        mon.start_init()
        listener = _listen(cdir)
    except BaseException as e:  # report and clean up: the workload must never run
        step, message = (e.step, e.message) if isinstance(e, sync.StepFailed) else ("monitor", str(e) or type(e).__name__)
        if mon.child:
            mon.child.signal(signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(mon.child.pid, 0)
        mon.save(state=CONTAINER_EXITED, exit_code=-1, reason="StartError", error=StepError(step, message),
                 finished_at=now_ns())
        with contextlib.suppress(OSError):
            sync.send_error(launcher, step, message)
        return 1
    with contextlib.suppress(OSError):  # a CRI server that went away meanwhile: the container stays created
        sync.send(launcher, "ready", pid=mon.child.pid, start_time=mon.child.start_time)
    launcher.close()
    explain.disable_fd()
    try:
        mon.serve(listener)
    finally:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            (cdir / CTL_SOCKET).unlink()
    return 0


def child_main(args: dict, launcher: socket.socket) -> int:
    """The monitor's entry (pyrun.runtime.spawn.ENTRIES["monitor"], started detached)."""
    return run(Path(args["cdir"]), launcher)


def restart_main(argv: list[str]) -> int:
    """`python -m pyrun.runtime.monitor --restart --cdir D --ctl FD --sup-state S`: the C monitor of a
    supervised container exec'd this (same pid) to start the container's next instance."""
    opts = dict(zip(argv[1::2], argv[2::2])) if argv[:1] == ["--restart"] else {}
    cdir, ctl = Path(opts["--cdir"]), int(opts["--ctl"])
    from pyrun.runtime import spawn
    spawn.set_title(f"pyrun-monitor {cdir}")
    spawn.close_fds_except({ctl})
    explain.disable_fd()
    listener = socket.socket(fileno=ctl)
    os.set_inheritable(ctl, False)
    mon = Monitor(cdir, None, sup_state=opts.get("--sup-state"))
    try:
        mon.restart(listener)
    finally:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            (cdir / CTL_SOCKET).unlink()
    return 0


if __name__ == "__main__":
    sys.exit(restart_main(sys.argv[1:]))
