"""Start pyrun's helper processes by fork(2), never by starting a Python interpreter.

The helpers are Python functions (the sandbox launcher, a container's monitor, an exec):

  ENTRIES name -> module:function(args: dict, sock: socket | None) -> exit code

`spawn(job, sock=..., stdio=...)` starts one:

  * in the CLI (single-threaded) it forks the CLI itself: the child already has every
    module imported, so it costs a fork, not an interpreter start (≈ 100 ms);
  * in `pyrun cri serve` (threaded: a fork of it could inherit a lock held by another
    thread) it asks the zygote, a single-threaded helper the server forked at boot before
    any thread existed, to fork the child (pyrun.runtime.zygote).

Either way the child is made the same way (`become`): signal dispositions as a fresh
interpreter has them, a new session, stdin /dev/null and stdout/stderr appended to the
job's log file (or the stdio descriptors passed in), every other descriptor closed but
the sync socket and the explain sink, a process title that names the job and its
directory (`pyrun-monitor <cdir>`: ps and the tests' leak checks look for the state root
in /proc/<pid>/cmdline), optionally a second fork to detach; then the entry runs and the
child always ends in os._exit: it never returns into the caller's stack (Click, gRPC, pytest).

Messages between the caller and the child keep going over the sync socket (pyrun.runtime.sync).
"""
from __future__ import annotations

import gc
import importlib
import os
import signal
import socket
import sys
import threading
import time

from pyrun.errors import PyrunError
from pyrun.frozen import Frozen

ENTRIES = {
    "sandbox": ("pyrun.runtime.sandbox", "child_main"),
    "monitor": ("pyrun.runtime.monitor", "child_main"),
    "exec": ("pyrun.runtime.nsexec", "child_main"),
}

# What the helpers import after their fork (the monitor forks the container's init, which imports
# pyrun.runtime.init): a forking process imports these beforehand (preload, the zygote).
CHILD_MODULES = ("pyrun.runtime.init",)

# What the helpers import inside functions, on their way (the init: resource, the sysctl names, the
# overlay's mount data, mountinfo; an exec: resource and the sysctl names; the sandbox launcher: loopback).
# The zygote imports them once, so no container init, exec or sandbox imports anything after its fork.
LAZY_CHILD_MODULES = ("resource", "pyrun.spec.security", "pyrun.images.overlay", "pyrun.linux.mounts",
                      "pyrun.netns.loopback")

EXIT_FAILED = 126  # the child could not run its entry (as a shell reports a command that cannot run)


class SpawnError(PyrunError):
    """A helper process could not be started."""


class Job(Frozen):
    """What a child runs (JSON-able, so it can travel to the zygote).

    entry: a key of ENTRIES; args: its arguments; title: the process title;
    log: a file for stdout and stderr (append), or None when stdio descriptors are passed;
    detach: fork once more and let the first child exit (the job outlives its caller).
    """

    entry: str
    args: dict
    title: str
    log: str | None = None
    detach: bool = False

    def to_dict(self) -> dict:
        return {"entry": self.entry, "args": self.args, "title": self.title, "log": self.log, "detach": self.detach}

    @classmethod
    def from_dict(cls, d: dict) -> "Job":
        if d.get("entry") not in ENTRIES:
            raise SpawnError(f"unknown helper {d.get('entry')!r}")
        return cls(entry=d["entry"], args=dict(d.get("args") or {}), title=str(d.get("title", "")),
                   log=d.get("log"), detach=bool(d.get("detach")))


# --- the child ---------------------------------------------------------------------------------------

