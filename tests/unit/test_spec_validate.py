"""parse_pod: every validation rule, all errors at once, warnings, unknown fields and defaults."""
from __future__ import annotations

import pytest

from _spec_helpers import container, manifest, message, ok, paths, problems, with_container
from pyrun.errors import SpecError
from pyrun.spec import parse_pod

C0 = "spec.containers[0]"


# --- top level -----------------------------------------------------------------------------------

def test_minimal_manifest_is_accepted_without_warnings():
    loaded = ok(manifest())
    assert loaded.warnings == []
    assert loaded.pod.name == "demo"
    assert loaded.pod.containers[0].image == "pyrun/demo:latest"


@pytest.mark.parametrize("data", [None, [], "pod", 3])
def test_manifest_must_be_an_object(data):
    assert "must be an object" in problems(data)[0][1]


def test_api_version_and_kind():
    data = manifest(top={"apiVersion": "apps/v1", "kind": "Deployment"})
    assert message(data, "apiVersion") == '"apps/v1" must be "v1"'
    assert message(data, "kind") == '"Deployment" must be "Pod"'
    data = manifest()
    del data["apiVersion"], data["kind"]
    assert {"apiVersion", "kind"} <= set(paths(data))


def test_metadata_and_spec_required():
    assert {"metadata", "spec"} <= set(paths({"apiVersion": "v1", "kind": "Pod"}))


def test_error_carries_source_and_lists_every_problem():
    data = manifest(container(name="A", image=""), container(name="b", image=3), top={"kind": "Pdo"})
    with pytest.raises(SpecError) as info:
        parse_pod(data, source="pod.yaml")
    err = info.value
    assert err.source == "pod.yaml"
    assert set(p for p, _ in err.problems) == {
        "kind", f"{C0}.name", f"{C0}.image", "spec.containers[1].image"}
    assert str(err).startswith("pod.yaml: 4 problems:")


# --- names ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["a", "web-1", "a.b.c", "x" * 253, "0pod"])
def test_valid_pod_names(name):
    ok(manifest(name=name))


@pytest.mark.parametrize("name", ["Web", "-a", "a-", "a_b", "a..b", "x" * 254, ""])
def test_invalid_pod_names(name):
    assert "metadata.name" in paths(manifest(name=name))


def test_pod_name_required_and_string():
    data = manifest()
    del data["metadata"]["name"]
    assert message(data, "metadata.name") == "required"
    assert "must be a string" in message(manifest(name=5), "metadata.name")


@pytest.mark.parametrize("name", ["a.b", "A", "x" * 64, "a_b", "-x"])
def test_container_name_is_a_dns_label(name):
    assert f"{C0}.name" in paths(with_container(name=name))


def test_container_names_unique():
    data = manifest(container("a"), container("b"), container("a"))
    assert message(data, "spec.containers[2].name") == 'duplicate container name "a"'


def test_volume_names_unique_and_labels():
    data = manifest(volumes=[{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}, {"name": "V.x"}])
    assert message(data, "spec.volumes[1].name") == 'duplicate volume name "v"'
    assert "DNS-1123 label" in message(data, "spec.volumes[2].name")


def test_namespace_defaults_and_is_checked():
    assert ok(manifest()).pod.namespace == "default"
    assert ok(manifest(metadata={"namespace": "team-a"})).pod.namespace == "team-a"
    assert "metadata.namespace" in paths(manifest(metadata={"namespace": "Team_A"}))


def test_labels_and_annotations():
    good = {"app": "web", "example.com/tier": "front", "empty": ""}
    pod = ok(manifest(metadata={"labels": good, "annotations": {"k8s.io/any": "any value at all: {}"},
                                "uid": "1234"})).pod
    assert pod.labels == good and pod.annotations == {"k8s.io/any": "any value at all: {}"}
    assert pod.uid == "1234"
    data = manifest(metadata={"labels": {"version": 1, "bad key": "x", "ok": "no spaces!"},
                              "annotations": {"/x": "y", "n": 3}})
    found = paths(data)
    assert "metadata.labels['version']" in found
    assert "metadata.labels['bad key']" in found
    assert "metadata.labels['ok']" in found
    assert "metadata.annotations['/x']" in found
    assert "metadata.annotations['n']" in found
    assert "quote it in YAML" in message(data, "metadata.labels['version']")


