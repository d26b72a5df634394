"""`pyrun cri serve` on the real kernel, driven like crictl drives it (plain grpc stubs, v1 and v1alpha2)."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest

from _cri_helpers import (DEMO_IMAGE, CriServer, cgroup_dirs, cli_argv, container_config, data_root_of, remove_pod, run_pod,
                          running_server, sandbox_config)

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


@pytest.fixture(scope="module")
def env(demo_layout):
    with running_server(demo_layout, "pyrun-cri") as e:
        yield e


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as e:
        call()
    return e.value.code()


def test_socket_is_private(env):
    assert oct(env["server"].sock.stat().st_mode & 0o777) == "0o600"


def test_crictl_workflow_v1(env):
    rt, im, pb, ch = env["server"].stubs("v1")
    tmp = env["tmp"]
    assert rt.Version(pb.VersionRequest()).runtime_api_version == "v1"
    conds = {c.type: c.status for c in rt.Status(pb.StatusRequest()).status.conditions}
    assert conds == {"RuntimeReady": True, "NetworkReady": False}
    assert im.ImageFsInfo(pb.ImageFsInfoRequest()).image_filesystems[0].used_bytes.value > 0
    (image,) = [i for i in im.ListImages(pb.ListImagesRequest()).images if "docker.io/pyrun/demo:latest" in i.repo_tags]
    assert im.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=DEMO_IMAGE))).image.id == image.id
    assert not im.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image="no/such:img"))).HasField("image")
    # (PullImage is left out: it would contact a registry; tests/unit/test_cri_service.py covers the call site)

    cfg = sandbox_config(pb, "flow", tmp)
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg)).pod_sandbox_id
    st = rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status
    assert st.state == pb.SANDBOX_READY and st.metadata.name == "flow" and st.metadata.uid == "uid-flow"
    assert dict(st.labels) == dict(cfg.labels) and dict(st.annotations) == {"note": "as sent: ☃"}
    assert abs(st.created_at - time.time_ns()) < 60e9

    cc = container_config(pb, "app", ["sh", "-c", "echo hello; echo oops >&2; exec sleep 1000"],
                          envs=[pb.KeyValue(key="GREETING", value="hi $(X)")])
    cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=cc, sandbox_config=cfg)).container_id
    assert rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status.state == pb.CONTAINER_CREATED
    rt.StartContainer(pb.StartContainerRequest(container_id=cid))
    assert code_of(lambda: rt.StartContainer(pb.StartContainerRequest(container_id=cid))) == \
        grpc.StatusCode.FAILED_PRECONDITION

    # pods / ps with filters
    ids = [p.id for p in rt.ListPodSandbox(pb.ListPodSandboxRequest(filter=pb.PodSandboxFilter(
        label_selector={"io.kubernetes.pod.uid": "uid-flow"}))).items]
    assert ids == [sid]
    assert [p.id for p in rt.ListPodSandbox(pb.ListPodSandboxRequest(filter=pb.PodSandboxFilter(id=sid[:12]))).items] == [sid]
    ready = pb.PodSandboxFilter(state=pb.PodSandboxStateValue(state=pb.SANDBOX_NOTREADY))
    assert sid not in [p.id for p in rt.ListPodSandbox(pb.ListPodSandboxRequest(filter=ready)).items]
    running = pb.ContainerFilter(pod_sandbox_id=sid, state=pb.ContainerStateValue(state=pb.CONTAINER_RUNNING))
    assert [c.id for c in rt.ListContainers(pb.ListContainersRequest(filter=running)).containers] == [cid]
    assert rt.ListContainers(pb.ListContainersRequest(filter=pb.ContainerFilter(label_selector={"c": "zzz"}))).containers == []

    # inspect
    cs = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid[:12])).status
    assert cs.state == pb.CONTAINER_RUNNING and cs.metadata.name == "app" and cs.started_at >= cs.created_at > 0
    assert cs.image.image == DEMO_IMAGE and cs.image_ref == image.id and dict(cs.labels) == {"c": "app"}
    assert cs.log_path == str(tmp / "logs" / "ns_flow_uid-flow" / "app" / "0.log")

    # logs in the CRI format
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "oops" not in Path(cs.log_path).read_text():
        time.sleep(0.1)
    lines = Path(cs.log_path).read_text().splitlines()
    assert any(line.endswith(" stdout F hello") for line in lines) and any(" stderr F oops" in x for x in lines)

    # exec sync: output, exit code, env as sent (no second $(VAR) expansion), timeout
    r = rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "echo $GREETING; echo e >&2; exit 7"],
                                       timeout=10))
    assert (r.stdout, r.stderr, r.exit_code) == (b"hi $(X)\n", b"e\n", 7)
    start = time.monotonic()
    assert code_of(lambda: rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["sleep", "30"], timeout=1))) == \
        grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - start < 10

    # stats
    stats = rt.ContainerStats(pb.ContainerStatsRequest(container_id=cid)).stats
    assert stats.attributes.id == cid and stats.cpu.usage_core_nano_seconds.value > 0
    assert stats.memory.working_set_bytes.value > 0
    pstats = rt.PodSandboxStats(pb.PodSandboxStatsRequest(pod_sandbox_id=sid)).stats
    assert pstats.linux.process.process_count.value >= 2 and [c.attributes.id for c in pstats.linux.containers] == [cid]
    assert cid in [s.attributes.id for s in rt.ListContainerStats(pb.ListContainerStatsRequest()).stats]
    assert sid in [s.attributes.id for s in rt.ListPodSandboxStats(pb.ListPodSandboxStatsRequest()).stats]

    # update resources and reopen the log
    rt.UpdateContainerResources(pb.UpdateContainerResourcesRequest(
        container_id=cid, linux=pb.LinuxContainerResources(cpu_shares=512, memory_limit_in_bytes=64 << 20)))
    mem = Path("/sys/fs/cgroup/memory") / env["parent"]
    limits = [p.read_text().strip() for p in mem.rglob(f"{cid}/memory.limit_in_bytes")]
    if mem.exists():
        assert limits == [str(64 << 20)]
    os.rename(cs.log_path, cs.log_path + ".1")
    rt.ReopenContainerLog(pb.ReopenContainerLogRequest(container_id=cid))
    assert Path(cs.log_path).exists()

    # the CLI sees the CRI pod (shared state root)
    ls = subprocess.run(cli_argv(env["root"], env["parent"]) + ["pod", "ls", "-o", "json"], capture_output=True,
                        text=True, check=True)
    assert sid in [p["id"] for p in json.loads(ls.stdout)]

    # stop, rm, stopp, rmp (idempotent)
    rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=2))
    cs = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status
    assert cs.state == pb.CONTAINER_EXITED and cs.finished_at >= cs.started_at and cs.exit_code == 143
    rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))
    rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))
    assert code_of(lambda: rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid))) == grpc.StatusCode.NOT_FOUND
    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
    assert rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status.state == pb.SANDBOX_NOTREADY
    assert code_of(lambda: rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=cc))) == \
        grpc.StatusCode.FAILED_PRECONDITION
    rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
    rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
    assert code_of(lambda: rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid))) == \
        grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))) == \
        grpc.StatusCode.NOT_FOUND  # containerd answers NotFound for an unknown sandbox too

    # rmi: a second tag, removed twice (idempotent); the original stays
    subprocess.run(cli_argv(env["root"], env["parent"]) + ["image", "import", str(env["layout"]), "pyrun/demo:extra"],
                   check=True, capture_output=True)
    im.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image="pyrun/demo:extra")))
    im.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image="pyrun/demo:extra")))
    assert not im.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image="pyrun/demo:extra"))).HasField("image")
    assert im.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=DEMO_IMAGE))).HasField("image")
    assert code_of(lambda: rt.Exec(pb.ExecRequest(container_id=cid, cmd=["sh"], stdout=True))) == \
        grpc.StatusCode.NOT_FOUND  # (Exec itself: tests/integration/test_cri_streams_live.py)
    ch.close()


def test_workflow_v1alpha2(env):
    rt, im, pb, ch = env["server"].stubs("v1alpha2")
    assert rt.Version(pb.VersionRequest()).runtime_api_version == "v1alpha2"
    assert im.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=DEMO_IMAGE))).image.id.startswith("sha256:")
    sid, cid = run_pod(rt, pb, "old-api", env["tmp"], ["sh", "-c", "echo v1alpha2; exec sleep 1000"])
    st = rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status
    assert st.state == pb.SANDBOX_READY and st.metadata.namespace == "ns"
    assert rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["cat", "/etc/hostname"], timeout=5)).stdout == \
        b"old-api\n"
    assert [c.id for c in rt.ListContainers(pb.ListContainersRequest(
        filter=pb.ContainerFilter(pod_sandbox_id=sid))).containers] == [cid]
    rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=1))
    assert rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status.state == pb.CONTAINER_EXITED
    remove_pod(rt, pb, sid)
    ch.close()


def test_concurrent_run_pod_sandbox_makes_one(env):
    rt, _, pb, ch = env["server"].stubs("v1")
    cfg = sandbox_config(pb, "race", env["tmp"])
    results: list = []

    def run():
        try:
            results.append(rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg)).pod_sandbox_id)
        except grpc.RpcError as e:
            results.append(e.code())
    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [r for r in results if isinstance(r, str)]
    assert len(ids) == 1, results
    assert all(r == grpc.StatusCode.ALREADY_EXISTS for r in results if not isinstance(r, str))
    listed = rt.ListPodSandbox(pb.ListPodSandboxRequest(filter=pb.PodSandboxFilter(
        label_selector={"io.kubernetes.pod.uid": "uid-race"}))).items
    assert [p.id for p in listed] == ids
    # a new attempt of the same pod is a new sandbox
    again = sandbox_config(pb, "race", env["tmp"], attempt=1)
    sid2 = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=again)).pod_sandbox_id
    assert rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid2)).status.metadata.attempt == 1
    remove_pod(rt, pb, ids[0])
    remove_pod(rt, pb, sid2)
    ch.close()


def test_a_pod_made_again_under_its_name_gets_a_new_sandbox(env):
    """A StatefulSet pod deleted and created again has a new uid; its old sandbox is still there
    (stopped) until the kubelet's garbage collection removes it."""
    rt, _, pb, ch = env["server"].stubs("v1")
    old = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=sandbox_config(pb, "web-0", env["tmp"], uid="u-1"))).pod_sandbox_id
    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=old))
    cfg = sandbox_config(pb, "web-0", env["tmp"], uid="u-2")
    new = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg)).pod_sandbox_id
    assert new != old
    status = rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=new)).status
    assert (status.metadata.name, status.metadata.uid, status.state) == ("web-0", "u-2", pb.SANDBOX_READY)
    assert code_of(lambda: rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg))) == grpc.StatusCode.ALREADY_EXISTS
    remove_pod(rt, pb, old)
    remove_pod(rt, pb, new)
    ch.close()