def reset_signals() -> None:
    """Signal dispositions and mask as a freshly started interpreter has them."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    try:
        signal.set_wakeup_fd(-1)
    except ValueError:
        pass
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        if sig == signal.SIGINT:
            wanted = signal.default_int_handler
        elif sig in (signal.SIGPIPE, signal.SIGXFSZ):
            wanted = signal.SIG_IGN
        else:
            wanted = signal.SIG_DFL
        try:
            if signal.getsignal(sig) is not wanted:
                signal.signal(sig, wanted)
        except (OSError, ValueError):
            pass


def _set_stdio(log: str | None, stdio: tuple[int, int, int] | None) -> None:
    import fcntl
    if stdio is None:
        null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        out = os.open(log or "/dev/null", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        stdio = (null, out, out)
    # move the sources above 2 first, so dup2 onto 0..2 cannot overwrite one still needed
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3) for fd in stdio]
    for target, fd in enumerate(high):
        os.dup2(fd, target, inheritable=True)
    for fd in set(high):
        os.close(fd)
    # the caller's sys.stdout may not write to fd 1 (pytest's capture, a redirected stream): start afresh
    sys.stdin = open(0, "r", closefd=False)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")


def close_fds_except(keep: set[int]) -> None:
    """Close every descriptor above 2 but those in `keep` (close_range(2) over the gaps)."""
    low = 3
    for fd in sorted(k for k in keep if k >= 3):
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)


def set_title(title: str) -> None:
    """Name the process in ps and /proc/<pid>/cmdline (and comm, cut to 15 bytes)."""
    try:
        import prctl
    except ImportError:
        return
    try:
        prctl.set_proctitle(title)
        prctl.set_name(title.split(" ", 1)[0][:15])
    except (OSError, ValueError):
        pass


def entry_function(name: str):
    module, func = ENTRIES[name]
    return getattr(importlib.import_module(module), func)


def become(job: Job, sock_fd: int | None, stdio: tuple[int, int, int] | None, keep: tuple[int, ...] = ()) -> None:
    """Turn a freshly forked child into `job`; never returns."""
    code = EXIT_FAILED
    try:
        gc.freeze()  # objects of the caller's stack stay alive: no collection may close a descriptor of theirs
        reset_signals()
        os.setsid()
        if sock_fd is not None and sock_fd < 3:  # stdio goes there next
            import fcntl
            sock_fd = fcntl.fcntl(sock_fd, fcntl.F_DUPFD_CLOEXEC, 3)
        keep = tuple(fd for fd in keep if fd >= 3)
        _set_stdio(job.log, stdio)
        close_fds_except({fd for fd in (sock_fd, *keep) if fd is not None})
        set_title(job.title)
        if job.detach:
            os.chdir("/")  # outlives the caller: never in (nor holding) the directory it was started from
            if os.fork() != 0:
                os._exit(0)  # the caller reaps this one; the job goes on, re-parented to init
        sock = socket.socket(fileno=sock_fd) if sock_fd is not None else None
        code = entry_function(job.entry)(job.args, sock)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - report into the log, never return into the caller
        import traceback
        try:
            traceback.print_exc()
        except BaseException:  # noqa: BLE001
            pass
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:  # noqa: BLE001
                pass
        os._exit(code if isinstance(code, int) and 0 <= code < 256 else 1)


# --- the caller --------------------------------------------------------------------------------------

class Child:
    """A started helper: its pid, its exit code once it ends, and kill() for its process group."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        raise NotImplementedError

    def wait(self, timeout: float | None = None) -> int:
        """The exit code as subprocess reports it (-N: killed by signal N); TimeoutError after `timeout`."""
        raise NotImplementedError

    def let_go(self, timeout: float | None = None) -> None:
        """Its exit code is known another way: reap it (this process's child) or stop listening for it."""
        self.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the child's process group (it is a session leader) while it has not been reaped
        (nothing while its pid is not known yet: pid 0 would be our own group)."""
        if self.returncode is None and self.pid > 0:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


class ForkedChild(Child):
    """A child of this process (the CLI's path)."""

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is not None:
            return self.returncode
        if timeout is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
            return self.returncode
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"helper {self.pid} still runs after {timeout:g}s")
            time.sleep(0.005)
        return self.returncode


_zygote = None  # the pyrun.runtime.zygote.Client of a threaded server, once it started one


def use_zygote(client) -> None:
    """From now on, start every helper from this zygote (None: fork this process again)."""
    global _zygote
    _zygote = client


def current_zygote():
    """The zygote this process starts helpers from (None: it forks itself)."""
    return _zygote


def require_single_thread(what: str) -> None:
    """fork(2) copies only the calling thread: a lock another thread holds stays locked forever in
    the child. Refuse rather than risk it."""
    count = threading.active_count()
    if count > 1:
        names = ", ".join(t.name for t in threading.enumerate() if t is not threading.current_thread())
        raise SpawnError(f"cannot fork {what}: this process runs {count} threads ({names}); "
                         "helpers must be forked from a single-threaded process (the CLI or the CRI zygote)")


def _explain_fd() -> int | None:
    from pyrun import explain
    value = os.environ.get(explain.ENV, "")
    return int(value) if value.isdigit() else None


