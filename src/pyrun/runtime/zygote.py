"""The zygote of `pyrun cri serve`: a single-threaded helper that forks every sandbox, monitor and exec.

gRPC runs handlers on threads, and a fork of a threaded process may inherit a lock another
thread held (in malloc, in logging, in the import system) and hang. So the server forks the
zygote at start-up, before grpc or any other thread exists; the zygote imports the runtime
modules once and then forks one child per request (pyrun.runtime.spawn.become), as Android's
zygote and multiprocessing's forkserver do.

  server thread                                     zygote (single-threaded)
      | socketpair(reply)                               |
      | -- spawn {job} + fds [reply, sock, stdio] -->   |  (one SOCK_SEQPACKET datagram, SCM_RIGHTS)
      |                                                 |  fork --> child: become(job)
      | <------------- started {pid} ---------- reply   |  pidfd_open(child)
      |   ... talks to the child over `sock` ...        |  ... serves other requests ...
      | <------------- exited {code} ---------- reply   |  pidfd readable: waitpid, report
      |
  Any error the zygote meets for a request goes back on that request's reply socket as
  {"type": "error", "step": "spawn", ...}. The zygote never waits on one request: it forks
  and returns to its loop, and reaps children as their pidfds become readable.

Lifetime: the zygote dies with the server (PR_SET_PDEATHSIG SIGKILL, and it exits when its
channel reaches EOF). What it started lives on: monitors are detached (double fork) and
re-parented to init, as with the CLI. A server whose zygote crashed gets a clear error on
every request that needs a helper (`ZygoteGone`), never a hang: the reply socket reaches EOF.
"""
from __future__ import annotations

import importlib
import json
import os
import selectors
import signal
import socket
import sys
import threading

from pyrun.runtime import spawn, sync

MAX_FDS = 8
START_TIMEOUT = 30.0
EXIT_UNKNOWN = -256  # the returncode of a child let go (its exit code came another way)


class ZygoteGone(spawn.SpawnError):
    """The zygote is not there to fork a helper."""


# --- the server's side -------------------------------------------------------------------------------

class ZygoteChild(spawn.Child):
    """A child of the zygote: its exit code arrives on the request's reply socket. Spawned with
    started=False, its "started" answer (pid 0 until then) is read on the first poll or wait."""

    def __init__(self, pid: int, reply: socket.socket, started: bool = True, entry: str = ""):
        super().__init__(pid)
        self.reply = reply
        self._started = started
        self._entry = entry
        self._lock = threading.Lock()  # one reader of the reply socket at a time
        self._let_go = False  # let_go() was called: whoever holds the lock last closes the reply socket

    def _take(self, timeout: float | None) -> int | None:
        """Read the exit status (lock held); None if it did not come within `timeout`."""
        import select
        if self.returncode is not None:
            return self.returncode
        if not self._started:
            if timeout is not None and not select.select([self.reply], [], [], timeout)[0]:
                return None
            try:
                self.pid = _started(self.reply, self._entry)
            except BaseException:
                self.reply.close()
                self.returncode = spawn.EXIT_FAILED
                raise
            self._started = True
        if timeout is not None:
            ready, _, _ = select.select([self.reply], [], [], timeout)
            if not ready:
                return None
        try:
            msg = sync.recv(self.reply, "exited", peer="pyrun zygote")
        except (sync.SyncError, OSError, ValueError) as e:
            self.reply.close()
            self.returncode = spawn.EXIT_FAILED  # nobody can tell any more
            raise ZygoteGone(f"lost the exit status of helper {self.pid}: {e}") from None
        self.returncode = int(msg["code"])
        self.reply.close()
        return self.returncode

    def poll(self) -> int | None:
        """The exit code, or None while it runs (or while another thread waits for it)."""
        if self.returncode is None and self._lock.acquire(blocking=False):
            try:
                self._take(0)
            finally:
                self._unlock()
        return self.returncode

    def let_go(self, timeout: float | None = None) -> None:
        """Stop listening for its exit (the zygote reaps it; its answer then goes nowhere). With another
        thread reading the reply socket now, that thread closes it when it is done."""
        self._let_go = True
        self._close_if_let_go()

    def _close_if_let_go(self) -> None:
        if self._lock.acquire(blocking=False):
            try:
                if self.returncode is None:
                    self.returncode = EXIT_UNKNOWN
                    self.reply.close()
            finally:
                self._lock.release()

    def _unlock(self) -> None:
        """Release the reader's lock; a let_go() that came meanwhile could not close: close now. (The flag
        is set before let_go tries the lock and read here after the release, so one of the two closes.)"""
        self._lock.release()
        if self._let_go:
            self._close_if_let_go()

    def wait(self, timeout: float | None = None) -> int:
        self._lock.acquire()
        try:
            if self._take(timeout) is None:
                raise TimeoutError(f"helper {self.pid} still runs after {timeout:g}s")
        finally:
            self._unlock()
        return self.returncode