def test_bad_requests_are_invalid_argument(env):
    rt, _, pb, ch = env["server"].stubs("v1")
    bad_parent = sandbox_config(pb, "badcg", env["tmp"], linux=pb.LinuxPodSandboxConfig(cgroup_parent="/elsewhere/podx"))
    with pytest.raises(grpc.RpcError) as e:
        rt.RunPodSandbox(pb.RunPodSandboxRequest(config=bad_parent))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "config.linux.cgroup_parent" in e.value.details()
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=sandbox_config(pb, "badc", env["tmp"]))).pod_sandbox_id
    missing = container_config(pb, "x", ["true"], image="no/such:image")
    assert code_of(lambda: rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=missing))) == \
        grpc.StatusCode.NOT_FOUND
    assert [p for p in rt.ListContainers(pb.ListContainersRequest(
        filter=pb.ContainerFilter(pod_sandbox_id=sid))).containers] == []
    remove_pod(rt, pb, sid)
    assert not (env["root"] / "names" / "ns_badcg").exists()
    ch.close()


def test_cgroup_parent_is_the_pod_cgroup(env):
    rt, _, pb, ch = env["server"].stubs("v1")
    uid = "cg-" + secrets.token_hex(3)
    parent = f"/{env['parent']}/kubepods/burstable/pod{uid}"
    from pyrun.cgroups import CgroupPath, open_cgroups
    from pyrun.config import Config
    cg = open_cgroups(Config(cgroup_parent=env["parent"]))
    cg.create(CgroupPath.parse(parent))  # the kubelet makes the pod cgroup before RunPodSandbox
    cfg = sandbox_config(pb, "cgp", env["tmp"], uid=uid, linux=pb.LinuxPodSandboxConfig(cgroup_parent=parent))
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg)).pod_sandbox_id
    cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=container_config(
        pb, "c", ["sleep", "1000"]))).container_id
    rt.StartContainer(pb.StartContainerRequest(container_id=cid))
    pids = Path(cg.paths(CgroupPath.parse(parent))["pids"])  # v1: /sys/fs/cgroup/pids/..., v2: /sys/fs/cgroup/...
    assert pids.is_dir() and (pids / cid).is_dir() and (pids / "pause").is_dir()
    record = json.loads((env["root"] / "pods" / sid / "pod.json").read_text())
    assert record["cgroup"]["path"] == parent and record["cri"]["cgroup_parent"] == parent
    remove_pod(rt, pb, sid)
    # the kubelet owns the pod cgroup: pyrun removed only its own leaves below it
    assert pids.is_dir() and not (pids / cid).exists() and not (pids / "pause").exists()
    cg.remove(CgroupPath.parse(parent))  # as the kubelet would
    assert not pids.exists()
    # a cgroup_parent nobody made: pyrun made it (mkdir -p), so it goes with the pod
    cfg = sandbox_config(pb, "cgp2", env["tmp"], uid=uid + "b",
                         linux=pb.LinuxPodSandboxConfig(cgroup_parent=parent + "b"))
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg)).pod_sandbox_id
    assert Path(str(pids) + "b").is_dir()
    remove_pod(rt, pb, sid)
    assert not any(os.path.exists(d) for d in cg.paths(CgroupPath.parse(parent + "b")).values())
    ch.close()


