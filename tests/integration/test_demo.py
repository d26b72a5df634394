"""The README's demo (./setup.sh runs scripts/demo.sh) works and leaves nothing behind."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from conftest import REPO

from pyrun.linux.mounts import mounts_under


def test_demo_script_runs_end_to_end(tmp_path):
    root = tmp_path / "root"
    env = dict(os.environ, PYRUN_ROOT=str(root), PYRUN_CGROUP_PARENT=f"pyrun-demo-{secrets.token_hex(3)}",
               PYRUN=str(Path(sys.executable).parent / "pyrun"))
    p = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh")], capture_output=True, text=True, env=env,
                       timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    out = p.stdout + p.stderr  # explain lines and the container's error messages go to stderr
    for expected in ("QoS Burstable", "demo-pod", "Read-only file system", "writer: got SIGTERM, bye",
                     "writer exited exit code 0 Completed", "unshare --ipc --net --uts --pid", "Done."):
        assert expected in out, expected
    assert not mounts_under(root)
    assert not os.path.exists(f"/sys/fs/cgroup/pids/{env['PYRUN_CGROUP_PARENT']}")
    assert not os.path.exists(f"/sys/fs/cgroup/{env['PYRUN_CGROUP_PARENT']}")
