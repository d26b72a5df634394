"""CRI configs -> spec objects, records -> CRI messages (pure)."""
from __future__ import annotations

import pytest
from cri_api.v1 import api_pb2 as pb

from pyrun.cgroups.limits import container_limits, milli_cpu_to_quota, milli_cpu_to_shares
from pyrun.cri import translate as t
from pyrun.errors import SpecError
from pyrun.runtime.records import ContainerRecord, ContainerStatus, MountSpec, PodNetwork, PodRecord, StepError
from pyrun.spec.expand import expand


def sandbox_config(**kw) -> pb.PodSandboxConfig:
    base = dict(metadata=pb.PodSandboxMetadata(name="web", uid="u-1", namespace="prod", attempt=0),
                labels={"app": "web"}, annotations={"x": "y"}, log_directory="/var/log/pods/prod_web_u-1")
    base.update(kw)
    return pb.PodSandboxConfig(**base)


def test_pod_spec_keeps_identity_labels_and_hostname():
    spec = t.pod_spec(sandbox_config(hostname="h1"))
    assert (spec.name, spec.namespace, spec.uid, spec.hostname) == ("web", "prod", "u-1", "h1")
    assert spec.labels == {"app": "web"} and spec.annotations == {"x": "y"}
    assert spec.containers == () and spec.dns_policy == "Default"
    assert spec.share_process_namespace  # NamespaceMode POD (0) is the proto default
    assert not spec.host_network


def test_attempt_makes_a_distinct_name_and_hostname_defaults_to_name():
    spec = t.pod_spec(sandbox_config(metadata=pb.PodSandboxMetadata(name="web", namespace="", attempt=2)))
    assert spec.name == "web_2" and spec.namespace == "default" and spec.uid is None and spec.hostname == "web"


@pytest.mark.parametrize("name", ["", "a/b", ".."])
def test_bad_names_name_the_field(name):
    with pytest.raises(SpecError) as e:
        t.pod_spec(sandbox_config(metadata=pb.PodSandboxMetadata(name=name)))
    assert e.value.problems[0][0] == "config.metadata.name"


def test_namespace_options():
    ns = pb.NamespaceOption(network=pb.NODE, pid=pb.CONTAINER, ipc=pb.POD)
    cfg = sandbox_config(linux=pb.LinuxPodSandboxConfig(
        security_context=pb.LinuxSandboxSecurityContext(namespace_options=ns)))
    spec = t.pod_spec(cfg)
    assert spec.host_network and not spec.share_process_namespace
    assert t.sandbox_cri(cfg, "").namespace_options == {"network": 2, "pid": 1, "ipc": 0}
    host = sandbox_config(linux=pb.LinuxPodSandboxConfig(security_context=pb.LinuxSandboxSecurityContext(
        namespace_options=pb.NamespaceOption(pid=pb.NODE, ipc=pb.NODE))))
    spec = t.pod_spec(host)
    assert spec.host_pid and spec.host_ipc and not spec.share_process_namespace and not spec.host_network
    ipc_sysctl = sandbox_config(linux=pb.LinuxPodSandboxConfig(
        sysctls={"kernel.shmmax": "1"}, security_context=pb.LinuxSandboxSecurityContext(
            namespace_options=pb.NamespaceOption(ipc=pb.NODE))))
    with pytest.raises(SpecError, match="node's IPC namespace") as e:
        t.pod_spec(ipc_sysctl)
    assert e.value.problems[0][0] == "config.linux.sysctls[kernel.shmmax]"


def test_dns_config_and_ports():
    cfg = sandbox_config(dns_config=pb.DNSConfig(servers=["10.0.0.10"], searches=["svc.local"],
                                                 options=["ndots:5", "edns0"]),
                         port_mappings=[pb.PortMapping(protocol=pb.UDP, container_port=53, host_port=5353)])
    spec = t.pod_spec(cfg)
    assert spec.dns_policy == "None"
    assert spec.dns_config == {"nameservers": ["10.0.0.10"], "searches": ["svc.local"],
                               "options": [{"name": "ndots", "value": "5"}, {"name": "edns0"}]}
    (port,) = spec.containers[0].ports
    assert (port.container_port, port.host_port, port.protocol) == (53, 5353, "UDP")


