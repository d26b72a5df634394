"""Typed records (pyrun.runtime.records) and the store that alone reads and writes their JSON:
round trips, versions (newer refused, unversioned migrated), the C monitor's exit.json."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from pyrun.errors import RecordError
from pyrun.linux.procs import ProcessRef
from pyrun.runtime import state
from pyrun.runtime.records import (RECORD_VERSION, ContainerCgroup, ContainerCri, ContainerEntry, ContainerRecord,
                                   ContainerStatus, CriMount, CriPortMapping, DeviceNode, InitConfig, MountSpec,
                                   PodCgroup, PodCri, PodNetwork, PodRecord, ProcessSpec, Resources, RootfsSpec,
                                   SandboxInfo, SeccompPlan, SecurityPlan, StepError, decode, encode)
from pyrun.runtime.state import StateStore, new_id

POD_ID, CID = "a" * 64, "c" * 64

POD = PodRecord(
    id=POD_ID, name="web", namespace="prod", uid="u-1", state="running", created_at=123, hostname="web",
    labels={"app": "web"}, annotations={"a": "1"}, qos="Burstable", share_pid=True, host_network=False,
    grace_period=5, warnings=("spec.x: ignored",), spec={"kind": "Pod", "metadata": {"name": "web"}},
    containers=(ContainerEntry(name="c", id=CID),), log_dir="/var/log/pods/x",
    cgroup=PodCgroup(path="/pyrun/kubepods/podu-1", owned=True, sandbox="/pyrun/kubepods/podu-1/pause"),
    pause=ProcessRef(42, 4242), namespaces={"net": "/run/pyrun/pods/a/ns/net"},
    network=PodNetwork(ip="10.88.0.5", prefix_len=16, gateway="10.88.0.1", mac="aa:bb", host_ifname="veth1",
                       ifname="eth0", bridge="pyrun0"),
    volumes={"data": "/run/pyrun/pods/a/volumes/data"},
    cri=PodCri(metadata={"name": "web", "uid": "u-1", "namespace": "prod", "attempt": 0}, labels={"l": "1"},
               log_directory="/var/log/pods/x", namespace_options={"network": 0, "pid": 0, "ipc": 0},
               port_mappings=(CriPortMapping(protocol=0, container_port=80, host_port=8080),),
               security_context={"runAsUser": 1}, privileged=False),
    cgroup_parent_override=None,
)

CONTAINER = ContainerRecord(
    id=CID, pod_id=POD_ID, name="c", image="busybox", image_id="sha256:x", image_name="docker.io/busybox:1",
    created_at=5, log_path="/var/log/pods/x/c/0.log",
    process=ProcessSpec(args=("sh", "-c", "sleep 1"), env=("PATH=/bin",), cwd="/", user="1000"),
    resources=Resources(requests={"cpu": "100m"}, limits={"memory": "64Mi"}),
    cgroup=ContainerCgroup(path="/pyrun/kubepods/podu-1/" + CID, prune=True),
    cri=ContainerCri(metadata={"name": "c", "attempt": 1}, image="busybox", log_path="c/0.log",
                     mounts=(CriMount(container_path="/d", host_path="/h", readonly=True),)),
)

STATUS = ContainerStatus(state="exited", pid=7, start_time=77, started_at=1, finished_at=2, exit_code=-1,
                         reason="StartError", signal=None, error=StepError("exec", "no such file"))

CONFIG = InitConfig(
    id=CID, name="c", pod_id=POD_ID, namespaces={"net": "/n", "pid": None},
    rootfs=RootfsSpec(lower=("/l1", "/l2"), upper="/u", work="/w", target="/t"),
    process=CONTAINER.process, log_path="/log",
    mounts=(MountSpec(source="/s", destination="/d", readonly=True),), capabilities=("CHOWN", "KILL"),
    cgroup_procs=("/sys/fs/cgroup/x/cgroup.procs",), oom_events="/sys/fs/cgroup/x/memory.events",
    security=SecurityPlan(capabilities=("CHOWN",), seccomp=SeccompPlan(type="RuntimeDefault")),
    devices=(DeviceNode(path="/dev/fuse", type="c", major=10, minor=229, mode=0o666, uid=0, gid=0),),
)

SANDBOX = SandboxInfo(pause=ProcessRef(42, 4242), namespaces=("ipc", "net", "uts"))


def _through_json(record):
    """encode -> JSON text -> decode, as the store does."""
    return decode(type(record), json.loads(json.dumps(encode(record))), "test.json")


@pytest.mark.parametrize("record", [POD, replace(POD, cri=None, network=PodNetwork(pending=True), pause=None),
                                    CONTAINER, STATUS, ContainerStatus(), CONFIG, SANDBOX],
                         ids=["pod", "pod-minimal", "container", "status", "status-created", "config", "sandbox"])
def test_every_record_type_round_trips(record):
    assert _through_json(record) == record


def test_every_written_record_carries_the_version():
    for record in (POD, CONTAINER, STATUS, CONFIG, SANDBOX):
        assert encode(record)["version"] == RECORD_VERSION == 1


def test_the_container_file_leaves_the_status_to_the_monitor():
    doc = encode(replace(CONTAINER, status=STATUS))
    assert "status" not in doc
    assert CONTAINER.to_dict()["status"] == {"state": "created"}  # what the CRI's verbose info shows


@pytest.fixture
def store(tmp_path):
    s = StateStore(tmp_path / "root")
    s.ensure()
    s.pod_dir(POD_ID).mkdir()
    s.container_dir(CID).mkdir()
    return s


def test_the_store_round_trips_pods_containers_configs_and_sandboxes(store):
    store.write_pod(POD)
    store.write_container(CONTAINER)
    state.write_status(store.container_dir(CID), STATUS)
    state.write_config(store.container_dir(CID), CONFIG)
    state.write_sandbox(store.pod_dir(POD_ID), SANDBOX)
    assert store.read_pod(POD_ID) == POD
    assert store.read_container(CID) == replace(CONTAINER, status=STATUS)
    assert state.read_config(store.container_dir(CID)) == CONFIG
    assert state.read_sandbox(store.pod_dir(POD_ID)) == SANDBOX
    assert state.read_sandbox(store.pod_dir(new_id())) is None


@pytest.mark.parametrize("file, read", [
    ("pods/{pod}/pod.json", lambda s: s.read_pod(POD_ID)),
    ("containers/{cid}/container.json", lambda s: s.read_container(CID)),
    ("containers/{cid}/status.json", lambda s: state.read_status(s.container_dir(CID))),
    ("containers/{cid}/config.json", lambda s: state.read_config(s.container_dir(CID))),
    ("pods/{pod}/sandbox.json", lambda s: state.read_sandbox(s.pod_dir(POD_ID))),
])
def test_a_newer_version_is_refused_naming_the_file(store, file, read):
    path = store.root / file.format(pod=POD_ID, cid=CID)
    state.write_json(path, {"version": RECORD_VERSION + 1, "id": "x", "future": True})
    with pytest.raises(RecordError, match=rf"{path}: record version 2 is newer than this pyrun understands") as e:
        read(store)
    assert e.value.exit_code == 12


def test_a_damaged_record_is_an_error_naming_the_file(store):
    state.write_json(store.pod_dir(POD_ID) / "pod.json", {"version": 1, "name": "no id"})
    with pytest.raises(RecordError, match="pod.json: damaged PodRecord record"):
        store.read_pod(POD_ID)
    state.write_json(store.pod_dir(POD_ID) / "pod.json", ["not", "an", "object"])
    with pytest.raises(RecordError, match="pod.json: not a PodRecord record"):
        store.read_pod(POD_ID)
    state.write_json(store.pod_dir(POD_ID) / "pod.json", {"version": "one", "id": POD_ID, "name": "x"})
    with pytest.raises(RecordError, match="bad record version 'one'"):
        store.read_pod(POD_ID)


# What the pyrun before typed records wrote (no "version"), copied from a real store.
V0_POD = {
    "id": POD_ID, "name": "web", "namespace": "default", "uid": "5d1c", "state": "running", "created_at": 9,
    "hostname": "web", "labels": {}, "annotations": {}, "qos": "BestEffort", "share_pid": False,
    "host_network": False, "grace_period": 30, "warnings": [], "spec": {"kind": "Pod"},
    "containers": [{"name": "c", "id": CID}], "log_dir": "/run/pyrun/pods/a/logs",
    "cgroup": {"path": "/pyrun/kubepods/besteffort/pod5d1c", "owned": True,
               "sandbox": "/pyrun/kubepods/besteffort/pod5d1c/pause"},
    "pause": {"pid": 42, "start_time": 4242}, "namespaces": {"net": "/n", "ipc": "/i", "uts": "/u"},
    "network": {"ip": "10.88.0.2", "prefix_len": 16, "gateway": "10.88.0.1", "mac": "m", "host_ifname": "veth0",
                "ifname": "eth0", "bridge": "pyrun0"},
    "volumes": {}, "some_key_from_an_old_pyrun": 1,
}
V0_CONTAINER = {"id": CID, "pod_id": POD_ID, "name": "c", "image": "busybox", "image_id": "sha256:x",
                "image_name": "busybox:latest", "created_at": 10, "log_path": "/l",
                "process": {"args": ["sh"], "env": ["PATH=/bin"], "cwd": "/", "user": ""},
                "resources": {"requests": {}, "limits": {}}, "cgroup": {"path": "/p/c", "prune": True}}
V0_STATUS = {"state": "running", "pid": 7, "start_time": 77, "started_at": 11}
V0_CONFIG = {"id": CID, "name": "c", "pod_id": POD_ID, "namespaces": {"net": "/n", "pid": None},
             "rootfs": {"lower": ["/l"], "upper": "/u", "work": "/w", "target": "/t"},
             "mounts": [{"source": "/s", "destination": "/etc/hosts", "readonly": False}],
             "process": V0_CONTAINER["process"], "capabilities": ["CHOWN"], "cgroup_procs": ["/procs"],
             "oom_events": None, "log_path": "/l", "security": {"capabilities": ["CHOWN"], "seccomp": {}},
             "devices": []}


def test_an_unversioned_store_is_migrated(store):
    cdir, pod_dir = store.container_dir(CID), store.pod_dir(POD_ID)
    state.write_json(pod_dir / "pod.json", V0_POD)
    state.write_json(pod_dir / "sandbox.json", {"pause": {"pid": 42, "start_time": 4242}, "namespaces": ["net"]})
    state.write_json(cdir / "container.json", V0_CONTAINER)
    state.write_json(cdir / "status.json", V0_STATUS)
    state.write_json(cdir / "config.json", V0_CONFIG)

    pod = store.read_pod(POD_ID)
    assert (pod.name, pod.ip, pod.pause, pod.cgroup.sandbox) == ("web", "10.88.0.2", ProcessRef(42, 4242),
                                                                  "/pyrun/kubepods/besteffort/pod5d1c/pause")
    assert pod.containers == (ContainerEntry(name="c", id=CID),) and pod.cri is None
    rec = store.read_container(CID)
    assert rec.process.args == ("sh",) and rec.cgroup == ContainerCgroup("/p/c") and rec.status.pid == 7
    assert state.read_config(cdir).mounts == (MountSpec("/s", "/etc/hosts"),)
    assert state.read_sandbox(pod_dir).pause == ProcessRef(42, 4242)

    store.write_pod(pod)  # its next write is in the current version, nothing lost but unknown keys
    doc = json.loads((pod_dir / "pod.json").read_text())
    assert doc["version"] == 1 and "some_key_from_an_old_pyrun" not in doc
    assert {k: v for k, v in doc.items() if k != "version"} == \
        {k: v for k, v in V0_POD.items() if k != "some_key_from_an_old_pyrun"}


def test_exit_json_keeps_the_c_monitors_format(store):
    cdir = store.container_dir(CID)
    state.write_status(cdir, ContainerStatus(state="running", pid=7, start_time=77, started_at=1))
    # exactly what csrc/monitor.c writes: unversioned, its fields win over status.json
    (cdir / "exit.json").write_text('{"exit_code": 137, "finished_at": 9, "reason": "OOMKilled", '
                                    '"signal": "SIGKILL", "state": "exited"}\n')
    assert state.read_status(cdir) == ContainerStatus(state="exited", pid=7, start_time=77, started_at=1,
                                                      finished_at=9, exit_code=137, reason="OOMKilled",
                                                      signal="SIGKILL")
    assert state.read_status(cdir).workload is None  # exited: no process to signal
    lost = ContainerStatus(state="exited", exit_code=255, reason="MonitorGone", finished_at=3,
                           error=StepError("monitor", "gone"))
    state.write_exit(cdir, lost)  # the stop that found the monitor dead writes the same format
    assert "version" not in json.loads((cdir / "exit.json").read_text())
    assert state.read_status(cdir).error == StepError("monitor", "gone")


def test_gc_leaves_a_newer_pyruns_pod_alone_and_refuses_to_take_its_containers(store):
    from pyrun.config import Config
    from pyrun.runtime import gc
    state.write_json(store.pod_dir(POD_ID) / "pod.json", {"version": 99, "id": POD_ID, "state": "creating"})
    assert gc.crashed_pods(store) == []
    with pytest.raises(RecordError, match="version 99"):
        gc.collect_all(Config(root=store.root), lambda pod_id: None)
    assert store.container_dir(CID).is_dir()


def test_records_are_frozen():
    import dataclasses
    with pytest.raises(dataclasses.FrozenInstanceError):
        POD.state = "stopped"  # type: ignore[misc]
    assert replace(POD, state="stopped").state == "stopped" and POD.state == "running"


def test_pod_record_helpers():
    assert POD.container_ids() == [CID]
    assert POD.entry("c") == POD.entry(CID[:6]) == ContainerEntry("c", CID) and POD.entry("x") is None
    assert POD.ip == "10.88.0.5" and POD.net_namespace == "/run/pyrun/pods/a/ns/net"
    assert replace(POD, network=None).ip is None


def test_the_pod_network_record_keeps_every_field_of_an_attachment():
    import dataclasses
    attachment = pytest.importorskip("pyrun.netns.pod").Attachment
    assert {f.name for f in dataclasses.fields(attachment)} <= {f.name for f in dataclasses.fields(PodNetwork)}


# --- the security plan (config.json's "security") ------------------------------------------------

FULL_SECURITY = {
    "privileged": False, "run_as_non_root": True, "run_as_user": 1000, "run_as_group": 1000, "groups": [5, 7],
    "supplemental_groups_policy": "Strict", "fs_group": 5, "capabilities": ["CHOWN", "NET_BIND_SERVICE"],
    "ambient_capabilities": ["NET_BIND_SERVICE"], "no_new_privs": True,
    "seccomp": {"type": "Localhost", "profile": "p.json", "plan": {"default": [1], "rules": [["a", "mkdir"]]},
                "path": "/var/lib/pyrun/seccomp/p.json"},
    "read_only_rootfs": True, "masked_paths": ["/proc/kcore"], "readonly_paths": ["/proc/sys"],
    "sysctls": {"net.ipv4.ip_forward": "1"}, "rlimits": {"NOFILE": [1024, 4096]}, "warnings": ["w"],
}


def test_the_security_plan_round_trips_in_the_same_json_shape():
    plan = SecurityPlan.from_dict(FULL_SECURITY)
    assert plan.seccomp.plan == {"default": [1], "rules": [["a", "mkdir"]]} and plan.rlimits == {"NOFILE": (1024, 4096)}
    assert plan.to_dict() == FULL_SECURITY and list(plan.to_dict()) == list(FULL_SECURITY)
    config = replace(CONFIG, security=plan)
    assert _through_json(config) == config
    assert encode(config)["security"] == FULL_SECURITY
    unconfined = {**FULL_SECURITY, "seccomp": {"type": "Unconfined", "profile": None}}
    assert SecurityPlan.from_dict(unconfined).to_dict() == unconfined  # no plan, no path: none written


@pytest.mark.parametrize("section, field", [
    (None, "security"), ([], "security"),
    ({"seccomp": {"type": "RuntimeDefault"}}, "security.capabilities"),
    ({"capabilities": []}, "security.seccomp"),
    ({"capabilities": [], "seccomp": None}, "security.seccomp"),
    ({"capabilities": [1], "seccomp": {}}, "security.capabilities"),
    ({"capabilities": [], "seccomp": {"type": "RuntimeDefault", "plan": "all"}}, "security.seccomp.plan"),
    ({"capabilities": [], "seccomp": {"plan": {"rules": []}}}, "security.seccomp.type"),
    ({"capabilities": [], "seccomp": {}, "privileged": 1}, "security.privileged"),
    ({"capabilities": [], "seccomp": {}, "no_new_privs": "false"}, "security.no_new_privs"),
    ({"capabilities": [], "seccomp": {}, "run_as_user": True}, "security.run_as_user"),
    ({"capabilities": [], "seccomp": {}, "masked_paths": "/proc"}, "security.masked_paths"),
    ({"capabilities": [], "seccomp": {}, "rlimits": {"NOFILE": [1]}}, "security.rlimits.NOFILE"),
    ({"capabilities": [], "seccomp": {}, "sysctls": {"a": 1}}, "security.sysctls"),
])
def test_a_missing_or_malformed_security_plan_is_refused(section, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        SecurityPlan.from_dict(section)


def test_a_config_with_a_damaged_security_plan_reads_without_one():
    """The monitor, inspect and rm still read it; security.from_config refuses to run it (fail closed)."""
    config = decode(InitConfig, {**encode(CONFIG), "security": {"capabilities": ["CHOWN"]}}, "config.json")
    assert config.security is None and config.security_problem == "security.seccomp: missing, or not an object"
    assert "security" not in config.to_dict() and "security_problem" not in config.to_dict()
    assert decode(InitConfig, encode(replace(CONFIG, security=None)), "c").security_problem is None
