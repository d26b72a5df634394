"""Issue 15 item 2: trees a container or an image controls may be 5,000 levels deep.

Before, a container's 1,500 nested directories made `pod rm` die with a RecursionError and left
every later `pod ls`, `gc` and `pod create` crashing; an image layer with a 2,000-deep tree made
`image prune` crash forever. Now removal is iterative and fd-relative (pyrun.linux.tree), a
removal that fails leaves the pod in `removing` for a later `pod rm`/`gc`, and one stuck pod
never blocks another's removal.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from pyrun.linux.tree import tree_usage

from _security_helpers import build

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

DEPTH = 5000


@pytest.fixture(scope="session")
def tool_dir(tmp_path_factory) -> str:
    """sectool (tests/integration/_security_helpers.py), whose `deep-tree N` makes N levels with mkdir and a
    relative chdir: no PATH_MAX (busybox sh's cd builds the absolute path and stops at ~2,000 levels)."""
    d = tmp_path_factory.mktemp("deeptool")
    build(d)
    return str(d)


@pytest.fixture
def make_deep_pod(pyrun, write_pod, tool_dir):
    def _make(name: str) -> dict:
        """A pod whose container wrote a 5,000-level tree into its writable layer and into an emptyDir, then exited."""
        script = f"cd / && /t/sectool deep-tree {DEPTH} && cd /v && /t/sectool deep-tree {DEPTH}"
        spec = write_pod(name, [{"name": "c", "command": ["sh", "-c", script],
                                 "volumeMounts": [{"name": "v", "mountPath": "/v"}, {"name": "t", "mountPath": "/t"}]}],
                         volumes=[{"name": "v", "emptyDir": {}},
                                  {"name": "t", "hostPath": {"path": tool_dir, "type": "Directory"}}],
                         restartPolicy="Never")
        pyrun("pod", "create", spec)
        c = pyrun.wait_for(name, "c", "exited", timeout=300)
        assert c["state"] == "exited" and c["exit_code"] == 0, pyrun("logs", name, "c").stdout
        doc = pyrun.inspect(name)
        cid = doc["containers"][0]["id"]
        where = {"pod_dir": pyrun.root / "pods" / doc["id"], "layer": pyrun.data_root / "containers" / cid}
        assert tree_usage(where["layer"])[2] > DEPTH and tree_usage(where["pod_dir"] / "volumes" / "v")[2] >= DEPTH
        return {"id": doc["id"], "cid": cid, **where}
    return _make


def assert_gone(pyrun, pod: dict) -> None:
    assert all(p["id"] != pod["id"] for p in pyrun.pods())
    assert not pod["pod_dir"].exists(), "pod dir (with the emptyDir) left"
    assert not pod["layer"].exists(), "writable layer left"
    assert not (pyrun.root / "containers" / pod["cid"]).exists()


def frozen_rm(pyrun, pod_id: str) -> subprocess.Popen:
    """`pod rm -f` stopped just after it marked the pod `removing` (PYRUN_FAULT), to be SIGKILLed."""
    proc = subprocess.Popen(pyrun.argv("pod", "rm", "-f", pod_id), env=dict(os.environ, PYRUN_FAULT="remove:sleep:60"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    record = pyrun.root / "pods" / pod_id / "pod.json"
    deadline = time.monotonic() + 30
    while json.loads(record.read_text()).get("state") != "removing":
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail("pod rm did not reach the removal step")
        time.sleep(0.05)
    return proc


def kill_and_wait(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_pod_rm_removes_a_5000_level_writable_layer_and_empty_dir(pyrun, make_deep_pod):
    pod = make_deep_pod("deep-rm")
    p = pyrun("pod", "rm", "-f", "deep-rm", check=False)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert_gone(pyrun, pod)


def test_gc_finishes_a_killed_removal_of_a_5000_level_tree(pyrun, make_deep_pod):
    pod = make_deep_pod("deep-gc")
    kill_and_wait(frozen_rm(pyrun, pod["id"]))
    assert pod["layer"].exists()  # killed before it removed anything
    p = pyrun("gc", check=False)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert_gone(pyrun, pod)


def _chattr(flag: str, path) -> None:
    subprocess.run(["chattr", flag, str(path)], check=True, capture_output=True)


@pytest.fixture
def immutable():
    """chattr +i on directories; always undone, so the fixture's final `pod rm -f` can clean up."""
    import shutil
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    made = []

    def _set(path):
        _chattr("+i", path)
        made.append(path)
    yield _set
    for path in made:
        if os.path.lexists(path):
            _chattr("-i", path)


def test_a_failed_removal_is_finished_later_and_never_blocks_other_pods(pyrun, write_pod, make_deep_pod, immutable):
    stuck = make_deep_pod("deep-stuck")
    pinned = stuck["layer"] / "upper" / "d" / "d" / "d"
    try:
        immutable(pinned)
    except subprocess.CalledProcessError as e:
        pytest.skip(f"chattr +i is not supported here: {e.stderr!r}")
    p = pyrun("pod", "rm", "-f", "deep-stuck", check=False)
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr
    assert str(pinned) in p.stderr, p.stderr  # names the directory it could not empty
    listed = {x["name"]: x for x in pyrun.pods()}  # pod ls retries, warns, and still lists
    assert listed["deep-stuck"]["state"] == "removing"

    # Other pods are not blocked: a plain rm, and a killed rm that gc finishes.
    spec = write_pod("bystander", [{"name": "c", "command": ["sleep", "1000"]}])
    pyrun("pod", "create", spec)
    pyrun("pod", "rm", "-f", "bystander")
    pyrun("pod", "create", spec)
    bystander = pyrun.inspect("bystander")["id"]
    kill_and_wait(frozen_rm(pyrun, bystander))
    p = pyrun("gc", check=False)
    assert "Traceback" not in p.stderr and "deep-stuck" not in p.stdout, p.stdout + p.stderr
    assert stuck["id"] in p.stderr  # the warning names the pod gc could not finish
    assert not (pyrun.root / "pods" / bystander).exists()
    assert all(x["name"] != "bystander" for x in pyrun.pods())

    _chattr("-i", pinned)
    pyrun("pod", "rm", "-f", "deep-stuck")
    assert_gone(pyrun, stuck)


def test_gc_removes_an_orphaned_5000_level_writable_layer(pyrun):
    """After a reboot the state root is empty and gc removes every writable layer it no longer knows."""
    orphan = pyrun.data_root / "containers" / ("0" * 63 + "1")
    (orphan / "upper").mkdir(parents=True)
    (orphan / "work").mkdir()
    fd = os.open(orphan / "upper", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(DEPTH):
            os.mkdir("d", dir_fd=fd)
            nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
    finally:
        os.close(fd)
    p = pyrun("gc", check=False)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert not orphan.exists()
