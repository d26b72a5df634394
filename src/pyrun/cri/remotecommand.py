"""Exec and Attach sessions over the Kubernetes remotecommand protocol, on WebSocket or SPDY.

The sessions write to and read from a transport: `Channels` (WebSocket) or `SpdyChannels`.

WebSocket subprotocols (Sec-WebSocket-Protocol), best first: v5.channel.k8s.io, v4.channel.k8s.io,
channel.k8s.io (and none offered: like channel.k8s.io). Every binary message starts with a channel:

  0 stdin (client -> server)      3 error/status (server -> client, sent once at the end)
  1 stdout                        4 resize: {"Width": cols, "Height": rows} (client -> server)
  2 stderr                        255 close (v5 only): [255, channel], e.g. [255, 0] is stdin's EOF

The status is a JSON metav1.Status for v4+ ({"metadata":{},"status":"Success"}, or "Failure" with
reason NonZeroExitCode and the code in details.causes[0].message); with channel.k8s.io only a failure
is written, as plain text. The server first sends an empty message on the lowest output channel it
opened (stdout, else stderr, else error): clients wait for it. The base64 variants are not offered.

SPDY (X-Stream-Protocol-Version v4.channel.k8s.io, v3, v2, channel.k8s.io): the client opens one
stream per channel, its "streamType" header naming it (error, stdin, stdout, stderr, resize), as
client-go does: error always, stderr only without a tty, resize only with a tty from v3 on; the
session starts once all of them are open (within 30 s, the kubelet's limit). stdin's end is the
stream's FIN; resize carries one JSON size per line. The status goes on the error stream as above
(v4: JSON; v3 and older: text, only on failure); then every stream is FINed and the client closes.

Exec runs the plan's job (a pyrun.runtime.api.ExecHandle: the runtime forks it from the server's zygote,
never from the threaded server) in a new session; a plan without a job runs its argv with
subprocess. With a tty, the exec opens a pty in the container's own devpts once it has joined the
container's mount namespace (as runc's console does), makes the slave its stdin/stdout/stderr and the
controlling terminal of its session (TIOCSCTTY, tty_ioctl(4)) and sends the master back (SCM_RIGHTS;
pyrun.runtime.nsexec.run_on_terminal): `tty` inside prints /dev/pts/0, TERM=xterm is set as containerd
does, stdout and stderr are one stream, and resize messages become TIOCSWINSZ on the master (a plan with
only an argv gets a host pty through util-linux `setsid --ctty`). A client that goes away kills the
command's process group (and a tty's hangup reaches its session).

Attach follows the container's CRI log from its end (the monitor copies stdout/stderr there) and
streams new entries until the container exits or the client leaves, across a rotation
(pyrun.runtime.logs.LogFollower, the reader `pyrun logs -f` uses too); the log is written a line at a
time, so output without a newline (a shell's prompt) shows once its line ends. Input goes straight to the
workload: its monitor hands the session the write end of the container's stdin pipe (stdin: true) or its
pty's master (tty: true; resize messages become TIOCSWINSZ) over ctl.sock. With stdinOnce (and no tty)
the monitor keeps no copy, so the workload reads EOF when this session's stdin ends or its client leaves,
as containerd does; stdin sent to a container without one is dropped, as containerd does.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import struct
import subprocess
import termios
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from pyrun.cri import spdy
from pyrun.cri.websocket import OP_BINARY, WebSocket
from pyrun.errors import PyrunError
from pyrun.runtime.logs import LogFollower, parse_entry

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
V5, V4, V1 = "v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"
PROTOCOLS = (V5, V4, V1)
READ_SIZE = 32 * 1024
DRAIN_TIMEOUT = 2.0  # s: after the command exits, how long output pipes held by its children are read


# --- pure ----------------------------------------------------------------------------------------

def status_json(exit_code: int, error: str = "") -> dict:
    """The metav1.Status a v4+ client reads on channel 3."""
    if error:
        return {"metadata": {}, "status": "Failure", "message": error, "reason": "InternalError"}
    if exit_code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: exit status {exit_code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]}}


def status_message(protocol: str, exit_code: int, error: str = "") -> bytes | None:
    """Channel 3's payload (without the channel byte); None when nothing is written (v1, success)."""
    status = status_json(exit_code, error)
    if protocol in (V5, V4):
        return json.dumps(status, separators=(",", ":")).encode()
    return None if status["status"] == "Success" else status["message"].encode()


