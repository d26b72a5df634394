"""Process identity and waiting (pyrun.linux.procs), and the order a container's processes are killed in."""
from __future__ import annotations

import os
import threading

from pyrun.linux import procs
from pyrun.linux.procs import ProcessRef
from pyrun.runtime import container


def _exited_child() -> ProcessRef:
    """A child of ours that has exited and is not reaped yet (a zombie)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.write(w, b"x")
        os._exit(0)
    os.close(w)
    ref = ProcessRef.of(pid)
    os.read(r, 1)
    os.close(r)
    assert procs.wait_pids_gone([ref], 10.0)  # exited: its pidfd is readable, a zombie counts as gone
    return ref


def test_alive_and_start_time_read_one_stat_file():
    me = ProcessRef.of(os.getpid())
    assert me.alive()
    assert not ProcessRef(os.getpid(), me.start_time + 1).alive()  # same pid, another process
    assert procs.start_time(os.getpid()) == me.start_time


def test_a_zombie_is_not_alive_and_not_reaped_until_its_parent_waits():
    ref = _exited_child()
    try:
        assert not ref.alive()
        assert procs.is_zombie(ref.pid)
        assert not procs.wait_reaped(ref, 0.05)  # nobody reaps it: False after the timeout
    finally:
        os.waitpid(ref.pid, 0)
    assert procs.wait_reaped(ref, 1.0)


def test_wait_reaped_returns_once_the_parent_reaps():
    ref = _exited_child()
    reaper = threading.Thread(target=os.waitpid, args=(ref.pid, 0))
    reaper.start()
    try:
        assert procs.wait_reaped(ref, 10.0)
    finally:
        reaper.join()


def test_the_workload_is_killed_and_reaped_before_its_monitor(monkeypatch):
    """Killed together, the workload's zombie would go to the host's init, and the pod's PID
    namespace could not finish dying until that init reaped it."""
    calls = []
    monkeypatch.setattr(container, "kill_now", lambda refs: calls.append(("kill", [r.pid for r in refs])))
    monkeypatch.setattr(container, "wait_reaped", lambda ref, timeout: calls.append(("reaped", ref.pid)) or True)
    container.kill_workload_then_monitor(ProcessRef(10, 1), ProcessRef(20, 2))
    assert calls == [("kill", [10]), ("reaped", 10), ("kill", [20])]
    calls.clear()
    container.kill_workload_then_monitor(None, ProcessRef(20, 2))
    assert calls == [("kill", [20])]
    calls.clear()
    container.kill_workload_then_monitor(ProcessRef(10, 1), None)
    assert calls == [("kill", [10])]
