"""CRI security contexts -> pyrun's securityContext dicts (pure), and what the runtime makes of them."""
from __future__ import annotations

import pytest
from cri_api.v1 import api_pb2 as pb

from pyrun.cri import translate as t
from pyrun.errors import SpecError
from pyrun.runtime.security import effective_security


def sandbox(sc: pb.LinuxSandboxSecurityContext | None = None, sysctls: dict | None = None) -> pb.PodSandboxConfig:
    return pb.PodSandboxConfig(metadata=pb.PodSandboxMetadata(name="web", uid="u", namespace="ns"),
                               linux=pb.LinuxPodSandboxConfig(security_context=sc, sysctls=sysctls or {}))


def ctr(**kw) -> pb.LinuxContainerSecurityContext:
    return pb.LinuxContainerSecurityContext(**kw)


# What every container context carries from a request that sets nothing (as containerd 1.6 reads it):
# no masked or read-only paths (the kubelet always sends its lists) and seccomp Unconfined (the CRI default).
BARE = {"maskedPaths": [], "readonlyPaths": [], "seccompProfile": {"type": "Unconfined"}}


def test_empty_contexts_mean_the_cri_defaults():
    # the CRI's seccomp default is written into the contexts, never left to a missing setting
    assert t.pod_security_context(sandbox()) == {"seccompProfile": {"type": "Unconfined"}}
    assert t.container_security_context(ctr()) == BARE
    sec = effective_security(t.pod_security_context(sandbox()), t.container_security_context(ctr()))
    assert sec["seccomp"]["type"] == "Unconfined" and sec["masked_paths"] == [] and sec["readonly_paths"] == []


def test_masked_and_readonly_paths_are_applied_as_sent():
    sc = ctr(masked_paths=["/proc/kcore", "/proc/keys"], readonly_paths=["/tmp"])
    sec = effective_security({}, t.container_security_context(sc))
    assert sec["masked_paths"] == ["/proc/kcore", "/proc/keys"] and sec["readonly_paths"] == ["/tmp"]
    priv = effective_security({}, t.container_security_context(ctr(privileged=True, masked_paths=["/proc/kcore"]),
                                                              sandbox_privileged=True))
    assert priv["masked_paths"] == [] and priv["readonly_paths"] == []
    with pytest.raises(SpecError) as e:
        t.container_security_context(ctr(readonly_paths=["/proc/sys", "tmp"]))
    assert e.value.problems[0][0] == "config.linux.security_context.readonly_paths[1]"


def test_run_as_group_without_a_user_is_refused_as_containerd_does():
    with pytest.raises(SpecError, match="user group \"5\" is specified without user") as e:
        t.container_security_context(ctr(run_as_group=pb.Int64Value(value=5)))
    assert e.value.problems[0][0] == "config.linux.security_context.run_as_group"
    assert t.container_security_context(ctr(run_as_username="nobody", run_as_group=pb.Int64Value(value=5))) == \
        {**BARE, "runAsGroup": 5, "runAsUsername": "nobody"}


def test_sandbox_context_ids_groups_seccomp_sysctls():
    sc = pb.LinuxSandboxSecurityContext(run_as_user=pb.Int64Value(value=1000), run_as_group=pb.Int64Value(value=0),
                                        supplemental_groups=[5, 6], supplemental_groups_policy=pb.Strict,
                                        seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.Unconfined))
    ctx = t.pod_security_context(sandbox(sc, {"net.ipv4.ip_unprivileged_port_start": "80", "kernel.shmmax": "1"}))
    assert ctx == {"runAsUser": 1000, "runAsGroup": 0, "supplementalGroups": [5, 6],
                   "supplementalGroupsPolicy": "Strict", "seccompProfile": {"type": "Unconfined"},
                   "sysctls": [{"name": "kernel.shmmax", "value": "1"},
                               {"name": "net.ipv4.ip_unprivileged_port_start", "value": "80"}]}
    cri = t.sandbox_cri(sandbox(pb.LinuxSandboxSecurityContext(privileged=True)), "")
    assert cri.privileged is True and cri.security_context == {"seccompProfile": {"type": "Unconfined"}}


@pytest.mark.parametrize("name, why", [("kernel.hostname", "namespaced"), ("vm.swappiness", "namespaced")])
def test_node_wide_sysctls_are_refused(name, why):
    with pytest.raises(SpecError, match=why) as e:
        t.pod_security_context(sandbox(sysctls={name: "1"}))
    assert e.value.problems[0][0] == f"config.linux.sysctls[{name}]"


def test_net_sysctls_refused_with_host_network():
    sc = pb.LinuxSandboxSecurityContext(namespace_options=pb.NamespaceOption(network=pb.NODE))
    with pytest.raises(SpecError, match="node's network"):
        t.pod_security_context(sandbox(sc, {"net.core.somaxconn": "1024"}))


def test_container_context_full():
    sc = ctr(run_as_user=pb.Int64Value(value=1000), run_as_group=pb.Int64Value(value=2000), readonly_rootfs=True,
             no_new_privs=True, capabilities=pb.Capability(add_capabilities=["CAP_NET_ADMIN", "sys_time"],
                                                           drop_capabilities=["ALL"]),
             seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault),
             masked_paths=["/proc/kcore"], readonly_paths=["/proc/sys"])
    assert t.container_security_context(sc) == {
        "runAsUser": 1000, "runAsGroup": 2000, "capabilities": {"add": ["NET_ADMIN", "SYS_TIME"], "drop": ["ALL"]},
        "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False, "seccompProfile": {"type": "RuntimeDefault"},
        "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"]}


