"""`pyrun exec` through the C helper (pyrun/bin/nsexec, pyrun.runtime.execprofile): the command gets exactly
what the Python path (pyrun.runtime.nsexec, which --explain keeps) gives it; it fails closed."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from pyrun.runtime import execprofile

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

STATUS_FIELDS = ("Uid:", "Gid:", "Groups:", "CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:", "NoNewPrivs:",
                 "Seccomp:")
# what the command sees of itself: credentials, limits, cgroups, namespaces, environment, directory
PROBE = ("grep -E '^(" + "|".join(f.rstrip(":") for f in STATUS_FIELDS) + "):' /proc/self/status; "
         "ulimit -n; ulimit -Hn; ulimit -u; cat /proc/self/cgroup; "
         "for n in ipc uts net pid cgroup mnt; do readlink /proc/self/ns/$n; done; env | sort; pwd; "
         "unshare -u true 2>/dev/null; echo unshare=$?")


def _cdir(pyrun, pod: str, name: str = "c") -> Path:
    c = next(c for c in pyrun.inspect(pod)["containers"] if c["name"] == name)
    return pyrun.root / "containers" / c["id"]


def _helper_ran(pyrun, tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, bool]:
    """Run `pyrun exec ...` under strace: (the result, whether the CLI exec'd the C helper)."""
    trace = tmp_path / "trace"
    p = subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", "-e", "signal=none", "-s", "200",
                        "-o", str(trace), *pyrun.argv("exec", *args)], capture_output=True, text=True, timeout=60)
    return p, any("bin/nsexec" in line and "= -1" not in line for line in trace.read_text().splitlines())


@pytest.fixture
def confined(pyrun, write_pod):
    """A non-root container with extra groups, an added (ambient) capability, no_new_privs and RuntimeDefault."""
    pyrun("pod", "create", write_pod("confined", [{
        "name": "c", "command": ["sleep", "1000"], "env": [{"name": "FROM_SPEC", "value": "spec"}],
        "workingDir": "/tmp",
        "securityContext": {"runAsUser": 65534, "runAsGroup": 65534, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE", "CHOWN"]},
                            "seccompProfile": {"type": "RuntimeDefault"}}}],
        securityContext={"supplementalGroups": [5, 7]}))
    yield "confined"
    pyrun("pod", "rm", "-f", "confined")


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_the_helper_gives_an_exec_what_the_python_path_gives(pyrun, confined, tmp_path):
    assert (_cdir(pyrun, confined) / execprofile.PROFILE_FILE).exists()
    fast, used = _helper_ran(pyrun, tmp_path, confined, "c", "--", "sh", "-c", PROBE)
    assert fast.returncode == 0 and used, fast.stderr
    slow = pyrun("--explain", "exec", confined, "c", "--", "sh", "-c", PROBE)  # --explain: pyrun.runtime.nsexec
    assert "nsenter --target=" in slow.stderr
    assert fast.stdout == slow.stdout
    seen = dict(line.split(":", 1) for line in fast.stdout.splitlines() if line.split(":", 1)[0] + ":" in STATUS_FIELDS)
    assert seen["Uid"].split() == ["65534"] * 4 and seen["Gid"].split() == ["65534"] * 4
    assert seen["Groups"].split() == ["5", "7"]
    assert int(seen["CapAmb"], 16) == int(seen["CapEff"], 16) == (1 << 0) | (1 << 10)  # CHOWN, NET_BIND_SERVICE
    assert (seen["NoNewPrivs"].strip(), seen["Seccomp"].strip()) == ("1", "2")
    assert "FROM_SPEC=spec" in fast.stdout and "HOME=/home" in fast.stdout and "\n/tmp\n" in fast.stdout
    assert "unshare=0" not in fast.stdout  # RuntimeDefault refuses unshare(CLONE_NEWUTS)