def parse_resize(payload: bytes) -> tuple[int, int] | None:
    """{"Width": 80, "Height": 24} -> (80, 24); None for anything else."""
    try:
        size = json.loads(payload)
        cols, rows = int(size["Width"]), int(size["Height"])
    except (ValueError, KeyError, TypeError):
        return None
    if not (0 <= cols < 1 << 16 and 0 <= rows < 1 << 16):
        return None
    return cols, rows


def exit_code_of(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


@dataclass(frozen=True)
class ExecPlan:
    """What an /exec/<token> URL runs: argv (the full nsexec command line) and the streams asked for."""

    argv: list[str]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool
    container: str = ""
    job: Any = None  # a pyrun.runtime.api.ExecHandle (the exec in a container): started, argv only names it


class _Spawned:
    """A pyrun.runtime.spawn child with the stdin/stdout/stderr files subprocess.Popen would have."""

    def __init__(self, child, stdin: int | None, stdout: int | None, stderr: int | None):
        self.child = child
        self.pid = child.pid
        self.stdin = os.fdopen(stdin, "wb", buffering=0) if stdin is not None else None
        self.stdout = os.fdopen(stdout, "rb", buffering=0) if stdout is not None else None
        self.stderr = os.fdopen(stderr, "rb", buffering=0) if stderr is not None else None

    def poll(self) -> int | None:
        return self.child.poll()

    def wait(self) -> int:
        return self.child.wait()


def _spawn_piped(job, stdin: bool, stdout: bool, stderr: bool) -> _Spawned:
    """Fork `job` with a pipe for each stream asked for (else /dev/null)."""
    mine: list[int | None] = []
    theirs: list[int] = []
    try:
        for wanted, reads in ((stdin, True), (stdout, False), (stderr, False)):
            if not wanted:
                mine.append(None)
                theirs.append(os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC))
                continue
            r, w = os.pipe()
            mine.append(w if reads else r)
            theirs.append(r if reads else w)
        child = job.start(tuple(theirs))
    except BaseException:
        for fd in mine:
            if fd is not None:
                os.close(fd)
        raise
    finally:
        for fd in theirs:
            os.close(fd)
    return _Spawned(child, *mine)


@dataclass(frozen=True)
class AttachPlan:
    """What an /attach/<token> URL follows: a container's CRI log while `running()` says so."""

    log_path: str
    stdout: bool
    stderr: bool
    tty: bool
    running: Callable[[], bool] = field(compare=False)
    container: str = ""
    stdin: bool = False
    open_input: Callable[[], int | None] | None = field(default=None, compare=False)


# --- sessions ------------------------------------------------------------------------------------

class Channels:
    """The WebSocket transport: every channel is a prefix byte on one WebSocket's binary messages."""

    def __init__(self, ws: WebSocket, protocol: str):
        self.ws, self.protocol = ws, protocol
        self.gone = threading.Event()

    def send(self, channel: int, data: bytes) -> bool:
        try:
            self.ws.send(OP_BINARY, bytes([channel]) + data)
            return True
        except OSError:
            self.gone.set()
            return False

    def hello(self, stdout: bool, stderr: bool) -> None:
        self.send(STDOUT if stdout else STDERR if stderr else ERROR, b"")

    def pump_input(self, on_stdin: Callable[[bytes], None], on_stdin_eof: Callable[[], None],
                   on_resize: Callable[[bytes], None]) -> None:
        """Deliver what the client sends until it goes away (then `gone` is set)."""
        for opcode, msg in self.ws.messages():
            if opcode != OP_BINARY or not msg:
                continue
            channel, data = msg[0], msg[1:]
            if channel == STDIN:
                on_stdin(data)
            elif channel == RESIZE:
                on_resize(data)
            elif channel == CLOSE and self.protocol == V5 and data[:1] == bytes([STDIN]):
                on_stdin_eof()
        self.gone.set()

    def finish(self, exit_code: int, error: str = "") -> None:
        message = status_message(self.protocol, exit_code, error)
        if message is not None:
            self.send(ERROR, message)
        self.ws.close()

    def abort(self) -> None:
        self.gone.set()
        self.ws.close(1001, "server shutting down")

    def close(self) -> None:
        self.ws.close()