def test_failed_run_pod_sandbox_leaves_nothing(env, tmp_path):
    parent = f"pyrun-cri-fail-{secrets.token_hex(3)}"
    server = CriServer(env["root"], parent, env["tmp"] / "fail.sock", env["tmp"] / "fail.log")
    server.start(env={"PYRUN_FAULT": "volumes:fail"})
    try:
        rt, _, pb, ch = server.stubs("v1")
        before = set(os.listdir(env["root"] / "pods"))
        with pytest.raises(grpc.RpcError) as e:
            rt.RunPodSandbox(pb.RunPodSandboxRequest(config=sandbox_config(pb, "doomed", env["tmp"])))
        assert e.value.code() == grpc.StatusCode.INTERNAL and "volumes" in e.value.details()
        assert set(os.listdir(env["root"] / "pods")) == before
        assert not os.path.lexists(env["root"] / "names" / "ns_doomed")
        assert not cgroup_dirs(parent)
        from pyrun.linux.mounts import mounts_under
        assert not [m for m in mounts_under(env["root"] / "pods")]
        ch.close()
    finally:
        server.stop()


def test_restart_keeps_pods_visible_and_manageable(env):
    server = env["server"]
    rt, _, pb, ch = server.stubs("v1")
    sid, cid = run_pod(rt, pb, "survivor", env["tmp"])
    ch.close()
    server.stop()
    server.start()
    rt, _, pb, ch = server.stubs("v1")
    assert [p.state for p in rt.ListPodSandbox(pb.ListPodSandboxRequest(filter=pb.PodSandboxFilter(id=sid))).items] == \
        [pb.SANDBOX_READY]
    assert rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status.state == pb.CONTAINER_RUNNING
    assert rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["true"], timeout=5)).exit_code == 0
    rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=1))
    rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))
    remove_pod(rt, pb, sid)
    ch.close()