def test_sandbox_cri_keeps_what_was_sent():
    cri = t.sandbox_cri(sandbox_config(), "")
    assert cri.metadata == {"name": "web", "uid": "u-1", "namespace": "prod", "attempt": 0}
    assert cri.labels == {"app": "web"} and cri.log_directory == "/var/log/pods/prod_web_u-1"
    with pytest.raises(SpecError, match="runtime handler"):
        t.sandbox_cri(sandbox_config(), "kata")


def test_cgroup_parent_must_lie_below_the_server_parent():
    assert t.cgroup_parent_override("", "kubepods") is None
    assert t.cgroup_parent_override("/kubepods/burstable/podx", "kubepods") == "/kubepods/burstable/podx"
    for bad in ("/other/podx", "/kubepods", "kubepods.slice", "/kubepods/../x"):
        with pytest.raises(SpecError) as e:
            t.cgroup_parent_override(bad, "kubepods")
        assert e.value.problems[0][0] == "config.linux.cgroup_parent"


@pytest.mark.parametrize("milli", [2, 10, 100, 250, 500, 1000, 1500, 4000])
def test_cpu_resources_round_trip_through_the_kubelet_formulas(milli):
    res = pb.LinuxContainerResources(cpu_shares=milli_cpu_to_shares(milli), cpu_quota=milli_cpu_to_quota(milli),
                                     cpu_period=100000, memory_limit_in_bytes=1 << 26)
    limits = container_limits(t.resources(res))
    assert (limits.cpu_shares, limits.cpu_quota, limits.cpu_period) == (res.cpu_shares, res.cpu_quota, 100000)
    assert limits.memory_max == 1 << 26


def test_unset_resources_mean_none_and_hugepages_convert():
    assert t.resources(pb.LinuxContainerResources()).requests == {}
    res = t.resources(pb.LinuxContainerResources(cpu_quota=-1, hugepage_limits=[
        pb.HugepageLimit(page_size="2MB", limit=4 << 20)]))
    assert res.limits == {"hugepages-2Mi": 4 << 20}


def container_config(**kw) -> pb.ContainerConfig:
    base = dict(metadata=pb.ContainerMetadata(name="app", attempt=0), image=pb.ImageSpec(image="busybox"),
                command=["sh", "-c", "echo $(A) $$B"], args=["x"], envs=[pb.KeyValue(key="A", value="$(B)")],
                working_dir="/w", log_path="app/0.log", labels={"l": "1"}, annotations={"a": "2"})
    base.update(kw)
    return pb.ContainerConfig(**base)


def test_container_spec_is_not_expanded_twice():
    c = t.container_spec(container_config())
    assert c.name == "app" and c.image == "busybox" and c.working_dir == "/w"
    assert [expand(a, {"A": "1", "B": "2"}) for a in c.command] == ["sh", "-c", "echo $(A) $$B"]
    assert expand(c.env[0].value, {"B": "2"}) == "$(B)"


def test_container_attempt_user_and_errors():
    sc = pb.LinuxContainerSecurityContext(run_as_user=pb.Int64Value(value=1000), run_as_group=pb.Int64Value(value=0))
    c = t.container_spec(container_config(metadata=pb.ContainerMetadata(name="app", attempt=3),
                                          linux=pb.LinuxContainerConfig(security_context=sc)))
    assert c.name == "app_3" and c.security_context == {"runAsUser": 1000, "runAsGroup": 0, "maskedPaths": [],
                                                         "readonlyPaths": [], "seccompProfile": {"type": "Unconfined"}}
    with pytest.raises(SpecError, match="config.image.image"):
        t.container_spec(container_config(image=pb.ImageSpec()))
    by_name = pb.LinuxContainerSecurityContext(run_as_username="nobody")
    c = t.container_spec(container_config(linux=pb.LinuxContainerConfig(security_context=by_name)))
    assert c.security_context["runAsUsername"] == "nobody"
    group_only = pb.LinuxContainerSecurityContext(run_as_group=pb.Int64Value(value=0))
    with pytest.raises(SpecError, match="specified without user"):
        t.container_spec(container_config(linux=pb.LinuxContainerConfig(security_context=group_only)))