def test_unknown_capability_names_its_field():
    with pytest.raises(SpecError) as e:
        t.container_security_context(ctr(capabilities=pb.Capability(drop_capabilities=["KILL", "CAP_NOPE"])))
    assert e.value.problems[0][0] == "config.linux.security_context.capabilities.drop_capabilities[1]"


def test_privileged_needs_a_privileged_sandbox_and_no_no_new_privs():
    with pytest.raises(SpecError, match="privileged sandbox"):
        t.container_security_context(ctr(privileged=True))
    assert t.container_security_context(ctr(privileged=True), sandbox_privileged=True) == {**BARE, "privileged": True}
    with pytest.raises(SpecError, match="no_new_privs"):
        t.container_security_context(ctr(privileged=True, no_new_privs=True), sandbox_privileged=True)


def test_seccomp_localhost_and_deprecated_paths():
    local = pb.SecurityProfile(profile_type=pb.SecurityProfile.Localhost, localhost_ref="/var/lib/kubelet/seccomp/a.json")
    assert t.container_security_context(ctr(seccomp=local))["seccompProfile"] == \
        {"type": "Localhost", "localhostProfile": "/var/lib/kubelet/seccomp/a.json"}
    relative = pb.SecurityProfile(profile_type=pb.SecurityProfile.Localhost, localhost_ref="a.json")
    with pytest.raises(SpecError) as e:
        t.container_security_context(ctr(seccomp=relative))
    assert e.value.problems[0][0] == "config.linux.security_context.seccomp.localhost_ref"
    for path, kind in (("runtime/default", "RuntimeDefault"), ("docker/default", "RuntimeDefault"),
                       ("unconfined", "Unconfined")):
        assert t.container_security_context(ctr(seccomp_profile_path=path))["seccompProfile"] == {"type": kind}
    assert t.container_security_context(ctr(seccomp_profile_path="localhost//p/x.json"))["seccompProfile"] == \
        {"type": "Localhost", "localhostProfile": "/p/x.json"}
    with pytest.raises(SpecError, match="seccomp_profile_path"):
        t.container_security_context(ctr(seccomp_profile_path="bogus"))


def test_run_as_username_wins_over_run_as_user_as_in_containerd():
    from pyrun.spec.model import ContainerSpec, PodSpec
    from pyrun.spec.process import resolve_process

    def user(sc, image_user="www"):
        c = ContainerSpec(name="c", image="i", command=("true",), security_context=t.container_security_context(sc))
        return resolve_process(c, {"User": image_user}, PodSpec(name="p", containers=(c,))).user
    assert user(ctr(run_as_username="nobody")) == "nobody"
    assert user(ctr(run_as_username="x", run_as_user=pb.Int64Value(value=7))) == "x"
    assert user(ctr(run_as_username="x", run_as_group=pb.Int64Value(value=7))) == "x:7"
    assert user(ctr(run_as_user=pb.Int64Value(value=7))) == "7"
    assert user(ctr()) == "www"
    with pytest.raises(SpecError, match="run_as_username"):
        t.container_security_context(ctr(run_as_username="a:b"))


def test_out_of_range_ids_name_the_field():
    with pytest.raises(SpecError) as e:
        t.container_security_context(ctr(run_as_user=pb.Int64Value(value=-1)))
    assert e.value.problems[0][0] == "config.linux.security_context.run_as_user"


def test_record_round_trip_merges_container_groups():
    cfg = sandbox(pb.LinuxSandboxSecurityContext(supplemental_groups=[5], run_as_user=pb.Int64Value(value=9)))
    from pyrun.runtime.records import PodRecord
    pod = PodRecord(id="p", name="web", namespace="ns", cri=t.sandbox_cri(cfg, ""))
    spec = t.pod_spec_of_record(pod, ctr(supplemental_groups=[7, 5]))
    assert spec.security_context == {"runAsUser": 9, "supplementalGroups": [5, 7],
                                     "seccompProfile": {"type": "Unconfined"}}
    old = PodRecord(id="p", name="old")  # a pod from the CLI or an older record
    assert t.pod_spec_of_record(old).security_context == {}


def test_the_runtime_reads_the_translation_as_the_cli_would():
    """The dicts go through the same merge as a manifest's: drop ALL -> no capabilities, no_new_privs on."""
    c = t.container_security_context(ctr(run_as_user=pb.Int64Value(value=1000), no_new_privs=True,
                                         capabilities=pb.Capability(drop_capabilities=["ALL"]),
                                         seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault)))
    sec = effective_security(t.pod_security_context(sandbox(sysctls={"net.ipv4.ping_group_range": "0 0"})), c)
    assert sec["capabilities"] == [] and sec["no_new_privs"] and sec["run_as_user"] == 1000
    assert sec["sysctls"] == {"net.ipv4.ping_group_range": "0 0"} and sec["seccomp"]["type"] == "RuntimeDefault"
    priv = effective_security({}, t.container_security_context(ctr(privileged=True), sandbox_privileged=True))
    assert priv["privileged"] and priv["masked_paths"] == [] and priv["seccomp"]["type"] == "Unconfined"
