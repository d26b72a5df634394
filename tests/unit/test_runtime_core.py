"""The runtime core without root: PodRuntime against a recording fake of its platform steps
(tests/unit/_fake_platform.py), the monitor's exit record, the init's set-up order.

The order of a create's steps, the rollback when any one of them fails, the pod and container
state transitions, stop/remove of a pod whose container monitor is gone, a crashed create.
"""
from __future__ import annotations

import inspect
import os
import subprocess
import threading
from dataclasses import replace

import pytest

from pyrun.config import Config
from pyrun.errors import InvalidState, NotFound
from pyrun.linux.procs import ProcessRef
from pyrun.runtime import steps as steps_module
from pyrun.runtime.host_steps import HostSteps
from pyrun.runtime.pod import PodRuntime
from pyrun.runtime.records import ContainerCgroup
from pyrun.runtime.state import StateStore
from pyrun.spec import parse_pod

from _fake_platform import MAKES, QUERIES, UNDOES, FakeFailure, FakePlatform
from _spec_helpers import container, manifest

CONTAINER_STEPS = ["open_images", "make_container_dir", "make_writable_layer", "create_container_cgroup",
                   "container_security", "cgroup_files", "spawn_container"]
CREATE_STEPS = (["open_images", "collect_crashed", "reserve_name", "make_pod_dir", "create_pod_cgroup",
                 "launch_sandbox", "attach_network", "write_etc_files", "prepare_volumes"]
                + CONTAINER_STEPS + CONTAINER_STEPS + ["start_container", "start_container"])
FAILABLE = [s for s in CREATE_STEPS if s not in QUERIES]  # the fake's fail_at counts these


@pytest.fixture(scope="module")
def stand_in():
    """A process of ours that reads as alive (the pause process, the monitors); the fake never signals it."""
    proc = subprocess.Popen(["sleep", "600"])
    try:
        yield ProcessRef.of(proc.pid)
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def cfg(tmp_path):
    return Config(root=tmp_path / "run", data_root=tmp_path / "data")


@pytest.fixture
def make(cfg, stand_in):
    """make(fail_at=None) -> (PodRuntime, FakePlatform) on a fresh state root."""
    def build(fail_at: int | None = None) -> tuple[PodRuntime, FakePlatform]:
        fake = FakePlatform(StateStore(cfg.root), stand_in, fail_at=fail_at)
        return PodRuntime(cfg, platform=fake), fake
    return build


def two_containers(name: str = "web"):
    return parse_pod(manifest(container("a", command=["sleep", "1000"],
                                        volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}]),
                              container("b", command=["sleep", "1000"]),
                              name=name, volumes=[{"name": "scratch", "emptyDir": {}}]))


def assert_no_records(rt: PodRuntime) -> None:
    store = rt.store
    assert store.pods() == []
    for d in (store.pods_dir, store.containers_dir, store.names_dir):
        assert not d.exists() or os.listdir(d) == []


def container_states(rt: PodRuntime, pod) -> dict[str, str]:
    return {c.name: c.status.state for c in rt.containers(rt.get(pod.id))}


# --- the seam -------------------------------------------------------------------------------------

def test_the_host_and_the_fake_implement_every_step_of_the_seam():
    wanted = {name: inspect.signature(fn) for name, fn in vars(steps_module.PodSteps).items()
              if inspect.isfunction(fn) and not name.startswith("_")}
    assert len(wanted) >= 20
    for impl in (HostSteps, FakePlatform):
        for name, signature in wanted.items():
            assert hasattr(impl, name), f"{impl.__name__} lacks {name}"
            got = list(inspect.signature(getattr(impl, name)).parameters)
            assert got == list(signature.parameters), (impl.__name__, name)


def test_every_made_resource_has_an_undo():
    assert set(MAKES.values()) == set(UNDOES.values())


# --- create: order and rollback ---------------------------------------------------------------------

def test_create_runs_the_steps_in_order(make):
    rt, fake = make()
    pod = rt.create(two_containers())
    assert fake.names() == CREATE_STEPS
    ids = pod.container_ids()
    made = [c.key for c in fake.calls if c.key]
    assert made == [("name", "default/web"), ("pod_dir", pod.id), ("cgroup", f"pod{pod.uid}"),
                    ("sandbox", pod.id), ("network", pod.id)] + [
        key for cid in ids for key in (("container_dir", cid), ("layer", cid),
                                       ("cgroup", f"pod{pod.uid}/{cid}"), ("processes", cid))]
    assert [c.args[0] for c in fake.calls if c.step == "start_container"] == ids
    assert pod.state == "running" and pod.creator is None
    assert pod.ip == "10.88.0.7"
    assert container_states(rt, pod) == {"a": "running", "b": "running"}



