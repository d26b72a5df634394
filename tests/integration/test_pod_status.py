"""Honest status after a crash (issue 15, item 5), on the real kernel: `pod ls` STATUS reads as
kubectl would, a dead pause process or monitor shows, and stop/rm still clean up."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pyrun.linux.procs import ProcessRef

REPO = Path(__file__).resolve().parents[2]


def _row(pyrun, name: str) -> dict:
    return next(p for p in pyrun.pods() if p["name"] == name)


def _table_row(pyrun, name: str) -> list[str]:
    lines = pyrun("pod", "ls").stdout.splitlines()
    assert lines[0].split() == ["NAME", "NAMESPACE", "ID", "STATUS", "IP", "QOS", "READY", "RESTARTS", "AGE"]
    return next(line.split() for line in lines[1:] if line.split()[0] == name)


def _wait(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def _cgroup_procs(container: dict) -> set[int]:
    """The pids in a container's cgroup(s), every hierarchy pyrun put it in."""
    pids: set[int] = set()
    for d in set((container["cgroup"].get("directories") or {}).values()):
        try:
            with open(os.path.join(d, "cgroup.procs")) as f:
                pids.update(int(x) for x in f.read().split())
        except FileNotFoundError:
            continue
    return pids


def test_killed_pause_reads_not_ready(pyrun, write_pod):
    pyrun("pod", "create", write_pod("nopause", [{"name": "c", "command": ["sleep", "1000"]}]))
    assert _table_row(pyrun, "nopause")[3] == "Running"
    pause = pyrun.inspect("nopause")["pause"]["pid"]
    os.kill(pause, signal.SIGKILL)
    _wait(lambda: _gone(pause), what="the pause process to die")
    row = _row(pyrun, "nopause")
    assert (row["state"], row["status"], row["ready"]) == ("running", "NotReady", "1/1")  # the container still runs
    assert _table_row(pyrun, "nopause")[3] == "NotReady"
    assert pyrun.inspect("nopause")["status"]["status"] == "NotReady"
    pyrun("pod", "stop", "nopause")
    assert _row(pyrun, "nopause")["status"] == "Stopped"
    pyrun("pod", "rm", "nopause")


def test_killed_monitor_takes_its_workload_and_stop_kills_the_rest(pyrun, write_pod):
    """The workload dies with its monitor (PR_SET_PDEATHSIG); its child, adopted by the pod's pause
    (shared PID namespace), is still killed by `pod stop` through the container's cgroup."""
    pyrun("pod", "create", write_pod("nomon", [{"name": "c", "command": ["sh", "-c", "sleep 1000 & wait"]}],
                                     shareProcessNamespace=True))
    c = pyrun.inspect("nomon")["containers"][0]
    workload = c["pid"]
    monitor = json.loads((pyrun.root / "containers" / c["id"] / "monitor.json").read_text())["pid"]
    _wait(lambda: len(_cgroup_procs(c)) >= 2, what="sh and its sleep in the cgroup")
    os.kill(monitor, signal.SIGKILL)
    _wait(lambda: _gone(workload), what="the workload to die with its monitor")

    row = _row(pyrun, "nomon")
    assert (row["status"], row["ready"]) == ("MonitorGone", "0/1")
    assert (row["containers"][0]["state"], row["containers"][0]["reason"]) == ("unknown", "MonitorGone")
    orphans = _cgroup_procs(c)
    assert orphans and workload not in orphans  # the background sleep outlived sh: only the cgroup finds it

    p = pyrun("exec", "nomon", "c", "--", "true", check=False)
    assert p.returncode == 5 and "unknown" in p.stderr

    pyrun("pod", "stop", "nomon")
    assert not _cgroup_procs(c) and all(_gone(pid) for pid in orphans)
    c = pyrun.inspect("nomon")["containers"][0]
    assert (c["state"], c["exit_code"], c["reason"]) == ("exited", 255, "MonitorGone")
    assert _row(pyrun, "nomon")["status"] == "Stopped"
    pyrun("pod", "rm", "nomon")