class SpdyChannels:
    """The SPDY transport: the client opened one stream per channel (its "streamType" header)."""

    def __init__(self, conn: "spdy.Connection", protocol: str, streams: dict[int, "spdy.Stream"]):
        self.conn, self.protocol, self.streams = conn, protocol, streams
        self.gone = threading.Event()

    def send(self, channel: int, data: bytes) -> bool:
        stream = self.streams.get(channel)
        if stream is None or not stream.write(data):
            if self.conn.closed:
                self.gone.set()
            return False
        return True

    def hello(self, stdout: bool, stderr: bool) -> None:
        pass  # SPDY streams exist once the client opened them: nothing to announce

    def pump_input(self, on_stdin: Callable[[bytes], None], on_stdin_eof: Callable[[], None],
                   on_resize: Callable[[bytes], None]) -> None:
        resize = self.streams.get(RESIZE)
        if resize is not None:
            threading.Thread(target=self._pump_resize, args=(resize, on_resize), daemon=True,
                             name="spdy-resize").start()
        stdin = self.streams.get(STDIN)
        if stdin is not None:
            while data := stdin.read():
                on_stdin(data)
            on_stdin_eof()  # FIN: the client's stdin ended (a reset or a lost client ends it too)
        self.conn.wait_closed()
        self.gone.set()

    @staticmethod
    def _pump_resize(stream: "spdy.Stream", on_resize: Callable[[bytes], None]) -> None:
        """Sizes arrive as JSON objects one per line (Go's json.Encoder)."""
        pending = b""
        while data := stream.read():
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                on_resize(line)

    def finish(self, exit_code: int, error: str = "") -> None:
        """FIN the output streams, then the status on the error stream and its FIN (the order
        client-go reads them in); the client then closes the connection."""
        for channel, stream in self.streams.items():
            if channel != ERROR:
                stream.close()
        message = status_message(self.protocol, exit_code, error)
        if message is not None:
            self.send(ERROR, message)
        self.streams[ERROR].close()
        self.conn.finish()

    def abort(self) -> None:
        self.gone.set()
        for stream in self.streams.values():
            stream.reset()
        self.conn.close()

    def close(self) -> None:
        self.conn.close()


STREAM_TYPES = {"error": ERROR, "stdin": STDIN, "stdout": STDOUT, "stderr": STDERR, "resize": RESIZE}
SPDY_PROTOCOLS = (V4, "v3.channel.k8s.io", "v2.channel.k8s.io", V1)
STREAM_CREATION_TIMEOUT = 30.0  # s, the kubelet's default


def expected_streams(protocol: str, stdin: bool, stdout: bool, stderr: bool, tty: bool) -> set[int]:
    """The channels a SPDY client opens for a request, as client-go's remotecommand does (pure):
    always error; stdin/stdout when asked; stderr unless a tty (it merges into stdout); resize with
    a tty from v3 on."""
    wanted = {ERROR}
    wanted |= {STDIN} if stdin else set()
    wanted |= {STDOUT} if stdout else set()
    wanted |= {STDERR} if stderr and not tty else set()
    wanted |= {RESIZE} if tty and protocol in (V4, "v3.channel.k8s.io") else set()
    return wanted