def test_the_init_config_is_made_of_what_the_steps_returned(make):
    """config.json (read by the monitor and the init) carries what the platform steps gave back."""
    from pyrun.runtime.state import read_config
    rt, fake = make()
    pod = rt.create(two_containers(), start=False)
    a = rt.find_container(rt.get("web"), "a")
    config = read_config(rt.store.container_dir(a.id))
    assert config.namespaces == {"pid": None, **pod.namespaces}
    assert set(pod.namespaces) == {"ipc", "net", "uts"}
    assert config.rootfs.lower == ("/fake/layers/top", "/fake/layers/base")
    assert config.rootfs.upper == f"/fake/data/containers/{a.id}/upper"
    assert config.cgroup_procs == (f"/fake/cgroup/pod{pod.uid}/{a.id}/cgroup.procs",)
    assert list(config.capabilities) == ["CAP_CHOWN", "CAP_KILL"] == list(config.security.capabilities)
    assert [m.destination for m in config.mounts] == ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/scratch"]
    assert config.mounts[-1].source == pod.volumes["scratch"]
    assert config.process.args == ("sleep", "1000")
    assert "PATH=/bin" in config.process.env  # from the image config

@pytest.mark.parametrize("step", range(1, len(FAILABLE) + 1))
def test_a_failure_at_any_step_rolls_back_exactly_what_was_made_in_reverse(make, step):
    rt, fake = make(fail_at=step)
    with pytest.raises(FakeFailure):
        rt.create(two_containers())
    assert fake.names(undo=False)[-1] == FAILABLE[step - 1]
    assert fake.effective_undos() == list(reversed(fake.made_at_failure))
    assert fake.made == []
    assert_no_records(rt)
    undone = [c.step for c in fake.calls if c.undo and c.effective]
    assert all(UNDOES[u] == key[0] for u, key in zip(undone, fake.effective_undos()))


def test_the_rollback_after_the_last_container_step_undoes_every_resource_kind(make):
    rt, fake = make(fail_at=len(FAILABLE))
    with pytest.raises(FakeFailure):
        rt.create(two_containers())
    assert {key[0] for key in fake.effective_undos()} == set(UNDOES.values())


def test_an_unknown_image_fails_before_anything_is_made(make):
    rt, fake = make()
    fake.missing_images.add("pyrun/demo:latest")
    with pytest.raises(NotFound):
        rt.create(two_containers())
    assert fake.names() == ["open_images"]
    assert_no_records(rt)


def test_a_taken_name_is_refused_and_the_holder_keeps_it(make):
    rt, fake = make()
    first = rt.create(two_containers())
    from pyrun.errors import AlreadyExists
    with pytest.raises(AlreadyExists):
        rt.create(two_containers())
    assert [p.id for p in rt.store.pods()] == [first.id]
    assert rt.store.name_holder("default", "web") == first.id


# --- state transitions ------------------------------------------------------------------------------

def test_pod_creating_running_stopped_removing(make):
    rt, fake = make()
    seen = []
    fake.hooks["create_pod_cgroup"] = lambda pod_id: seen.append(rt.store.read_pod(pod_id).state)
    pod = rt.create(two_containers())
    assert seen == ["creating"]
    assert rt.get("web").state == "running"
    stopped = rt.stop("web", grace=5)
    assert stopped.state == "stopped" == rt.get("web").state
    assert [c.step for c in fake.calls[-5:]] == ["stop_containers", "kill_cgroup", "kill_cgroup", "kill_sandbox",
                                                 "detach_network"]
    assert fake.calls[-5].args == (tuple(pod.container_ids()), 5)
    assert container_states(rt, pod) == {"a": "exited", "b": "exited"}
    fake.hooks["remove_pod_dir"] = lambda pod_id: seen.append(rt.store.read_pod(pod_id).state)
    rt.remove("web")
    assert seen == ["creating", "removing"]
    assert_no_records(rt)


def test_a_stop_that_releases_removes_the_cgroups_and_namespaces_and_the_removal_finds_them_gone(make):
    rt, fake = make()
    pod = rt.create(two_containers())
    rt.stop("web", grace=5, release=True)
    assert [c.step for c in fake.calls[-3:]] == ["detach_network", "remove_cgroup", "release_namespaces"]
    assert ("cgroup", f"pod{pod.uid}") not in fake.made
    rt.remove("web")
    assert_no_records(rt)
    assert fake.made == []


