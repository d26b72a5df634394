"""Container security on the real kernel: escapes that must fail, and the settings that must hold.

A static helper (`sectool`, see _security_helpers.py) is mounted into each pod at /t through a
hostPath volume; every check runs through `pyrun exec`, so exec gets the container's settings too.
"""
from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

import pytest

from _security_helpers import build

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

DEFAULT_CAP_MASK = sum(1 << n for n in (0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31))


@pytest.fixture(scope="session")
def tool_dir(tmp_path_factory):
    """The helper binaries, on a filesystem that honours setuid bits (a /tmp tmpfs is often nosuid)."""
    d = tmp_path_factory.mktemp("sectool")
    if os.statvfs(d).f_flag & os.ST_NOSUID:
        import shutil
        import tempfile
        d = Path(tempfile.mkdtemp(prefix="pyrun-sectool-", dir="/var/tmp"))
        build(d)
        yield str(d)
        shutil.rmtree(d, ignore_errors=True)
        return
    build(d)
    yield str(d)


@pytest.fixture
def make_pod(pyrun, write_pod, tool_dir):
    """Create a pod whose containers run `sleep` with the helper at /t; returns its name."""
    def _make(name: str, containers: list[dict], pod_sc: dict | None = None, volumes: list | None = None,
              check: bool = True, **spec):
        for c in containers:
            c.setdefault("command", ["sleep", "1000"])
            c.setdefault("volumeMounts", []).append({"name": "tool", "mountPath": "/t"})
        vols = [{"name": "tool", "hostPath": {"path": tool_dir, "type": "Directory"}}] + (volumes or [])
        if pod_sc:
            spec["securityContext"] = pod_sc
        return pyrun("pod", "create", write_pod(name, containers, volumes=vols, **spec), check=check)
    return _make


def run(pyrun, pod, ctr, *argv):
    return pyrun("exec", pod, ctr, "--", *argv, check=False)


def status_field(pyrun, pod, ctr, field, pid="self"):
    text = run(pyrun, pod, ctr, "cat", f"/proc/{pid}/status").stdout
    return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(field + ":"))


