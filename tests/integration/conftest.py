"""Fixtures for integration tests: a state root with the demo image, and a `pyrun` runner.

Every test gets pods in a session-wide state root and data root (so the demo image is
imported once) under a per-session test cgroup parent; after each test, every pod it left
is force-removed and the test fails if anything (a mount, a process, a writable layer)
was left.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO_IMAGE = "pyrun/demo:latest"


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.integration)


class Pyrun:
    """Runs the real CLI as a subprocess, the way a person does."""

    def __init__(self, root: Path, cgroup_parent: str, network: str = "none", data_root: Path | None = None):
        self.root = root
        self.data_root = data_root or data_root_of(root)
        self.cgroup_parent = cgroup_parent
        self.network = network

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "pyrun.cli.main", "--root", str(self.root), "--data-root", str(self.data_root),
                "--network", self.network, "--cgroup-parent", self.cgroup_parent, *args]

    def __call__(self, *args: str, check: bool = True, timeout: float = 120, input: str | None = None,
                 env: dict | None = None) -> subprocess.CompletedProcess:
        full_env = dict(os.environ, **(env or {}))
        p = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout, input=input,
                           env=full_env)
        if check and p.returncode != 0:
            raise AssertionError(f"pyrun {' '.join(args)} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
        return p

    def inspect(self, pod: str) -> dict:
        return json.loads(self("pod", "inspect", pod).stdout)

    def wait_for(self, pod: str, container: str, state: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            doc = self.inspect(pod)
            c = next(c for c in doc["containers"] if c["name"] == container)
            if c["state"] == state or time.monotonic() > deadline:
                return c
            time.sleep(0.1)

    def pods(self) -> list[dict]:
        return json.loads(self("pod", "ls", "-o", "json").stdout)


def data_root_of(root: Path) -> Path:
    """The tests' data root beside a state root: /tmp/pyrun-it-X -> /tmp/pyrun-it-X-data."""
    return root.with_name(root.name + "-data")


def pod_manifest(name: str, containers: list[dict], **spec) -> dict:
    """A pod of the demo image; restartPolicy Never unless given (the tests of exits expect them to stay)."""
    for c in containers:
        c.setdefault("image", DEMO_IMAGE)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": containers, "terminationGracePeriodSeconds": 2, "restartPolicy": "Never", **spec}}


@pytest.fixture
def write_pod(tmp_path):
    def _write(name: str, containers: list[dict], **spec) -> str:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(pod_manifest(name, containers, **spec)))
        return str(path)
    return _write


@pytest.fixture(scope="session")
def state_root(tmp_path_factory, demo_layout) -> Path:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    root = Path(f"/tmp/pyrun-it-{secrets.token_hex(3)}")
    parent = f"pyrun-test-{secrets.token_hex(3)}"
    runner = Pyrun(root, parent)
    runner("image", "import", str(demo_layout), DEMO_IMAGE)
    yield root
    for p in runner.pods():
        runner("pod", "rm", "-f", p["id"], check=False)
    runner("gc", check=False)
    from pyrun.linux.mounts import mounts_under
    left = mounts_under(root) + mounts_under(runner.data_root)
    _remove_tree_quietly(root)  # iterative: a failed deep-tree test may leave 5,000 levels (shutil recurses)
    _remove_tree_quietly(runner.data_root)
    assert not left, f"mounts left under the state or data root: {left}"


def _remove_tree_quietly(path: Path) -> None:
    from pyrun.linux.tree import remove_tree
    try:
        remove_tree(path)
    except OSError:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def cgroup_parent() -> str:
    return f"pyrun-test-{secrets.token_hex(3)}"


@pytest.fixture
def pyrun(state_root, cgroup_parent):
    runner = Pyrun(state_root, cgroup_parent)
    before = {p["id"] for p in runner.pods()}
    yield runner
    left = [p for p in runner.pods() if p["id"] not in before]
    for p in left:
        runner("pod", "rm", "-f", p["id"], check=False)
    from pyrun.linux.mounts import mounts_under
    stray = [m for m in mounts_under(state_root / "pods")] + [m for m in mounts_under(state_root / "containers")]
    assert not stray, f"mounts left after the test: {stray}"
    leftover = _processes_under(state_root)
    assert not leftover, f"processes left after the test: {leftover}"
    layers = sorted(os.listdir(runner.data_root / "containers")) if (runner.data_root / "containers").exists() else []
    assert not layers, f"writable layers left after the test: {layers}"


def _processes_under(root: Path) -> list[str]:
    """Processes whose command line mentions the state root (monitors, launchers)."""
    out = []
    needle = str(root).encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if needle in cmd and b"pytest" not in cmd:
            out.append(pid + ": " + cmd.replace(b"\0", b" ").decode(errors="replace"))
    return out