def test_container_created_running_exited(make):
    rt, fake = make()
    pod = rt.create(two_containers(), start=False)
    assert container_states(rt, pod) == {"a": "created", "b": "created"}
    a = rt.find_container(rt.get("web"), "a")
    rt.start_container(a.id)
    assert container_states(rt, pod) == {"a": "running", "b": "created"}
    rt.stop_container(a.id, grace=1)
    assert container_states(rt, pod) == {"a": "exited", "b": "created"}
    exited = rt.find_container(rt.get("web"), "a").status
    assert (exited.exit_code, exited.reason) == (143, "Error")


def test_refused_transitions_are_invalid_state(make):
    rt, fake = make()
    pod = rt.create(two_containers())
    a = rt.find_container(pod, "a")
    with pytest.raises(InvalidState, match="running"):
        rt.start_container(a.id)                     # running -> running
    with pytest.raises(InvalidState, match="stop it first"):
        rt.remove_container(a.id)                    # a running container
    with pytest.raises(InvalidState, match="stop it first"):
        rt.remove("web")                             # a running pod
    rt.stop("web", grace=1)
    with pytest.raises(InvalidState, match="exited"):
        rt.start_container(a.id)                     # exited -> running
    with pytest.raises(InvalidState, match="containers can only join a ready pod"):
        rt.create_container(pod.id, two_containers().pod.containers[0])
    assert rt.get("web").state == "stopped"


def test_a_pod_still_being_created_cannot_be_stopped_or_removed_without_force(make):
    rt, fake = make()
    pod = rt.create_sandbox(two_containers().pod, ready=False)
    assert pod.state == "creating"
    with pytest.raises(InvalidState, match="still being created"):
        rt.stop("web")
    with pytest.raises(InvalidState, match="being created"):
        rt.remove("web")
    rt.remove("web", force=True)
    assert_no_records(rt)


def test_a_removing_pod_cannot_be_stopped_and_nothing_is_touched(make):
    rt, fake = make()
    pod = rt.create(two_containers())
    with rt.store.pod_lock(pod.id):
        rt.store.write_pod(replace(rt.store.read_pod(pod.id), state="removing"))
    calls = len(fake.calls)
    with pytest.raises(InvalidState, match="removing; it cannot become stopped"):
        rt.stop("web")
    assert fake.calls[calls:] == []


# --- a container whose monitor is gone ---------------------------------------------------------------

def test_stop_of_a_pod_whose_monitor_is_gone_records_the_lost_exit(make):
    rt, fake = make()
    pod = rt.create(two_containers())
    a, b = pod.container_ids()
    fake.monitor_gone(a)
    states = {c.name: c.status for c in rt.containers(rt.get("web"))}
    assert (states["a"].state, states["a"].reason) == ("unknown", "MonitorGone")
    assert states["b"].state == "running"
    _, status = rt.observe(rt.get("web"))
    assert status.status == "MonitorGone" and status.ready == 1
    rt.stop("web", grace=1)
    states = {c.name: c.status for c in rt.containers(rt.get("web"))}
    assert (states["a"].state, states["a"].exit_code, states["a"].reason) == ("exited", 255, "MonitorGone")
    assert (states["b"].state, states["b"].exit_code) == ("exited", 143)
    assert ("kill_cgroup", (ContainerCgroup(path=f"pod{pod.uid}/{a}", prune=True),)) in [
        (c.step, c.args) for c in fake.calls]
    rt.remove("web")
    assert_no_records(rt)
    assert fake.made == []


def test_force_remove_of_a_running_pod_whose_monitor_is_gone(make):
    rt, fake = make()
    pod = rt.create(two_containers())
    a, b = pod.container_ids()
    fake.monitor_gone(a)
    rt.remove("web", force=True)
    assert_no_records(rt)
    assert fake.made == []
    undone = [(c.step, c.args[0] if c.args else None) for c in fake.calls if c.undo and c.effective]
    assert undone[:2] == [("kill_container", b), ("remove_cgroup", ContainerCgroup(path=f"pod{pod.uid}/{b}"))]