def wait_for_streams(conn: "spdy.Connection", wanted: set[int],
                     timeout: float | None = None) -> dict[int, "spdy.Stream"]:
    """The client's streams by channel, once all of `wanted` are open (within `timeout`, by default
    STREAM_CREATION_TIMEOUT). TimeoutError otherwise; a stream of an unknown or unwanted type is reset."""
    timeout = STREAM_CREATION_TIMEOUT if timeout is None else timeout
    deadline = time.monotonic() + timeout
    streams: dict[int, spdy.Stream] = {}
    while set(streams) != wanted:
        left = deadline - time.monotonic()
        stream = conn.accept(left) if left > 0 else None
        if stream is None:
            missing = sorted(k for k, v in STREAM_TYPES.items() if v in wanted - set(streams))
            why = "the client went away" if conn.closed else f"not opened within {timeout:.0f}s"
            raise TimeoutError(f"streams {', '.join(missing)}: {why}")
        channel = STREAM_TYPES.get(stream.header("streamType"))
        if channel not in wanted or channel in streams:
            stream.reset(spdy.RST_PROTOCOL_ERROR)
            continue
        streams[channel] = stream
    return streams


Transport = Channels | SpdyChannels


class ExecSession:
    def __init__(self, ch: Transport, plan: ExecPlan):
        self.ch = ch
        self.plan = plan
        self.proc: subprocess.Popen | None = None
        self.master: int | None = None
        self.stdin_fd: int | None = None
        self._stdin_lock = threading.Lock()

    def _start(self) -> list[tuple[int, int]]:
        """Start the command; the (fd, channel) pairs to copy to the client."""
        plan = self.plan
        if plan.tty and plan.job is not None:  # a terminal of the container's own devpts
            child, master = plan.job.start_terminal()
            self.proc = _Spawned(child, None, None, None)
            self.master = master
            self.stdin_fd = os.dup(master) if plan.stdin else None
            return [(master, STDOUT)] if plan.stdout else []
        if plan.tty:
            master, slave = os.openpty()
            self.master = master
            try:
                self.proc = subprocess.Popen(["setsid", "--ctty", *plan.argv], stdin=slave, stdout=slave,
                                             stderr=slave, close_fds=True)
            finally:
                os.close(slave)
            self.stdin_fd = os.dup(master) if plan.stdin else None
            return [(master, STDOUT)] if plan.stdout else []
        if plan.job is not None:
            self.proc = _spawn_piped(plan.job, plan.stdin, plan.stdout, plan.stderr)
            if self.proc.stdin is not None:
                self.stdin_fd = self.proc.stdin.fileno()
            return [(f.fileno(), ch) for f, ch in ((self.proc.stdout, STDOUT), (self.proc.stderr, STDERR))
                    if f is not None]
        pipe, null = subprocess.PIPE, subprocess.DEVNULL
        self.proc = subprocess.Popen(plan.argv, stdin=pipe if plan.stdin else null,
                                     stdout=pipe if plan.stdout else null, stderr=pipe if plan.stderr else null,
                                     start_new_session=True)
        if self.proc.stdin is not None:
            self.stdin_fd = self.proc.stdin.fileno()
        return [(f.fileno(), ch) for f, ch in ((self.proc.stdout, STDOUT), (self.proc.stderr, STDERR))
                if f is not None]

    def _copy_out(self, fd: int, channel: int) -> None:
        while True:
            try:
                data = os.read(fd, READ_SIZE)
            except OSError:  # EIO: a pty's last slave closed
                return
            if not data or not self.ch.send(channel, data):
                return

    def _close_stdin(self) -> None:
        with self._stdin_lock:
            if self.stdin_fd is None:
                return
            if self.plan.tty:
                with contextlib.suppress(OSError):
                    os.write(self.stdin_fd, b"\x04")  # EOF for the line discipline (^D)
                os.close(self.stdin_fd)
            elif self.proc and self.proc.stdin:
                with contextlib.suppress(OSError):
                    self.proc.stdin.close()
            self.stdin_fd = None

    def _write_stdin(self, data: bytes) -> None:
        with self._stdin_lock:
            fd = self.stdin_fd
            if fd is None:
                return
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            except OSError:
                pass  # the command closed its stdin; the rest is dropped

    def _resize(self, payload: bytes) -> None:
        size = parse_resize(payload)
        if size and self.master is not None:
            with contextlib.suppress(OSError):
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))

    def _read_client(self) -> None:
        self.ch.pump_input(self._write_stdin, self._close_stdin, self._resize)
        self.kill()  # the client left (or closed): the command goes too

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def abort(self) -> None:
        """The server is stopping: end the command and the connection."""
        self.kill()
        self.ch.abort()

    def run(self) -> None:
        try:
            outputs = self._start()
        except (OSError, PyrunError) as e:  # PyrunError: the zygote could not fork it
            self.ch.hello(self.plan.stdout, self.plan.stderr)
            self.ch.finish(126, f"cannot run the command: {e}")
            return
        self.ch.hello(self.plan.stdout and bool(outputs), self.plan.stderr)
        pumps = [threading.Thread(target=self._copy_out, args=o, daemon=True, name="exec-out") for o in outputs]
        for t in pumps:
            t.start()
        threading.Thread(target=self._read_client, daemon=True, name="exec-in").start()
        try:
            code = exit_code_of(self.proc.wait())
            deadline = time.monotonic() + DRAIN_TIMEOUT
            for t in pumps:
                t.join(max(0.0, deadline - time.monotonic()))
            if not self.ch.gone.is_set():
                self.ch.finish(code)
        finally:
            self.kill()
            self._close_stdin()
            for f in (self.proc.stdout, self.proc.stderr):
                if f is not None:
                    f.close()
            if self.master is not None:
                os.close(self.master)
            self.ch.close()