def test_killed_monitor_pod_is_removed_by_rm_force(pyrun, write_pod):
    pyrun("pod", "create", write_pod("nomon2", [{"name": "c", "command": ["sh", "-c", "sleep 1000 & wait"]}],
                                     shareProcessNamespace=True))
    c = pyrun.inspect("nomon2")["containers"][0]
    monitor = ProcessRef.from_dict(json.loads((pyrun.root / "containers" / c["id"] / "monitor.json").read_text()))
    _wait(lambda: len(_cgroup_procs(c)) >= 2, what="sh and its sleep in the cgroup")
    os.kill(monitor.pid, signal.SIGKILL)
    _wait(lambda: _gone(c["pid"]), what="the workload to die with its monitor")
    left = _cgroup_procs(c)
    pyrun("pod", "rm", "-f", "nomon2")
    assert all(_gone(pid) for pid in left)
    assert all(p["name"] != "nomon2" for p in pyrun.pods())


@pytest.mark.parametrize("name,container,status,code", [
    ("done", {"command": ["true"]}, "Completed", 0),
    ("fails", {"command": ["sh", "-c", "exit 2"]}, "Error", 2),
    ("hog", {"command": ["sh", "-c", "x=$(head -c 100000000 /dev/zero | tr '\\0' a)"],
             "resources": {"limits": {"memory": "24Mi"}}}, "OOMKilled", 137),
])
def test_all_containers_exited_reads_as_kubectl(pyrun, write_pod, name, container, status, code):
    pyrun("pod", "create", write_pod(name, [{"name": "c", **container}], restartPolicy="Never"))
    c = pyrun.wait_for(name, "c", "exited")
    assert (c["state"], c["exit_code"]) == ("exited", code)
    row = _row(pyrun, name)
    assert (row["state"], row["status"], row["ready"]) == ("running", status, "0/1")
    assert _table_row(pyrun, name)[3] == status
    pyrun("pod", "rm", "-f", name)


def test_first_container_that_is_not_running_wins(pyrun, write_pod):
    pyrun("pod", "create", write_pod("mixed", [{"name": "a", "command": ["true"]},
                                               {"name": "b", "command": ["sleep", "1000"]}], restartPolicy="Never"))
    pyrun.wait_for("mixed", "a", "exited")
    row = _row(pyrun, "mixed")
    assert (row["status"], row["ready"]) == ("NotReady", "1/2")  # kubectl: Completed while one runs
    pyrun("pod", "rm", "-f", "mixed")


STOP_SCRIPT = r"""
set -e
ip link set lo up
$PYRUN pod create "$SPEC" >/dev/null
echo "running $($PYRUN pod ls | awk '$1 == "ipless" {print $4, $5}')"
echo "inspect-running $($PYRUN pod inspect ipless | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["ip"])')"
$PYRUN pod stop ipless >/dev/null
echo "stopped $($PYRUN pod ls | awk '$1 == "ipless" {print $4, $5}')"
echo "inspect-stopped $($PYRUN pod inspect ipless | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["ip"])')"
$PYRUN pod rm ipless >/dev/null
"""


def test_stopped_pod_shows_no_ip(pyrun, tmp_path):
    """On the bridge, inside a throwaway node network namespace: the IP goes with `pod stop`."""
    spec = tmp_path / "ipless.json"
    spec.write_text(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ipless"},
                                "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                                    {"name": "c", "image": "pyrun/demo:latest", "command": ["sleep", "1000"]}]}}))
    argv = pyrun.argv()
    argv[argv.index("--network") + 1] = "bridge"
    env = {"PYRUN": " ".join(argv), "SPEC": str(spec), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    p = subprocess.run(["unshare", "--net", "bash", "-c", STOP_SCRIPT], capture_output=True, text=True, env=env,
                       timeout=120, cwd=REPO)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = dict(line.split(" ", 1) for line in p.stdout.splitlines())
    assert lines["running"].startswith("Running 10.88.") and lines["inspect-running"].startswith("10.88.")
    assert lines["stopped"] == "Stopped -" and lines["inspect-stopped"] == "None"