def test_exec_sync_output_is_capped_at_16_mib_and_the_writable_layer_is_in_the_data_root(env):
    from cri_api.v1 import api_pb2 as pb
    from cri_api.v1 import api_pb2_grpc as g
    channel = grpc.insecure_channel(f"unix://{env['server'].sock}",
                                    options=[("grpc.max_receive_message_length", 64 << 20)])
    rt = g.RuntimeServiceStub(channel)
    sid, cid = run_pod(rt, pb, "capped", env["tmp"])
    try:
        r = rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["head", "-c", "17000000", "/dev/zero"], timeout=60))
        assert r.exit_code == 0 and len(r.stdout) == 16 << 20 and set(r.stdout) == {0}
        assert b"output truncated: stdout after 16777216 bytes (222784 more dropped)" in r.stderr
        stats = rt.ContainerStats(pb.ContainerStatsRequest(container_id=cid)).stats
        data_root = env["root"].with_name(env["root"].name + "-data")
        assert stats.writable_layer.fs_id.mountpoint == str(data_root / "containers")
        assert (data_root / "containers" / cid / "upper").is_dir()
    finally:
        remove_pod(rt, pb, sid)
        channel.close()
    assert not (data_root / "containers" / cid).exists()


def test_runtime_default_seccomp_holds_in_the_container_and_in_its_execs(env):
    """The zygote builds RuntimeDefault's filter once; the container's process and every exec load it as built."""
    rt, _, pb, ch = env["server"].stubs("v1")
    default = pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault)  # the CRI's default: Unconfined
    sid, cid = run_pod(rt, pb, "secc", env["tmp"], container_linux=pb.LinuxContainerConfig(
        security_context=pb.LinuxContainerSecurityContext(seccomp=default)))
    r = rt.ExecSync(pb.ExecSyncRequest(container_id=cid, timeout=10, cmd=[
        "sh", "-c", "grep '^Seccomp:' /proc/self/status /proc/$(pidof sleep)/status; unshare -u true 2>/dev/null;"
                    "echo rc=$?"]))  # pid 1 is the pod's pause; `sleep 1000` is the container's process
    lines = r.stdout.decode().splitlines()
    assert lines[0].startswith("/proc/self/status:") and lines[1].startswith("/proc/"), lines
    assert all(line.endswith("Seccomp:\t2") for line in lines[:2]), lines  # 2: a filter is loaded
    assert lines[2] != "rc=0", lines  # unshare(CLONE_NEWUTS) refused (or no such applet)
    remove_pod(rt, pb, sid)
    ch.close()


