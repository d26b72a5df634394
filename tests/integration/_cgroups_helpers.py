"""Fixtures for the cgroups integration tests: a throwaway parent cgroup, processes placed in it, cleanup."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
from contextlib import contextmanager
from typing import Iterator

import pytest

from pyrun.cgroups import Cgroups, CgroupPath, read_host_layout

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (real cgroups)")


def _enabled(control: str) -> set[str]:
    try:
        with open(control) as f:
            return set(f.read().split())
    except OSError:
        return set()


@contextmanager
def throwaway_cgroups() -> Iterator[tuple[Cgroups, list[subprocess.Popen]]]:
    """A Cgroups below `pyrun-test-<random>`, and a list for the processes a test starts.

    On exit (also on failure) every listed process is killed and reaped, the whole
    test parent is removed, and controllers pyrun switched on in the v2 root's
    cgroup.subtree_control are switched off again.
    """
    layout = read_host_layout()
    cg = Cgroups(layout, parent=f"pyrun-test-{secrets.token_hex(4)}")
    v2 = layout.unified
    root_control = os.path.join(v2.mount_point, "cgroup.subtree_control") if v2 else None
    before = _enabled(root_control) if root_control else set()
    procs: list[subprocess.Popen] = []
    try:
        yield cg, procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        try:
            cg.remove(cg.parent)
        finally:
            for p in procs:
                p.wait(timeout=10)
            if root_control:
                for c in _enabled(root_control) - before:
                    try:
                        with open(root_control, "w") as f:
                            f.write(f"-{c}")
                    except OSError as e:  # another cgroup uses it now: leave it on
                        print(f"could not switch {c} off in {root_control}: {e}", file=sys.stderr)


def start_in(cg: Cgroups, path: CgroupPath, argv: list[str], **kw) -> subprocess.Popen:
    """Fork, join the cgroup in every hierarchy (writing "0" = myself), then exec: nothing runs unconstrained."""
    files = cg.procs_files(path)

    def join() -> None:
        for f in files:
            with open(f, "w") as fh:
                fh.write("0")

    return subprocess.Popen(argv, preexec_fn=join, **kw)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def alive(pid: int) -> bool:
    """True while pid exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