def test_a_create_whose_creator_died_is_found_by_gc_and_destroyed_in_reverse(make, stand_in):
    from pyrun.runtime.gc import crashed_pods
    rt, fake = make()
    pod = rt.create_sandbox(two_containers().pod, ready=False)
    rt.create_container(pod.id, two_containers().pod.containers[0], commit=False)
    assert crashed_pods(rt.store) == []  # its creator (this test) is alive
    with rt.store.pod_lock(pod.id):
        gone = ProcessRef(stand_in.pid, stand_in.start_time + 1)  # a process that is gone
        rt.store.write_pod(replace(rt.store.read_pod(pod.id), creator=gone))
    assert crashed_pods(rt.store) == [pod.id]
    made = list(fake.made)
    rt.destroy(pod.id)
    assert fake.effective_undos() == list(reversed(made))
    assert_no_records(rt)

# --- a create that does not wait for the init (the CRI's) -------------------------------------------

class Launching:
    """A Launch whose init is still setting up: wait() counts its callers and ends as told."""

    def __init__(self, outcome):
        self.outcome, self.waits = outcome, 0

    def wait(self, timeout=None):
        self.waits += 1
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome

    def finished(self):
        return self.waits > 0


def test_a_create_without_wait_leaves_the_init_to_the_start(make, stand_in):
    rt, fake = make()
    spec = two_containers().pod
    pod = rt.create_sandbox(spec)
    launch = Launching(stand_in)
    fake.begin_container = lambda cdir: (fake.spawn_container(cdir), launch)[1]
    rec = rt.create_container(pod.id, spec.containers[0], wait=False)
    assert launch.waits == 0  # the create returned without it
    rt.start_container(rec.id)
    assert launch.waits == 1
    with pytest.raises(InvalidState):
        rt.start_container(rec.id)  # running now; the init's set-up is waited for only once
    rt.stop_container(rec.id, grace=1)
    assert launch.waits == 1


def test_a_failed_set_up_is_the_start_s_error_and_the_container_stays_removable(make):
    from pyrun.errors import ContainerStartError
    rt, fake = make()
    spec = two_containers().pod
    pod = rt.create_sandbox(spec)
    failed = Launching(ContainerStartError("a", "mount /scratch", "no such file"))
    fake.begin_container = lambda cdir: (fake.spawn_container(cdir), failed)[1]
    rec = rt.create_container(pod.id, spec.containers[0], wait=False)
    rt.settle(rec.id)  # a status query first (the kubelet's ContainerStatus): the failure is kept for the start
    for _ in range(2):  # each start names the failed step, until the container is removed
        with pytest.raises(ContainerStartError, match="mount /scratch"):
            rt.start_container(rec.id)
    rt.remove_container(rec.id, force=True)
    assert rt.store.read_pod(pod.id).containers == () and rt._launching == {}
    with pytest.raises(NotFound):
        rt.start_container(rec.id)


def test_a_container_whose_monitor_is_still_being_started_reads_created_not_unknown(make, stand_in):
    """Listed while its create runs, or before its monitor wrote monitor.json (the zygote's fork is not
    waited for): created, as containerd lists a container CreateContainer made; unknown once its set-up is
    known and there is no monitor."""
    rt, fake = make()
    spec = two_containers().pod
    pod = rt.create_sandbox(spec)
    seen = []
    fake.hooks["container_security"] = lambda name: seen.append(container_states(rt, pod))  # mid-create
    launch = Launching(stand_in)
    fake.begin_container = lambda cdir: launch  # no monitor.json yet
    rec = rt.create_container(pod.id, spec.containers[0], wait=False)
    assert seen == [{"a": "created"}]
    assert rt.find_container(rt.get(pod.id), "a").status.state == "created"
    rt.settle(rec.id)  # the set-up answered, and still no monitor: it is gone
    assert rt.state_of(rec.id).status.state == "unknown"
    rt.remove_container(rec.id, force=True)
    assert rt._launching == {}


def test_removing_a_pod_first_waits_for_its_containers_set_up(make, stand_in):
    rt, fake = make()
    spec = two_containers().pod
    pod = rt.create_sandbox(spec)
    launches = [Launching(stand_in), Launching(stand_in)]
    fake.begin_container = lambda cdir: (fake.spawn_container(cdir), launches[len(fake.monitors_alive) - 1])[1]
    for c in spec.containers:
        rt.create_container(pod.id, c, wait=False)
    rt.destroy(pod.id)
    assert [launch.waits for launch in launches] == [1, 1]
    assert_no_records(rt)


