"""The service on a temporary state root, without root: lists, images, errors."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from cri_api.v1 import api_pb2 as pb

from pyrun.config import Config
from pyrun.cri.service import ImageService, RuntimeService
from pyrun.errors import NotFound
from pyrun.linux.procs import ProcessRef
from pyrun.runtime.records import ContainerEntry, ContainerRecord, ContainerStatus, PodRecord
from pyrun.runtime.state import StateStore, write_status


def _fake_pods(root: Path, n: int) -> None:
    store = StateStore(root)
    store.ensure()
    me = ProcessRef(os.getpid(), 0)
    for i in range(n):
        pod_id = f"{i:064x}"
        store.pod_dir(pod_id).mkdir()
        cid = f"{i + 1000:064x}"
        store.write_pod(PodRecord(id=pod_id, name=f"p{i}", namespace="default", uid=f"u{i}", state="running",
                                  created_at=i, labels={"i": str(i % 2)}, annotations={}, pause=me,
                                  containers=(ContainerEntry(name="c", id=cid),)))
        store.container_dir(cid).mkdir()
        store.write_container(ContainerRecord(id=cid, pod_id=pod_id, name="c", image="busybox", image_id="sha256:x",
                                              created_at=i, log_path="/dev/null"))
        write_status(store.container_dir(cid), ContainerStatus(state="exited", exit_code=0))


@pytest.fixture
def runtime(tmp_path):
    return RuntimeService(Config(root=tmp_path / "root", network_mode="none"))


def test_lists_of_100_pods_are_filtered(runtime, tmp_path):
    """How long listing takes is measured in benchmarks/, never asserted here."""
    _fake_pods(tmp_path / "root", 100)
    pods = runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items
    containers = runtime.ListContainers(pb.ListContainersRequest()).containers
    assert len(pods) == 100 and len(containers) == 100
    odd = runtime.ListPodSandbox(pb.ListPodSandboxRequest(filter=pb.PodSandboxFilter(label_selector={"i": "1"})))
    assert len(odd.items) == 50
    one = runtime.ListContainers(pb.ListContainersRequest(filter=pb.ContainerFilter(pod_sandbox_id=f"{7:064x}")))
    assert [c.metadata.name for c in one.containers] == ["c"]
    exited = pb.ContainerFilter(state=pb.ContainerStateValue(state=pb.CONTAINER_EXITED))
    assert len(runtime.ListContainers(pb.ListContainersRequest(filter=exited)).containers) == 100


def test_not_found_and_idempotent_removal(runtime):
    with pytest.raises(NotFound):
        runtime.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id="f" * 64))
    with pytest.raises(NotFound):
        runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id="f" * 64))
    runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id="f" * 64))
    runtime.RemoveContainer(pb.RemoveContainerRequest(container_id="f" * 64))


def test_version_status_and_runtime_config(runtime):
    assert runtime.Version(pb.VersionRequest(), api="v1alpha2").runtime_api_version == "v1alpha2"
    v = runtime.Version(pb.VersionRequest())
    assert (v.version, v.runtime_name, v.runtime_api_version) == ("0.1.0", "pyrun", "v1")
    conditions = {c.type: c for c in runtime.Status(pb.StatusRequest()).status.conditions}
    assert conditions["RuntimeReady"].status and not conditions["NetworkReady"].status
    assert conditions["NetworkReady"].reason == "NetworkModeNone"
    assert runtime.RuntimeConfig(pb.RuntimeConfigRequest()).linux.cgroup_driver == pb.CGROUPFS


def test_image_service_on_an_empty_store(tmp_path):
    cfg = Config(root=tmp_path)
    images = ImageService(cfg)
    assert not images.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image="busybox"))).HasField("image")
    assert list(images.ListImages(pb.ListImagesRequest()).images) == []
    images.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image="busybox")))
    fs = images.ImageFsInfo(pb.ImageFsInfoRequest()).image_filesystems[0]
    assert fs.fs_id.mountpoint == str(cfg.data_root / "images") and fs.used_bytes.value == 0


def test_pull_image_plugs_into_pyrun_images_pull(tmp_path, monkeypatch):
    from pyrun.images import pull
    calls = []

    class Pulled:
        id = "sha256:" + "ab" * 32

    monkeypatch.setattr(pull, "pull_image", lambda store, ref, auth: calls.append((store.root, ref, auth)) or Pulled)
    cfg = Config(root=tmp_path)
    images = ImageService(cfg)
    req = pb.PullImageRequest(image=pb.ImageSpec(image="busybox"), auth=pb.AuthConfig(username="u", password="p"))
    assert images.PullImage(req).image_ref == Pulled.id
    assert calls == [(cfg.image_root, "busybox", {"username": "u", "password": "p"})]


def test_cpu_samples_of_removed_containers_are_dropped(runtime, tmp_path, monkeypatch):
    import shutil
    from types import SimpleNamespace
    _fake_pods(tmp_path / "root", 10)
    rt = runtime.rt  # the samples live in the runtime (pyrun.runtime.api.Runtime), the one way in
    monkeypatch.setattr(rt, "_cgroup_stats", lambda record, strict: SimpleNamespace(cpu_usage_ns=time.time_ns()))
    runtime.ListContainerStats(pb.ListContainerStatsRequest())
    runtime.ListPodSandboxStats(pb.ListPodSandboxStatsRequest())
    assert len(rt._rates) == 20  # 10 containers + 10 pods
    store = StateStore(tmp_path / "root")
    for i in range(5):  # removed behind the server's back (pyrun pod rm)
        shutil.rmtree(store.pod_dir(f"{i:064x}"))
        shutil.rmtree(store.container_dir(f"{i + 1000:064x}"))
    runtime.ListContainerStats(pb.ListContainerStatsRequest())
    assert len(rt._rates) == 10
    runtime.RemoveContainer(pb.RemoveContainerRequest(container_id=f"{1005:064x}"))
    assert len(rt._rates) == 9
    runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=f"{6:064x}"))
    assert len(rt._rates) == 7  # the pod's sample and its container's