def test_uid_missing_is_none():
    assert ok(manifest()).pod.uid is None


# --- containers ----------------------------------------------------------------------------------

def test_containers_required_and_not_empty():
    data = manifest()
    data["spec"]["containers"] = []
    assert "at least one container" in message(data, "spec.containers")
    del data["spec"]["containers"]
    assert "spec.containers" in paths(data)


def test_containers_wrong_type():
    data = manifest()
    data["spec"]["containers"] = {"name": "x"}
    assert message(data, "spec.containers") == "must be a list, not an object"
    data["spec"]["containers"] = ["x"]
    assert message(data, C0) == "must be an object, not a string"


def test_image_required():
    data = with_container()
    del data["spec"]["containers"][0]["image"]
    assert message(data, f"{C0}.image") == "required"
    assert f"{C0}.image" in paths(with_container(image=""))
    assert f"{C0}.image" in paths(with_container(image=" busybox"))


@pytest.mark.parametrize("field", ["command", "args"])
def test_command_and_args_are_lists_of_strings(field):
    assert message(with_container(**{field: "sh -c true"}), f"{C0}.{field}") == "must be a list, not a string"
    assert message(with_container(**{field: ["sh", 1]}), f"{C0}.{field}[1]") == "must be a string, not an integer"
    assert getattr(ok(with_container(**{field: ["a", "b"]})).pod.containers[0], field) == ("a", "b")


def test_empty_command_means_not_set():
    c = ok(with_container(command=[], args=[])).pod.containers[0]
    assert c.command is None and c.args is None


@pytest.mark.parametrize("image, policy", [
    ("busybox", "Always"), ("busybox:latest", "Always"), ("busybox:1.36", "IfNotPresent"),
    ("localhost:5000/busybox", "Always"), ("localhost:5000/busybox:1", "IfNotPresent"),
    ("busybox@sha256:" + "a" * 64, "IfNotPresent"), ("busybox:1@sha256:" + "a" * 64, "IfNotPresent"),
])
def test_image_pull_policy_default(image, policy):
    assert ok(with_container(image=image)).pod.containers[0].image_pull_policy == policy


def test_image_pull_policy_values():
    assert ok(with_container(imagePullPolicy="Never")).pod.containers[0].image_pull_policy == "Never"
    assert f"{C0}.imagePullPolicy" in paths(with_container(imagePullPolicy="Sometimes"))


def test_working_dir_absolute():
    assert ok(with_container(workingDir="/srv")).pod.containers[0].working_dir == "/srv"
    assert message(with_container(workingDir="srv"), f"{C0}.workingDir") == '"srv" must be an absolute path'


def test_tty_stdin_booleans():
    c = ok(with_container(tty=True, stdin=True)).pod.containers[0]
    assert c.tty and c.stdin
    assert message(with_container(tty="yes"), f"{C0}.tty") == "must be true or false, not a string"


def test_security_context_kept_as_dict():
    ctx = {"runAsUser": 1000, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True}
    pod = ok(manifest(container(securityContext=ctx), securityContext={"runAsNonRoot": True})).pod
    assert pod.containers[0].security_context == ctx
    assert pod.security_context == {"runAsNonRoot": True}
    assert f"{C0}.securityContext" in paths(with_container(securityContext=["x"]))
    assert f"{C0}.securityContext.runAsUser" in paths(with_container(securityContext={"runAsUser": "root"}))
    assert f"{C0}.securityContext.runAsUser" in paths(with_container(securityContext={"runAsUser": -1}))


# --- env -----------------------------------------------------------------------------------------

def test_env_values_and_field_refs():
    env = [{"name": "A", "value": "1"}, {"name": "EMPTY"}, {"name": "A", "value": "2"},
           {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name", "apiVersion": "v1"}}},
           {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}}]
    c = ok(with_container(env=env)).pod.containers[0]
    assert [(e.name, e.value) for e in c.env] == [("A", "1"), ("EMPTY", ""), ("A", "2"), ("POD", None), ("APP", None)]
    assert c.env[3].field_ref.field_path == "metadata.name"


