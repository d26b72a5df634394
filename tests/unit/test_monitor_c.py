"""The C monitor's log writer against pyrun.runtime.logs.LineSplitter, and the handoff's pure parts."""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrun.runtime import monitor
from pyrun.runtime.logs import MAX_LINE, LineSplitter
from pyrun.runtime.records import ContainerStatus
from pyrun.runtime.state import read_status

NS = 1_700_000_000_123_456_789
built = pytest.mark.skipif(not os.access(monitor.C_MONITOR, os.X_OK), reason="pyrun/bin/monitor not built")


def c_log(data: bytes, stream: str = "stdout") -> bytes:
    """What the C monitor writes for `data` on one stream (selftest mode: stdin -> stdout, fixed time)."""
    return subprocess.run([str(monitor.C_MONITOR), "--selftest-log", stream, str(NS)], input=data,
                          capture_output=True, check=True, timeout=10).stdout


def python_log(data: bytes, stream: str = "stdout") -> bytes:
    """LineSplitter fed the whole stream at once, then flushed (the reference)."""
    s = LineSplitter(stream)
    return b"".join(s.feed(data, NS) + s.flush(NS))


EDGES = [
    b"", b"\n", b"one\n", b"no newline", b"a\nb\n\nc", b"\r\n\t \x00\xff\n",
    b"x" * (MAX_LINE - 1) + b"\n", b"x" * MAX_LINE + b"\n", b"x" * (MAX_LINE + 1) + b"\n",
    b"x" * MAX_LINE, b"x" * (MAX_LINE + 1), b"x" * (2 * MAX_LINE), b"x" * 40000 + b"\n",
    b"y" * (3 * MAX_LINE + 5) + b"\nshort\n" + b"z" * 100,
]


@built
@pytest.mark.parametrize("data", EDGES, ids=range(len(EDGES)))
def test_c_log_lines_match_line_splitter(data):
    assert c_log(data) == python_log(data)


@built
def test_c_log_uses_the_stream_name_and_rfc3339_nano():
    assert c_log(b"hi\n", "stderr") == b"2023-11-14T22:13:20.123456789Z stderr F hi\n"


@built
@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=64), st.sampled_from([b"\n", b"a" * MAX_LINE, b"b" * 5000])),
                max_size=12).map(b"".join))
def test_c_log_matches_line_splitter_for_any_input(data):
    assert c_log(data) == python_log(data)


def test_handoff_argv_names_every_fd_and_hex_encodes_pending_bytes(tmp_path):
    argv = monitor.handoff_argv(binary=Path("/bin/monitor"), cdir=tmp_path, pid=42, start_time=7, started_at=9,
                                stdout_fd=5, stderr_fd=-1, log_fd=6, log_path=tmp_path / "c.log", ctl_fd=7,
                                reply_fd=8, oom_events=None, oom_baseline=3,
                                pending={"stdout": b"ab\x00", "stderr": b""})
    opts = dict(zip(argv[1::2], argv[2::2]))
    assert argv[0] == "/bin/monitor"
    assert opts == {"--cdir": str(tmp_path), "--pid": "42", "--start-time": "7", "--started-at": "9",
                    "--stdout": "5", "--stderr": "-1", "--log-fd": "6", "--log-path": str(tmp_path / "c.log"),
                    "--ctl": "7", "--reply": "8", "--oom-events": "", "--oom-baseline": "3",
                    "--pending-stdout": "616200"}


def test_c_monitor_can_be_switched_off(tmp_path):
    binary = tmp_path / "monitor"
    assert not monitor.c_monitor_enabled({}, binary)  # not built
    binary.write_text("")
    binary.chmod(0o755)
    assert monitor.c_monitor_enabled({}, binary)
    assert not monitor.c_monitor_enabled({monitor.C_MONITOR_ENV: "0"}, binary)


