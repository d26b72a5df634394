"""securityContext validation (pyrun.spec.security): every refused value names its field."""
from __future__ import annotations

import pytest

from _spec_helpers import container, manifest, problems, with_container
from pyrun.spec import parse_pod

C0 = "spec.containers[0].securityContext"
P = "spec.securityContext"


def paths(data) -> dict[str, str]:
    return dict(problems(data))


def test_a_full_valid_context_is_kept_as_given():
    ctx = {"runAsUser": 1000, "runAsGroup": 3000, "runAsNonRoot": True, "privileged": False,
           "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False, "procMount": "Default",
           "capabilities": {"add": ["NET_BIND_SERVICE", "cap_net_raw"], "drop": ["ALL"]},
           "seccompProfile": {"type": "Localhost", "localhostProfile": "team/p.json"}}
    pod_ctx = {"fsGroup": 2000, "supplementalGroups": [4000, 5000], "supplementalGroupsPolicy": "Strict",
               "fsGroupChangePolicy": "OnRootMismatch", "seccompProfile": {"type": "RuntimeDefault"},
               "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "80"},
                           {"name": "kernel.shm_rmid_forced", "value": "1"}, {"name": "kernel.sem", "value": "1 2 3 4"},
                           {"name": "fs.mqueue.msg_max", "value": "20"}, {"name": "net/ipv4/conf/eth0.1/forwarding",
                                                                        "value": "1"}]}
    pod = parse_pod(manifest(container(securityContext=ctx), securityContext=pod_ctx)).pod
    assert pod.containers[0].security_context == ctx and pod.security_context == pod_ctx


@pytest.mark.parametrize("ctx, field, words", [
    ({"capabilities": {"add": ["NET_BIND_SERVCE"]}}, f"{C0}.capabilities.add[0]", "unknown capability"),
    ({"capabilities": {"drop": [7]}}, f"{C0}.capabilities.drop[0]", "must be a string"),
    ({"capabilities": {"remove": ["ALL"]}}, f"{C0}.capabilities.remove", "unknown field"),
    ({"privileged": "yes"}, f"{C0}.privileged", "true or false"),
    ({"allowPrivilegeEscalation": False, "privileged": True}, f"{C0}.allowPrivilegeEscalation", "privileged"),
    ({"allowPrivilegeEscalation": False, "capabilities": {"add": ["SYS_ADMIN"]}},
     f"{C0}.allowPrivilegeEscalation", "SYS_ADMIN"),
    ({"seccompProfile": {"type": "Custom"}}, f"{C0}.seccompProfile.type", "must be one of"),
    ({"seccompProfile": {"type": "Localhost"}}, f"{C0}.seccompProfile.localhostProfile", "required"),
    ({"seccompProfile": {"type": "Localhost", "localhostProfile": "../etc/x"}},
     f"{C0}.seccompProfile.localhostProfile", "relative"),
    ({"seccompProfile": {"type": "Localhost", "localhostProfile": "/abs.json"}},
     f"{C0}.seccompProfile.localhostProfile", "relative"),
    ({"seccompProfile": {"type": "RuntimeDefault", "localhostProfile": "x"}},
     f"{C0}.seccompProfile.localhostProfile", "only"),
    ({"procMount": "Masked"}, f"{C0}.procMount", "must be one of Default, Unmasked"),
    ({"procMount": "Unmasked"}, f"{C0}.procMount", "needs spec.hostUsers: false"),  # no user namespace
    ({"procMount": "Unmasked", "privileged": True}, f"{C0}.procMount", "needs spec.hostUsers: false"),
    ({"runAsUser": -1}, f"{C0}.runAsUser", "out of range"),
    ({"readOnlyRootFilesytem": True}, f"{C0}.readOnlyRootFilesytem", 'did you mean "readOnlyRootFilesystem"'),
    ({"fsGroup": 1}, f"{C0}.fsGroup", "unknown field"),  # pod-level only
])
def test_container_context_errors(ctx, field, words):
    found = paths(with_container(securityContext=ctx))
    assert field in found and words in found[field], found


@pytest.mark.parametrize("ctx, field, words", [
    ({"sysctls": [{"name": "kernel.hostname", "value": "x"}]}, f"{P}.sysctls[0].name", "not a namespaced sysctl"),
    ({"sysctls": [{"name": "vm.swappiness", "value": "1"}]}, f"{P}.sysctls[0].name", "whole node"),
    ({"sysctls": [{"name": "Net.Bad..name", "value": "1"}]}, f"{P}.sysctls[0].name", "not a valid sysctl name"),
    ({"sysctls": [{"name": "net.core.somaxconn", "value": "1"}, {"name": "net/core/somaxconn", "value": "2"}]},
     f"{P}.sysctls[1].name", "duplicate"),
    ({"sysctls": [{"name": "net.core.somaxconn"}]}, f"{P}.sysctls[0].value", "required"),
    ({"supplementalGroups": [1, "2"]}, f"{P}.supplementalGroups[1]", "integer"),
    ({"supplementalGroups": [-5]}, f"{P}.supplementalGroups[0]", "out of range"),
    ({"fsGroup": 2**31}, f"{P}.fsGroup", "out of range"),
    ({"supplementalGroupsPolicy": "Loose"}, f"{P}.supplementalGroupsPolicy", "Merge, Strict"),
    ({"privileged": True}, f"{P}.privileged", "unknown field"),  # container-level only
])
def test_pod_context_errors(ctx, field, words):
    found = paths(manifest(securityContext=ctx))
    assert field in found and words in found[field], found


def test_net_sysctls_are_refused_with_host_network():
    found = paths(manifest(hostNetwork=True, securityContext={
        "sysctls": [{"name": "net.ipv4.ip_forward", "value": "1"}, {"name": "kernel.msgmax", "value": "9"}]}))
    assert "hostNetwork" in found[f"{P}.sysctls[0].name"] and f"{P}.sysctls[1].name" not in found


def test_ignored_fields_warn():
    loaded = parse_pod(manifest(container(securityContext={"seLinuxOptions": {"level": "s0"}}),
                                securityContext={"appArmorProfile": {"type": "RuntimeDefault"}}))
    assert any("seLinuxOptions" in w for w in loaded.warnings) and any("appArmorProfile" in w for w in loaded.warnings)