@pytest.mark.parametrize("field_path", [
    "metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels['a']",
    "metadata.annotations['example.com/b']", "spec.nodeName", "spec.serviceAccountName", "status.podIP",
    "status.hostIP",
])
def test_supported_field_paths(field_path):
    ok(with_container(env=[{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": field_path}}}]))


@pytest.mark.parametrize("field_path", ["metadata.labels", "status.phase", "spec.hostname",
                                        "metadata.labels['bad key']"])
def test_unsupported_field_paths(field_path):
    data = with_container(env=[{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": field_path}}}])
    assert f"{C0}.env[0].valueFrom.fieldRef.fieldPath" in paths(data)


def test_env_errors():
    env = [{"value": "x"}, {"name": "A=B"}, {"name": "V", "value": 3},
           {"name": "W", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
           {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
           {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
           {"name": "E", "valueFrom": {}}, "NAME=value"]
    found = paths(with_container(env=env, envFrom=[{"configMapRef": {"name": "x"}}]))
    assert f"{C0}.env[0].name" in found
    assert f"{C0}.env[1].name" in found
    assert f"{C0}.env[2].value" in found
    assert f"{C0}.env[3].valueFrom" in found
    assert f"{C0}.env[4].valueFrom.secretKeyRef" in found
    assert f"{C0}.env[5].valueFrom.configMapKeyRef" in found
    assert f"{C0}.env[6].valueFrom" in found
    assert f"{C0}.env[7]" in found
    assert f"{C0}.envFrom" in found


def test_weird_env_names_warn_only():
    loaded = ok(with_container(env=[{"name": "my.var", "value": "1"}, {"name": "MY-VAR", "value": "2"}]))
    assert len(loaded.warnings) == 2
    assert loaded.warnings[0].startswith(f"{C0}.env[0].name: ")


# --- resources -----------------------------------------------------------------------------------

def test_resources_normalised_and_defaulted():
    res = {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "0.1"}}
    r = ok(with_container(resources=res)).pod.containers[0].resources
    assert r.limits == {"cpu": 500, "memory": 128 * 2**20}
    assert r.requests == {"cpu": 100, "memory": 128 * 2**20}  # memory request defaults to the limit


def test_resources_empty():
    r = ok(with_container()).pod.containers[0].resources
    assert r.requests == {} and r.limits == {}


def test_bad_quantity_path_and_message():
    data = manifest(container("a"), container("b", resources={"limits": {"memory": "12XB"}}))
    assert problems(data) == [("spec.containers[1].resources.limits.memory", '"12XB" is not a quantity')]


def test_negative_quantity():
    assert "negative" in message(with_container(resources={"requests": {"cpu": "-1"}}),
                                 f"{C0}.resources.requests.cpu")


def test_request_above_limit():
    data = with_container(resources={"requests": {"cpu": "2", "memory": "1Gi"},
                                     "limits": {"cpu": "1", "memory": "1Gi"}})
    assert paths(data) == [f"{C0}.resources.requests.cpu"]
    assert "less than or equal" in message(data, f"{C0}.resources.requests.cpu")


def test_hugepages_rules():
    ok(with_container(resources={"limits": {"hugepages-2Mi": "4Mi", "memory": "64Mi"}}))
    ok(with_container(resources={"limits": {"hugepages-1Gi": "1Gi", "cpu": "1"},
                                 "requests": {"hugepages-1Gi": "1Gi"}}))
    unequal = with_container(resources={"limits": {"hugepages-2Mi": "4Mi", "memory": "64Mi"},
                                        "requests": {"hugepages-2Mi": "2Mi"}})
    assert "equal" in message(unequal, f"{C0}.resources.requests.hugepages-2Mi")
    no_limit = with_container(resources={"requests": {"hugepages-2Mi": "2Mi", "memory": "64Mi"}})
    assert f"{C0}.resources.limits.hugepages-2Mi" in paths(no_limit)
    alone = with_container(resources={"limits": {"hugepages-2Mi": "2Mi"}})
    assert "require a cpu or memory" in message(alone, f"{C0}.resources")
    odd = with_container(resources={"limits": {"hugepages-2Mi": "3Mi", "memory": "1Gi"}})
    assert "multiple of the page size" in message(odd, f"{C0}.resources.limits.hugepages-2Mi")


def test_hugepages_normalised_to_bytes():
    r = ok(with_container(resources={"limits": {"hugepages-2Mi": "4Mi", "memory": "64Mi"}})).pod.containers[0].resources
    assert r.limits["hugepages-2Mi"] == r.requests["hugepages-2Mi"] == 4 * 2**20


def test_unknown_and_ignored_resources():
    data = with_container(resources={"limits": {"memroy": "1Gi"}})
    assert message(data, f"{C0}.resources.limits.memroy") == 'unknown resource (did you mean "memory"?)'
    loaded = ok(with_container(resources={"limits": {"ephemeral-storage": "1Gi", "nvidia.com/gpu": 1},
                                          "claims": [{"name": "gpu"}]}))
    assert len(loaded.warnings) == 3
    assert f"{C0}.resources.claims: not supported by pyrun; ignored" in loaded.warnings


def test_resources_wrong_types():
    assert message(with_container(resources=[]), f"{C0}.resources") == "must be an object, not a list"
    assert "must be an object" in message(with_container(resources={"limits": "1Gi"}), f"{C0}.resources.limits")


# --- ports ---------------------------------------------------------------------------------------

def test_ports_defaults():
    p = ok(with_container(ports=[{"containerPort": 80}])).pod.containers[0].ports[0]
    assert (p.name, p.container_port, p.host_port, p.host_ip, p.protocol) == (None, 80, None, None, "TCP")


def test_ports_errors():
    ports = [{"containerPort": 0}, {"containerPort": 65536}, {"name": "x"}, {"containerPort": "80"},
             {"containerPort": 80, "hostPort": 70000}, {"containerPort": 81, "protocol": "ICMP"},
             {"containerPort": 82, "name": "Web_Port"}, {"containerPort": 83, "hostIP": "nope", "hostPort": 83}]
    found = paths(with_container(ports=ports))
    for expected in ["ports[0].containerPort", "ports[1].containerPort", "ports[2].containerPort",
                     "ports[3].containerPort", "ports[4].hostPort", "ports[5].protocol", "ports[6].name",
                     "ports[7].hostIP"]:
        assert f"{C0}.{expected}" in found


def test_port_names_unique_per_container():
    data = with_container(ports=[{"name": "web", "containerPort": 80}, {"name": "web", "containerPort": 81}])
    assert f"{C0}.ports[1].name" in paths(data)


def test_host_port_unique_per_protocol():
    data = manifest(container("a", ports=[{"containerPort": 80, "hostPort": 8080},
                                          {"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}]),
                    container("b", ports=[{"containerPort": 81, "hostPort": 8080}]))
    assert paths(data) == ["spec.containers[1].ports[0].hostPort"]
    assert "already used by spec.containers[0].ports[0].hostPort" in problems(data)[0][1]


def test_host_network_defaults_host_port():
    pod = ok(manifest(container(ports=[{"containerPort": 80}]), hostNetwork=True)).pod
    assert pod.host_network and pod.containers[0].ports[0].host_port == 80
    bad = manifest(container(ports=[{"containerPort": 80, "hostPort": 81}]), hostNetwork=True)
    assert "must equal containerPort" in message(bad, f"{C0}.ports[0].hostPort")


# --- volumes and mounts --------------------------------------------------------------------------

def test_volumes_parsed():
    volumes = [{"name": "scratch", "emptyDir": {}}, {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
               {"name": "host", "hostPath": {"path": "/var/log", "type": "Directory"}}, {"name": "bare"}]
    vols = ok(manifest(volumes=volumes)).pod.volumes
    assert [(v.name, v.kind) for v in vols] == [("scratch", "emptyDir"), ("mem", "emptyDir"),
                                                ("host", "hostPath"), ("bare", "emptyDir")]
    assert vols[1].medium == "Memory" and vols[1].size_limit == 64 * 2**20
    assert vols[2].host_path == "/var/log" and vols[2].host_path_type == "Directory"
    assert vols[0].size_limit is None and vols[0].medium == ""


def test_volume_errors():
    volumes = [{"name": "a", "emptyDir": {"medium": "HugePages"}}, {"name": "b", "emptyDir": {"sizeLimit": "lots"}},
               {"name": "c", "hostPath": {"path": "var/log"}}, {"name": "d", "hostPath": {"path": "/x", "type": "Dir"}},
               {"name": "e", "hostPath": {}}, {"name": "f", "hostPath": {"path": "/a/../etc"}},
               {"name": "g", "emptyDir": {}, "hostPath": {"path": "/x"}}, {"emptyDir": {}},
               {"name": "h", "configMap": {"name": "cm"}}, {"name": "i", "secret": {}},
               {"name": "j", "persistentVolumeClaim": {"claimName": "x"}}]
    found = paths(manifest(volumes=volumes))
    for expected in ["[0].emptyDir.medium", "[1].emptyDir.sizeLimit", "[2].hostPath.path", "[3].hostPath.type",
                     "[4].hostPath.path", "[5].hostPath.path", "[6]", "[7].name", "[8].configMap", "[9].secret",
                     "[10].persistentVolumeClaim"]:
        assert f"spec.volumes{expected}" in found, expected


def test_volume_mounts():
    data = manifest(container(volumeMounts=[{"name": "data", "mountPath": "/data", "readOnly": True,
                                             "subPath": "sub/dir"}]),
                    volumes=[{"name": "data", "emptyDir": {}}])
    m = ok(data).pod.containers[0].volume_mounts[0]
    assert (m.name, m.mount_path, m.read_only, m.sub_path) == ("data", "/data", True, "sub/dir")


def test_volume_mount_errors():
    mounts = [{"name": "missing", "mountPath": "/a"}, {"name": "data", "mountPath": "rel"},
              {"name": "data", "mountPath": "/b"}, {"name": "data", "mountPath": "/b/"},
              {"name": "data", "mountPath": "/c", "subPath": "/abs"}, {"name": "data", "mountPath": "/d", "subPath": "a/../.."},
              {"name": "data"}, {"name": "data", "mountPath": "/e", "readOnly": "true"},
              {"name": "data", "mountPath": "/f", "subPathExpr": "$(POD)"}]
    found = problems(manifest(container(volumeMounts=mounts), volumes=[{"name": "data"}]))
    got = {p for p, _ in found}
    m = f"{C0}.volumeMounts"
    assert {f"{m}[0].name", f"{m}[1].mountPath", f"{m}[3].mountPath", f"{m}[4].subPath", f"{m}[5].subPath",
            f"{m}[6].mountPath", f"{m}[7].readOnly", f"{m}[8].subPathExpr"} == got
    assert dict(found)[f"{m}[0].name"] == 'no volume named "missing" in spec.volumes'


# --- pod-level fields ----------------------------------------------------------------------------

def test_pod_defaults():
    pod = ok(manifest()).pod
    assert pod.hostname == "demo"
    assert pod.termination_grace_period == 30
    assert pod.restart_policy == "Always"
    assert pod.dns_policy == "ClusterFirst"
    assert pod.dns_config == {"nameservers": [], "searches": [], "options": []}
    assert not pod.share_process_namespace and not pod.host_network
    assert pod.host_aliases == () and pod.volumes == () and pod.security_context == {}


def test_hostname_default_truncated_like_kubelet():
    name = "a" * 62 + "-b" + "c" * 10
    assert ok(manifest(name=name)).pod.hostname == "a" * 62
    assert ok(manifest(name="x" * 100)).pod.hostname == "x" * 63
    assert ok(manifest(hostname="box")).pod.hostname == "box"
    assert "spec.hostname" in paths(manifest(hostname="my.box"))


def test_grace_period():
    assert ok(manifest(terminationGracePeriodSeconds=0)).pod.termination_grace_period == 0
    assert "spec.terminationGracePeriodSeconds" in paths(manifest(terminationGracePeriodSeconds=-1))
    assert "spec.terminationGracePeriodSeconds" in paths(manifest(terminationGracePeriodSeconds=1.5))
    assert "spec.terminationGracePeriodSeconds" in paths(manifest(terminationGracePeriodSeconds=True))
    assert "spec.terminationGracePeriodSeconds" in paths(manifest(terminationGracePeriodSeconds="30"))


@pytest.mark.parametrize("policy", ["Always", "OnFailure", "Never"])
def test_restart_policy(policy):
    loaded = ok(manifest(restartPolicy=policy))
    assert loaded.pod.restart_policy == policy
    assert not loaded.warnings  # the container's monitor restarts (pyrun.runtime.supervise)


def test_restart_policy_invalid():
    assert "spec.restartPolicy" in paths(manifest(restartPolicy="Sometimes"))


def test_dns_policy_and_config():
    pod = ok(manifest(dnsPolicy="None", dnsConfig={"nameservers": ["1.1.1.1"], "searches": ["example.com"],
                                                   "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]})).pod
    assert pod.dns_policy == "None"
    assert pod.dns_config == {"nameservers": ["1.1.1.1"], "searches": ["example.com"],
                              "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}
    for policy in ("ClusterFirst", "Default", "ClusterFirstWithHostNet"):
        assert ok(manifest(dnsPolicy=policy)).pod.dns_policy == policy
    assert "spec.dnsPolicy" in paths(manifest(dnsPolicy="Cluster"))
    assert message(manifest(dnsPolicy="None"), "spec.dnsConfig.nameservers") == 'required when dnsPolicy is "None"'
    bad = manifest(dnsConfig={"nameservers": ["dns.google", "1.1.1.1", "8.8.8.8", "9.9.9.9"],
                              "searches": ["Bad_Domain"], "options": [{"value": "1"}]})
    assert {"spec.dnsConfig.nameservers[0]", "spec.dnsConfig.nameservers", "spec.dnsConfig.searches[0]",
            "spec.dnsConfig.options[0].name"} <= set(paths(bad))


def test_host_aliases():
    pod = ok(manifest(hostAliases=[{"ip": "10.1.2.3", "hostnames": ["foo.local", "bar"]}])).pod
    assert pod.host_aliases == ({"ip": "10.1.2.3", "hostnames": ["foo.local", "bar"]},)
    found = paths(manifest(hostAliases=[{"ip": "300.1.1.1", "hostnames": ["ok"]}, {"hostnames": "x"}]))
    assert {"spec.hostAliases[0].ip", "spec.hostAliases[1].ip", "spec.hostAliases[1].hostnames"} <= set(found)


def test_booleans():
    pod = ok(manifest(shareProcessNamespace=True, hostNetwork=True)).pod
    assert pod.share_process_namespace and pod.host_network
    assert "spec.hostNetwork" in paths(manifest(hostNetwork="true"))


# --- unknown, unsupported and refused fields -----------------------------------------------------

def test_typo_with_suggestion():
    data = manifest()
    data["spec"]["contianers"] = data["spec"].pop("containers")
    assert message(data, "spec.contianers") == 'unknown field (did you mean "containers"?)'


@pytest.mark.parametrize("where, field, suggestion", [
    ("top", "metdata", "metadata"), ("metadata", "lables", "labels"), ("container", "imagee", "image"),
    ("container", "volumeMount", "volumeMounts"), ("container", "enviroment", None),
    ("spec", "hostname2", "hostname"), ("spec", "restartpolicy", "restartPolicy"),
])
def test_unknown_fields(where, field, suggestion):
    data = manifest()
    target = {"top": data, "metadata": data["metadata"], "spec": data["spec"],
              "container": data["spec"]["containers"][0]}[where]
    target[field] = "x"
    path = {"top": "", "metadata": "metadata.", "spec": "spec.", "container": f"{C0}."}[where] + field
    text = message(data, path)
    assert text.startswith("unknown field")
    if suggestion:
        assert f'did you mean "{suggestion}"' in text
    else:
        assert "did you mean" not in text


@pytest.mark.parametrize("field", ["terminationMessagePath", "stdinOnce"])
def test_ignored_container_fields_warn(field):
    loaded = ok(with_container(**{field: {"exec": {"command": ["true"]}}}))
    assert loaded.warnings == [f"{C0}.{field}: not supported by pyrun; ignored"]


@pytest.mark.parametrize("field, value", [
    ("nodeSelector", {"disk": "ssd"}), ("tolerations", []), ("affinity", {}), ("serviceAccountName", "sa"),
    ("imagePullSecrets", [{"name": "x"}]), ("priorityClassName", "high"), ("enableServiceLinks", False),
])
def test_ignored_pod_fields_warn(field, value):
    assert ok(manifest(**{field: value})).warnings == [f"spec.{field}: not supported by pyrun; ignored"]


def test_ignored_metadata_and_status_warn():
    loaded = ok(manifest(metadata={"creationTimestamp": None, "resourceVersion": "1"}, top={"status": {}}))
    assert sorted(loaded.warnings) == ["metadata.resourceVersion: not supported by pyrun; ignored",
                               "status: not supported by pyrun; ignored"]


@pytest.mark.parametrize("field, value", [
    ("initContainers", [{"name": "i", "image": "x"}]),
    ("ephemeralContainers", [{"name": "e", "image": "x"}]), ("runtimeClassName", "gvisor"),
])
def test_refused_pod_fields(field, value):
    assert "not supported by pyrun" in message(manifest(**{field: value}), f"spec.{field}")


@pytest.mark.parametrize("field, value", [("hostPID", False), ("hostIPC", False), ("initContainers", [])])
def test_refused_fields_switched_off_are_fine(field, value):
    assert ok(manifest(**{field: value})).warnings == []


def test_host_pid_and_host_ipc():
    pod = ok(manifest(hostPID=True, hostIPC=True)).pod
    assert pod.host_pid and pod.host_ipc and not pod.share_process_namespace
    assert "may not be true when hostPID" in message(manifest(hostPID=True, shareProcessNamespace=True),
                                                     "spec.shareProcessNamespace")
    assert "must be true or false" in message(manifest(hostIPC="yes"), "spec.hostIPC")
    sysctl = {"sysctls": [{"name": "kernel.shmmax", "value": "1"}]}
    assert "hostIPC" in message(manifest(hostIPC=True, securityContext=sysctl), "spec.securityContext.sysctls[0].name")
    ok(manifest(hostIPC=True, securityContext={"sysctls": [{"name": "net.core.somaxconn", "value": "1"}]}))


def test_mount_propagation():
    vols = [{"name": "v", "hostPath": {"path": "/srv"}}]
    mount = {"name": "v", "mountPath": "/v", "mountPropagation": "HostToContainer"}
    pod = ok(manifest(container("a", volumeMounts=[mount]), volumes=vols)).pod
    assert pod.containers[0].volume_mounts[0].mount_propagation == "HostToContainer"
    bidi = dict(mount, mountPropagation="Bidirectional")
    assert "privileged" in message(manifest(container("a", volumeMounts=[bidi]), volumes=vols),
                                   "spec.containers[0].volumeMounts[0].mountPropagation")
    ok(manifest(container("a", volumeMounts=[bidi], securityContext={"privileged": True}), volumes=vols))
    assert "must be one of None, HostToContainer, Bidirectional" in message(
        manifest(container("a", volumeMounts=[dict(mount, mountPropagation="rshared")]), volumes=vols),
        "spec.containers[0].volumeMounts[0].mountPropagation")


def test_host_users():
    ok(manifest(hostUsers=True))
    assert "spec.hostUsers" in paths(manifest(hostUsers=False))


def test_wrong_types_never_raise_anything_but_spec_error():
    weird = [None, 1, "x", [], {}, [1], {"a": 1}, True, 1.5]
    for value in weird:
        for key in ("metadata", "spec"):
            data = manifest()
            data[key] = value
            try:
                parse_pod(data)
            except SpecError:
                pass
        for key in ("name", "image", "command", "env", "ports", "resources", "volumeMounts", "securityContext",
                    "workingDir", "tty"):
            try:
                parse_pod(with_container(**{key: value}))
            except SpecError:
                pass
        for key in ("volumes", "dnsConfig", "hostAliases", "securityContext", "containers", "hostname"):
            try:
                parse_pod(manifest(**{key: value}))
            except SpecError:
                pass


def test_non_string_keys_reported():
    data = manifest()
    data["spec"][1] = "x"
    assert "field names must be strings" in message(data, "spec.1")


def test_raw_is_kept_and_json_safe():
    import datetime
    import json
    data = manifest(metadata={"creationTimestamp": datetime.datetime(2024, 1, 2, 3, 4, 5)})
    loaded = ok(data)
    json.dumps(loaded.pod.raw)
    assert loaded.pod.raw["metadata"]["creationTimestamp"] == "2024-01-02T03:04:05"
    assert loaded.pod.raw["spec"]["containers"][0]["image"] == "pyrun/demo:latest"


def test_all_errors_at_once_across_the_manifest():
    data = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "Bad_Name", "labels": {"a": 1}},
        "spec": {
            "contianers": [], "hostPID": 1, "terminationGracePeriodSeconds": -5, "dnsPolicy": "None",
            "containers": [
                {"name": "web", "image": "nginx", "command": "nginx", "livenessProbe": {},
                 "resources": {"limits": {"memory": "12XB", "cpu": "1"}, "requests": {"cpu": "2"}},
                 "volumeMounts": [{"name": "nope", "mountPath": "relative"}]},
                {"name": "web", "ports": [{"containerPort": 99999}]},
            ],
            "volumes": [{"name": "cm", "configMap": {"name": "x"}}],
        },
    }
    with pytest.raises(SpecError) as info:
        parse_pod(data, source="bad.yaml")
    got = {p for p, _ in info.value.problems}
    assert got == {
        "metadata.name", "metadata.labels['a']", "spec.contianers", "spec.hostPID",
        "spec.terminationGracePeriodSeconds", "spec.dnsConfig.nameservers",
        "spec.containers[0].command", "spec.containers[0].resources.limits.memory",
        "spec.containers[0].resources.requests.cpu", "spec.containers[0].volumeMounts[0].mountPath",
        "spec.containers[0].volumeMounts[0].name", "spec.containers[1].name", "spec.containers[1].image",
        "spec.containers[1].ports[0].containerPort", "spec.volumes[0].configMap", "spec.containers[0].livenessProbe",
    }
    assert len(info.value.problems) == len(got)


# --- NUL bytes and int64 overflow (issue 15 item 6) -------------------------------------------------

@pytest.mark.parametrize("data, field", [
    (with_container(env=[{"name": "A", "value": "x\0y"}]), f"{C0}.env[0].value"),
    (with_container(command=["sh", "-c\0"]), f"{C0}.command[1]"),
    (with_container(args=["\0"]), f"{C0}.args[0]"),
    (with_container(workingDir="/w\0"), f"{C0}.workingDir"),
    (manifest(metadata={"annotations": {"note": "a\0b"}}), "metadata.annotations.note"),
    (manifest(volumes=[{"name": "v", "hostPath": {"path": "/srv\0x"}}]), "spec.volumes[0].hostPath.path"),
    (manifest(name="a\0b"), "metadata.name"),
])
def test_a_nul_byte_anywhere_is_refused_naming_the_field(data, field):
    assert (field, "must not contain a NUL byte") in problems(data)


def test_a_nul_byte_is_reported_once_where_a_path_check_sees_it_too():
    found = problems(with_container(workingDir="/w\0"))
    assert found.count((f"{C0}.workingDir", "must not contain a NUL byte")) == 1


def test_a_nul_byte_in_a_field_name_is_refused():
    found = problems(manifest(metadata={"labels": {"a\0": "b"}}))
    assert any(p == "metadata.labels" and "NUL" in m for p, m in found)


@pytest.mark.parametrize("kind, name, value", [
    ("limits", "memory", 1000000000000000000000000000000),  # a YAML integer
    ("limits", "memory", "999999999Ei"),                    # once silently "unlimited"
    ("requests", "cpu", "9300000000000000"),                # millicores overflow although cores fit
    ("limits", "hugepages-2Mi", "8Ei"),
])
def test_quantities_that_overflow_int64_are_refused(kind, name, value):
    msg = message(with_container(resources={kind: {name: value}}), f"{C0}.resources.{kind}.{name}")
    assert "too large" in msg and "64-bit" in msg


def test_the_largest_int64_quantity_is_accepted():
    ok(with_container(resources={"limits": {"memory": 2**63 - 1, "cpu": "9223372036854775m"}}))


def test_empty_dir_size_limit_that_overflows_int64_is_refused():
    msg = message(manifest(volumes=[{"name": "v", "emptyDir": {"sizeLimit": "16Ei"}}]),
                  "spec.volumes[0].emptyDir.sizeLimit")
    assert "too large" in msg