def test_exit_json_wins_over_status_json(tmp_path):
    assert read_status(tmp_path) == ContainerStatus(state="created")
    (tmp_path / "status.json").write_text(json.dumps({"version": 1, "state": "running", "pid": 5, "start_time": 1}))
    assert read_status(tmp_path).state == "running"
    (tmp_path / "exit.json").write_text(json.dumps({"state": "exited", "exit_code": 137, "signal": "SIGKILL"}))
    assert read_status(tmp_path) == ContainerStatus(state="exited", pid=5, start_time=1, exit_code=137,
                                                    signal="SIGKILL")


DRIVER = r'''
import json, os, socket, sys
from pathlib import Path
from pyrun.runtime import monitor
cdir, reply_fd = Path(sys.argv[1]), int(sys.argv[2])
supervise = json.loads(sys.argv[3]) if len(sys.argv) > 3 else []
out_r, out_w = os.pipe()
err_r, err_w = os.pipe()
pid = os.fork()
if pid == 0:  # the "workload": waits for cdir/go, writes, exits 3
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.execv("/bin/sh", ["sh", "-c", f"printf 'ing\\nmore'; echo e >&2; until [ -e {cdir}/go ]; do sleep 0.02; done;"
                                     "echo after; exit 3"])
os.close(out_w)
os.close(err_w)
listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
listener.bind(str(cdir / "ctl.sock"))
listener.listen(4)
log = os.open(cdir / "c.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
for fd in (out_r, err_r, log, listener.fileno(), reply_fd):
    os.set_inheritable(fd, True)
argv = monitor.handoff_argv(binary=monitor.C_MONITOR, cdir=cdir, pid=pid, start_time=11,
                            started_at=int(os.environ.get("STARTED_AT", 22)),
                            stdout_fd=out_r, stderr_fd=err_r, log_fd=log, log_path=cdir / "c.log",
                            ctl_fd=listener.fileno(), reply_fd=reply_fd, oom_events=str(cdir / "memory.events"),
                            oom_baseline=1, pending={"stdout": b"pend"}, supervise=supervise)
os.execv(argv[0], argv)
'''


@built
def test_c_monitor_serves_a_workload_until_it_exits(tmp_path):
    """Without root: a driver forks a shell and execs the C monitor, as the Python monitor does."""
    import socket
    import sys

    from pyrun.runtime import sync
    from pyrun.runtime.logs import parse_entry
    (tmp_path / "memory.events").write_text("oom 1\noom_kill 1\n")
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path), str(theirs.fileno())],
                            pass_fds=[theirs.fileno()])
    theirs.close()
    try:
        workload = sync.recv(mine, "start-ok", timeout=10)["pid"]
        status = monitor.request(tmp_path, "status")
        assert status.fields == {"state": "running", "pid": workload, "start_time": 11, "started_at": 22}
        with pytest.raises(sync.StepFailed, match="running, not created"):
            monitor.request(tmp_path, "start")
        deadline = time.monotonic() + 10  # the monitor copies the pipes asynchronously: wait for both lines
        while (tmp_path / "c.log").read_bytes().count(b"\n") < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.rename(tmp_path / "c.log", tmp_path / "c.log.1")
        monitor.request(tmp_path, "reopen-log")
        (tmp_path / "memory.events").write_text("oom 2\noom_kill 2\n")
        (tmp_path / "go").touch()
        assert proc.wait(timeout=10) == 0
    finally:
        mine.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    old = [parse_entry(line) for line in (tmp_path / "c.log.1").read_bytes().splitlines()]
    new = [parse_entry(line) for line in (tmp_path / "c.log").read_bytes().splitlines()]
    assert sorted((e.stream, e.content) for e in old) == [("stderr", b"e"), ("stdout", b"pending")]
    assert [(e.stream, e.partial, e.content) for e in new] == [("stdout", False, b"moreafter")]
    exit_doc = json.loads((tmp_path / "exit.json").read_text())
    assert exit_doc == {"state": "exited", "exit_code": 3, "reason": "OOMKilled", "signal": None,
                        "finished_at": exit_doc["finished_at"]}
    status = read_status(tmp_path)  # the store parses the C monitor's record into the typed one
    assert (status.state, status.exit_code, status.reason, status.signal) == ("exited", 3, "OOMKilled", None)
    assert not (tmp_path / "ctl.sock").exists()


