"""Effective security settings (pyrun.runtime.security, pure part): merge, defaults, rlimits, groups."""
from __future__ import annotations

import json

import pytest

from pyrun.errors import PyrunError
from pyrun.runtime import security
from pyrun.linux.caps import CAPABILITIES, DEFAULT_CAPABILITIES

NO_LIMITS = {"rlimits": {}}


def eff(pod=None, ctr=None, **kw):
    return security.effective_security(pod or {}, ctr or {}, **kw)


def test_defaults_are_kubernetes_defaults():
    sec = eff()
    assert sec["capabilities"] == sorted(DEFAULT_CAPABILITIES, key=CAPABILITIES.index)
    assert sec["no_new_privs"] is False  # allowPrivilegeEscalation unset: allowed, as the kubelet does
    assert sec["privileged"] is False and sec["read_only_rootfs"] is False and sec["run_as_non_root"] is False
    assert sec["seccomp"]["type"] == "RuntimeDefault" and sec["seccomp"]["plan"]["rules"]
    assert sec["masked_paths"] == list(security.MASKED_PATHS)
    assert sec["readonly_paths"] == list(security.READONLY_PATHS)
    assert sec["groups"] == [] and sec["fs_group"] is None and sec["sysctls"] == {}
    json.dumps(sec)


def test_container_fields_win_over_pod_fields():
    pod = {"runAsUser": 1, "runAsGroup": 2, "runAsNonRoot": True, "seccompProfile": {"type": "Unconfined"}}
    ctr = {"runAsUser": 10, "runAsNonRoot": False, "seccompProfile": {"type": "RuntimeDefault"}}
    sec = eff(pod, ctr)
    assert (sec["run_as_user"], sec["run_as_group"], sec["run_as_non_root"]) == (10, 2, False)
    assert sec["seccomp"]["type"] == "RuntimeDefault"
    assert eff(pod, {})["seccomp"] == {"type": "Unconfined", "profile": None}
    assert eff(pod, {})["run_as_non_root"] is True