def test_env_workdir_and_exit_codes(pyrun, confined):
    p = pyrun("exec", confined, "c", "-e", "X=1", "-e", "HOME=/x", "-w", "/", "--", "sh", "-c", "echo $X $HOME $PWD")
    assert p.stdout == "1 /x /\n"
    assert pyrun("exec", confined, "c", "--", "sh", "-c", "exit 42", check=False).returncode == 42
    assert pyrun("exec", confined, "c", "--", "sh", "-c", "tr a-z A-Z", input="in\n").stdout == "IN\n"
    missing = pyrun("exec", confined, "c", "--", "no-such-cmd", check=False)
    assert missing.returncode == 127 and "no-such-cmd" in missing.stderr
    assert pyrun("exec", confined, "c", "--", "/etc/passwd", check=False).returncode == 126
    nodir = pyrun("exec", confined, "c", "-w", "/no/such/dir", "--", "true", check=False)
    assert nodir.returncode == 127 and "/no/such/dir" in nodir.stderr
    assert pyrun("exec", confined, "c", "--", "sh", "-c", "kill -TERM $$", check=False).returncode == 128 + 15


def test_a_signal_to_pyrun_exec_reaches_the_command(pyrun, confined):
    p = subprocess.Popen(pyrun.argv("exec", confined, "c", "--", "sh", "-c", "echo up; exec sleep 1000"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "up\n"
        p.send_signal(signal.SIGTERM)  # the CLI's pid is the helper's: it forwards the signal to the command
        assert p.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        p.kill()
        p.wait()
        p.stdout.close()
        p.stderr.close()


def test_an_exited_container_is_a_clear_error(pyrun, write_pod):
    pyrun("pod", "create", write_pod("gone", [{"name": "c", "command": ["true"]}]))
    pyrun.wait_for("gone", "c", "exited")
    p = pyrun("exec", "gone", "c", "--", "echo", "ran", check=False)
    assert p.returncode == 5 and "not running" in p.stderr and "ran" not in p.stdout
    pyrun("pod", "rm", "-f", "gone")


def test_the_helper_refuses_a_process_that_is_not_the_containers(pyrun, confined):
    """The workload's pid with another start time (the pid reused after it exited): nothing runs."""
    profile = json.loads((_cdir(pyrun, confined) / execprofile.PROFILE_FILE).read_text())
    argv, env = execprofile.helper_argv(profile, "exec.json", os.getpid(), 1, ["echo", "ran"])
    p = subprocess.run(argv, env=dict(e.split("=", 1) for e in env), capture_output=True, text=True, timeout=30)
    assert (p.returncode, p.stdout) == (5, "") and "exited" in p.stderr


@pytest.mark.parametrize("damage", ["not json", "wrong type", "seccomp filter gone", "bad filter"])
def test_a_damaged_profile_fails_closed(pyrun, confined, damage):
    cdir = _cdir(pyrun, confined)
    path = cdir / execprofile.PROFILE_FILE
    good = path.read_text()
    profile = json.loads(good)
    bpf = Path(profile["seccomp_bpf"])
    saved = bpf.read_bytes()
    try:
        if damage == "not json":
            path.write_text("{")
        elif damage == "wrong type":
            path.write_text(json.dumps({**profile, "caps": "all"}))
        elif damage == "seccomp filter gone":
            bpf.unlink()
        else:
            bpf.write_bytes(b"123")
        p = pyrun("exec", confined, "c", "--", "echo", "ran", check=False)
        assert p.returncode != 0 and "ran" not in p.stdout, p
        assert ("exec.json" in p.stderr) if damage in ("not json", "wrong type") else ("seccomp filter" in p.stderr)
        if damage == "wrong type":
            assert "'caps'" in p.stderr
    finally:
        path.write_text(good)
        bpf.write_bytes(saved)
    assert pyrun("exec", confined, "c", "--", "echo", "ran").stdout == "ran\n"


def test_a_container_without_a_profile_is_exec_able_through_python(pyrun, write_pod):
    """Containers started before exec profiles existed have none: pyrun.runtime.nsexec runs their execs."""
    pyrun("pod", "create", write_pod("old", [{"name": "c", "command": ["sleep", "1000"]}]))
    (_cdir(pyrun, "old") / execprofile.PROFILE_FILE).unlink()
    assert pyrun("exec", "old", "c", "--", "sh", "-c", "echo $HOME; grep ^Seccomp: /proc/self/status").stdout == \
        "/root\nSeccomp:\t2\n"
    pyrun("pod", "rm", "-f", "old")

