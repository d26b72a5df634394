"""Error -> gRPC status mapping, the RPC wrapper, and small server helpers."""
from __future__ import annotations

import grpc
import pytest
from cri_api.v1 import api_pb2 as pb

from pyrun.cri import errors, server
from pyrun.errors import (AlreadyExists, CgroupError, InvalidState, NotFound, PyrunError, SpecError, SyscallError,
                          UsageError)


@pytest.mark.parametrize("exc, code", [
    (SpecError([("config.metadata.name", "bad")]), grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound("x"), grpc.StatusCode.NOT_FOUND),
    (AlreadyExists("x"), grpc.StatusCode.ALREADY_EXISTS),
    (InvalidState("x"), grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Unimplemented("x"), grpc.StatusCode.UNIMPLEMENTED),
    (errors.DeadlineExceeded("x"), grpc.StatusCode.DEADLINE_EXCEEDED),
    (CgroupError("x"), grpc.StatusCode.INTERNAL),
    (PyrunError("x"), grpc.StatusCode.INTERNAL),
    (SyscallError.from_errno(2, "mount", "/x"), grpc.StatusCode.INTERNAL),
    (KeyError("k"), grpc.StatusCode.INTERNAL),
])
def test_status_for(exc, code):
    assert errors.status_for(exc)[0] == code


def test_spec_error_details_name_the_field():
    code, detail = errors.status_for(SpecError([("config.linux.cgroup_parent", "not below kubepods")]))
    assert "config.linux.cgroup_parent: not below kubepods" in detail
    assert "internal error: KeyError" in errors.status_for(KeyError("k"))[1]


class Aborted(Exception):
    pass


class FakeContext:
    def abort(self, code, details):
        self.code, self.details = code, details
        raise Aborted()


def test_wrap_aborts_with_the_mapped_status_and_logs_one_line(caplog):
    def fail(req):
        raise NotFound("pod sandbox 'x' not found")
    ctx = FakeContext()
    caplog.set_level("INFO", logger="pyrun.cri")
    with pytest.raises(Aborted):
        server._wrap("PodSandboxStatus", fail)(pb.PodSandboxStatusRequest(pod_sandbox_id="x" * 64), ctx)
    assert ctx.code == grpc.StatusCode.NOT_FOUND and "not found" in ctx.details
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("PodSandboxStatus id=xxxxxxxxxxxx ") and "NOT_FOUND" in line


def test_wrap_passes_the_reply_through():
    reply = server._wrap("Version", lambda req: pb.VersionResponse(version="0.1.0"))(pb.VersionRequest(), None)
    assert reply.version == "0.1.0"


def test_missing_methods_are_unimplemented_not_unknown():
    handler = server.service_handler("v1", "RuntimeService", object())
    call = handler.service(_Details("/runtime.v1.RuntimeService/CheckpointContainer"))
    ctx = FakeContext()
    with pytest.raises(Aborted):
        call.unary_unary(pb.CheckpointContainerRequest(), ctx)
    assert ctx.code == grpc.StatusCode.UNIMPLEMENTED
    stream = handler.service(_Details("/runtime.v1.RuntimeService/GetContainerEvents"))
    with pytest.raises(Aborted):
        stream.unary_stream(pb.GetEventsRequest(), ctx)
    assert ctx.code == grpc.StatusCode.UNIMPLEMENTED


class _Details:
    def __init__(self, method):
        self.method = method
        self.invocation_metadata = ()


def test_socket_path():
    assert server.socket_path("unix:///run/pyrun/cri.sock") == "/run/pyrun/cri.sock"
    assert server.socket_path("unix:/tmp/x.sock") == "/tmp/x.sock"
    assert server.socket_path("/tmp/x.sock") == "/tmp/x.sock"
    for bad in ("tcp://127.0.0.1:1", "unix://relative", "/" + "x" * 120):
        with pytest.raises(UsageError):
            server.socket_path(bad)


def test_request_id():
    assert server.request_id(pb.StartContainerRequest(container_id="c" * 64)) == "c" * 12
    cfg = pb.PodSandboxConfig(metadata=pb.PodSandboxMetadata(name="web"))
    assert server.request_id(pb.RunPodSandboxRequest(config=cfg)) == "web"
    assert server.request_id(pb.PullImageRequest(image=pb.ImageSpec(image="busybox"))) == "busybox"
    assert server.request_id(pb.VersionRequest()) == "-"


# --- issue 15: a NUL byte in any string of any request is INVALID_ARGUMENT naming the field ----------

@pytest.mark.parametrize("method, request_, field", [
    ("ExecSync", pb.ExecSyncRequest(container_id="c", cmd=["sh", "-c", "echo\0"]), "cmd[2]"),
    ("Exec", pb.ExecRequest(container_id="c", cmd=["a\0b"]), "cmd[0]"),
    ("Attach", pb.AttachRequest(container_id="c\0"), "container_id"),
    ("PortForward", pb.PortForwardRequest(pod_sandbox_id="\0p", port=[80]), "pod_sandbox_id"),
    ("ReopenContainerLog", pb.ReopenContainerLogRequest(container_id="c\0"), "container_id"),
    ("UpdateContainerResources",
     pb.UpdateContainerResourcesRequest(container_id="c", linux=pb.LinuxContainerResources(unified={"memory.max": "1\0"})),
     "linux.unified['memory.max']"),
    ("UpdateContainerResources", pb.UpdateContainerResourcesRequest(container_id="c", annotations={"k\0": "v"}),
     "annotations"),
    ("ListContainers", pb.ListContainersRequest(filter=pb.ContainerFilter(label_selector={"app": "x\0"})),
     "filter.label_selector['app']"),
    ("PullImage", pb.PullImageRequest(image=pb.ImageSpec(image="busybox\0")), "image.image"),
    ("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id="p\0"), "pod_sandbox_id"),
])
def test_wrap_refuses_a_nul_byte_in_any_request_naming_the_field(method, request_, field):
    called = []
    ctx = FakeContext()
    with pytest.raises(Aborted):
        server._wrap(method, called.append)(request_, ctx)
    assert ctx.code == grpc.StatusCode.INVALID_ARGUMENT and field in ctx.details and "NUL byte" in ctx.details
    assert called == []  # the handler never ran


def test_every_string_field_kind_is_seen():
    from pyrun.cri.validate import nul_bytes
    req = pb.CreateContainerRequest(
        pod_sandbox_id="p\0",
        config=pb.ContainerConfig(command=["ok", "x\0"], labels={"a\0": "b"},
                                  devices=[pb.Device(host_path="/dev/null\0")],
                                  linux=pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(
                                      apparmor_profile="p\0"))))
    assert [f for f, _ in nul_bytes(req)] == sorted([
        "pod_sandbox_id", "config.command[1]", "config.labels", "config.devices[0].host_path",
        "config.linux.security_context.apparmor_profile"])
    assert nul_bytes(pb.CreateContainerRequest(pod_sandbox_id="p", config=pb.ContainerConfig(command=["ok"]))) == []
