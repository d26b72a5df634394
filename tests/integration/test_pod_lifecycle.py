"""A pod's life on the real kernel: create, exec, logs, exit codes, stop, rm."""
from __future__ import annotations

import json
import os
import time



def test_two_containers_share_an_empty_dir(pyrun, write_pod):
    spec = write_pod("share", [
        {"name": "writer", "command": ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /data/n; sleep 0.2; done"],
         "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
        {"name": "reader", "command": ["sh", "-c", "sleep 1000"],
         "volumeMounts": [{"name": "data", "mountPath": "/in", "readOnly": True}]},
    ], volumes=[{"name": "data", "emptyDir": {}}])
    pod_id = pyrun("pod", "create", spec).stdout.strip()
    assert len(pod_id) == 64
    time.sleep(0.6)
    n = int(pyrun("exec", "share", "reader", "--", "cat", "/in/n").stdout)
    assert n >= 1
    denied = pyrun("exec", "share", "reader", "--", "sh", "-c", "echo x > /in/n", check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    pods = pyrun.pods()
    mine = next(p for p in pods if p["name"] == "share")
    assert [c["state"] for c in mine["containers"]] == ["running", "running"]
    pyrun("pod", "stop", "share")
    pyrun("pod", "rm", "share")
    assert all(p["name"] != "share" for p in pyrun.pods())


def test_hostname_dns_files_and_namespaces(pyrun, write_pod):
    spec = write_pod("nsinfo", [{"name": "c", "command": ["sleep", "1000"]}], hostname="myhost",
                     hostAliases=[{"ip": "10.1.2.3", "hostnames": ["alias.example"]}])
    pyrun("pod", "create", spec)
    assert pyrun("exec", "nsinfo", "c", "--", "hostname").stdout.strip() == "myhost"
    assert pyrun("exec", "nsinfo", "c", "--", "cat", "/etc/hostname").stdout.strip() == "myhost"
    assert "10.1.2.3\talias.example" in pyrun("exec", "nsinfo", "c", "--", "cat", "/etc/hosts").stdout
    # lo is up in the pod's network namespace, and no other interface exists (--network none)
    links = pyrun("exec", "nsinfo", "c", "--", "cat", "/proc/net/dev").stdout
    assert "lo:" in links and "eth0" not in links
    doc = pyrun.inspect("nsinfo")
    assert set(doc["namespaces"]) == {"net", "ipc", "uts"}
    assert all(ns["pinned"] for ns in doc["namespaces"].values())
    c = doc["containers"][0]
    pause_pid = doc["pause"]["pid"]
    for kind in ("net", "ipc", "uts"):
        assert os.readlink(f"/proc/{pause_pid}/ns/{kind}") == c["namespaces"][kind]
    # each container has its own mount and PID namespace; the workload is PID 1 there
    assert c["namespaces"]["mnt"] != os.readlink("/proc/self/ns/mnt")
    assert pyrun("exec", "nsinfo", "c", "--", "cat", "/proc/1/cmdline").stdout.startswith("sleep")
    # the rootfs is an overlay of the image layers, and it is / in the container
    assert c["rootfs"]["lower"] and any(m.startswith("/ overlay") for m in c["live_mounts"])


def test_shared_process_namespace(pyrun, write_pod):
    spec = write_pod("sharedpid", [{"name": "a", "command": ["sleep", "1001"]},
                                   {"name": "b", "command": ["sleep", "1002"]}], shareProcessNamespace=True)
    pyrun("pod", "create", spec)
    ps = pyrun("exec", "sharedpid", "a", "--", "ps", "-o", "pid,args").stdout
    assert "sleep 1001" in ps and "sleep 1002" in ps
    assert pyrun("exec", "sharedpid", "b", "--", "cat", "/proc/1/cmdline").stdout.startswith("pause")
    assert "pid" in pyrun.inspect("sharedpid")["namespaces"]


def test_host_pid_host_ipc_and_mount_propagation_from_a_manifest(pyrun, write_pod, tmp_path):
    """hostPID/hostIPC and a HostToContainer hostPath (a shared tmpfs the test makes); /proc/sys stays read-only."""
    import subprocess
    src = tmp_path / "shared-src"
    src.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "lifecycle-src", str(src)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(src)], check=True)
        spec = write_pod("hostns", [{"name": "c", "command": ["sleep", "1000"],
                                     "volumeMounts": [{"name": "h", "mountPath": "/h",
                                                       "mountPropagation": "HostToContainer"}]}],
                         hostPID=True, hostIPC=True, volumes=[{"name": "h", "hostPath": {"path": str(src)}}])
        pyrun("pod", "create", spec)
        for kind in ("pid", "ipc"):
            inside = pyrun("exec", "hostns", "c", "--", "readlink", f"/proc/self/ns/{kind}").stdout.strip()
            assert inside == os.readlink(f"/proc/self/ns/{kind}")
        assert any(line.split()[1] == "/proc/sys" and "ro" in line.split()[3].split(",")
                   for line in pyrun("exec", "hostns", "c", "--", "cat", "/proc/mounts").stdout.splitlines())
        (src / "later").mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "lifecycle-later", str(src / "later")], check=True)
        (src / "later" / "f").write_text("seen")
        assert pyrun("exec", "hostns", "c", "--", "cat", "/h/later/f").stdout == "seen"
        doc = pyrun.inspect("hostns")
        assert doc["host_pid"] and doc["host_ipc"] and "pid" not in doc["namespaces"] and "ipc" not in doc["namespaces"]
        pyrun("pod", "rm", "-f", "hostns")
    finally:
        subprocess.run(["umount", "-l", str(src / "later")], capture_output=True)
        subprocess.run(["umount", "-l", str(src)], capture_output=True)