def test_hostile_names_and_values_are_invalid_argument_naming_the_field(env):
    """Issue 15 item 6 / issue 13 item 4: a 300-character name once gave INTERNAL "File name too long",
    a newline in a name broke the `pod ls` table, a NUL byte failed only at exec."""
    rt, _, pb, ch = env["server"].stubs("v1")
    for meta, field in ((pb.PodSandboxMetadata(name="p" * 300, uid="u-long", namespace="ns"), "config.metadata.name"),
                        (pb.PodSandboxMetadata(name="two\nlines", uid="u-nl", namespace="ns"), "config.metadata.name"),
                        (pb.PodSandboxMetadata(name="ok", uid="u-ns", namespace="n" * 300), "config.metadata.namespace")):
        config = pb.PodSandboxConfig(metadata=meta, log_directory=str(env["tmp"] / "logs" / "hostile"))
        with pytest.raises(grpc.RpcError) as e:
            rt.RunPodSandbox(pb.RunPodSandboxRequest(config=config))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in e.value.details(), e.value.details()
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=sandbox_config(pb, "hostile", env["tmp"]))).pod_sandbox_id
    for config, field in ((container_config(pb, "c", ["true"], envs=[pb.KeyValue(key="A", value="x\0y")]),
                           "config.envs[0].value"),
                          (container_config(pb, "c", ["true"], envs=[pb.KeyValue(key="A=B", value="x")]),
                           "config.envs[0].key"),
                          (container_config(pb, "c", ["sh\0"]), "config.command[0]")):
        with pytest.raises(grpc.RpcError) as e:
            rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=config,
                                                         sandbox_config=sandbox_config(pb, "hostile", env["tmp"])))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in e.value.details(), e.value.details()
    remove_pod(rt, pb, sid)
    listing = subprocess.run(cli_argv(env["root"], env["parent"]) + ["pod", "ls"], capture_output=True, text=True)
    assert listing.returncode == 0 and "hostile" not in listing.stdout and "two" not in listing.stdout
    assert os.listdir(env["root"] / "names") == [] or all("hostile" not in n for n in os.listdir(env["root"] / "names"))
    ch.close()


