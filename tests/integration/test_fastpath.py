"""No Python interpreter starts on the way to a running container or an exec (issue 14, part 1):
the CLI forks its helpers, which carry recognisable titles."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pyrun.runtime import monitor

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def _execs(pyrun, tmp_path: Path, *args: str) -> tuple[str, list[str]]:
    """Run the CLI under strace -f: (its stdout, every execve(2) it and its helpers made). `-b execve`
    detaches from a process once it execs (pause, the C monitor, the workload), so strace ends with the CLI."""
    trace = tmp_path / "trace"
    argv = ["strace", "-f", "-b", "execve", "-qq", "-e", "trace=execve", "-e", "signal=none", "-s", "200",
            "-o", str(trace), *pyrun.argv(*args)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout, [ln for ln in trace.read_text().splitlines() if "execve(" in ln and "= -1" not in ln]


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_pod_create_and_exec_start_no_interpreter(pyrun, write_pod, tmp_path):
    spec = write_pod("fast", [{"name": "c", "command": ["sleep", "1000"]}])
    _, calls = _execs(pyrun, tmp_path, "pod", "create", spec)
    pythons = [c for c in calls if re.search(r"python[0-9.]*\"", c)]
    assert len(pythons) == 1, pythons  # the CLI itself; no `python -m pyrun.runtime.sandbox/monitor`
    assert not [c for c in calls if "pyrun.runtime" in c]
    out, calls = _execs(pyrun, tmp_path, "exec", "fast", "c", "--", "echo", "inside")
    assert out == "inside\n"
    assert len([c for c in calls if re.search(r"python[0-9.]*\"", c)]) == 1, calls
    assert not [c for c in calls if "pyrun.runtime" in c]  # no `python -m pyrun.runtime.nsexec`
    assert [c for c in calls if "bin/nsexec" in c]  # the C helper (pyrun.runtime.execprofile) instead
    pyrun("pod", "rm", "-f", "fast")


def test_a_forked_monitor_is_titled_with_its_container_dir(pyrun, write_pod):
    spec = write_pod("titled", [{"name": "c", "command": ["sleep", "1000"]}], shareProcessNamespace=True)
    pyrun("pod", "create", spec, env={monitor.C_MONITOR_ENV: "0"})  # the Python monitor stays
    c = next(c for c in pyrun.inspect("titled")["containers"] if c["name"] == "c")
    cdir = pyrun.root / "containers" / c["id"]
    pid = json.loads((cdir / "monitor.json").read_text())["pid"]
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    assert cmdline == f"pyrun-monitor {cdir}"  # ps shows it; the leak checks find the state root in it
    assert os.getsid(pid) != os.getsid(0)
    assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
    assert os.readlink(f"/proc/{pid}/fd/2") == str(cdir / "monitor.log")
    pyrun("pod", "rm", "-f", "titled")