class Client:
    """The server's handle on its zygote; spawn() may be called from any thread."""

    def __init__(self, pid: int, channel: socket.socket):
        self.pid = pid
        self.channel = channel

    def spawn(self, job: spawn.Job, sock: socket.socket | None = None,
              stdio: tuple[int, int, int] | None = None, wait_started: bool = True) -> ZygoteChild:
        """Have the zygote fork `job`; wait_started=False returns once it has the request (the fork's
        answer, or its error, is read by the child's first poll or wait)."""
        mine, theirs = sync.socketpair()
        fds = [theirs.fileno()]
        names = ["reply"]
        if sock is not None:
            fds.append(sock.fileno())
            names.append("sock")
        if stdio is not None:
            fds += list(stdio)
            names += ["stdin", "stdout", "stderr"]
        request = json.dumps({"type": "spawn", "job": job.to_dict(), "fds": names}).encode()
        try:
            try:
                socket.send_fds(self.channel, [request], fds)
            except OSError as e:
                raise ZygoteGone(f"the pyrun zygote (pid {self.pid}) is gone ({e.strerror or e}): "
                                 f"cannot start {job.entry}; restart pyrun cri serve") from None
            finally:
                theirs.close()
            if not wait_started:
                return ZygoteChild(0, mine, started=False, entry=job.entry)
            pid = _started(mine, job.entry, self.pid)
        except BaseException:
            mine.close()
            raise
        return ZygoteChild(pid, mine)

    def stop(self) -> None:
        """Close the channel: the zygote exits (its children go on); reap it."""
        self.channel.close()
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def _started(reply: socket.socket, entry: str, zygote: int | None = None) -> int:
    """The pid in the zygote's "started" answer to a spawn request."""
    try:
        msg = sync.recv(reply, "started", timeout=START_TIMEOUT, peer="pyrun zygote")
    except sync.StepFailed as e:
        raise spawn.SpawnError(f"cannot start {entry}: {e.message}") from None
    except sync.SyncError as e:
        raise ZygoteGone(f"the pyrun zygote{f' (pid {zygote})' if zygote else ''} did not start {entry}: {e}; "
                         "restart pyrun cri serve") from None
    return int(msg["pid"])


def start(preload: tuple[str, ...] = ()) -> Client:
    """Fork the zygote from this process, which must still be single-threaded."""
    spawn.require_single_thread("the zygote")
    mine, theirs = sync.socketpair()
    parent = os.getpid()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            mine.close()
            _main(theirs, parent, preload)
            code = 0
        except BaseException:  # noqa: BLE001 - never return into the server's stack
            import traceback
            traceback.print_exc()
        finally:
            os._exit(code)
    theirs.close()
    return Client(pid, mine)


# --- the zygote's side -------------------------------------------------------------------------------

def _main(channel: socket.socket, parent: int, preload: tuple[str, ...]) -> None:
    import prctl
    prctl.set_pdeathsig(signal.SIGKILL)
    if os.getppid() != parent:  # the server died before the line above
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C on the server's terminal: the server shuts us down
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    spawn.close_fds_except({channel.fileno()})
    spawn.set_title("pyrun-zygote")
    for module in {m for m, _ in spawn.ENTRIES.values()} | set(spawn.CHILD_MODULES) \
            | set(spawn.LAZY_CHILD_MODULES) | set(preload):
        importlib.import_module(module)
    spawn.preload_seccomp()
    spawn.compile_default_seccomp()
    Zygote(channel).serve()


class Zygote:
    def __init__(self, channel: socket.socket):
        self.channel = channel
        self.sel = selectors.DefaultSelector()
        self.children: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, reply)

    def serve(self) -> None:
        self.sel.register(self.channel, selectors.EVENT_READ, None)
        while True:
            for key, _ in self.sel.select():
                if key.data is None:
                    if not self._request():
                        return
                else:
                    self._reap(key.fd)

    def _request(self) -> bool:
        """Handle one datagram of the channel; False at EOF (the server went away)."""
        try:
            data, fds, _, _ = socket.recv_fds(self.channel, sync.MAX_MESSAGE, MAX_FDS)
        except InterruptedError:
            return True
        if not data and not fds:
            return False
        reply = None
        kept = None  # the reply socket's descriptor, once a child was started for it
        try:
            msg = json.loads(data)
            names = list(msg.get("fds") or [])
            if len(names) != len(fds) or not names or names[0] != "reply":
                raise spawn.SpawnError(f"descriptors {names} do not match the {len(fds)} received")
            passed = dict(zip(names, fds))
            reply = socket.socket(fileno=passed.pop("reply"))
            job = spawn.Job.from_dict(msg.get("job") or {})
            stdio = (passed["stdin"], passed["stdout"], passed["stderr"]) if "stdin" in passed else None
            pid = os.fork()
            if pid == 0:
                spawn.become(job, passed.get("sock"), stdio)
            pidfd = os.pidfd_open(pid)
            self.children[pidfd] = (pid, reply)
            self.sel.register(pidfd, selectors.EVENT_READ, pid)
            kept = reply.fileno()
            self._send(reply, "started", pid=pid)
        except Exception as e:  # noqa: BLE001 - the request fails, the zygote goes on
            if reply is not None:
                self._send(reply, "error", step="spawn", message=str(e) or type(e).__name__)
                reply.detach()  # closed below with the other descriptors
            else:
                print(f"pyrun zygote: bad request: {e}", file=sys.stderr, flush=True)
        finally:
            for fd in fds:  # the child has its copies now
                if fd != kept:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
        return True

    def _reap(self, pidfd: int) -> None:
        pid, reply = self.children.pop(pidfd)
        self.sel.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        self._send(reply, "exited", code=os.waitstatus_to_exitcode(status))
        reply.close()

    @staticmethod
    def _send(reply: socket.socket, type_: str, **fields) -> None:
        try:
            reply.setblocking(False)
            sync.send(reply, type_, **fields)
        except OSError:
            pass  # the caller stopped listening; nothing to tell