def test_default_container_cannot_break_out(pyrun, make_pod):
    make_pod("sec-default", [{"name": "c"}])
    for argv, error in ((["mount", "/mnt"], "mount: Operation not permitted"),
                        (["unshare-user"], "unshare: Operation not permitted"),
                        (["keyctl"], "keyctl: Operation not permitted"),
                        (["write", "/proc/sys/kernel/panic"], "open: Read-only file system"),
                        (["write", "/proc/sys/net/ipv4/ip_forward"], "open: Read-only file system")):
        p = run(pyrun, "sec-default", "c", "/t/sectool", *argv)
        assert (p.returncode, p.stdout.strip()) == (1, error), argv
    # /proc/kcore (when the kernel has it), /proc/keys, /proc/timer_list are /dev/null: nothing to read
    masked = [p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list") if os.path.exists(p)]
    assert run(pyrun, "sec-default", "c", "sh", "-c", f"cat {' '.join(masked)} | wc -c").stdout.strip() == "0"
    mounts = run(pyrun, "sec-default", "c", "cat", "/proc/self/mountinfo").stdout
    assert all(f" {p} " in mounts for p in masked) and " /proc/sys ro," in mounts
    # root keeps the default capabilities (NET_RAW among them), under the RuntimeDefault filter
    assert run(pyrun, "sec-default", "c", "/t/sectool", "raw-socket").returncode == 0
    for pid in ("self", "1"):  # the exec'd process and the workload itself
        assert int(status_field(pyrun, "sec-default", "c", "CapEff", pid), 16) == DEFAULT_CAP_MASK
        assert int(status_field(pyrun, "sec-default", "c", "CapBnd", pid), 16) == DEFAULT_CAP_MASK
        assert status_field(pyrun, "sec-default", "c", "Seccomp", pid) == "2"
        assert status_field(pyrun, "sec-default", "c", "NoNewPrivs", pid) == "0"
    # RLIMIT_NOFILE: 1048576 wanted; without CAP_SYS_RESOURCE the current hard limit is kept, with a warning
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limits = run(pyrun, "sec-default", "c", "cat", "/proc/1/limits").stdout
    line = next(x for x in limits.splitlines() if x.startswith("Max open files")).split()
    sec = pyrun.inspect("sec-default")["containers"][0]["security"]
    assert sec["seccomp"]["type"] == "RuntimeDefault" and sec["seccomp"]["rules"] > 20
    assert "/proc/kcore" in sec["masked_paths"] and "/proc/sys" in sec["readonly_paths"]
    assert sec["no_new_privs"] is False and sec["read_only_rootfs"] is False and "NET_RAW" in sec["capabilities"]
    if hard < 1048576 and not _holds_cap_sys_resource():
        assert [int(line[3]), int(line[4])] == [hard, hard] == sec["rlimits"]["NOFILE"]
        assert any("RLIMIT_NOFILE" in w and "CAP_SYS_RESOURCE" in w for w in sec["warnings"])
    else:
        assert [int(line[3]), int(line[4])] == [1048576, 1048576]


def test_dropped_net_raw_and_read_only_root(pyrun, make_pod):
    make_pod("sec-ro", [{"name": "c", "securityContext": {"capabilities": {"drop": ["NET_RAW"]},
                                                          "readOnlyRootFilesystem": True},
                         "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}],
             volumes=[{"name": "scratch", "emptyDir": {}}])
    assert run(pyrun, "sec-ro", "c", "/t/sectool", "raw-socket").stdout.strip() == "socket: Operation not permitted"
    denied = run(pyrun, "sec-ro", "c", "touch", "/new-file")
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    assert run(pyrun, "sec-ro", "c", "touch", "/scratch/ok").returncode == 0  # volumes stay writable
    assert run(pyrun, "sec-ro", "c", "touch", "/dev/shm/ok").returncode == 0
    sec = pyrun.inspect("sec-ro")["containers"][0]["security"]
    assert sec["read_only_rootfs"] is True and "NET_RAW" not in sec["capabilities"]


def test_non_root_binds_port_80_only_with_net_bind_service(pyrun, make_pod):
    make_pod("sec-bind", [
        {"name": "with", "securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE"]}}},
        {"name": "without"},  # the default set is in its bounding set, but nothing is effective for uid 1000
    ], pod_sc={"runAsUser": 1000})
    assert run(pyrun, "sec-bind", "with", "/t/sectool", "bind-port", "80").stdout.strip() == "ok bind"
    assert run(pyrun, "sec-bind", "without", "/t/sectool", "bind-port", "80").stdout.strip() == \
        "bind: Permission denied"
    assert run(pyrun, "sec-bind", "without", "/t/sectool", "bind-port", "8080").stdout.strip() == "ok bind"
    # the added capability (bit 10) is raised into the ambient set, so the non-root workload holds it
    assert int(status_field(pyrun, "sec-bind", "with", "CapAmb", "1"), 16) == 1 << 10
    assert int(status_field(pyrun, "sec-bind", "with", "CapEff", "1"), 16) == 1 << 10
    assert int(status_field(pyrun, "sec-bind", "without", "CapEff", "1"), 16) == 0
    assert int(status_field(pyrun, "sec-bind", "without", "CapBnd", "1"), 16) == DEFAULT_CAP_MASK
    assert run(pyrun, "sec-bind", "with", "id", "-u").stdout.strip() == "1000"
    sec = pyrun.inspect("sec-bind")["containers"][0]["security"]
    assert sec["ambient_capabilities"] == ["NET_BIND_SERVICE"]


def test_setuid_binary_cannot_gain_root_without_privilege_escalation(pyrun, make_pod):
    make_pod("sec-nnp", [{"name": "locked", "securityContext": {"allowPrivilegeEscalation": False}},
                         {"name": "open"}], pod_sc={"runAsUser": 1000})
    assert run(pyrun, "sec-nnp", "locked", "/t/sectool-suid", "ids").stdout.strip() == "uid=1000 euid=1000"
    assert status_field(pyrun, "sec-nnp", "locked", "NoNewPrivs", "1") == "1"
    assert status_field(pyrun, "sec-nnp", "locked", "Seccomp", "1") == "2"
    # the control: the same binary does make euid 0 when escalation is allowed (the k8s default)
    assert run(pyrun, "sec-nnp", "open", "/t/sectool-suid", "ids").stdout.strip() == "uid=1000 euid=0"
    assert pyrun.inspect("sec-nnp")["containers"][0]["security"]["no_new_privs"] is True