def test_a_nul_byte_in_any_request_is_invalid_argument_naming_the_field(env):
    """Issue 15: requests not built from specs (ExecSync, Exec, Attach, PortForward, UpdateContainerResources,
    label filters) are checked by the one request check too."""
    rt, _, pb, ch = env["server"].stubs("v1")
    sid, cid = run_pod(rt, pb, "nulreq", env["tmp"])
    for call, request, field in (
            (rt.ExecSync, pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "echo\0 x"], timeout=5), "cmd[2]"),
            (rt.Exec, pb.ExecRequest(container_id=cid, cmd=["a\0"], stdout=True), "cmd[0]"),
            (rt.Attach, pb.AttachRequest(container_id=cid + "\0", stdout=True), "container_id"),
            (rt.PortForward, pb.PortForwardRequest(pod_sandbox_id=sid + "\0", port=[80]), "pod_sandbox_id"),
            (rt.UpdateContainerResources, pb.UpdateContainerResourcesRequest(
                container_id=cid, linux=pb.LinuxContainerResources(unified={"pids.max": "10\0"})),
             "linux.unified['pids.max']"),
            (rt.ListPodSandbox, pb.ListPodSandboxRequest(filter=pb.PodSandboxFilter(label_selector={"a\0": "b"})),
             "filter.label_selector")):
        with pytest.raises(grpc.RpcError) as e:
            call(request)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
        assert field in e.value.details() and "NUL byte" in e.value.details(), e.value.details()
    assert rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["echo", "ok"], timeout=5)).stdout == b"ok\n"
    remove_pod(rt, pb, sid)
    ch.close()


def test_a_device_missing_on_the_host_is_named_and_nothing_is_made(env):
    """Issue 15: start-up errors name the device path they tried."""
    rt, _, pb, ch = env["server"].stubs("v1")
    cfg = sandbox_config(pb, "nodev", env["tmp"])
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg)).pod_sandbox_id
    layers = set(os.listdir(data_root_of(env["root"]) / "containers")) if (data_root_of(env["root"]) / "containers").exists() else set()
    for host_path, why in (("/dev/pyrun-no-such-device", "No such file or directory"),
                           ("/etc/hostname", "is not a character or block device")):
        config = container_config(pb, "c", ["true"], devices=[pb.Device(host_path=host_path, container_path="/dev/x",
                                                                         permissions="rw")])
        with pytest.raises(grpc.RpcError) as e:
            rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=config, sandbox_config=cfg))
        detail = e.value.details()
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, detail
        assert "config.devices[0].host_path" in detail and host_path in detail and why in detail, detail
    assert list(rt.ListContainers(pb.ListContainersRequest(filter=pb.ContainerFilter(pod_sandbox_id=sid))).containers) == []
    now = set(os.listdir(data_root_of(env["root"]) / "containers")) if (data_root_of(env["root"]) / "containers").exists() else set()
    assert now == layers  # no writable layer made
    remove_pod(rt, pb, sid)
    ch.close()