def test_mounts_and_log_path():
    cfg = container_config(mounts=[pb.Mount(container_path="/data", host_path="/srv/d", readonly=True)])
    assert t.extra_mounts(cfg) == [MountSpec(source="/srv/d", destination="/data", readonly=True)]
    shared = container_config(mounts=[pb.Mount(container_path="/a", host_path="/s/a", propagation=pb.PROPAGATION_BIDIRECTIONAL),
                                      pb.Mount(container_path="/b", host_path="/s/b",
                                               propagation=pb.PROPAGATION_HOST_TO_CONTAINER)])
    assert [m.propagation for m in t.extra_mounts(shared)] == ["rshared", "rslave"]
    with pytest.raises(SpecError, match=r"config.mounts\[0\]"):
        t.extra_mounts(container_config(mounts=[pb.Mount(container_path="data", host_path="/srv")]))
    assert t.container_log_path("/var/log/pods/p/", "app/0.log") == "/var/log/pods/p/app/0.log"
    assert t.container_log_path("", "app/0.log") is None
    with pytest.raises(SpecError, match="config.log_path"):
        t.container_log_path("/var/log/pods/p", "../../etc/x")


POD = PodRecord(id="a" * 64, name="web", namespace="prod", uid="u-1", state="running", created_at=123,
                labels={"app": "web"}, annotations={}, network=PodNetwork(ip="10.88.0.5"), host_network=False,
                share_pid=False)


def test_record_to_sandbox_status():
    from dataclasses import replace
    cri_pod = replace(POD, cri=t.sandbox_cri(sandbox_config(), ""))
    st = t.pod_sandbox_status(cri_pod, pause_alive=True)
    assert st.state == pb.SANDBOX_READY and st.network.ip == "10.88.0.5" and st.created_at == 123
    assert dict(st.labels) == {"app": "web"} and dict(st.annotations) == {"x": "y"}
    assert st.metadata.uid == "u-1" and st.metadata.namespace == "prod"
    assert t.pod_sandbox_status(cri_pod, pause_alive=False).state == pb.SANDBOX_NOTREADY
    assert t.pod_sandbox(replace(cri_pod, state="stopped"), True).state == pb.SANDBOX_NOTREADY


def test_cli_pod_gets_a_derived_cri_view():
    st = t.pod_sandbox_status(POD, pause_alive=True)
    assert st.metadata.name == "web" and st.metadata.attempt == 0
    assert st.linux.namespaces.options.pid == pb.CONTAINER and st.linux.namespaces.options.network == pb.POD


def test_record_to_container_status():
    from dataclasses import replace
    rec = ContainerRecord(
        id="c" * 64, pod_id="a" * 64, name="app", image="busybox", image_id="sha256:abc", created_at=5,
        log_path="/var/log/pods/p/app/0.log",
        status=ContainerStatus(state="exited", exit_code=3, started_at=6, finished_at=7, reason="Error"),
        cri=t.container_cri(container_config(mounts=[pb.Mount(container_path="/d", host_path="/h")])))
    st = t.container_status(rec)
    assert st.state == pb.CONTAINER_EXITED and st.exit_code == 3 and st.reason == "Error"
    assert (st.created_at, st.started_at, st.finished_at) == (5, 6, 7)
    assert st.image.image == "busybox" and st.image_ref == "sha256:abc"
    assert dict(st.labels) == {"l": "1"} and dict(st.annotations) == {"a": "2"}
    assert st.mounts[0].host_path == "/h" and st.log_path == "/var/log/pods/p/app/0.log"
    failed = replace(rec, status=ContainerStatus(state="exited", exit_code=-1, reason="StartError",
                                                 error=StepError("exec", "no such file")))
    assert t.container_status(failed).message == "exec: no such file"
    assert t.container(replace(rec, status=ContainerStatus(state="unknown"))).state == pb.CONTAINER_UNKNOWN
    assert t.container_status(replace(rec, status=ContainerStatus(state="running", exit_code=9))).exit_code == 0


def test_auth_dict():
    assert t.auth_dict(pb.AuthConfig()) is None
    assert t.auth_dict(pb.AuthConfig(username="u", password="p")) == {"username": "u", "password": "p"}


# --- issue 15 item 6 and issue 13 item 4: names, NUL bytes, one validator ----------------------------

