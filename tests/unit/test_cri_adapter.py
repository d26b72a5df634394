"""runtime.v1alpha2 is served by parsing its wire bytes as runtime.v1: check that this is valid.

For every request and response of both services, every field runtime.v1alpha2 has
must exist in runtime.v1 with the same number, wire type, cardinality and (for
enums) the same values, recursively through nested messages.
"""
from __future__ import annotations

from cri_api.v1 import api_pb2 as v1
from cri_api.v1alpha2 import api_pb2 as v1alpha2

from pyrun.cri.server import SERVICES


def _compatible(old, new, path: str, seen: set, problems: list) -> None:
    if (old.full_name, new.full_name) in seen:
        return
    seen.add((old.full_name, new.full_name))
    new_fields = {f.number: f for f in new.fields}
    for f in old.fields:
        g = new_fields.get(f.number)
        where = f"{path}.{f.name}"
        if g is None:
            problems.append(f"{where}: missing in v1")
            continue
        if (f.type, f.is_repeated) != (g.type, g.is_repeated):
            problems.append(f"{where}: type/repeated {f.type}/{f.is_repeated} vs {g.type}/{g.is_repeated}")
        elif f.message_type is not None:
            _compatible(f.message_type, g.message_type, where, seen, problems)
        elif f.enum_type is not None:
            old_values = {v.number: v.name for v in f.enum_type.values}
            new_values = {v.number: v.name for v in g.enum_type.values}
            if any(new_values.get(n) != name for n, name in old_values.items()):
                problems.append(f"{where}: enum values differ")


def test_every_v1alpha2_message_parses_as_v1():
    problems: list[str] = []
    seen: set = set()
    count = 0
    for service in SERVICES:
        for m in v1alpha2.DESCRIPTOR.services_by_name[service].methods:
            v1_method = v1.DESCRIPTOR.services_by_name[service].methods_by_name[m.name]
            for old, new in ((m.input_type, v1_method.input_type), (m.output_type, v1_method.output_type)):
                assert old.name == new.name
                _compatible(old, new, old.name, seen, problems)
                count += 1
    assert count >= 58 and not problems, problems


def test_round_trip_through_bytes():
    cfg = v1alpha2.PodSandboxConfig(metadata=v1alpha2.PodSandboxMetadata(name="p", uid="u", namespace="n", attempt=1),
                                    labels={"a": "b"}, linux=v1alpha2.LinuxPodSandboxConfig(cgroup_parent="/k/p"))
    req = v1.RunPodSandboxRequest.FromString(v1alpha2.RunPodSandboxRequest(config=cfg).SerializeToString())
    assert req.config.metadata.attempt == 1 and dict(req.config.labels) == {"a": "b"}
    assert req.config.linux.cgroup_parent == "/k/p"
    status = v1.ContainerStatus(id="c", state=v1.CONTAINER_EXITED, exit_code=2, reason="Error",
                                image=v1.ImageSpec(image="busybox"), labels={"k": "v"}, image_id="sha256:x")
    back = v1alpha2.ContainerStatusResponse.FromString(v1.ContainerStatusResponse(status=status).SerializeToString())
    assert back.status.state == v1alpha2.CONTAINER_EXITED and back.status.exit_code == 2
    assert back.status.image.image == "busybox" and dict(back.status.labels) == {"k": "v"}
