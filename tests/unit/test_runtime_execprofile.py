"""pyrun.runtime.execprofile's pure part: the exec profile a container's monitor writes and the C helper's
arguments `pyrun exec` makes from it (fail closed on anything that is not as written)."""
from __future__ import annotations

import resource

import pytest

from pyrun.errors import RecordError
from pyrun.frozen import replace
from pyrun.runtime import execprofile
from pyrun.runtime.records import InitConfig, ProcessSpec, RootfsSpec, SeccompPlan, SecurityPlan

PLAN = {"default": 0x7FFF0000, "rules": [[0x50001, "unshare", []]]}
CONFIG = InitConfig(
    id="cid", name="c", pod_id="pid", namespaces={}, rootfs=RootfsSpec((), "/u", "/w", "/t"),
    process=ProcessSpec(args=("sleep", "1"), env=("PATH=/bin", "A=1"), cwd="/srv", user="1000"), log_path="/log",
    cgroup_procs=("/sys/fs/cgroup/x/cgroup.procs", "/sys/fs/cgroup/y/cgroup.procs"),
    security=SecurityPlan(capabilities=("CHOWN", "NET_BIND_SERVICE"), ambient_capabilities=("NET_BIND_SERVICE",),
                          seccomp=SeccompPlan(type="RuntimeDefault", plan=PLAN), no_new_privs=True,
                          rlimits={"NOFILE": (1024, 4096), "NPROC": (-1, -1)}),
)


def _profile(**changes):
    return {**execprofile.build(CONFIG, 1000, 1000, [7, 5], "/home/u", "/c/seccomp.bpf"), **changes}


def test_build_records_what_the_init_became_and_the_containers_settings():
    p = execprofile.build(CONFIG, 1000, 1000, [7, 5], "/home/u", "/c/seccomp.bpf")
    assert p == {"version": 1, "name": "c", "uid": 1000, "gid": 1000, "groups": [5, 7],
                 "caps": (1 << 0) | (1 << 10), "ambient": 1 << 10, "no_new_privs": True,
                 "seccomp_bpf": "/c/seccomp.bpf",
                 "rlimits": [[resource.RLIMIT_NOFILE, 1024, 4096], [resource.RLIMIT_NPROC, -1, -1]],
                 "cgroup_procs": list(CONFIG.cgroup_procs), "env": ["PATH=/bin", "A=1", "HOME=/home/u"], "cwd": "/srv"}
    assert execprofile.build(CONFIG, 0, 0, [], "/root", "/c/seccomp.bpf")["ambient"] == 0  # root: none, as finalize


def test_build_needs_the_filter_exactly_when_there_is_a_plan():
    with pytest.raises(ValueError):
        execprofile.build(CONFIG, 0, 0, [], "/", None)
    unconfined = replace(CONFIG, security=replace(CONFIG.security, seccomp=SeccompPlan(type="Unconfined")))
    with pytest.raises(ValueError):
        execprofile.build(unconfined, 0, 0, [], "/", "/c/seccomp.bpf")
    assert execprofile.build(unconfined, 0, 0, [], "/", None)["seccomp_bpf"] is None


def test_build_refuses_a_config_without_security_settings():
    with pytest.raises(Exception, match="security"):
        execprofile.build(replace(CONFIG, security=None), 0, 0, [], "/", None)


def test_helper_argv_passes_every_setting_and_the_merged_environment():
    argv, env = execprofile.helper_argv(_profile(), "x/exec.json", 42, 4242, ["sh", "-c", "echo"], ["A=2", "B=3"])
    assert argv == [str(execprofile.HELPER), "--container", "c", "--pid", "42", "--start-time", "4242",
                    "--uid", "1000", "--gid", "1000", "--caps", "401", "--ambient", "400", "--nnp", "1",
                    "--groups", "5,7", "--seccomp-bpf", "/c/seccomp.bpf",
                    "--rlimit", f"{resource.RLIMIT_NOFILE}:1024:4096", "--rlimit", f"{resource.RLIMIT_NPROC}:-1:-1",
                    "--cgroup-procs", "/sys/fs/cgroup/x/cgroup.procs", "--cgroup-procs", "/sys/fs/cgroup/y/cgroup.procs",
                    "--cwd", "/srv", "--", "sh", "-c", "echo"]
    assert env == ["PATH=/bin", "A=2", "HOME=/home/u", "B=3"]
    argv, _ = execprofile.helper_argv(_profile(groups=[], seccomp_bpf=None), "x", 1, 2, ["true"], cwd="/tmp")
    assert "--groups" not in argv and "--seccomp-bpf" not in argv and argv[-4:] == ["--cwd", "/tmp", "--", "true"]


def test_helper_argv_drops_the_explain_descriptor_from_the_environment():
    _, env = execprofile.helper_argv(_profile(env=["PYRUN_EXPLAIN_FD=3", "A=1"]), "x", 1, 2, ["true"])
    assert env == ["A=1"]


@pytest.mark.parametrize("field, value", [
    ("version", 2), ("uid", "0"), ("uid", -1), ("gid", True), ("caps", "all"), ("caps", 1 << 64),
    ("ambient", 1 << 20), ("no_new_privs", "yes"), ("groups", ["5"]), ("groups", [-1]), ("seccomp_bpf", 5),
    ("seccomp_bpf", "relative.bpf"), ("rlimits", [[7, 1]]), ("rlimits", [[99, 1, 1]]), ("rlimits", [[7, -2, 1]]),
    ("cgroup_procs", ["x"]), ("env", [1]), ("env", ["A=\0"]), ("cwd", "tmp"), ("name", None),
])
def test_a_damaged_profile_is_an_error_naming_the_file_and_field(field, value):
    with pytest.raises(RecordError, match=rf"x/exec.json: field '{field}'"):
        execprofile.helper_argv(_profile(**{field: value}), "x/exec.json", 1, 2, ["true"])


@pytest.mark.parametrize("doc", [[], "x", None, {}])
def test_a_profile_that_is_not_one_is_an_error(doc):
    with pytest.raises(RecordError, match="x/exec.json"):
        execprofile.helper_argv(doc, "x/exec.json", 1, 2, ["true"])


def test_a_missing_field_is_an_error():
    p = _profile()
    del p["no_new_privs"]
    with pytest.raises(RecordError, match="'no_new_privs'"):
        execprofile.helper_argv(p, "x", 1, 2, ["true"])


def test_container_env_adds_home_unless_set_and_merge_env_lets_the_exec_win():
    assert execprofile.container_env(["A=1"], "/h") == ["A=1", "HOME=/h"]
    assert execprofile.container_env(["HOME=/x"], "/h") == ["HOME=/x"]
    assert execprofile.merge_env(["A=1", "B=2"], ["A=3", "C=x=y"]) == ["A=3", "B=2", "C=x=y"]