@built
def test_c_monitor_probes_over_tcp_and_http_and_stops_on_request(tmp_path):
    """Without root: a supervising C monitor (no network namespace: its own) probes a local HTTP
    server, writes sup.json, and on `stop` sends SIGTERM and restarts nothing."""
    import http.server
    import socket
    import sys
    import threading

    from pyrun.runtime import supervise, sync
    from pyrun.runtime.records import Supervision

    seen: list = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.headers.get_all("Host"), self.headers.get("X-Probe"), self.headers.get("User-Agent")))
            self.send_response(200 if self.path == "/ok" else 500)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    probe = {"initial_delay": 0, "period": 1, "timeout": 1, "success_threshold": 1, "failure_threshold": 1}
    sup = Supervision(restart_policy="Always", grace_period=5, pod_ip="127.0.0.1", probes={
        "readiness": {**probe, "handler": {"kind": "httpGet", "port": port, "path": "/ok", "host": "",
                                           "headers": [["host", "web.example"], ["X-Probe", "1"]]}},
        "liveness": {**probe, "handler": {"kind": "tcpSocket", "port": port, "host": "127.0.0.1"}}})
    args = supervise.supervise_argv(sup, python=sys.executable, netns=None, cgroup_procs=(), workdir="/",
                                    seccomp_bpf=None, state=None)
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path), str(theirs.fileno()), json.dumps(args)],
                            pass_fds=[theirs.fileno()])
    theirs.close()
    try:
        sync.recv(mine, "start-ok", timeout=10)
        deadline = time.monotonic() + 15
        doc: dict = {}
        while time.monotonic() < deadline and not doc.get("ready"):
            time.sleep(0.1)
            doc = json.loads((tmp_path / "sup.json").read_text())
        assert doc["ready"] and doc["restart_count"] == 0
        assert doc["probes"]["readiness"]["message"] == "HTTP probe succeeded with statuscode: 200"
        assert doc["probes"]["liveness"]["result"] == "success"
        assert seen[0] == (["web.example"], "1", "kube-probe/1.31")  # the probe's Host replaces the default
        assert monitor.request(tmp_path, "stop", grace=5).type == "stop-ok"
        assert proc.wait(timeout=10) == 0  # the shell died of SIGTERM; Always, but after a stop: no restart
    finally:
        mine.close()
        server.shutdown()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    exit_doc = json.loads((tmp_path / "exit.json").read_text())
    assert (exit_doc["exit_code"], exit_doc["signal"]) == (143, "SIGTERM")
    assert json.loads((tmp_path / "sup.json").read_text())["ready"] is False


def _run_supervising(tmp_path, args: list[str], until, timeout: float = 15, end: str = "kill", seen=None):
    """Run the C monitor (the DRIVER's shell as workload) with supervision `args` until `until(sup.json)`
    holds; then send it `end` (kill or stop). Returns the last sup.json. seen: called with the monitor's
    pid while it runs."""
    import socket
    import sys

    from pyrun.runtime import sync
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path), str(theirs.fileno()), json.dumps(args)],
                            pass_fds=[theirs.fileno()])
    theirs.close()
    doc: dict = {}
    try:
        sync.recv(mine, "start-ok", timeout=10)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.1)
            doc = json.loads((tmp_path / "sup.json").read_text()) if (tmp_path / "sup.json").exists() else {}
            if doc and until(doc):
                break
        if seen:
            seen(proc.pid)
        assert monitor.request(tmp_path, end, grace=5).type == f"{end}-ok"
        assert proc.wait(timeout=10) == 0
    finally:
        mine.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return doc


def _sup_args(probes: dict, hooks: dict | None = None, **kw) -> list[str]:
    import sys

    from pyrun.runtime import supervise
    from pyrun.runtime.records import Supervision
    base = {"initial_delay": 0, "period": 1, "timeout": 1, "success_threshold": 1, "failure_threshold": 1}
    sup = Supervision(restart_policy="Always", grace_period=5, pod_ip="127.0.0.1",
                      probes={kind: {**base, "handler": h} for kind, h in probes.items()}, hooks=hooks or {})
    opts = {"python": sys.executable, "netns": None, "cgroup_procs": (), "workdir": "/", "seccomp_bpf": None,
            "state": None, **kw}
    return supervise.supervise_argv(sup, **opts)


