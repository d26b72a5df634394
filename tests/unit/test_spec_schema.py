"""The shipped JSON Schema: valid draft 2020-12, consistent with pyrun.spec, accepts/rejects like parse_pod."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from _spec_helpers import container, manifest, with_container
from pyrun.errors import SpecError
from pyrun.spec import parse_pod, schema_path
from pyrun.spec.fields import FIELDS

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("pod-*.yaml"))


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(schema_path().read_text())


@pytest.fixture(scope="module")
def validator(schema):
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def test_schema_is_valid_draft_2020_12(schema):
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_schema_is_packaged_next_to_the_module():
    assert schema_path().name == "pod.schema.json" and schema_path().parent.name == "spec"


def _properties_at(schema: dict) -> dict[str, set[str]]:
    """Property names of each object the schema describes, keyed by the FIELDS kind they stand for."""
    spec = schema["properties"]["spec"]
    ctr = spec["properties"]["containers"]["items"]
    env = ctr["properties"]["env"]["items"]
    vol = spec["properties"]["volumes"]["items"]
    dns = spec["properties"]["dnsConfig"]
    return {
        "Pod": set(schema["properties"]), "ObjectMeta": set(schema["properties"]["metadata"]["properties"]),
        "PodSpec": set(spec["properties"]), "Container": set(ctr["properties"]),
        "EnvVar": set(env["properties"]), "EnvVarSource": set(env["properties"]["valueFrom"]["properties"]),
        "ObjectFieldSelector": set(env["properties"]["valueFrom"]["properties"]["fieldRef"]["properties"]),
        "ContainerPort": set(ctr["properties"]["ports"]["items"]["properties"]),
        "ResourceRequirements": set(ctr["properties"]["resources"]["properties"]),
        "VolumeMount": set(ctr["properties"]["volumeMounts"]["items"]["properties"]),
        "Volume": set(vol["properties"]),
        "EmptyDirVolumeSource": set(vol["properties"]["emptyDir"]["oneOf"][1]["properties"]),
        "HostPathVolumeSource": set(vol["properties"]["hostPath"]["properties"]),
        "PodDNSConfig": set(dns["properties"]),
        "PodDNSConfigOption": set(dns["properties"]["options"]["items"]["properties"]),
        "HostAlias": set(spec["properties"]["hostAliases"]["items"]["properties"]),
        "Probe": set(schema["$defs"]["probe"]["properties"]), "ExecAction": set(schema["$defs"]["execAction"]["properties"]),
        "HTTPGetAction": set(schema["$defs"]["httpGetAction"]["properties"]),
        "HTTPHeader": set(schema["$defs"]["httpGetAction"]["properties"]["httpHeaders"]["items"]["properties"]),
        "TCPSocketAction": set(schema["$defs"]["tcpSocketAction"]["properties"]),
        "GRPCAction": set(schema["$defs"]["grpcAction"]["properties"]),
        "Lifecycle": set(schema["$defs"]["lifecycle"]["properties"]),
        "LifecycleHandler": set(schema["$defs"]["lifecycleHandler"]["properties"]),
    }


def test_schema_fields_match_the_parser(schema):
    """Every object in the schema lists exactly the fields pyrun.spec knows (supported, ignored, refused)."""
    found = _properties_at(schema)
    assert set(found) == set(FIELDS)
    for kind, fields in FIELDS.items():
        assert found[kind] == set(fields.known()), kind


VALID = [
    manifest(),
    manifest(container("a", command=["sh", "-c", "true"], args=["x"], workingDir="/srv", tty=True, stdin=False,
                       env=[{"name": "A", "value": "1"}, {"name": "B"},
                            {"name": "P", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}}],
                       ports=[{"name": "http", "containerPort": 80, "hostPort": 8080, "protocol": "TCP",
                               "hostIP": "127.0.0.1"}],
                       resources={"requests": {"cpu": "100m", "memory": "64Mi"},
                                  "limits": {"cpu": 1, "memory": "1.5Gi", "hugepages-2Mi": "2Mi"}},
                       volumeMounts=[{"name": "v", "mountPath": "/v", "readOnly": True, "subPath": "x/y"}],
                       securityContext={"runAsUser": 1000, "capabilities": {"drop": ["ALL"]}},
                       livenessProbe={"httpGet": {"port": 80}}),
             metadata={"namespace": "ns", "uid": "u", "labels": {"app": "web", "example.com/x": ""},
                       "annotations": {"a/b": "anything"}},
             volumes=[{"name": "v", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
                      {"name": "h", "hostPath": {"path": "/var", "type": "Directory"}}, {"name": "bare"}],
             hostname="box", shareProcessNamespace=True, terminationGracePeriodSeconds=0, restartPolicy="Never",
             hostNetwork=False, dnsPolicy="None", dnsConfig={"nameservers": ["1.1.1.1"], "searches": ["a.b"],
                                                              "options": [{"name": "ndots", "value": "2"}]},
             hostAliases=[{"ip": "10.0.0.1", "hostnames": ["foo"]}], securityContext={"runAsGroup": 5},
             hostPID=False, nodeSelector={"a": "b"}),
    with_container(ports=[{"name": "http", "containerPort": 80}],
                   livenessProbe={"exec": {"command": ["true"]}, "periodSeconds": 2, "failureThreshold": 1},
                   readinessProbe={"httpGet": {"port": "http", "path": "/r", "scheme": "HTTPS",
                                               "httpHeaders": [{"name": "X", "value": "y"}]}, "successThreshold": 2},
                   startupProbe={"tcpSocket": {"port": 80}, "initialDelaySeconds": 0},
                   lifecycle={"postStart": {"exec": {"command": ["true"]}}, "preStop": {"httpGet": {"port": 80}}}),
    with_container(readinessProbe={"grpc": {"port": 9090, "service": "s"}}),
]

INVALID = [
    manifest(top={"apiVersion": "v2"}),
    manifest(top={"kind": "Deployment"}),
    manifest(name="Bad_Name"),
    manifest(contianers=[]),
    manifest(hostPID="yes"),
    with_container(volumeMounts=[{"name": "v", "mountPath": "/v", "mountPropagation": "rshared"}]),
    manifest(initContainers=[{"name": "i", "image": "x"}]),
    manifest(volumes=[{"name": "c", "configMap": {"name": "x"}}]),
    manifest(volumes=[{"name": "h", "hostPath": {"path": "relative"}}]),
    manifest(volumes=[{"name": "h", "hostPath": {"path": "/x"}, "emptyDir": {}}]),
    manifest(dnsPolicy="None"),
    manifest(dnsPolicy="Sometimes"),
    manifest(terminationGracePeriodSeconds=-1),
    manifest(hostUsers=False),
    with_container(name="UPPER"),
    with_container(image=""),
    with_container(command="sh -c true"),
    with_container(args=[1]),
    with_container(resources={"limits": {"memory": "12XB"}}),
    with_container(resources={"limits": {"memroy": "1Gi"}}),
    with_container(resources={"requests": {"cpu": "-1"}}),
    with_container(ports=[{"containerPort": 70000}]),
    with_container(ports=[{"containerPort": 80, "protocol": "ICMP"}]),
    with_container(volumeMounts=[{"name": "v", "mountPath": "rel"}]),
    with_container(env=[{"name": "A=B"}]),
    with_container(env=[{"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]),
    with_container(env=[{"name": "S", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]),
    with_container(env=[{"name": "S", "valueFrom": {"fieldRef": {"fieldPath": "status.phase"}}}]),
    with_container(envFrom=[{"configMapRef": {"name": "x"}}]),
    with_container(securityContext={"runAsUser": "root"}),
    manifest(metadata={"labels": {"version": 1}}),
    with_container(livenessProbe={}),
    with_container(livenessProbe={"exec": {"command": ["true"]}, "tcpSocket": {"port": 1}}),
    with_container(readinessProbe={"httpGet": {"port": 70000}}),
    with_container(readinessProbe={"grpc": {"port": "named"}}),
    with_container(startupProbe={"exec": {"command": ["true"]}, "periodSeconds": -1}),
    with_container(lifecycle={"preStop": {"sleep": {"seconds": 1}}}),
]


@pytest.mark.parametrize("data", VALID + [yaml.safe_load(p.read_text()) for p in EXAMPLES])
def test_schema_accepts_valid_manifests(validator, data):
    parse_pod(copy.deepcopy(data))  # the parser agrees they are valid
    assert [e.message for e in validator.iter_errors(data)] == []


@pytest.mark.parametrize("data", INVALID)
def test_schema_rejects_invalid_manifests(validator, data):
    with pytest.raises(SpecError):
        parse_pod(copy.deepcopy(data))  # and so does the parser
    assert list(validator.iter_errors(data)), "schema accepted an invalid manifest"