class AttachSession:
    def __init__(self, ch: Transport, plan: AttachPlan):
        self.ch = ch
        self.plan = plan
        self.input_fd: int | None = None
        self._input_lock = threading.Lock()

    def abort(self) -> None:
        self.ch.abort()

    def _open_input(self) -> None:
        if self.plan.open_input is None:
            return
        try:
            self.input_fd = self.plan.open_input()
        except (OSError, PyrunError):
            self.input_fd = None  # the container just exited: its output still ends the attach

    def _write_input(self, data: bytes) -> None:
        with self._input_lock:
            if self.input_fd is None or not self.plan.stdin:
                return  # a container without stdin drops it, as containerd does
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self.input_fd, view):]
            except OSError:
                pass  # the workload closed its stdin

    def _close_input(self) -> None:
        """Our copy only: the workload reads EOF if that was the last (stdin_once), as containerd closes it."""
        with self._input_lock:
            if self.input_fd is not None:
                os.close(self.input_fd)
                self.input_fd = None

    def _end_of_stdin(self) -> None:
        if not self.plan.tty:  # a terminal stays open (containerd: stdinOnce closes only without a tty)
            self._close_input()

    def _resize(self, payload: bytes) -> None:
        size = parse_resize(payload)
        with self._input_lock:
            if size and self.input_fd is not None:
                with contextlib.suppress(OSError):  # ENOTTY: a stdin pipe
                    fcntl.ioctl(self.input_fd, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))

    def _watch_client(self) -> None:
        self.ch.pump_input(self._write_input, self._end_of_stdin, self._resize)
        self._close_input()

    def _emit(self, line: bytes) -> None:
        try:
            entry = parse_entry(line)
        except ValueError:
            return
        data = entry.content + (b"" if entry.partial else b"\n")
        if entry.stream == "stdout" or self.plan.tty:
            if self.plan.stdout:
                self.ch.send(STDOUT, data)
        elif entry.stream == "stderr" and self.plan.stderr:
            self.ch.send(STDERR, data)

    def run(self) -> None:
        follower = LogFollower(self.plan.log_path, from_end=True)  # before the hello: what the client sees
        try:                                                       # after it is streamed
            self._open_input()
            self.ch.hello(self.plan.stdout, self.plan.stderr)
            threading.Thread(target=self._watch_client, daemon=True, name="attach-in").start()
            for line in follower.lines(running=self.plan.running, cancelled=self.ch.gone.is_set):
                self._emit(line)
            if not self.ch.gone.is_set():
                self.ch.finish(0)
        finally:
            follower.close()
            self._close_input()
            self.ch.close()
