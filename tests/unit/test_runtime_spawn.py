"""pyrun.runtime.spawn and the CRI server's zygote, with harmless entries (no root needed)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from pyrun.runtime import spawn, sync, zygote

HERE = Path(__file__).parent


@pytest.fixture(autouse=True)
def test_entries(monkeypatch):
    monkeypatch.setitem(spawn.ENTRIES, "exit-with", ("_spawn_helpers", "exit_with"))
    monkeypatch.setitem(spawn.ENTRIES, "report", ("_spawn_helpers", "report"))
    monkeypatch.setitem(spawn.ENTRIES, "crash", ("_spawn_helpers", "crash"))
    monkeypatch.setitem(spawn.ENTRIES, "report-exit", ("_spawn_helpers", "report_exit_early"))


@pytest.fixture
def helpers():
    client = zygote.start()
    yield client
    client.stop()


def gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.02)
    return False


def run_piped(start, job):
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        child = start(job, stdio=(null, out_w, err_w))
    finally:
        for fd in (null, out_w, err_w):
            os.close(fd)
    return spawn.communicate(child, out_r, err_r, 30)


def test_job_round_trips_and_rejects_unknown_entries():
    job = spawn.Job("exit-with", {"code": 3}, title="t", log="/x.log", detach=True)
    assert spawn.Job.from_dict(job.to_dict()) == job
    with pytest.raises(spawn.SpawnError, match="unknown helper"):
        spawn.Job.from_dict({"entry": "rm -rf", "args": {}})


def test_close_fds_except_keeps_only_what_is_asked(tmp_path):
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(Path(spawn.__file__).parents[2])!r})
        from pyrun.runtime import spawn
        fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(6)]
        spawn.close_fds_except({{fds[1], fds[4]}})
        print(sorted(int(f) for f in os.listdir("/proc/self/fd") if int(f) > 2))
        print(fds[1], fds[4])
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    listed, kept = out.splitlines()
    listed = {int(x) for x in listed.strip("[]").split(", ")}
    kept = {int(x) for x in kept.split()}
    assert kept <= listed and len(listed - kept) <= 1  # the one left is the listing's own


def test_fork_child_exit_code_stdio_and_log(tmp_path):
    out, err, code = run_piped(spawn.fork_child, spawn.Job("exit-with", {"code": 7, "out": "hi"}, title="t"))
    assert (out, err, code) == (b"hi\n", b"err\n", 7)
    log = tmp_path / "child.log"
    child = spawn.fork_child(spawn.Job("exit-with", {"code": 0, "out": "logged"}, title="t", log=str(log)))
    assert child.wait(30) == 0
    assert sorted(log.read_text().splitlines()) == ["err", "logged"]


def test_a_crashing_entry_exits_126_with_its_traceback_in_the_log(tmp_path):
    log = tmp_path / "crash.log"
    child = spawn.fork_child(spawn.Job("crash", {}, title="t", log=str(log)))
    assert child.wait(30) == spawn.EXIT_FAILED
    assert "RuntimeError: boom" in log.read_text()


def test_the_child_has_a_title_its_own_session_and_only_the_sync_socket(tmp_path):
    mine, theirs = sync.socketpair()
    child = spawn.fork_child(spawn.Job("report", {}, title=f"pyrun-test {tmp_path}"), sock=theirs)
    theirs.close()
    hello = sync.recv(mine, "hello", timeout=30)
    sync.send(mine, "go")
    assert child.wait(30) == 0
    assert hello["pid"] == child.pid and hello["sid"] == child.pid
    assert hello["cmdline"] == f"pyrun-test {tmp_path}"
    assert len([fd for fd in hello["fds"] if fd > 2]) <= 2  # the sync socket (+ the listing's own fd)


def test_fork_refuses_a_threaded_process():
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, name="busy")
    t.start()
    try:
        with pytest.raises(spawn.SpawnError, match="1 other|threads"):
            spawn.fork_child(spawn.Job("exit-with", {"code": 0}, title="t"))
        with pytest.raises(spawn.SpawnError):
            zygote.start()
    finally:
        stop.set()
        t.join()


def test_zygote_forks_jobs_and_reports_exit_codes(helpers):
    out, err, code = run_piped(helpers.spawn, spawn.Job("exit-with", {"code": 5, "out": "from the zygote"},
                                                        title="t"))
    assert (out, err, code) == (b"from the zygote\n", b"err\n", 5)


def test_zygote_serves_requests_from_threads_while_one_job_waits(helpers, tmp_path):
    mine, theirs = sync.socketpair()
    waiting = helpers.spawn(spawn.Job("report", {}, title=f"pyrun-test {tmp_path}"), sock=theirs)
    theirs.close()
    hello = sync.recv(mine, "hello", timeout=30)
    assert hello["cmdline"] == f"pyrun-test {tmp_path}" and hello["sid"] == hello["pid"] == waiting.pid
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(run_piped(
        helpers.spawn, spawn.Job("exit-with", {"code": i}, title="t"))[2])) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [0, 1, 2, 3]  # all done while the first job still waits
    assert waiting.poll() is None
    sync.send(mine, "go")
    assert waiting.wait(30) == 0


def test_a_spawn_that_does_not_wait_for_the_fork_reads_it_with_the_first_wait(helpers):
    child = helpers.spawn(spawn.Job("exit-with", {"code": 3}, title="t"), wait_started=False)
    assert child.pid == 0
    child.kill()  # no pid yet: nothing is signalled (pid 0 would be our own process group)
    assert child.wait(30) == 3 and child.pid > 0
    helpers.channel.close()  # the zygote goes: a request it never answered is a clear error
    os.waitpid(helpers.pid, 0)
    with pytest.raises(zygote.ZygoteGone):
        helpers.spawn(spawn.Job("exit-with", {"code": 0}, title="t"), wait_started=False).wait(10)


def test_an_exit_code_reported_early_is_taken_without_waiting_for_the_exit(helpers):
    report, theirs = sync.socketpair()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    null = os.open(os.devnull, os.O_RDONLY)
    child = helpers.spawn(spawn.Job("report-exit", {"code": 7, "linger": 30}, title="t"), sock=theirs,
                          stdio=(null, out_w, err_w))
    for fd in (null, out_w, err_w):
        os.close(fd)
    theirs.close()
    out, err, code = spawn.communicate(child, out_r, err_r, 20, report=report)  # waiting for the exit: TimeoutError
    assert (out, code) == (b"out\n", 7)
    os.kill(child.pid, signal.SIGKILL)
    assert gone(child.pid)
    report.close()


def test_a_dead_zygote_is_a_clear_error_not_a_hang(helpers):
    mine, theirs = sync.socketpair()
    child = helpers.spawn(spawn.Job("report", {}, title="t"), sock=theirs)
    theirs.close()
    sync.recv(mine, "hello", timeout=30)
    os.kill(helpers.pid, signal.SIGKILL)
    os.waitpid(helpers.pid, 0)
    with pytest.raises(zygote.ZygoteGone, match="lost the exit status"):
        child.wait(10)
    with pytest.raises(zygote.ZygoteGone, match="zygote .* is gone|did not start"):
        helpers.spawn(spawn.Job("exit-with", {"code": 0}, title="t"))
    sync.send(mine, "go")  # the job outlived its zygote
    assert gone(child.pid)


def test_the_zygote_dies_with_its_server(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(spawn.__file__).parents[2])!r})
        from pyrun.runtime import zygote
        z = zygote.start()
        print(z.pid, flush=True)
        time.sleep(60)
    """)
    server = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(server.stdout.readline())
        deadline = time.monotonic() + 10
        while not Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"pyrun-zygote"):
            assert time.monotonic() < deadline, "the zygote never took its title"
            time.sleep(0.02)
    finally:
        server.kill()
        server.wait()
    assert gone(pid)