def test_groups_and_fs_group(pyrun, make_pod):
    make_pod("sec-groups", [{"name": "c", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
             pod_sc={"runAsUser": 1000, "runAsGroup": 3000, "supplementalGroups": [4000], "fsGroup": 2000},
             volumes=[{"name": "data", "emptyDir": {}}])
    assert status_field(pyrun, "sec-groups", "c", "Groups", "1").split() == ["2000", "4000"]
    assert run(pyrun, "sec-groups", "c", "id", "-g").stdout.strip() == "3000"
    assert run(pyrun, "sec-groups", "c", "stat", "-c", "%g %a", "/data").stdout.strip() == "2000 2777"
    assert run(pyrun, "sec-groups", "c", "sh", "-c", "touch /data/f && stat -c %g /data/f").stdout.strip() == "2000"
    sec = pyrun.inspect("sec-groups")["containers"][0]["security"]
    assert sec["groups"] == [2000, 4000] and sec["fs_group"] == 2000 and sec["run_as_user"] == 1000


def test_run_as_non_root_refuses_root_and_leaves_nothing(pyrun, make_pod):
    p = make_pod("sec-nonroot", [{"name": "rooty"}], pod_sc={"runAsNonRoot": True}, check=False)
    assert p.returncode == 9, p.stderr
    assert "runAsNonRoot" in p.stderr and "'rooty'" in p.stderr and "uid 0" in p.stderr
    assert all(x["name"] != "sec-nonroot" for x in pyrun.pods())
    make_pod("sec-nonroot-ok", [{"name": "c", "securityContext": {"runAsUser": 65534}}],
             pod_sc={"runAsNonRoot": True})
    assert run(pyrun, "sec-nonroot-ok", "c", "id", "-u").stdout.strip() == "65534"


@pytest.mark.parametrize("field, sc, where", [
    ("spec.containers[0].securityContext.capabilities.add[0]",
     {"capabilities": {"add": ["NET_BIND_SERVCE"]}}, "container"),
    ("spec.securityContext.sysctls[0].name", {"sysctls": [{"name": "kernel.hostname", "value": "x"}]}, "pod"),
])
def test_spec_errors_name_the_field(pyrun, write_pod, field, sc, where):
    containers = [{"name": "c", "command": ["true"]}]
    if where == "container":
        containers[0]["securityContext"] = sc
        spec = write_pod("sec-bad", containers)
    else:
        spec = write_pod("sec-bad", containers, securityContext=sc)
    p = pyrun("pod", "create", spec, check=False)
    assert p.returncode == 2 and field in p.stderr, p.stderr


def test_sysctls_are_set_in_the_pod_namespaces_only(pyrun, make_pod):
    host_port_start = open("/proc/sys/net/ipv4/ip_unprivileged_port_start").read()
    host_rmid = open("/proc/sys/kernel/shm_rmid_forced").read()
    make_pod("sec-sysctl", [{"name": "c", "securityContext": {"capabilities": {"drop": ["ALL"]}}}],
             pod_sc={"runAsUser": 1000, "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "80"},
                                                    {"name": "kernel.shm_rmid_forced", "value": "1"}]})
    read = lambda path: run(pyrun, "sec-sysctl", "c", "cat", path).stdout.strip()  # noqa: E731
    assert read("/proc/sys/net/ipv4/ip_unprivileged_port_start") == "80"
    assert read("/proc/sys/kernel/shm_rmid_forced") == "1"
    assert run(pyrun, "sec-sysctl", "c", "/t/sectool", "bind-port", "80").stdout.strip() == "ok bind"
    assert open("/proc/sys/net/ipv4/ip_unprivileged_port_start").read() == host_port_start
    assert open("/proc/sys/kernel/shm_rmid_forced").read() == host_rmid


def test_privileged_lifts_the_restrictions(pyrun, make_pod):
    make_pod("sec-priv", [{"name": "c", "securityContext": {"privileged": True}}])
    held = next(line for line in open("/proc/self/status") if line.startswith("CapPrm:")).split()[1]
    assert int(status_field(pyrun, "sec-priv", "c", "CapEff", "1"), 16) == int(held, 16)  # all pyrun holds
    assert status_field(pyrun, "sec-priv", "c", "Seccomp", "1") == "0"
    mounts = run(pyrun, "sec-priv", "c", "cat", "/proc/1/mountinfo").stdout.splitlines()
    assert not any(" /proc/keys " in m for m in mounts)
    assert any(m.split()[4] == "/sys" and m.split()[5].startswith("rw") for m in mounts)
    sec = pyrun.inspect("sec-priv")["containers"][0]["security"]
    assert sec["privileged"] and sec["seccomp"]["type"] == "Unconfined" and sec["masked_paths"] == []


def test_localhost_seccomp_profile(pyrun, make_pod, tmp_path):
    profiles = tmp_path / "profiles"
    (profiles / "team").mkdir(parents=True)
    (profiles / "team" / "no-mkdir.json").write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}))
    env = {"PYRUN_SECCOMP_PROFILE_ROOT": str(profiles)}
    spec_sc = {"seccompProfile": {"type": "Localhost", "localhostProfile": "team/no-mkdir.json"}}
    os.environ.update(env)  # the `pyrun exec` runs see it too (same process environment)
    try:
        make_pod("sec-local", [{"name": "c", "securityContext": spec_sc}])
        denied = run(pyrun, "sec-local", "c", "mkdir", "/tmp/x")
        assert denied.returncode != 0 and "Permission denied" in denied.stderr
        assert run(pyrun, "sec-local", "c", "touch", "/tmp/y").returncode == 0
        sec = pyrun.inspect("sec-local")["containers"][0]["security"]["seccomp"]
        assert sec == {"type": "Localhost", "profile": "team/no-mkdir.json", "rules": 2}
        missing = make_pod("sec-missing", [{"name": "c", "securityContext": {
            "seccompProfile": {"type": "Localhost", "localhostProfile": "nope.json"}}}], check=False)
        assert missing.returncode != 0 and f"{profiles}/nope.json does not exist" in missing.stderr
        assert all(x["name"] != "sec-missing" for x in pyrun.pods())
    finally:
        for key in env:
            os.environ.pop(key, None)