def test_a_removal_in_the_background_is_gone_at_once_with_its_cgroup_and_leaves_only_files(make):
    rt, fake = make()
    pod = rt.create(two_containers())
    a, b = pod.container_ids()
    gate, released = threading.Event(), []
    fake.hooks["remove_container_dir"] = lambda cid: released.append(gate.wait(10))  # the worker is held here
    rt.stop_container(a, grace=1)
    rt.remove_container(a, force=True, background=True)
    with pytest.raises(NotFound):
        rt.store.read_container(a)  # gone for every caller, its directory still there
    assert list(rt.store.read_pod(pod.id).container_ids()) == [b]
    assert ("container_dir", a) in fake.made  # the worker's
    assert ("cgroup", f"pod{pod.uid}/{a}") not in fake.made  # removed before the record: a crash cannot lose it
    rt.stop("web", grace=1)  # does not wait for the held directory
    assert ("container_dir", a) in fake.made
    gate.set()
    rt.destroy(pod.id)
    rt.reaper.close()  # what a server does on its way out: finish the files
    assert released[0] is True and fake.made == []  # the held removal was released, not timed out
    assert_no_records(rt)


@pytest.mark.parametrize("user, named", [("", False), ("0", False), ("1000:1000", False), ("nobody", True),
                                         ("1000:staff", True), ("app:100", True)])
def test_a_user_given_by_name_is_looked_up_in_the_image_so_its_create_waits(user, named):
    from pyrun.runtime.pod import names_a_user
    assert names_a_user(user) is named


# --- the monitor's decision: how a workload's exit is recorded --------------------------------------

@pytest.mark.parametrize("code,oom,started,want", [
    (0, False, True, {"exit_code": 0, "reason": "Completed", "signal": None}),
    (3, False, True, {"exit_code": 3, "reason": "Error", "signal": None}),
    (-15, False, True, {"exit_code": 143, "reason": "Error", "signal": "SIGTERM"}),
    (-9, True, True, {"exit_code": 137, "reason": "OOMKilled", "signal": "SIGKILL"}),
    (0, True, True, {"exit_code": 0, "reason": "OOMKilled", "signal": None}),   # a child was OOM-killed
    (-9, False, False, {"exit_code": 137, "reason": "NeverStarted", "signal": "SIGKILL"}),
    (-40, False, True, {"exit_code": 168, "reason": "Error", "signal": None}),  # SIGRTMIN+6 has no name
])
def test_exit_outcome(code, oom, started, want):
    from pyrun.runtime.monitor import exit_outcome
    assert exit_outcome(code, oom=oom, started=started) == want


# --- the init: the order of its set-up steps, against a recording fake of what it calls -------------

class Recorder:
    """Stands in for a module: every function called on it is recorded as (module.function, args)."""

    def __init__(self, log: list, module: str, real=None, fail: str | None = None):
        self._log, self._module, self._real, self._fail = log, module, real, fail

    def __getattr__(self, name: str):
        if self._real is not None and name in ("from_config",):
            return getattr(self._real, name)

        def record(*args, **kwargs):
            self._log.append((f"{self._module}.{name}", args))
            if name == self._fail:
                raise OSError(f"{name} failed")
        return record


INIT_SECURITY = {"seccomp": {"plan": None}, "capabilities": [], "masked_paths": ["/proc/kcore"],
                 "readonly_paths": ["/proc/sys"]}


def init_config(**overrides):
    """A config.json as the init gets it (pyrun.runtime.records.InitConfig)."""
    from pyrun.runtime.records import InitConfig, decode
    config = {
        "id": "c" * 64, "name": "c", "pod_id": "p" * 64, "log_path": "/l",
        "namespaces": {"ipc": "/p/ns/ipc", "uts": "/p/ns/uts", "net": "/p/ns/net", "pid": None},
        "rootfs": {"lower": ["/l1", "/l0"], "upper": "/w/upper", "work": "/w/work", "target": "/c/rootfs"},
        "mounts": [{"source": "/p/etc/hosts", "destination": "/etc/hosts", "readonly": True},
                   {"source": "/p/volumes/v", "destination": "/data"}],
        "process": {"args": ["sleep", "1"], "env": [], "cwd": "/", "user": ""},
        "security": INIT_SECURITY,
    }
    config.update(overrides)
    return decode(InitConfig, {k: v for k, v in config.items() if v is not None}, "config.json")


