"""pyrun.runtime.api.Runtime, the one way in, on a temporary state root without root: the running check
for exec/attach/reopen-log, logs read and followed to a container's exit, stats with a fake cgroups
driver (the CPU rate between two calls), and port-forward into a pod that is not ready."""
from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from pyrun.config import Config
from pyrun.errors import InvalidState, SpecError
from pyrun.linux.procs import ProcessRef
from pyrun.runtime.api import Runtime
from pyrun.runtime.logs import format_entry
from pyrun.runtime.records import ContainerCgroup, ContainerEntry, ContainerRecord, ContainerStatus, PodCgroup, PodRecord
from pyrun.runtime.state import StateStore, write_monitor, write_status

POD, CID = "a" * 64, "b" * 64


@pytest.fixture
def made(tmp_path):
    """A pod with one container whose monitor is this (live) process; its status is the test's to set."""
    root = tmp_path / "root"
    store = StateStore(root)
    store.ensure()
    store.pod_dir(POD).mkdir()
    store.reserve_name("default", "web", POD)
    me = ProcessRef.of(os.getpid())
    store.write_pod(PodRecord(id=POD, name="web", namespace="default", uid="u", state="running", created_at=1,
                              pause=ProcessRef(1, 1), cgroup=PodCgroup(path="/pyrun/podu"),
                              containers=(ContainerEntry(name="main", id=CID),)))
    cdir = store.container_dir(CID)
    cdir.mkdir()
    log = tmp_path / "0.log"
    store.write_container(ContainerRecord(id=CID, pod_id=POD, name="main", image="busybox", created_at=1,
                                          log_path=str(log), cgroup=ContainerCgroup(path="/pyrun/podu/" + CID)))
    write_monitor(cdir, me)

    def status(state: str) -> None:
        write_status(cdir, ContainerStatus(state=state, pid=me.pid, start_time=me.start_time))
    status("running")
    return SimpleNamespace(rt=Runtime(Config(root=root, network_mode="none")), status=status, log=log)


def test_exec_attach_and_reopen_need_a_running_container(made):
    handle = made.rt.exec(CID, ["true"])
    assert (handle.container, handle.argv) == ("main", ("true",))
    assert made.rt.attach(CID).running()
    with pytest.raises(SpecError, match="cmd"):
        made.rt.exec(CID, [])
    made.status("exited")
    for call in (lambda: made.rt.exec(CID, ["true"]), lambda: made.rt.attach(CID), lambda: made.rt.reopen_log(CID),
                 lambda: made.rt.exec_sync(CID, ["true"], 1)):
        with pytest.raises(InvalidState, match="container main is exited, not running"):
            call()


def test_logs_are_read_and_a_follower_stops_once_the_container_exited(made):
    made.log.write_bytes(format_entry(1, "stdout", False, b"hello") + format_entry(2, "stderr", True, b"wor")
                         + format_entry(2, "stderr", False, b"ld"))
    assert b"".join(made.rt.logs("web")) == b"hello\nworld\n"
    assert b"".join(made.rt.logs("web", "main", timestamps=True)).startswith(b"1970-01-01T00:00:00.000000001Z hello")
    made.status("exited")
    assert b"".join(made.rt.logs("web", follow=True)) == b"hello\nworld\n"  # drained, then done


def test_stats_give_the_cpu_rate_since_the_previous_call(made, monkeypatch):
    usage = {"n": 0}

    class FakeCgroups:
        def stats(self, path):
            usage["n"] += 10**9
            return SimpleNamespace(cpu_usage_ns=usage["n"])
    monkeypatch.setattr(made.rt, "_cgroups", lambda: FakeCgroups())
    first = made.rt.stats()
    assert [u.name for u in first] == ["web (pod)", "web/main"] and all(u.cpu_percent is None for u in first)
    second = made.rt.stats("web")
    assert all(u.cpu_nanocores and u.cpu_nanocores > 0 for u in second)


def test_port_forward_needs_a_ready_pod(made):
    with pytest.raises(InvalidState, match="pod sandbox web is not ready"):
        made.rt.port_forward(POD)  # its pause process (pid 1 with another start time) is not alive
