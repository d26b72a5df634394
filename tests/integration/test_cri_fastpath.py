"""The CRI fast path (CreateContainer does not wait for the container's set-up) through gRPC: what the
kubelet sees between CreateContainer and StartContainer, a set-up that fails, RemoveContainer's cgroup."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import grpc
import pytest

from _cri_helpers import container_config, remove_pod, running_server, sandbox_config

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


@pytest.fixture(scope="module")
def env(demo_layout):
    with running_server(demo_layout, "pyrun-crifast") as e:
        rt, _, pb, ch = e["server"].stubs("v1")
        try:
            yield {"tmp": e["tmp"], "rt": rt, "pb": pb, "parent": e["parent"]}
        finally:
            ch.close()


def _container_cgroups(parent: str, cid: str) -> list[Path]:
    return [p for base in Path("/sys/fs/cgroup").iterdir() if (base / parent).is_dir()
            for p in (base / parent).rglob(cid)]


def test_a_container_being_created_is_never_listed_unknown(env):
    """The kubelet relists while it creates; a container whose monitor the zygote has not forked yet
    (no monitor.json) must read created, not unknown (the kubelet kills unknown containers)."""
    rt, pb = env["rt"], env["pb"]
    cfg = sandbox_config(pb, "listed", env["tmp"])
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg)).pod_sandbox_id
    seen: set[int] = set()
    done = threading.Event()

    def relist():
        while not done.is_set():
            for c in rt.ListContainers(pb.ListContainersRequest(filter=pb.ContainerFilter(pod_sandbox_id=sid))).containers:
                seen.add(c.state)
    lister = threading.Thread(target=relist)
    lister.start()
    try:
        cids = []
        for i in range(4):
            cc = container_config(pb, f"c{i}", ["sleep", "1000"])
            cids.append(rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=cc,
                                                                     sandbox_config=cfg)).container_id)
            listed = rt.ListContainers(pb.ListContainersRequest(filter=pb.ContainerFilter(id=cids[-1]))).containers
            assert [c.state for c in listed] == [pb.CONTAINER_CREATED]
    finally:
        done.set()
        lister.join()
    assert pb.CONTAINER_UNKNOWN not in seen and pb.CONTAINER_CREATED in seen
    for cid in cids:
        rt.StartContainer(pb.StartContainerRequest(container_id=cid))
    remove_pod(rt, pb, sid)


def test_a_failed_set_up_is_named_by_every_start_until_removed_and_the_cgroup_goes_with_the_removal(env):
    rt, pb = env["rt"], env["pb"]
    cfg = sandbox_config(pb, "badmount", env["tmp"])
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg)).pod_sandbox_id
    source = env["tmp"] / "a-file"
    source.write_text("a file cannot be mounted on the image's /etc directory")
    cc = container_config(pb, "main", ["sleep", "1000"],
                          mounts=[pb.Mount(container_path="/etc", host_path=str(source))])
    cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=cc, sandbox_config=cfg)).container_id
    cs = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status  # the kubelet's status query first
    assert (cs.state, cs.reason) == (pb.CONTAINER_EXITED, "StartError")
    for _ in range(2):
        with pytest.raises(grpc.RpcError) as e:
            rt.StartContainer(pb.StartContainerRequest(container_id=cid))
        assert "mount /etc" in e.value.details() and "not created" not in e.value.details(), e.value.details()
    assert _container_cgroups(env["parent"], cid)
    rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))
    assert _container_cgroups(env["parent"], cid) == []  # removed before the answer, not by a worker later
    remove_pod(rt, pb, sid)