def _listening():
    import socket
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    return server


@built
def test_c_monitor_never_probes_from_the_host_netns_when_the_pods_cannot_be_opened(tmp_path):
    """A TCP probe whose target listens in this (the "host's") netns: with --netns unopenable it fails."""
    server = _listening()
    with server:
        port = server.getsockname()[1]
        args = _sup_args({"readiness": {"kind": "tcpSocket", "port": port, "host": "127.0.0.1"}},
                         netns=str(tmp_path / "no-such-netns"))
        doc = _run_supervising(tmp_path, args, lambda d: d["probes"]["readiness"]["result"] != "unknown")
    assert doc["probes"]["readiness"] == {**doc["probes"]["readiness"], "result": "failure",
                                          "message": "cannot open the pod's network namespace"}
    assert doc["ready"] is False


@built
def test_c_monitor_fails_exec_probes_when_the_seccomp_filter_cannot_be_loaded(tmp_path):
    (tmp_path / "bad.bpf").write_bytes(b"\0" * 13)  # not a whole number of BPF instructions
    args = _sup_args({"readiness": {"kind": "exec", "command": ["true"]}}, seccomp_bpf=str(tmp_path / "bad.bpf"))
    cwd: list[str] = []
    doc = _run_supervising(tmp_path, args, lambda d: d["probes"]["readiness"]["result"] != "unknown",
                           seen=lambda pid: cwd.append(os.readlink(f"/proc/{pid}/cwd")))
    assert cwd == ["/"]  # what it runs (python -I for a restart, the probe helper) never starts in the caller's
    assert doc["probes"]["readiness"]["result"] == "failure"
    assert doc["probes"]["readiness"]["message"] == "cannot load the container's seccomp filter"
    assert doc["ready"] is False


@built
@pytest.mark.parametrize("spec", [
    "0 1 1 1 1 exec " + ",".join(["78"] * 64),    # 64 words: more than the C side takes
    "0 1 1 1 1 tcp 80 " + "31" * 64,              # a host longer than 63 bytes
    "0 1 1 1 1 http 80 - 2f",                      # a word (the headers) missing
    "0 1 1 1 1 tcp 80 - extra",                    # a word left over
    "0 1 1 1 1 carrier-pigeon 80",
    "0 0 1 1 1 exec 74727565",                     # period 0
])
def test_c_monitor_treats_a_probe_it_cannot_parse_as_failing_never_ready(tmp_path, spec):
    args = _sup_args({}) + ["--probe-readiness", spec]
    doc = _run_supervising(tmp_path, args, lambda d: "readiness" in d["probes"], timeout=5)
    assert doc["probes"]["readiness"]["result"] == "failure"
    assert "pyrun cannot run this probe" in doc["probes"]["readiness"]["message"]
    assert doc["ready"] is False


@built
def test_c_monitor_status_during_the_back_off_names_no_pid(tmp_path):
    """A supervised container that exited and waits out its back-off has no process to report."""
    import socket
    import sys

    from pyrun.runtime import sync
    args = _sup_args({}, state="0 10 -1 0 0 - - 0 0")  # the next back-off: 10 s
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path), str(theirs.fileno()), json.dumps(args)],
                            pass_fds=[theirs.fileno()], env={**os.environ, "STARTED_AT": str(time.time_ns())})
    theirs.close()
    try:
        sync.recv(mine, "start-ok", timeout=10)
        assert monitor.request(tmp_path, "status")["state"] == "running"
        (tmp_path / "go").touch()  # the workload exits 3
        deadline = time.monotonic() + 10
        doc: dict = {}
        while time.monotonic() < deadline and doc.get("state") != "waiting":
            time.sleep(0.05)
            doc = json.loads((tmp_path / "sup.json").read_text())
        assert doc["reason"] == "CrashLoopBackOff"
        status = monitor.request(tmp_path, "status")
        assert (status["state"], status["pid"]) == ("waiting", None)
        assert monitor.request(tmp_path, "stop", grace=0).type == "stop-ok"
        assert proc.wait(timeout=10) == 0
    finally:
        mine.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert json.loads((tmp_path / "exit.json").read_text())["exit_code"] == 3