def test_pod_only_fields():
    sec = eff({"supplementalGroups": [5000, 4000], "fsGroup": 2000, "supplementalGroupsPolicy": "Strict",
               "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]})
    assert sec["groups"] == [2000, 4000, 5000] and sec["fs_group"] == 2000
    assert sec["supplemental_groups_policy"] == "Strict" and sec["sysctls"] == {"net.core.somaxconn": "1024"}


def test_ambient_capabilities_are_the_added_ones():
    assert eff()["ambient_capabilities"] == []
    sec = eff(ctr={"capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}})
    assert sec["capabilities"] == sec["ambient_capabilities"] == ["NET_BIND_SERVICE"]


def test_allow_privilege_escalation_false_sets_no_new_privs():
    assert eff(ctr={"allowPrivilegeEscalation": False})["no_new_privs"] is True
    assert eff(ctr={"allowPrivilegeEscalation": True})["no_new_privs"] is False


def test_privileged_lifts_everything():
    sec = eff(ctr={"privileged": True, "capabilities": {"drop": ["ALL"]}}, last_cap=40)
    assert sec["capabilities"] == list(CAPABILITIES)
    assert sec["masked_paths"] == [] and sec["readonly_paths"] == []
    assert sec["seccomp"] == {"type": "Unconfined", "profile": None}
    held = [c for c in CAPABILITIES if c != "SYS_RESOURCE"]
    assert "SYS_RESOURCE" not in eff(ctr={"privileged": True}, held=held)["capabilities"]


def test_a_capability_pyrun_lacks_is_left_out_with_a_warning_as_runc_does():
    held = [c for c in CAPABILITIES if c != "SYS_RESOURCE"]
    sec = eff(ctr={"capabilities": {"add": ["ALL"]}}, held=held)
    assert "SYS_RESOURCE" not in sec["capabilities"] and "SYS_ADMIN" in sec["capabilities"]
    assert any("SYS_RESOURCE" in w and "left out" in w for w in sec["warnings"])
    assert eff(ctr={"capabilities": {"add": ["SYS_RESOURCE"]}}, held=held)["capabilities"] == \
        eff(held=held)["capabilities"]


def test_masked_paths_are_a_cri_request_s_as_sent_else_the_defaults():
    assert eff(ctr={"procMount": "Default"})["masked_paths"] == list(security.MASKED_PATHS)
    assert eff(ctr={"procMount": "Default"})["readonly_paths"] == list(security.READONLY_PATHS)
    sec = eff(ctr={"maskedPaths": [], "readonlyPaths": ["/proc/bus"]})  # the kubelet's lists for Unmasked: empty
    assert sec["masked_paths"] == [] and sec["readonly_paths"] == ["/proc/bus"]


def test_seccomp_default_and_localhost_path(monkeypatch):
    monkeypatch.delenv("PYRUN_SECCOMP_PROFILE_ROOT", raising=False)
    assert eff(seccomp_default="Unconfined")["seccomp"]["type"] == "Unconfined"
    local = {"seccompProfile": {"type": "Localhost", "localhostProfile": "a/b.json"}}
    assert eff(ctr=local)["seccomp"]["path"] == "/var/lib/pyrun/seccomp/a/b.json"
    assert eff(ctr=local, seccomp_profile_root="/p")["seccomp"]["path"] == "/p/a/b.json"
    monkeypatch.setenv("PYRUN_SECCOMP_PROFILE_ROOT", "/env")
    assert eff(ctr=local)["seccomp"]["path"] == "/env/a/b.json"


def test_with_localhost_profile_renders_for_the_container_caps(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["SYS_ADMIN"]}}]}))
    sec = eff(ctr={"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}},
              seccomp_profile_root=str(tmp_path))
    security.with_localhost_profile(sec)
    assert [r[1] for r in sec["seccomp"]["plan"]["rules"]] == ["mkdir", "mount"]
    assert security.summary(plan(**sec))["seccomp"] == {"type": "Localhost", "profile": "p.json", "rules": 2}
    (tmp_path / "p.json").write_text('{"defaultAction": "SCMP_ACT_BOGUS"}')
    with pytest.raises(PyrunError, match="p.json"):
        security.with_localhost_profile(eff(ctr={"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}},
                                            seccomp_profile_root=str(tmp_path)))


@pytest.mark.parametrize("value, expected", [(1024, (1024, 1024)), ("1024:4096", (1024, 4096)),
                                             ("unlimited", (-1, -1)), ("10:unlimited", (10, -1))])
def test_parse_limit(value, expected):
    assert security.parse_limit(value) == expected


def test_parse_limit_refuses_soft_above_hard():
    with pytest.raises(ValueError):
        security.parse_limit("10:5")


def test_plan_rlimits_without_cap_sys_resource_keeps_the_hard_limit():
    limits, warnings = security.plan_rlimits({"NOFILE": (1024, 20000), "NPROC": (-1, -1)}, can_raise=False)
    assert limits == {"NOFILE": [20000, 20000]}  # NPROC is left alone unless configured
    assert len(warnings) == 1 and "RLIMIT_NOFILE" in warnings[0] and "CAP_SYS_RESOURCE" in warnings[0]


def test_plan_rlimits_with_cap_sys_resource_or_room():
    assert security.plan_rlimits({"NOFILE": (1024, 20000)}, can_raise=True) == (
        {"NOFILE": [1048576, 1048576]}, [])
    assert security.plan_rlimits({"NOFILE": (1024, 20000), "NPROC": (-1, -1)}, can_raise=False,
                                 nofile="1024:4096", nproc=500) == (
        {"NOFILE": [1024, 4096], "NPROC": [500, 500]}, [])
    with pytest.raises(PyrunError, match="rlimit_nofile"):
        security.plan_rlimits({}, can_raise=False, nofile="lots")


def plan(**fields):
    """A SecurityPlan from the keys of config.json's "security" (capabilities and seccomp filled in)."""
    from pyrun.runtime.records import SecurityPlan
    return SecurityPlan.from_dict({"capabilities": [], "seccomp": {"type": "Unconfined"}, **fields})


def test_container_groups():
    sec = {"groups": [2000, 4000], "supplemental_groups_policy": "Merge"}
    assert security.container_groups(plan(**sec), (10, 4000)) == (10, 2000, 4000)
    assert security.container_groups(plan(**dict(sec, supplemental_groups_policy="Strict")), (10,)) == (2000, 4000)
    assert security.container_groups(plan(), ()) == ()


def test_check_non_root():
    security.check_non_root(plan(run_as_non_root=False), 0, "", "c")
    security.check_non_root(plan(run_as_non_root=True), 1000, "", "c")
    with pytest.raises(PyrunError, match=r"runAsNonRoot.*'web'.*uid 0.*image's default user"):
        security.check_non_root(plan(run_as_non_root=True), 0, "", "web")
    with pytest.raises(PyrunError, match="runAsUser 0"):
        security.check_non_root(plan(run_as_non_root=True, run_as_user=0), 0, "0", "web")


@pytest.mark.parametrize("config", [
    {"name": "c", "capabilities": ["CHOWN"]},                      # a config from before "security"
    {"name": "c", "security": None},
    {"name": "c", "security": {"capabilities": ["CHOWN"]}},        # no seccomp: once meant Unconfined
    {"name": "c", "security": {"seccomp": {"type": "RuntimeDefault"}}},
    {"name": "c", "security": {"capabilities": "CHOWN", "seccomp": {"type": "RuntimeDefault"}}},
    {"name": "c", "security": {"capabilities": [], "seccomp": {"type": "RuntimeDefault", "plan": []}}},
    {"name": "c", "security": {"capabilities": [], "seccomp": {"plan": {"rules": []}}}},  # a plan of no type
    {"name": "c", "security": {"capabilities": [], "seccomp": {}, "no_new_privs": "yes"}},
    {"name": "c", "security": ["capabilities", "seccomp"]},
])
def test_a_config_without_its_security_section_fails_closed(config):
    with pytest.raises(PyrunError, match="'c'.*security"):
        security.from_config(_init_config(**config))


def _init_config(**doc):
    """config.json as the store reads it (pyrun.runtime.records.InitConfig)."""
    from pyrun.runtime.records import InitConfig, decode
    base = {"id": "x", "name": "c", "pod_id": "p", "namespaces": {}, "log_path": "/l",
            "rootfs": {"lower": [], "upper": "/u", "work": "/w", "target": "/t"}, "process": {"args": ["sh"]}}
    return decode(InitConfig, {**base, **doc}, "config.json")


def test_from_config_returns_a_complete_section():
    sec = {"capabilities": ["CHOWN"], "seccomp": {"type": "RuntimeDefault"}}
    got = security.from_config(_init_config(security=sec))
    assert got.capabilities == ("CHOWN",) and got.seccomp.type == "RuntimeDefault" and got.seccomp.plan is None


def test_a_damaged_security_section_is_named_in_the_refusal():
    config = _init_config(security={"capabilities": ["CHOWN"], "seccomp": {"type": 7}})
    assert config.security is None and config.name == "c"  # still readable: the monitor, inspect and rm
    with pytest.raises(PyrunError, match=r"'c'.*security.*security\.seccomp\.type: expected a string"):
        security.from_config(config)


def test_the_effective_settings_survive_config_json_unchanged(tmp_path):
    """effective_security's document -> SecurityPlan -> JSON is the same document (the shape on disk)."""
    from pyrun.runtime.records import SecurityPlan
    (tmp_path / "p.json").write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}))
    for pod, ctr in [({}, {}), ({"fsGroup": 5, "supplementalGroups": [7], "runAsUser": 3, "runAsNonRoot": True,
                                "sysctls": [{"name": "net.ipv4.ip_forward", "value": 1}]},
                               {"privileged": True, "readOnlyRootFilesystem": True}),
                     ({}, {"allowPrivilegeEscalation": False, "capabilities": {"add": ["NET_ADMIN"], "drop": ["KILL"]},
                           "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}})]:
        sec = security.with_localhost_profile(eff(pod, ctr, seccomp_profile_root=str(tmp_path),
                                                  rlimits={"NOFILE": [10, 20]}, rlimit_warnings=["w"]))
        doc = json.loads(json.dumps(sec))
        assert json.loads(json.dumps(SecurityPlan.from_dict(doc).to_dict())) == doc
        assert list(SecurityPlan.from_dict(doc).to_dict()) == list(doc)  # key order too


def test_apply_fs_group(tmp_path):
    import os
    from pyrun.spec.model import VolumeSpec
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "f").write_text("x")
    os.chmod(data, 0o777)
    (tmp_path / "host").mkdir()
    vols = [VolumeSpec("data", "emptyDir"), VolumeSpec("host", "hostPath", host_path=str(tmp_path / "host"))]
    gid = os.getgid()
    security.apply_fs_group(vols, {"data": str(data), "host": str(tmp_path / "host")}, gid)
    assert oct(os.stat(data).st_mode & 0o7777) == "0o2777" and os.stat(data / "sub").st_mode & 0o2000
    assert os.stat(data / "sub" / "f").st_mode & 0o060 == 0o060 and os.stat(data / "sub" / "f").st_gid == gid
    assert not os.stat(tmp_path / "host").st_mode & 0o2000  # hostPath untouched
