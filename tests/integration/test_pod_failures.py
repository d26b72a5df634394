"""Bad input and failures at every create step: a clear error, and nothing left behind."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from pyrun.linux.mounts import mounts_under

CREATE_STEPS = [
    "pod-dir", "pod-cgroup", "sandbox-unshare", "sandbox-pin", "sandbox", "network", "volumes", "spawn-monitor",
    "init-join-namespaces", "init-rootfs", "init-mount-proc", "init-mount-dev", "init-pivot_root",
    "init-capabilities", "init-chdir", "containers", "start-container",
]


def assert_nothing_left(pyrun, name: str) -> None:
    root = pyrun.root
    assert all(p["name"] != name for p in pyrun.pods())
    assert not os.path.lexists(root / "names" / f"default_{name}")
    assert not mounts_under(root / "pods") and not mounts_under(root / "containers")
    assert not list((root / "pods").iterdir())
    assert not list((root / "containers").iterdir())
    parent = pyrun.cgroup_parent
    leftovers = [p for p in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified",
                             "/sys/fs/cgroup") if os.path.exists(f"{p}/{parent}/kubepods")]
    for base in leftovers:
        pods = [d for d in os.listdir(f"{base}/{parent}/kubepods") if d.startswith("pod")]
        assert not pods, f"cgroups left in {base}: {pods}"


@pytest.mark.parametrize("step", CREATE_STEPS)
def test_failure_at_each_create_step_rolls_back(pyrun, write_pod, step):
    spec = write_pod("faulty", [{"name": "c", "command": ["sleep", "1000"],
                                 "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
                     volumes=[{"name": "v", "emptyDir": {}}])
    p = pyrun("pod", "create", spec, check=False, env={"PYRUN_FAULT": f"{step}:fail"})
    assert p.returncode != 0
    assert "injected failure" in p.stderr, p.stderr
    if step.startswith("init-"):
        assert f"{step[5:].replace('-', ' ')}" in p.stderr.replace("_", "_") or "failed" in p.stderr
    assert_nothing_left(pyrun, "faulty")


def test_init_failures_name_the_step_and_never_run_the_workload(pyrun, write_pod, tmp_path):
    marker = tmp_path / "ran"
    spec = write_pod("badwd", [{"name": "c", "command": ["sh", "-c", "touch /host/ran"], "workingDir": "/nope",
                                "volumeMounts": [{"name": "host", "mountPath": "/host"}]}],
                     volumes=[{"name": "host", "hostPath": {"path": str(tmp_path)}}])
    p = pyrun("pod", "create", spec, check=False)
    assert p.returncode == 9
    assert "container 'c': chdir failed: working directory /nope does not exist" in p.stderr
    assert not marker.exists()
    assert_nothing_left(pyrun, "badwd")
    spec = write_pod("badcmd", [{"name": "c", "command": ["/no/such/binary"]}])
    p = pyrun("pod", "create", spec, check=False)
    assert p.returncode == 9 and "exec failed" in p.stderr and "/no/such/binary" in p.stderr
    assert_nothing_left(pyrun, "badcmd")


def test_bad_specs_report_every_error_and_create_nothing(pyrun, tmp_path):
    bad = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "Bad_Name"},
           "spec": {"contianers": [],
                    "containers": [{"name": "a", "image": "pyrun/demo:latest",
                                    "resources": {"limits": {"memory": "12XB"}}},
                                   {"name": "a"}]}}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    p = pyrun("pod", "create", str(path), check=False)
    assert p.returncode == 2
    for expected in ("metadata.name", "spec.contianers", "spec.containers[0].resources.limits.memory",
                     "12XB", "spec.containers[1].image", "spec.containers[1].name"):
        assert expected in p.stderr, (expected, p.stderr)
    assert not list((pyrun.root / "pods").iterdir())
    yaml_bad = tmp_path / "bad.yaml"
    yaml_bad.write_text("apiVersion: v1\nkind: Pod\nmetadata: [unclosed\n")
    p = pyrun("pod", "create", str(yaml_bad), check=False)
    assert p.returncode == 2 and "bad.yaml" in p.stderr
    p = pyrun("pod", "create", str(tmp_path / "missing.yaml"), check=False)
    assert p.returncode == 2 and "missing.yaml" in p.stderr


def test_unknown_image_is_not_found_and_creates_nothing(pyrun, write_pod):
    p = pyrun("pod", "create", write_pod("noimg", [{"name": "c", "image": "no/such:image"}]), check=False)
    assert p.returncode == 3 and "no/such" in p.stderr
    assert_nothing_left(pyrun, "noimg")


def test_killed_create_is_cleaned_by_the_next_command(pyrun, write_pod):
    """SIGKILL the CLI in the middle of a create; `pyrun pod ls` (and gc) clean up what it left."""
    spec = write_pod("crashy", [{"name": "a", "command": ["sleep", "1000"]},
                                {"name": "b", "command": ["sleep", "1000"]}])
    env = dict(os.environ, PYRUN_FAULT="containers:sleep:60")
    proc = subprocess.Popen(pyrun.argv("pod", "create", spec), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait until both containers' monitors run
            pods = list((pyrun.root / "pods").iterdir())
            if pods and (pods[0] / "pod.json").exists():
                doc = json.loads((pods[0] / "pod.json").read_text())
                cids = [c["id"] for c in doc.get("containers", [])]
                if len(cids) == 2 and all((pyrun.root / "containers" / c / "status.json").exists() for c in cids):
                    break
            time.sleep(0.1)
        else:
            pytest.fail("create did not reach the containers step")
        pause_pid = json.loads((pods[0] / "sandbox.json").read_text())["pause"]["pid"]
        assert mounts_under(pods[0])  # pinned namespaces exist
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert os.path.exists(f"/proc/{pause_pid}")
    listed = pyrun.pods()  # the next command notices the dead creator and rolls the pod back
    assert all(p["name"] != "crashy" for p in listed)
    assert_nothing_left(pyrun, "crashy")
    time.sleep(0.2)
    assert not os.path.exists(f"/proc/{pause_pid}") or open(f"/proc/{pause_pid}/stat").read().split()[2] == "Z"
    assert "nothing to clean up" in pyrun("gc").stdout


def test_nul_bytes_anywhere_in_a_manifest_exit_2_naming_every_field(pyrun, tmp_path):
    """Issue 15: a NUL in env[].value passed validation and failed at exec with exit 9, naming nothing.
    (argv and the environment can't hold a NUL; a manifest file can, as JSON "\\u0000" or raw in YAML.)"""
    bad = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "nul", "labels": {"app": "a\0"}, "annotations": {"k\0": "v"}},
           "spec": {"containers": [{"name": "c", "image": "pyrun/demo:latest", "command": ["sh", "-c\0"],
                                    "env": [{"name": "A", "value": "x\0y"}], "workingDir": "/w\0",
                                    "volumeMounts": [{"name": "h", "mountPath": "/h"}]}],
                    "volumes": [{"name": "h", "hostPath": {"path": str(tmp_path) + "\0"}}]}}
    path = tmp_path / "nul.json"
    path.write_text(json.dumps(bad))
    p = pyrun("pod", "create", str(path), check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    for field in ("metadata.labels", "metadata.annotations", "spec.containers[0].command[1]",
                  "spec.containers[0].env[0].value", "spec.containers[0].workingDir", "spec.volumes[0].hostPath.path"):
        assert field in p.stderr, (field, p.stderr)
    assert all(x["name"] != "nul" for x in pyrun.pods())
    assert not (pyrun.root / "pods").exists() or not list((pyrun.root / "pods").iterdir())


# --- issue 15: every start-up error names what it tried ------------------------------------------------

def _in_private_mounts(setup: str) -> list[str]:
    """Run a command in a private mount namespace after the shell `setup`: its remounts touch nothing outside."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{setup} && exec "$@"', "sh"]


def test_an_unwritable_cgroup_hierarchy_is_named_and_nothing_is_left(pyrun, write_pod):
    from pyrun.cgroups import read_host_layout
    memory = read_host_layout().require("memory").mount_point
    spec = write_pod("rocg", [{"name": "c", "command": ["sleep", "1000"]}])
    p = subprocess.run(_in_private_mounts(f"mount -o remount,bind,ro {memory}") + pyrun.argv("pod", "create", spec),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 7 and "Traceback" not in p.stderr, p.stderr
    # v1: "cannot create cgroup <memory>/<parent>/...", v2: writing +memory to <parent>/cgroup.subtree_control
    assert f"{memory}/{pyrun.cgroup_parent}" in p.stderr and "Read-only file system" in p.stderr, p.stderr
    assert_nothing_left(pyrun, "rocg")


@pytest.mark.parametrize("data_root, expected, code", [
    ("/proc/pyrun-test-data", "is on a filesystem of type proc", 2),
    ("{tmp}/file/data", "Not a directory (the data root (--data-root)): {tmp}/file/data", 10),
])
def test_an_unusable_data_root_is_named_and_nothing_is_left(pyrun, write_pod, tmp_path, data_root, expected, code):
    (tmp_path / "file").write_text("")
    data_root = data_root.format(tmp=tmp_path)
    argv = pyrun.argv("pod", "create", write_pod("badroot", [{"name": "c", "command": ["sleep", "1000"]}]))
    argv[argv.index("--data-root") + 1] = data_root
    argv[argv.index("--root") + 1] = str(tmp_path / "state")  # a data root serves one state root
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert p.returncode == code and "Traceback" not in p.stderr, p.stderr
    assert expected.format(tmp=tmp_path) in p.stderr and "--data-root" in p.stderr, p.stderr
    assert not os.path.exists(data_root)
    assert not (tmp_path / "state" / "pods").exists() or not os.listdir(tmp_path / "state" / "pods")


@pytest.mark.parametrize("volume, expected", [
    ({"path": "/nonexistent/pyrun-test", "type": "Directory"}, "/nonexistent/pyrun-test does not exist on the node"),
    ({"path": "/nonexistent/pyrun-test"}, "/nonexistent/pyrun-test does not exist on the node"),
    ({"path": "/dev/null", "type": "Directory"}, "/dev/null"),
])
def test_a_missing_host_path_is_named_and_nothing_is_left(pyrun, write_pod, volume, expected):
    spec = write_pod("nohost", [{"name": "c", "command": ["sleep", "1000"],
                                 "volumeMounts": [{"name": "h", "mountPath": "/h"}]}],
                     volumes=[{"name": "h", "hostPath": volume}])
    p = pyrun("pod", "create", spec, check=False)
    assert p.returncode == 2 and "spec.volumes[0].hostPath" in p.stderr and expected in p.stderr, p.stderr
    assert_nothing_left(pyrun, "nohost")