@built
@pytest.mark.parametrize("request_type", ["stop", "kill"])
def test_c_monitor_runs_pre_stop_on_stop_but_not_on_kill(tmp_path, request_type):
    import http.server
    import threading
    seen: list = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = {"kind": "httpGet", "port": server.server_address[1], "host": "127.0.0.1", "path": "/prestop",
            "headers": []}
    try:
        args = _sup_args({}, hooks={"pre_stop": hook})
        _run_supervising(tmp_path, args, lambda d: True, end=request_type)
    finally:
        server.shutdown()
    assert seen == (["/prestop"] if request_type == "stop" else [])
    assert json.loads((tmp_path / "exit.json").read_text())["signal"] in ("SIGTERM", "SIGKILL")


def test_handoff_argv_passes_the_workloads_input_only_when_there_is_one(tmp_path):
    common = dict(binary=Path("/bin/monitor"), cdir=tmp_path, pid=42, start_time=7, started_at=9, stdout_fd=5,
                  stderr_fd=-1, log_fd=6, log_path=tmp_path / "c.log", ctl_fd=7, reply_fd=8, oom_events=None,
                  oom_baseline=3, pending={})
    assert "--stdin" not in monitor.handoff_argv(**common)
    argv = monitor.handoff_argv(**common, stdin_fd=5, stdin_once=True, tty=True)
    assert argv[-6:] == ["--stdin", "5", "--stdin-once", "1", "--tty", "1"]


STDIN_DRIVER = r'''
import os, socket, sys
from pathlib import Path
from pyrun.runtime import monitor
cdir, reply_fd = Path(sys.argv[1]), int(sys.argv[2])
out_r, out_w = os.pipe()
in_r, in_w = os.pipe()
pid = os.fork()
if pid == 0:  # the "workload": a line, then everything up to EOF
    os.dup2(in_r, 0)
    os.dup2(out_w, 1)
    os.execv("/bin/sh", ["sh", "-c", "read line; echo got $line; cat; echo eof"])
os.close(out_w)
os.close(in_r)
listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
listener.bind(str(cdir / "ctl.sock"))
listener.listen(4)
log = os.open(cdir / "c.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
for fd in (out_r, in_w, log, listener.fileno(), reply_fd):
    os.set_inheritable(fd, True)
argv = monitor.handoff_argv(binary=monitor.C_MONITOR, cdir=cdir, pid=pid, start_time=11, started_at=22,
                            stdout_fd=out_r, stderr_fd=-1, log_fd=log, log_path=cdir / "c.log",
                            ctl_fd=listener.fileno(), reply_fd=reply_fd, oom_events="", oom_baseline=0,
                            pending={}, stdin_fd=in_w, stdin_once=True)
os.execv(argv[0], argv)
'''


@built
def test_c_monitor_hands_stdin_to_one_attach_with_stdin_once(tmp_path):
    """The first attach gets the stdin pipe and the monitor lets go of it: closing it is the workload's EOF."""
    import socket
    import sys

    from pyrun.runtime import sync
    from pyrun.runtime.logs import parse_entry
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    proc = subprocess.Popen([sys.executable, "-c", STDIN_DRIVER, str(tmp_path), str(theirs.fileno())],
                            pass_fds=[theirs.fileno()])
    theirs.close()
    try:
        sync.recv(mine, "start-ok", timeout=10)
        fd = monitor.attach_input(tmp_path)
        assert fd is not None
        os.write(fd, b"one\ntwo\n")
        assert monitor.attach_input(tmp_path) is None  # stdin_once: given out already
        os.close(fd)  # the last writer: the workload reads EOF
        assert proc.wait(timeout=10) == 0
    finally:
        mine.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [parse_entry(line).content for line in (tmp_path / "c.log").read_bytes().splitlines()]
    assert lines == [b"got one", b"two", b"eof"]