@pytest.mark.parametrize("field, meta", [
    ("config.metadata.name", pb.PodSandboxMetadata(name="p" * 300, namespace="ns")),
    ("config.metadata.name", pb.PodSandboxMetadata(name="web\nx", namespace="ns")),
    ("config.metadata.name", pb.PodSandboxMetadata(name="web\x1b[2J", namespace="ns")),
    ("config.metadata.namespace", pb.PodSandboxMetadata(name="web", namespace="n" * 254)),
    ("config.metadata.namespace", pb.PodSandboxMetadata(name="web", namespace="a\tb")),
])
def test_long_names_and_control_characters_are_refused(field, meta):
    with pytest.raises(SpecError) as e:
        t.pod_spec(sandbox_config(metadata=meta))
    assert e.value.problems[0][0] == field


def test_a_253_character_name_is_accepted():
    assert t.pod_spec(sandbox_config(metadata=pb.PodSandboxMetadata(name="p" * 253, namespace="ns"))).name == "p" * 253


@pytest.mark.parametrize("cfg, field", [
    (dict(envs=[pb.KeyValue(key="A", value="x\0y")]), "config.envs[0].value"),
    (dict(command=["sh", "\0"]), "config.command[1]"),
    (dict(args=["a\0"]), "config.args[0]"),
    (dict(working_dir="/w\0"), "config.working_dir"),
    (dict(annotations={"a": "\0"}), "config.annotations['a']"),
    (dict(log_path="c/0.log\0"), "config.log_path"),
    (dict(mounts=[pb.Mount(container_path="/x", host_path="/tmp\0")]), "config.mounts[0].host_path"),
])
def test_a_nul_byte_in_a_container_config_names_the_field(cfg, field):
    """The one request check (pyrun.cri.validate, run by the server for every RPC) before translation."""
    from pyrun.cri.validate import check_request
    with pytest.raises(SpecError) as e:
        check_request(pb.CreateContainerRequest(pod_sandbox_id="p", config=container_config(**cfg),
                                                sandbox_config=sandbox_config()))
    assert (field, "must not contain a NUL byte") in e.value.problems


def test_a_nul_byte_in_a_sandbox_config_names_the_field():
    from pyrun.cri.validate import check_request
    with pytest.raises(SpecError) as e:
        check_request(pb.RunPodSandboxRequest(config=sandbox_config(labels={"app": "a\0"})))
    assert e.value.problems == [("config.labels['app']", "must not contain a NUL byte")]


@pytest.mark.parametrize("cfg, field", [
    (dict(envs=[pb.KeyValue(key="A=B", value="x")]), "config.envs[0].key"),   # refused as a manifest too
    (dict(envs=[pb.KeyValue(key="", value="x")]), "config.envs[0].key"),
    (dict(envs=[pb.KeyValue(key="A", value="1"), pb.KeyValue(key="B\x01", value="2")]), "config.envs[1].key"),
    (dict(working_dir="relative/dir"), "config.working_dir"),
    (dict(image=pb.ImageSpec(image=" busybox")), "config.image.image"),
])
def test_container_configs_go_through_the_manifest_validator(cfg, field):
    with pytest.raises(SpecError) as e:
        t.container_spec(container_config(**cfg))
    assert field in [p for p, _ in e.value.problems], e.value.problems


def test_a_non_identifier_env_name_is_accepted_as_in_a_manifest():
    c = t.container_spec(container_config(envs=[pb.KeyValue(key="my.var", value="1")]))
    assert c.env[0].name == "my.var"


@pytest.mark.parametrize("cfg, field", [
    (dict(dns_config=pb.DNSConfig(servers=["not-an-ip"])), "config.dns_config.servers[0]"),
    (dict(dns_config=pb.DNSConfig(servers=["1.1.1.1"], searches=["Bad_Domain"])), "config.dns_config.searches[0]"),
    (dict(port_mappings=[pb.PortMapping(container_port=80, host_port=70000)]), "config.port_mappings[0].host_port"),
    (dict(port_mappings=[pb.PortMapping(container_port=0)]), "config.port_mappings[0].container_port"),
    (dict(port_mappings=[pb.PortMapping(container_port=80, host_port=8080),
                         pb.PortMapping(container_port=81, host_port=8080)]), "config.port_mappings[1].host_port"),
    (dict(hostname="Not_A_Label"), "config.hostname"),
])
def test_sandbox_configs_go_through_the_manifest_validator(cfg, field):
    with pytest.raises(SpecError) as e:
        t.pod_spec(sandbox_config(**cfg))
    assert field in [p for p, _ in e.value.problems], e.value.problems