def preload(job: Job) -> None:
    """Import before the fork what the child imports first (its entry module; prctl, for its title;
    CHILD_MODULES): once per process instead of once per child, and off the child's critical path."""
    entry_function(job.entry)
    for module in CHILD_MODULES:
        importlib.import_module(module)
    try:
        import prctl  # noqa: F401
    except ImportError:
        pass


def preload_seccomp() -> None:
    """Load libseccomp (ctypes) in a process that forks container inits and execs, so each of them
    does not (about 15 ms each on the test VM). Without the library, nothing: the child that needs it
    fails with the clear error then."""
    from pyrun.errors import PyrunError
    from pyrun.runtime import seccomp
    try:
        seccomp.preload()
    except PyrunError:
        pass


def compile_default_seccomp() -> None:
    """Build RuntimeDefault's filter for the default capabilities once, in a process that forks many
    container inits and execs (the zygote): each of them then loads it as built. Without libseccomp,
    nothing (the child that needs it fails with the clear error then)."""
    from pyrun.errors import PyrunError
    from pyrun.runtime import seccomp, security
    try:
        seccomp.compile_ahead(security.default_seccomp_plan())
    except PyrunError:
        pass


def fork_child(job: Job, sock: socket.socket | None = None,
               stdio: tuple[int, int, int] | None = None) -> ForkedChild:
    """Fork this (single-threaded) process into `job`."""
    require_single_thread(job.entry)
    preload(job)
    for stream in (sys.stdout, sys.stderr):  # or the child's copy of the buffer is written twice
        stream.flush()
    keep = tuple(fd for fd in (_explain_fd(),) if fd is not None)
    sock_fd = sock.fileno() if sock is not None else None
    pid = os.fork()
    if pid == 0:
        become(job, sock_fd, stdio, keep)
    return ForkedChild(pid)


def _reported(report: socket.socket, timeout: float | None) -> int | None:
    """The exit code a child sent on `report`; None if it closed it without (it died first)."""
    import select

    from pyrun.runtime import sync
    if timeout is not None and not select.select([report], [], [], timeout)[0]:
        raise TimeoutError(f"the command's exit code did not come within {timeout:g}s")
    try:
        return int(sync.recv(report, "exited", peer="exec")["code"])
    except (sync.SyncError, OSError, ValueError, KeyError, TypeError):
        return None


def spawn(job: Job, sock: socket.socket | None = None, stdio: tuple[int, int, int] | None = None,
          wait_started: bool = True) -> Child:
    """Start `job`: from the zygote if this process has one, else by forking this process.
    wait_started=False: from the zygote, return once it has the request (pid and spawn errors come
    with the child's first poll or wait)."""
    if _zygote is not None:
        return _zygote.spawn(job, sock, stdio, wait_started=wait_started)
    return fork_child(job, sock, stdio)


def spawn_synced(job: Job, wait_started: bool = True) -> tuple[Child, socket.socket]:
    """Spawn `job` holding one end of a new SEQPACKET socketpair; return the child and our end."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        child = spawn(job, sock=theirs, wait_started=wait_started)
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return child, ours


def communicate(child: Child, out_fd: int, err_fd: int, timeout: float | None,
                sinks: tuple | None = None, report: socket.socket | None = None) -> tuple[bytes, bytes, int]:
    """Read a child's stdout and stderr pipes to their end and wait for it: (out, err, exit code).
    sinks: two objects with write(bytes) (e.g. capped buffers) that take the output instead; the
    returned out and err are then empty. report: a socket the child sends its exit code on
    (`exited`, as soon as it knows it): then its own exit is not waited for (child.let_go()).
    TimeoutError after `timeout` seconds (the caller kills it). The descriptors are closed."""
    import selectors
    deadline = None if timeout is None else time.monotonic() + timeout
    chunks: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    sel = selectors.DefaultSelector()
    try:
        for fd in chunks:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"the command still runs after {timeout:g}s")
            for key, _ in sel.select(left):
                data = os.read(key.fd, 65536)
                if data and sinks is not None:
                    sinks[0 if key.fd == out_fd else 1].write(data)
                elif data:
                    chunks[key.fd].append(data)
                else:
                    sel.unregister(key.fd)
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        code = _reported(report, left) if report is not None else None
        if code is None:
            code = child.wait(left)
        else:
            child.let_go(left)
    finally:
        sel.close()
        for fd in chunks:
            os.close(fd)
    return b"".join(chunks[out_fd]), b"".join(chunks[err_fd]), code