def test_proc_mount_unmasked_is_refused_without_a_user_namespace(pyrun, write_pod):
    """Kubernetes allows procMount Unmasked only with hostUsers: false; pyrun has no user namespaces, so the
    container's root would be the node's, with a writable /proc/sys (core_pattern): refused, nothing made."""
    spec = write_pod("unmasked", [{"name": "c", "command": ["sleep", "1000"],
                                   "securityContext": {"procMount": "Unmasked"}}])
    p = pyrun("pod", "create", spec, check=False)
    assert p.returncode == 2, p.stderr
    assert "spec.containers[0].securityContext.procMount" in p.stderr and "hostUsers" in p.stderr
    assert pyrun.pods() == []


def test_exec_exit_code_and_stdin(pyrun, write_pod):
    pyrun("pod", "create", write_pod("execs", [{"name": "c", "command": ["sleep", "1000"]}]))
    assert pyrun("exec", "execs", "c", "--", "sh", "-c", "exit 42", check=False).returncode == 42
    out = pyrun("exec", "execs", "c", "--", "sh", "-c", "tr a-z A-Z", input="hello\n").stdout
    assert out == "HELLO\n"
    missing = pyrun("exec", "execs", "c", "--", "no-such-cmd", check=False)
    assert missing.returncode == 127
    assert pyrun("exec", "execs", "c", "-e", "X=1", "-w", "/tmp", "--", "sh", "-c", "echo $X $PWD").stdout == "1 /tmp\n"


def test_exit_codes_and_logs(pyrun, write_pod):
    spec = write_pod("exits", [
        {"name": "ok", "command": ["sh", "-c", "echo out; echo err >&2; printf partial"]},
        {"name": "bad", "command": ["sh", "-c", "exit 3"]},
    ])
    pyrun("pod", "create", spec)
    ok = pyrun.wait_for("exits", "ok", "exited")
    bad = pyrun.wait_for("exits", "bad", "exited")
    assert (ok["exit_code"], ok["reason"]) == (0, "Completed")
    assert (bad["exit_code"], bad["reason"]) == (3, "Error")
    assert ok["finished_at"] >= ok["started_at"] > 0
    assert pyrun("logs", "exits", "ok").stdout.splitlines() == ["out", "err", "partial"]
    raw = open(ok["log_path"]).read().splitlines()
    streams = sorted(line.split(" ")[1:3] for line in raw)
    assert streams == [["stderr", "F"], ["stdout", "F"], ["stdout", "F"]]
    assert raw[0][:4].isdigit() and raw[0].split(" ")[0].endswith("Z")


def test_long_lines_become_partial_entries(pyrun, write_pod):
    spec = write_pod("longline", [{"name": "c", "command": ["sh", "-c", "head -c 40000 /dev/zero | tr '\\0' x; echo"]}])
    pyrun("pod", "create", spec)
    c = pyrun.wait_for("longline", "c", "exited")
    tags = [line.split(" ")[2] for line in open(c["log_path"]).read().splitlines()]
    assert tags == ["P", "P", "F"]
    assert pyrun("logs", "longline", "c").stdout == "x" * 40000 + "\n"


def test_logs_follow_until_exit(pyrun, write_pod):
    pyrun("pod", "create", write_pod("follow", [{"name": "c", "command": ["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.3; done"]}]))
    assert pyrun("logs", "-f", "follow", "c", timeout=30).stdout == "1\n2\n3\n"


