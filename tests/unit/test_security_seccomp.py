"""seccomp profiles: actions, the RuntimeDefault profile and rendering (pure part of pyrun.runtime.seccomp)."""
from __future__ import annotations

import errno
import json

import pytest

from pyrun.errors import PyrunError
from pyrun.runtime import seccomp
from pyrun.linux.caps import DEFAULT_CAPABILITIES


def test_actions():
    assert seccomp.action("SCMP_ACT_ALLOW") == 0x7FFF0000
    assert seccomp.action("SCMP_ACT_ERRNO") == 0x00050000 | errno.EPERM
    assert seccomp.action("SCMP_ACT_ERRNO", 38) == 0x00050000 | 38
    assert seccomp.action("SCMP_ACT_KILL") == 0 and seccomp.action("SCMP_ACT_KILL_PROCESS") == 0x80000000
    with pytest.raises(ValueError, match="SCMP_ACT_NOTIFY"):
        seccomp.action("SCMP_ACT_NOTIFY")


def _rules(plan):
    out = {}
    for act, name, conditions in plan["rules"]:
        out.setdefault(name, []).append((act, conditions))
    return out


def test_runtime_default_denies_the_escape_calls():
    plan = seccomp.render(seccomp.runtime_default_profile(), DEFAULT_CAPABILITIES)
    rules = _rules(plan)
    assert plan["default"] == seccomp.ACT_ALLOW
    eperm = seccomp.ACT_ERRNO | errno.EPERM
    for name in ("keyctl", "add_key", "request_key", "unshare", "setns", "mount", "umount2", "pivot_root",
                 "reboot", "kexec_load", "kexec_file_load", "bpf", "perf_event_open", "init_module",
                 "finit_module", "delete_module", "swapon", "swapoff", "acct", "settimeofday", "clock_settime",
                 "open_by_handle_at", "userfaultfd", "io_uring_setup"):
        assert rules[name] == [(eperm, [])], name
    assert rules["clone3"] == [(seccomp.ACT_ERRNO | errno.ENOSYS, [])]
    newuser = seccomp.CLONE_NAMESPACE_FLAGS["CLONE_NEWUSER"]
    assert (eperm, [[0, seccomp.OPS["SCMP_CMP_MASKED_EQ"], newuser, newuser]]) in rules["clone"]
    assert len(rules["clone"]) == len(seccomp.CLONE_NAMESPACE_FLAGS)
    assert "ptrace" not in rules and "read" not in rules


def test_runtime_default_lifts_calls_with_their_capability():
    rules = _rules(seccomp.render(seccomp.runtime_default_profile(), [*DEFAULT_CAPABILITIES, "SYS_ADMIN",
                                                                      "SYS_TIME"]))
    for name in ("mount", "unshare", "setns", "clone", "clone3", "bpf", "perf_event_open", "settimeofday"):
        assert name not in rules, name
    for name in ("keyctl", "reboot", "init_module", "userfaultfd"):  # still denied
        assert name in rules, name


def test_render_docker_format_profile():
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
        {"name": "personality", "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
        {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_PTRACE"]}},
        {"names": ["chmod"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CHOWN"]}},
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},  # same as the default: skipped
    ]}
    plan = seccomp.render(profile, ["CHOWN"])
    assert plan["default"] == seccomp.ACT_ERRNO | 1
    assert plan["rules"] == [[seccomp.ACT_ALLOW, "read", []], [seccomp.ACT_ALLOW, "write", []],
                             [seccomp.ACT_ALLOW, "personality", [[0, 4, 8, 0]]]]
    assert [r[1] for r in seccomp.render(profile, ["SYS_PTRACE"])["rules"]][-2:] == ["ptrace", "chmod"]
    json.dumps(plan)  # goes into config.json


@pytest.mark.parametrize("profile, words", [
    ({"syscalls": []}, "no defaultAction"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_NOPE"}]},
     "syscalls[0]: unsupported seccomp action"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ERRNO"}]}, "syscalls[0]: needs names"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO",
                                                       "args": [{"index": 9, "op": "SCMP_CMP_EQ"}]}]},
     "syscalls[0].args[0]"),
])
def test_render_errors_name_the_rule(profile, words):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        seccomp.render(profile, [], "p.json")


def test_read_localhost_profile(tmp_path):
    (tmp_path / "p.json").write_text('{"defaultAction": "SCMP_ACT_ALLOW"}')
    assert seccomp.read_localhost_profile(tmp_path, "p.json") == {"defaultAction": "SCMP_ACT_ALLOW"}
    with pytest.raises(PyrunError, match="does not exist"):
        seccomp.read_localhost_profile(tmp_path, "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(PyrunError, match="cannot be read"):
        seccomp.read_localhost_profile(tmp_path, "bad.json")


def test_a_filter_compiled_ahead_is_loaded_as_built_in_a_forked_child():
    """The zygote builds RuntimeDefault's filter once (compile_ahead); a forked child loads that program and
    gets the same filter as one built in the child (unshare refused: no CAP_SYS_ADMIN)."""
    import ctypes
    import os

    from pyrun.runtime import security
    try:
        seccomp.preload()
    except PyrunError:
        pytest.skip("libseccomp.so.2 is not installed")
    plan = security.default_seccomp_plan()
    seccomp.compile_ahead(plan)
    seccomp.compile_ahead(plan)  # once per plan
    assert len(seccomp._COMPILED) >= 1 and seccomp._compiled(json.loads(json.dumps(plan))) is not None
    program = seccomp._compiled(plan)[1]
    assert program and len(program) % 8 == 0  # struct sock_filter: 8 bytes each
    pid = os.fork()
    if pid == 0:  # the child: no_new_privs, load as a container init does, then try a denied call
        code = 3
        try:
            import prctl
            prctl.set_no_new_privs(1)
            seccomp.load(json.loads(json.dumps(plan)))  # as config.json gives the plan back
            libc = ctypes.CDLL(None, use_errno=True)
            denied = libc.unshare(0x04000000) == -1 and ctypes.get_errno() == errno.EPERM  # CLONE_NEWUTS
            code = 0 if denied and os.getpid() > 0 else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
