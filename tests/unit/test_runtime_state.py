"""State records, name reservations and transitions, against a temporary state root."""
import json
import os

import pytest

from pyrun.errors import AlreadyExists, InvalidState, NotFound
from pyrun.runtime.records import ContainerRecord, ContainerStatus, PodRecord
from pyrun.runtime.state import (CONTAINER_TRANSITIONS, POD_TRANSITIONS, StateStore, check_transition, new_id,
                                 read_json, write_json)


@pytest.fixture
def store(tmp_path):
    s = StateStore(tmp_path / "root")
    s.ensure()
    return s


def test_write_json_is_atomic_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "x.json"
    write_json(path, {"a": 1})
    write_json(path, {"a": 2})
    assert read_json(path) == {"a": 2}
    assert os.listdir(tmp_path) == ["x.json"]


def _record_fsyncs(monkeypatch) -> list[str]:
    """Make os.fsync record what it syncs ("file" or "dir") and do nothing else."""
    import stat
    synced: list[str] = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"))
    return synced


def test_write_json_does_not_sync_by_default(tmp_path, monkeypatch):
    synced = _record_fsyncs(monkeypatch)
    write_json(tmp_path / "x.json", {"a": 1})
    assert synced == []
    assert read_json(tmp_path / "x.json") == {"a": 1}


def test_write_json_at_a_commit_point_syncs_the_file_then_its_directory(tmp_path, monkeypatch):
    synced = _record_fsyncs(monkeypatch)
    write_json(tmp_path / "x.json", {"a": 1}, sync=True)
    assert synced == ["file", "dir"]
    assert os.listdir(tmp_path) == ["x.json"]


def test_store_writes_pass_sync_through(store, monkeypatch):
    synced = _record_fsyncs(monkeypatch)
    pod_id, cid = new_id(), new_id()
    store.pod_dir(pod_id).mkdir()
    store.container_dir(cid).mkdir()
    pod, rec = PodRecord(id=pod_id, name="p"), ContainerRecord(id=cid, pod_id=pod_id, name="c")
    store.write_pod(pod)
    store.write_container(rec)
    assert synced == []
    store.write_pod(pod, sync=True)
    store.write_container(rec, sync=True)
    assert synced == ["file", "dir", "file", "dir"]


def test_name_reservation_is_exclusive(store):
    a, b = new_id(), new_id()
    store.reserve_name("default", "web", a)
    with pytest.raises(AlreadyExists, match="default/web already exists"):
        store.reserve_name("default", "web", b)
    store.reserve_name("other", "web", b)  # namespaces are separate
    store.release_name("default", "web", b)  # not the holder: nothing happens
    assert store.name_holder("default", "web") == a
    store.release_name("default", "web", a)
    assert store.name_holder("default", "web") is None


def _pod(store, name, ns="default"):
    pod_id = new_id()
    store.pod_dir(pod_id).mkdir()
    store.write_pod(PodRecord(id=pod_id, name=name, namespace=ns, state="running"))
    store.reserve_name(ns, name, pod_id)
    return pod_id


def test_find_pod_by_name_namespace_and_id_prefix(store):
    web = _pod(store, "web")
    other = _pod(store, "web", ns="prod")
    assert store.find_pod("web").id == web
    assert store.find_pod("prod/web").id == other
    assert store.find_pod(web[:8]).id == web
    with pytest.raises(NotFound, match="'nope' not found"):
        store.find_pod("nope")


def test_container_record_is_merged_with_the_monitor_status(store):
    cid = new_id()
    store.container_dir(cid).mkdir()
    store.write_container(ContainerRecord(id=cid, pod_id="p", name="c", status=ContainerStatus(state="running")))
    assert store.read_container(cid).status == ContainerStatus(state="created")
    write_json(store.container_dir(cid) / "status.json", {"state": "exited", "exit_code": 3})
    rec = store.read_container(cid)
    assert rec.status.exit_code == 3
    assert "status" not in json.loads((store.container_dir(cid) / "container.json").read_text())


@pytest.mark.parametrize("current,new,ok", [
    ("creating", "running", True), ("running", "stopped", True), ("stopped", "removing", True),
    ("removing", "running", False), ("running", "creating", False),
])
def test_pod_transitions(current, new, ok):
    if ok:
        check_transition(POD_TRANSITIONS, current, new, "pod x")
    else:
        with pytest.raises(InvalidState, match=f"pod x is {current}; it cannot become {new}"):
            check_transition(POD_TRANSITIONS, current, new, "pod x")


def test_container_transitions_end_at_exited():
    check_transition(CONTAINER_TRANSITIONS, "created", "running", "c")
    check_transition(CONTAINER_TRANSITIONS, "running", "exited", "c")
    with pytest.raises(InvalidState):
        check_transition(CONTAINER_TRANSITIONS, "exited", "running", "c")


POD_STATES = ("creating", "running", "stopped", "removing")
CONTAINER_STATES = ("created", "running", "exited", "unknown")
POD_ALLOWED = {("creating", "running"), ("creating", "removing"), ("creating", "stopped"), ("running", "stopped"),
               ("running", "removing"), ("stopped", "stopped"), ("stopped", "removing"), ("stopped", "running"),
               ("removing", "removing")}
CONTAINER_ALLOWED = {("created", "running"), ("created", "exited"), ("running", "exited"), ("unknown", "exited")}


@pytest.mark.parametrize("table, states, allowed", [(POD_TRANSITIONS, POD_STATES, POD_ALLOWED),
                                                    (CONTAINER_TRANSITIONS, CONTAINER_STATES, CONTAINER_ALLOWED)],
                         ids=["pod", "container"])
def test_every_transition_of_the_tables(table, states, allowed):
    for current in states:
        for new in states:
            if (current, new) in allowed:
                check_transition(table, current, new, "x")
            else:
                with pytest.raises(InvalidState):
                    check_transition(table, current, new, "x")
