"""The Python monitor hands a started container to the C monitor (pyrun/bin/monitor) on the real kernel."""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from pyrun.runtime import monitor, sync
from pyrun.runtime.logs import parse_entry

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(not os.access(monitor.C_MONITOR, os.X_OK), reason="pyrun/bin/monitor not built")]


def _container(pyrun, pod: str, name: str) -> tuple[dict, Path]:
    c = next(c for c in pyrun.inspect(pod)["containers"] if c["name"] == name)
    return c, pyrun.root / "containers" / c["id"]


def _monitor_exe(cdir: Path) -> str:
    pid = json.loads((cdir / "monitor.json").read_text())["pid"]
    return os.readlink(f"/proc/{pid}/exe")


def _wait_for_line(path: Path, content: bytes, timeout: float = 10) -> list[bytes]:
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_bytes().splitlines() if path.exists() else []
        if any(parse_entry(line).content == content for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_running_container_is_served_by_the_c_monitor(pyrun, write_pod):
    spec = write_pod("handoff", [{"name": "c", "command": ["sh", "-c", "echo hello; echo oops >&2; sleep 1000"]}],
                     shareProcessNamespace=True)  # not PID 1, so SIGTERM ends it
    pyrun("pod", "create", spec)
    c, cdir = _container(pyrun, "handoff", "c")
    assert c["state"] == "running"
    assert Path(_monitor_exe(cdir)) == monitor.C_MONITOR.resolve()
    status = monitor.request(cdir, "status")
    assert status.fields == {"state": "running", "pid": c["pid"], "start_time": status["start_time"],
                             "started_at": c["started_at"]}
    with pytest.raises(sync.StepFailed, match="container is running, not created"):
        monitor.request(cdir, "start")
    lines = _wait_for_line(Path(c["log_path"]), b"oops")
    assert sorted((e.stream, e.partial, e.content) for e in map(parse_entry, lines)) == [
        ("stderr", False, b"oops"), ("stdout", False, b"hello")]
    pyrun("pod", "stop", "handoff")
    c, _ = _container(pyrun, "handoff", "c")
    assert (c["state"], c["exit_code"], c["reason"]) == ("exited", 143, "Error")
    exit_doc = json.loads((cdir / "exit.json").read_text())
    assert exit_doc["signal"] == "SIGTERM" and exit_doc["finished_at"] >= c["started_at"]
    assert not (cdir / monitor.CTL_SOCKET).exists()
    pyrun("pod", "rm", "handoff")


def test_reopen_log_after_rotation(pyrun, write_pod):
    spec = write_pod("rotate", [{"name": "c", "command": [
        "sh", "-c", "echo before; until [ -e /go ]; do sleep 0.05; done; while true; do echo after; sleep 0.1; done"]}])
    pyrun("pod", "create", spec)
    c, cdir = _container(pyrun, "rotate", "c")
    log = Path(c["log_path"])
    _wait_for_line(log, b"before")
    rotated = log.with_name(log.name + ".1")
    os.rename(log, rotated)
    monitor.request(cdir, "reopen-log")
    pyrun("exec", "rotate", "c", "--", "touch", "/go")
    lines = _wait_for_line(log, b"after")
    assert lines and all(parse_entry(line).content == b"after" for line in lines)
    assert parse_entry(rotated.read_bytes().splitlines()[0]).content == b"before"
    pyrun("pod", "rm", "-f", "rotate")


def test_logs_follow_goes_on_across_a_rotation(pyrun, write_pod):
    """`pyrun logs -f` (one follower with the CRI's Attach) reads on in the new file after a rotation,
    until the container exits."""
    spec = write_pod("follow", [{"name": "c", "command": [
        "sh", "-c", "echo before; until [ -e /go ]; do sleep 0.05; done; echo after; echo last"]}])
    pyrun("pod", "create", spec)
    c, cdir = _container(pyrun, "follow", "c")
    log = Path(c["log_path"])
    follower = subprocess.Popen(pyrun.argv("logs", "-f", "follow", "c"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        assert follower.stdout.readline() == "before\n"  # it reads the file that is rotated now
        os.rename(log, log.with_name(log.name + ".1"))
        monitor.request(cdir, "reopen-log")
        pyrun("exec", "follow", "c", "--", "touch", "/go")
        out, err = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert (out, follower.returncode) == ("after\nlast\n", 0), err
    pyrun("pod", "rm", "-f", "follow")


def test_exit_is_recorded_by_the_c_monitor(pyrun, write_pod):
    spec = write_pod("cexit", [{"name": "c", "command": ["sh", "-c", "sleep 0.5; printf 'a\\nb'; exit 7"]}])
    pyrun("pod", "create", spec)
    c = pyrun.wait_for("cexit", "c", "exited")
    assert (c["exit_code"], c["reason"]) == (7, "Error")
    assert pyrun("logs", "cexit", "c").stdout == "a\nb\n"
    _, cdir = _container(pyrun, "cexit", "c")
    assert json.loads((cdir / "status.json").read_text())["state"] == "running"  # exit.json wins
    assert json.loads((cdir / "exit.json").read_text())["state"] == "exited"
    pyrun("pod", "rm", "-f", "cexit")


def test_python_monitor_when_the_c_monitor_is_disabled(pyrun, write_pod):
    spec = write_pod("pymon", [{"name": "c", "command": ["sh", "-c", "echo hi; sleep 1000"]}],
                     shareProcessNamespace=True)
    pyrun("pod", "create", spec, env={monitor.C_MONITOR_ENV: "0"})
    c, cdir = _container(pyrun, "pymon", "c")
    assert "python" in Path(_monitor_exe(cdir)).name
    assert monitor.request(cdir, "status")["state"] == "running"
    pyrun("pod", "stop", "pymon")
    c, _ = _container(pyrun, "pymon", "c")
    assert (c["state"], c["exit_code"]) == ("exited", 143)
    assert not (cdir / "exit.json").exists()
    assert pyrun("logs", "pymon", "c").stdout == "hi\n"
    pyrun("pod", "rm", "pymon")