def _holds_cap_sys_resource() -> bool:
    """Whether pyrun may raise a hard rlimit here (this CI host: no; the test VM: yes)."""
    eff = next(line for line in open("/proc/self/status") if line.startswith("CapEff:")).split()[1]
    return bool(int(eff, 16) & (1 << 24))  # CAP_SYS_RESOURCE


SECURITY_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters",
                   "Uid", "Gid", "Groups")


@pytest.mark.parametrize("sc, pod_sc", [
    ({}, None),
    ({"runAsUser": 1000, "runAsGroup": 3000, "allowPrivilegeEscalation": False,
      "capabilities": {"add": ["NET_ADMIN"], "drop": ["CHOWN"]}, "seccompProfile": {"type": "RuntimeDefault"}},
     {"supplementalGroups": [4000], "fsGroup": 5000}),
], ids=["default", "non-root"])
def test_exec_gets_exactly_the_security_of_the_containers_pid_1(pyrun, make_pod, sc, pod_sc):
    """#13: start and exec share one security sequence (pyrun.runtime.finalize): an exec'd process has the
    same user, groups, capabilities, no_new_privs and seccomp as the container's own pid 1."""
    make_pod("sec-same", [{"name": "c", "securityContext": sc}], pod_sc=pod_sc)
    pattern = "^(" + "|".join(SECURITY_FIELDS) + "):"
    mine = run(pyrun, "sec-same", "c", "grep", "-E", pattern, "/proc/self/status")
    pid1 = run(pyrun, "sec-same", "c", "grep", "-E", pattern, "/proc/1/status")
    assert mine.returncode == 0 and pid1.returncode == 0, (mine.stderr, pid1.stderr)
    assert len(mine.stdout.splitlines()) == len(SECURITY_FIELDS)
    assert mine.stdout == pid1.stdout


def test_removal_never_follows_what_a_container_planted(pyrun, make_pod, tmp_path):
    """Issue 15: removal walks what the container left (writable layer, emptyDir) without following a
    symlink: links to a host directory, planted shallow and under a deep tree, leave the host untouched."""
    sentinel = tmp_path / "host-dir"
    sentinel.mkdir()
    (sentinel / "keep").write_text("host data")
    plant = (f"ln -s {sentinel} /escape && ln -s {sentinel} /v/escape && ln -s / /v/root && "
             f"mkdir -p /deep && cd /deep && /t/sectool deep-tree 3000 {sentinel} && "
             f"cd /v && /t/sectool deep-tree 3000 {sentinel} && "
             f"touch /done")
    make_pod("sec-plant", [{"name": "c", "command": ["sh", "-c", plant + "; sleep 1000"],
                            "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
             volumes=[{"name": "v", "emptyDir": {}}])
    deadline = time.monotonic() + 120
    while run(pyrun, "sec-plant", "c", "test", "-e", "/done").returncode != 0:
        assert time.monotonic() < deadline, pyrun("logs", "sec-plant", "c").stdout
        time.sleep(0.5)
    pyrun("pod", "rm", "-f", "sec-plant")
    assert (sentinel / "keep").read_text() == "host data"
    assert all(p["name"] != "sec-plant" for p in pyrun.pods())