def _serve_fails(root: Path, *args: str, wrapper: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    argv = [*cli_argv(root, "pyrun-cri-startup"), "cri", "serve", *args]
    argv[2] = "pyrun.cli.cri"  # `cri` is registered by pyrun.cli.cri's __main__ (see CriServer.start)
    return subprocess.run([*wrapper, *argv], capture_output=True, text=True, timeout=60)


def in_private_mounts(setup: str) -> tuple[str, ...]:
    """Run a command in a private mount namespace after the shell `setup`: its remounts touch nothing outside."""
    return ("unshare", "--mount", "--propagation", "private", "sh", "-c", f'{setup} && exec "$@"', "sh")


def test_start_up_names_an_unwritable_cgroup_hierarchy_and_makes_nothing(tmp_path):
    """Issue 15: every start-up error names what it tried; a read-only cgroup hierarchy (here the memory one,
    remounted read-only in a private mount namespace) is found at start, not at the first RunPodSandbox."""
    from pyrun.cgroups import read_host_layout
    memory = read_host_layout().require("memory").mount_point
    done = _serve_fails(tmp_path / "root", "--listen", f"unix://{tmp_path}/e.sock",
                        wrapper=in_private_mounts(f"mount -o remount,bind,ro {memory}"))
    assert done.returncode == 7 and "Traceback" not in done.stderr, done.stderr
    assert f"cannot create cgroups under {memory}" in done.stderr and "read-only" in done.stderr, done.stderr
    assert "--cgroup-parent" in done.stderr
    assert not (tmp_path / "root").exists() and not (tmp_path / "e.sock").exists()


def test_start_up_names_an_unusable_data_root_and_makes_nothing(tmp_path):
    for d in ("lower", "upper", "work", "merged", "ro"):
        (tmp_path / d).mkdir()
    overlay = (f"mount -t overlay overlay -o lowerdir={tmp_path}/lower,upperdir={tmp_path}/upper,"
               f"workdir={tmp_path}/work {tmp_path}/merged")
    done = _serve_fails(tmp_path / "root", "--listen", f"unix://{tmp_path}/f.sock",
                        "--data-root", f"{tmp_path}/merged/data", wrapper=in_private_mounts(overlay))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"--data-root) {tmp_path}/merged/data is on a filesystem of type overlay" in done.stderr, done.stderr
    done = _serve_fails(tmp_path / "root", "--listen", f"unix://{tmp_path}/g.sock", "--data-root",
                        f"{tmp_path}/ro/data", wrapper=in_private_mounts(f"mount -t tmpfs -o ro tmpfs {tmp_path}/ro"))
    assert done.returncode == 10 and "Traceback" not in done.stderr, done.stderr
    assert f"{tmp_path}/ro/data" in done.stderr and "Read-only file system" in done.stderr, done.stderr
    assert "--data-root" in done.stderr
    assert not (tmp_path / "root").exists() and not os.listdir(tmp_path / "upper")
    assert not list(tmp_path.glob("*.sock"))


def test_start_up_errors_name_what_they_tried(tmp_path):
    """Issue 15 item 8: `cri serve` once died with "[Errno 99] Cannot assign requested address" alone."""
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _serve_fails(tmp_path / "root", "--listen", f"unix://{tmp_path}/a.sock",
                            "--stream-address", f"127.0.0.1:{port}")
    assert done.returncode == 10, done.stderr
    assert f"127.0.0.1:{port}" in done.stderr and "Address already in use" in done.stderr, done.stderr
    assert not (tmp_path / "a.sock").exists()
    # 192.0.2.1 (TEST-NET-1) is on no interface here: bind fails with EADDRNOTAVAIL, no packet is sent
    done = _serve_fails(tmp_path / "root", "--listen", f"unix://{tmp_path}/b.sock", "--stream-address", "192.0.2.1:0")
    assert done.returncode == 10 and "192.0.2.1:0" in done.stderr and "Cannot assign" in done.stderr, done.stderr
    (tmp_path / "file").write_text("")
    done = _serve_fails(tmp_path / "root", "--listen", f"unix://{tmp_path}/file/c.sock")
    assert done.returncode == 10 and f"{tmp_path}/file" in done.stderr and "--listen" in done.stderr, done.stderr
    done = _serve_fails(tmp_path / "file" / "root", "--listen", f"unix://{tmp_path}/d.sock")
    assert done.returncode == 10 and f"{tmp_path}/file/root" in done.stderr and "--root" in done.stderr, done.stderr


# --- honest status after a crash (issue 15, item 5) ----------------------------------------------

def _cli_status(env, sid: str) -> dict:
    ls = subprocess.run(cli_argv(env["root"], env["parent"]) + ["pod", "ls", "-o", "json"], capture_output=True,
                        text=True, check=True)
    return next(p for p in json.loads(ls.stdout) if p["id"] == sid)


def _wait_gone(pid: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return
        except OSError:
            return
        time.sleep(0.05)
    pytest.fail(f"process {pid} did not die")


def test_killed_pause_is_not_ready_for_the_cri_and_the_cli_alike(env):
    rt, _, pb, ch = env["server"].stubs("v1")
    sid, cid = run_pod(rt, pb, "nopause", env["tmp"])
    assert _cli_status(env, sid)["status"] == "Running"
    pause = json.loads((env["root"] / "pods" / sid / "pod.json").read_text())["pause"]["pid"]
    os.kill(pause, 9)
    _wait_gone(pause)
    assert rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status.state == pb.SANDBOX_NOTREADY
    listed = rt.ListPodSandbox(pb.ListPodSandboxRequest(filter=pb.PodSandboxFilter(id=sid))).items
    assert [s.state for s in listed] == [pb.SANDBOX_NOTREADY]
    assert _cli_status(env, sid)["status"] == "NotReady"
    remove_pod(rt, pb, sid)
    ch.close()


def test_killed_monitor_is_unknown_then_exited_after_stop(env):
    rt, _, pb, ch = env["server"].stubs("v1")
    sid, cid = run_pod(rt, pb, "nomon", env["tmp"])
    workload = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid, verbose=True))
    workload = json.loads(workload.info["info"])["status"]["pid"]
    monitor = json.loads((env["root"] / "containers" / cid / "monitor.json").read_text())["pid"]
    os.kill(monitor, 9)
    _wait_gone(workload)  # the workload dies with its monitor
    cs = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status
    assert (cs.state, cs.reason) == (pb.CONTAINER_UNKNOWN, "MonitorGone")
    listed = rt.ListContainers(pb.ListContainersRequest(filter=pb.ContainerFilter(id=cid))).containers
    assert [c.state for c in listed] == [pb.CONTAINER_UNKNOWN]
    assert _cli_status(env, sid)["status"] == "MonitorGone"
    rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=1))
    cs = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status
    assert (cs.state, cs.reason, cs.exit_code) == (pb.CONTAINER_EXITED, "MonitorGone", 255)
    rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))
    remove_pod(rt, pb, sid)
    ch.close()


def test_stopped_sandbox_reports_no_ip(demo_layout):
    """On the bridge, the server in a throwaway node network namespace (unshare --net)."""
    with running_server(demo_layout, "pyrun-crinet", network="bridge", wrapper=("unshare", "--net")) as e:
        rt, _, pb, ch = e["server"].stubs("v1")
        cfg = sandbox_config(pb, "ipless", e["tmp"])
        sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg)).pod_sandbox_id
        st = rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status
        assert st.state == pb.SANDBOX_READY and st.network.ip.startswith("10.88.")
        rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
        st = rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status
        assert st.state == pb.SANDBOX_NOTREADY and st.network.ip == ""
        assert _cli_status(e, sid)["ip"] is None
        rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
        ch.close()
