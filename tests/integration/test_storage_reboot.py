"""The data root outlives the state root: a simulated reboot, and the move from the old layout.

A reboot is simulated on a state root of its own: every process of its pods (pause,
workloads, monitors) is killed, its cgroups removed, its mounts unmounted and the
state root emptied, as a reboot does with /run. The data root stays.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import time
from pathlib import Path

import pytest
from _cri_helpers import cgroup_dirs
from conftest import DEMO_IMAGE, Pyrun, _processes_under, pod_manifest

from pyrun.linux.mounts import mounts_under, unmount_under


@pytest.fixture
def instance(demo_layout):
    """(runner, state root, data root) of a fresh pyrun instance with the demo image; removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    base = Path(f"/tmp/pyrun-reboot-{secrets.token_hex(3)}")
    root, data = base / "run", base / "lib"
    runner = Pyrun(root, f"pyrun-reboot-{secrets.token_hex(3)}", data_root=data)
    runner("image", "import", str(demo_layout), DEMO_IMAGE)
    try:
        yield runner, root, data
    finally:
        for p in runner.pods():
            runner("pod", "rm", "-f", p["id"], check=False)
        runner("gc", check=False)
        left = mounts_under(base)
        cgroups = cgroup_dirs(runner.cgroup_parent)
        procs = _processes_under(base)
        shutil.rmtree(base, ignore_errors=True)
        assert not left, f"mounts left: {left}"
        assert not cgroups, f"cgroups left: {cgroups}"
        assert not procs, f"processes left: {procs}"


def _write(tmp_path: Path, name: str, command: str) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(pod_manifest(name, [{"name": "main", "command": ["sh", "-c", command]}])))
    return str(path)


def _cgroup_procs(parent: str) -> set[int]:
    pids = set()
    for top in cgroup_dirs(parent):
        for dirpath, _, files in os.walk(top):
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError):
                    pids |= {int(p) for p in Path(dirpath, "cgroup.procs").read_text().split()}
    return pids


def _simulate_reboot(runner: Pyrun, root: Path) -> None:
    """Kill every process of the instance, remove its cgroups, unmount its mounts, empty the state root."""
    deadline = time.monotonic() + 20
    while True:
        pids = _cgroup_procs(runner.cgroup_parent) | {int(p.split(":")[0]) for p in _processes_under(root)}
        if not pids:
            break
        assert time.monotonic() < deadline, f"processes survive SIGKILL: {pids}"
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    for top in cgroup_dirs(runner.cgroup_parent):
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            for _ in range(50):  # a killed task leaves its cgroup a moment later
                try:
                    os.rmdir(dirpath)
                    break
                except OSError:
                    time.sleep(0.05)
    unmount_under(root)
    assert not mounts_under(root)
    shutil.rmtree(root)
    root.mkdir()


def test_images_and_layers_survive_a_reboot_and_gc_removes_orphaned_layers(instance, tmp_path):
    runner, root, data = instance
    runner("pod", "create", _write(tmp_path, "before", "echo kept > /written; sleep 1000"))
    c = runner.wait_for("before", "main", "running")
    upper = Path(c["rootfs"]["upper"])
    assert upper == data / "containers" / c["id"] / "upper"
    assert not str(upper).startswith(str(root)), "the writable layer must not live in the state root"
    deadline = time.monotonic() + 10
    while not (upper / "written").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (upper / "written").read_text() == "kept\n"
    assert (data / "images" / "refs.json").exists() and not (root / "images").exists()

    _simulate_reboot(runner, root)

    assert runner.pods() == []  # stale pods are gone, never shown as running
    assert DEMO_IMAGE.split(":")[0] in runner("image", "ls").stdout
    gc = runner("gc").stdout
    assert f"removed the writable layer of container {c['id'][:12]}" in gc
    assert not (data / "containers" / c["id"]).exists()
    assert "nothing to clean up" in runner("gc").stdout

    runner("pod", "create", _write(tmp_path, "after", "sleep 1000"))
    assert runner.wait_for("after", "main", "running")["state"] == "running"
    assert [p["name"] for p in runner.pods()] == ["after"]
    runner("pod", "rm", "-f", "after")
    assert os.listdir(data / "containers") == []


def _old_layout(runner: Pyrun, root: Path, data: Path) -> None:
    """Turn an instance into one of the previous layout: the image store under the state root, no data root."""
    root.mkdir(parents=True, exist_ok=True)
    os.rename(data / "images", root / "images")
    shutil.rmtree(data)


def test_an_image_store_of_the_previous_layout_is_moved_to_the_data_root(instance, tmp_path):
    runner, root, data = instance
    _old_layout(runner, root, data)
    assert DEMO_IMAGE.split(":")[0] in runner("image", "ls").stdout
    assert not (root / "images").exists()
    assert (data / "images" / "refs.json").exists()
    assert (data / "state-root").read_text().strip() == str(root)
    runner("pod", "create", _write(tmp_path, "moved", "sleep 1000"))  # layers unpacked again from the moved blobs
    assert runner.wait_for("moved", "main", "running")["state"] == "running"
    runner("pod", "rm", "-f", "moved")


def test_the_move_is_refused_while_containers_of_the_previous_layout_exist(instance):
    runner, root, data = instance
    _old_layout(runner, root, data)
    old_container = root / "containers" / ("ab" * 32)
    (old_container / "upper").mkdir(parents=True)
    p = runner("image", "ls", check=False)
    assert p.returncode == 5, p.stderr
    assert "previous layout" in p.stderr and "pyrun pod rm" in p.stderr
    assert (root / "images" / "refs.json").exists(), "a refused move leaves the old store as it was"
    shutil.rmtree(old_container)
    assert DEMO_IMAGE.split(":")[0] in runner("image", "ls").stdout


def test_a_data_root_serves_one_state_root(instance, tmp_path):
    runner, root, data = instance
    other = Pyrun(tmp_path / "other-root", runner.cgroup_parent, data_root=data)
    p = other("image", "ls", check=False)
    assert p.returncode == 5 and f"belongs to state root {root}" in p.stderr, p.stderr
    p = other("pod", "create", _write(tmp_path, "intruder", "sleep 1"), check=False)
    assert p.returncode == 5 and "belongs to state root" in p.stderr, p.stderr
    p = other("gc", check=False)
    assert p.returncode == 5 and "belongs to state root" in p.stderr, p.stderr
    assert not (tmp_path / "other-root" / "pods").exists() or not os.listdir(tmp_path / "other-root" / "pods")