def test_stop_waits_the_grace_period_for_a_process_ignoring_sigterm(pyrun, write_pod):
    spec = write_pod("stubborn", [
        {"name": "ignores", "command": ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"]},
        {"name": "polite", "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]},
    ], shareProcessNamespace=True, terminationGracePeriodSeconds=1)
    pyrun("pod", "create", spec)
    t0 = time.monotonic()
    pyrun("pod", "stop", "stubborn")
    took = time.monotonic() - t0
    doc = pyrun.inspect("stubborn")
    states = {c["name"]: (c["state"], c["exit_code"]) for c in doc["containers"]}
    assert states == {"ignores": ("exited", 137), "polite": ("exited", 0)}
    assert took >= 1.0
    assert doc["state"] == "stopped" and not doc["pause"]["alive"]
    pyrun("pod", "rm", "stubborn")


def test_rm_refuses_a_running_pod_without_force(pyrun, write_pod):
    pyrun("pod", "create", write_pod("busy", [{"name": "c", "command": ["sleep", "1000"]}]))
    p = pyrun("pod", "rm", "busy", check=False)
    assert p.returncode == 5 and "stop it first" in p.stderr
    pyrun("pod", "rm", "-f", "busy")


def test_duplicate_name_is_refused_and_leaves_the_first_pod(pyrun, write_pod):
    spec = write_pod("dup", [{"name": "c", "command": ["sleep", "1000"]}])
    pyrun("pod", "create", spec)
    p = pyrun("pod", "create", spec, check=False)
    assert p.returncode == 4 and "already exists" in p.stderr
    assert [x["state"] for x in pyrun.pods() if x["name"] == "dup"] == ["running"]


def _demo_builder():
    import importlib.util
    from conftest import REPO
    spec = importlib.util.spec_from_file_location("build_demo_image", REPO / "scripts" / "build-demo-image.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_image_config_defaults_are_merged(pyrun, write_pod, tmp_path):
    """Entrypoint/Cmd/Env/WorkingDir/User from the image, overridden the way Kubernetes does."""
    from pathlib import Path
    from pyrun.images.build import LayerBuilder, write_layout
    demo = _demo_builder()
    top = LayerBuilder().dir("work", mode=0o777).tar_bytes()
    layout = tmp_path / "layout"
    write_layout(layout, [demo.base_layer(Path("/bin/busybox")), top], config={
        "Entrypoint": ["sh", "-c"], "Cmd": ["echo cmd $GREETING $PWD $(id -u)"],
        "Env": ["GREETING=hi", "PATH=/bin"], "WorkingDir": "/work", "User": "65534"})
    pyrun("image", "import", str(layout), "test/defaults:1")
    spec = write_pod("defaults", [
        {"name": "image-only", "image": "test/defaults:1"},
        {"name": "args-only", "image": "test/defaults:1", "args": ["echo args $GREETING"]},
        {"name": "command-only", "image": "test/defaults:1", "command": ["echo", "command"]},
        {"name": "env-wins", "image": "test/defaults:1", "command": ["sh", "-c", "echo $GREETING $A-$B"],
         "env": [{"name": "GREETING", "value": "hello"}, {"name": "A", "value": "1"}, {"name": "B", "value": "$(A)2"}]},
        {"name": "workdir", "image": "test/defaults:1", "command": ["pwd"], "workingDir": "/tmp"},
    ])
    pyrun("pod", "create", spec)
    want = {"image-only": "cmd hi /work 65534\n", "args-only": "args hi\n", "command-only": "command\n",
            "env-wins": "hello 1-12\n", "workdir": "/tmp\n"}
    for name, output in want.items():
        c = pyrun.wait_for("defaults", name, "exited")
        assert c["exit_code"] == 0, (name, c)
        assert pyrun("logs", "defaults", name).stdout == output, name
    pyrun("pod", "rm", "-f", "defaults")
    pyrun("image", "rm", "test/defaults:1")


def test_inspect_shows_what_the_kernel_sees(pyrun, write_pod):
    pyrun("pod", "create", write_pod("insp", [{"name": "c", "command": ["sleep", "1000"]}]))
    doc = pyrun.inspect("insp")
    assert doc["qos"] == "BestEffort"
    c = doc["containers"][0]
    assert c["state"] == "running" and c["pid"] > 0
    assert os.path.exists(f"/proc/{c['pid']}")
    assert "CAP_SYS_ADMIN" not in json.dumps(c["capabilities"]) and "CHOWN" in c["capabilities"]
    status = open(f"/proc/{c['pid']}/status").read()
    cap_bnd = int(next(line for line in status.splitlines() if line.startswith("CapBnd")).split()[1], 16)
    assert not cap_bnd & (1 << 21)  # CAP_SYS_ADMIN is not in the bounding set


def test_rm_of_several_pods_goes_on_past_a_missing_one(pyrun, write_pod):
    pyrun("pod", "create", write_pod("several", [{"name": "c", "command": ["sleep", "1000"]}]))
    p = pyrun("pod", "rm", "-f", "not-there", "several", check=False)
    assert p.returncode == 3 and "'not-there' not found" in p.stderr
    assert all(x["name"] != "several" for x in pyrun.pods())