@pytest.fixture
def init_fakes(monkeypatch):
    """(init module, call log, set_failing(module, function)) with linux/rootfs/security/finalize recorded."""
    from pyrun.runtime import init, security
    log: list = []

    def install(fail: tuple[str, str] | None = None):
        for attr, real in (("linux", None), ("rootfs", None), ("security", security), ("finalize", None)):
            failing = fail[1] if fail and fail[0] == attr else None
            monkeypatch.setattr(init, attr, Recorder(log, attr, real, failing))
        monkeypatch.setattr(init, "_preload_caps", lambda: log.append(("caps.preload", ())))
    install()
    return init, log, install


def test_init_sets_up_in_order(init_fakes):
    init, log, _ = init_fakes
    sec = dict(INIT_SECURITY, sysctls={"net.ipv4.ip_forward": "1"}, privileged=True, read_only_rootfs=True)
    fuse = {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "mode": 0o666, "uid": 0, "gid": 0}
    init._set_up(init_config(security=sec, devices=[fuse]), init.Step())
    assert [name for name, _ in log] == [
        "caps.preload", "security.preload",
        "linux.setns", "linux.setns", "linux.setns", "security.apply_sysctls",
        "linux.unshare", "linux.set_propagation", "rootfs.mount_overlay",
        "rootfs.mount_proc", "rootfs.mount_dev", "rootfs.make_device_nodes", "rootfs.mount_sys",
        "security.make_sys_writable", "rootfs.mount_cgroup_view", "rootfs.bind_into", "rootfs.bind_into",
        "security.mask_paths",
        "linux.pivot_root", "security.remount_root_readonly", "finalize.become_container_process"]
    assert ("linux.set_propagation", ("/", "rprivate")) in log
    assert [args[4:] for name, args in log if name == "rootfs.bind_into"] == [(None,), (None,)]
    assert [args[1] for name, args in log if name == "linux.setns"] == ["ipc", "uts", "net"]
    assert [args[2] for name, args in log if name == "rootfs.bind_into"] == ["/etc/hosts", "/data"]


def test_init_mount_propagation_like_runc(init_fakes):
    """A Bidirectional volume: / rshared, the rootfs's parent mount private before the overlay, and every
    bind with its own propagation (rprivate unless asked for)."""
    init, log, _ = init_fakes
    mounts = [{"source": "/p/etc/hosts", "destination": "/etc/hosts"},
              {"source": "/s/a", "destination": "/a", "propagation": "rshared"},
              {"source": "/s/b", "destination": "/b", "propagation": "rslave"}]
    init._set_up(init_config(mounts=mounts), init.Step())
    names = [name for name, _ in log]
    assert ("linux.set_propagation", ("/", "rshared")) in log
    assert names.index("rootfs.make_rootfs_parent_private") < names.index("rootfs.mount_overlay")
    assert [args[1:] for name, args in log if name == "rootfs.bind_into"] == [
        ("/p/etc/hosts", "/etc/hosts", False, "rprivate"), ("/s/a", "/a", False, "rshared"),
        ("/s/b", "/b", False, "rslave")]
    assert init.root_propagation(init_config(mounts=mounts[2:]).mounts) == "rslave"


def test_init_skips_what_the_config_does_not_ask_for(init_fakes):
    init, log, _ = init_fakes
    init._set_up(init_config(namespaces={"ipc": "/p/ns/ipc", "pid": None}, mounts=[]), init.Step())
    names = [name for name, _ in log]
    assert names.count("linux.setns") == 1  # hostNetwork: the node's net and uts
    for skipped in ("security.apply_sysctls", "rootfs.make_device_nodes", "security.make_sys_writable",
                    "rootfs.bind_into", "security.remount_root_readonly"):
        assert skipped not in names


def test_init_refuses_a_config_without_security_before_any_step(init_fakes):
    init, log, _ = init_fakes
    config = init_config(security=None)
    with pytest.raises(Exception, match="no complete \"security\" section"):
        init._set_up(config, init.Step())
    assert log == []


@pytest.mark.parametrize("module,function,step", [
    ("linux", "setns", "join namespaces"),
    ("rootfs", "mount_overlay", "rootfs"),
    ("rootfs", "bind_into", "mount /etc/hosts"),
    ("linux", "pivot_root", "pivot_root"),
])
def test_a_failing_init_step_is_named_and_stops_the_set_up(init_fakes, module, function, step):
    init, log, install = init_fakes
    log.clear()
    install(fail=(module, function))
    current = init.Step()
    with pytest.raises(OSError):
        init._set_up(init_config(), current)
    assert current.name == step  # what init.run reports to the monitor
    assert log[-1][0] == f"{module}.{function}"
    assert "finalize.become_container_process" not in [name for name, _ in log]
