"""Exec, Attach and PortForward through `pyrun cri serve`'s streaming server (WebSocket, like crictl
>= 1.30), and CRI security contexts, on the real kernel. Pods use --network none: each still has its
own network namespace with lo, so the port-forward target is 127.0.0.1 inside the pod."""
from __future__ import annotations

import json
import os
import time
from urllib.parse import urlsplit

import grpc
import pytest

from _cri_helpers import DEMO_IMAGE, remove_pod, run_pod, running_server
from pyrun.cri import websocket as w

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io")


@pytest.fixture(scope="module")
def env(demo_layout):
    with running_server(demo_layout, "pyrun-cris") as e:
        rt, _, pb, ch = e["server"].stubs("v1")
        try:
            yield {"tmp": e["tmp"], "rt": rt, "pb": pb}
        finally:
            ch.close()


def open_ws(url: str, protocols=PROTOCOLS) -> w.WebSocket:
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1"
    ws, _ = w.connect(parts.hostname, parts.port, parts.path + (f"?{parts.query}" if parts.query else ""), protocols)
    return ws


def collect(ws: w.WebSocket) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for _, msg in ws.messages():
        out[msg[0]] = out.get(msg[0], b"") + msg[1:]
    return out


def exec_ws(rt, pb, cid, cmd, stdin=False, tty=False) -> w.WebSocket:
    url = rt.Exec(pb.ExecRequest(container_id=cid, cmd=cmd, stdin=stdin, stdout=True, stderr=not tty, tty=tty)).url
    assert url.startswith("http://127.0.0.1:") and "/exec/" in url
    return open_ws(url)


def test_exec_output_exit_code_and_stdin(env):
    rt, pb = env["rt"], env["pb"]
    sid, cid = run_pod(rt, pb, "exec", env["tmp"])
    try:
        got = collect(exec_ws(rt, pb, cid, ["sh", "-c", "echo out $(hostname); echo err >&2; exit 3"]))
        assert got[1] == b"out exec\n" and got[2] == b"err\n"
        status = json.loads(got[3])
        assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
        assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]

        ws = exec_ws(rt, pb, cid, ["cat"], stdin=True)
        ws.send_binary(b"\x00piped through cat\n")
        ws.send_binary(bytes([255, 0]))  # v5: stdin closed
        got = collect(ws)
        assert got[1] == b"piped through cat\n" and json.loads(got[3]) == {"metadata": {}, "status": "Success"}

        got = collect(exec_ws(rt, pb, cid, ["sh", "-c", "test -t 0 && test -t 1 && echo on a terminal"], tty=True))
        assert got[1] == b"on a terminal\r\n" and json.loads(got[3])["status"] == "Success"

        with pytest.raises(grpc.RpcError) as e:
            rt.Exec(pb.ExecRequest(container_id=cid, cmd=["sh"], tty=True, stdout=True, stderr=True))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        remove_pod(rt, pb, sid)


def test_attach_streams_new_output(env):
    rt, pb = env["rt"], env["pb"]
    sid, cid = run_pod(rt, pb, "attach", env["tmp"],
                       ["sh", "-c", "i=0; while true; do echo line $i; echo e$i >&2; i=$((i+1)); sleep 0.2; done"])
    try:
        ws = open_ws(rt.Attach(pb.AttachRequest(container_id=cid, stdout=True, stderr=True)).url)
        out, err = b"", b""
        deadline = time.monotonic() + 10
        while (out.count(b"\n") < 3 or not err) and time.monotonic() < deadline:
            _, msg = ws.recv()
            if msg[0] == 1:
                out += msg[1:]
            elif msg[0] == 2:
                err += msg[1:]
        lines = out.decode().splitlines()
        assert len(lines) >= 3 and all(line.startswith("line ") for line in lines), out
        numbers = [int(line.split()[1]) for line in lines]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # consecutive, nothing lost
        assert err.startswith(b"e")
        ws.close()
        # the container ending ends the attach with a status
        ws = open_ws(rt.Attach(pb.AttachRequest(container_id=cid, stdout=True)).url)
        rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=1))
        got = collect(ws)
        assert json.loads(got[3])["status"] == "Success"
    finally:
        remove_pod(rt, pb, sid)


def test_port_forward_reaches_httpd_inside_the_pod(env):
    rt, pb = env["rt"], env["pb"]
    sid, cid = run_pod(rt, pb, "pf", env["tmp"], ["sh", "-c", "mkdir -p /tmp/www && echo hello-from-the-pod > "
                                                             "/tmp/www/index.html && exec httpd -f -p 127.0.0.1:8080 "
                                                             "-h /tmp/www"])
    try:
        body, deadline = b"", time.monotonic() + 10
        while time.monotonic() < deadline:
            url = rt.PortForward(pb.PortForwardRequest(pod_sandbox_id=sid, port=[8080])).url
            ws = open_ws(url, ("v4.channel.k8s.io",))
            assert ws.recv()[1] == b"\x00" + (8080).to_bytes(2, "little")
            assert ws.recv()[1] == b"\x01" + (8080).to_bytes(2, "little")
            ws.send_binary(b"\x00GET /index.html HTTP/1.0\r\nHost: pod\r\n\r\n")
            got = collect(ws)
            if got.get(0):
                body = got[0]
                break
            assert b"refused" in got.get(1, b""), got  # httpd not listening yet
            time.sleep(0.2)
        assert body.startswith(b"HTTP/1.") and b" 200 " in body.split(b"\r\n")[0], body
        assert body.endswith(b"hello-from-the-pod\n")
    finally:
        remove_pod(rt, pb, sid)


def _exec(rt, pb, cid, *cmd):
    r = rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=list(cmd), timeout=10))
    return r.exit_code, r.stdout.decode(), r.stderr.decode()


def test_security_context_user_capabilities_no_new_privs_sysctls(env):
    rt, pb = env["rt"], env["pb"]
    sc = pb.LinuxContainerSecurityContext(run_as_user=pb.Int64Value(value=1000), no_new_privs=True,
                                          capabilities=pb.Capability(drop_capabilities=["ALL"]))
    linux = pb.LinuxPodSandboxConfig(sysctls={"net.ipv4.ip_unprivileged_port_start": "80"})
    sid, cid = run_pod(rt, pb, "restricted", env["tmp"], linux=linux,
                       container_linux=pb.LinuxContainerConfig(security_context=sc))
    try:
        assert _exec(rt, pb, cid, "id", "-u") == (0, "1000\n", "")
        code, out, _ = _exec(rt, pb, cid, "grep", "-E", "CapEff|NoNewPrivs", "/proc/self/status")
        assert code == 0 and "CapEff:\t0000000000000000" in out and "NoNewPrivs:\t1" in out
        assert _exec(rt, pb, cid, "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start")[1] == "80\n"
        # the main process too, not only exec'd ones (pid 1 is the pod's pause: the pid namespace is shared)
        assert "Uid:\t1000\t" in _exec(rt, pb, cid, "sh", "-c", "cat /proc/$(pidof sleep)/status")[1]
    finally:
        remove_pod(rt, pb, sid)


def test_privileged_sandbox_and_container_can_mount(env):
    rt, pb = env["rt"], env["pb"]
    linux = pb.LinuxPodSandboxConfig(security_context=pb.LinuxSandboxSecurityContext(privileged=True))
    priv = pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(privileged=True))
    sid, cid = run_pod(rt, pb, "privileged", env["tmp"], linux=linux, container_linux=priv)
    plain_sid, plain_cid = run_pod(rt, pb, "unprivileged", env["tmp"])
    try:
        mount = ("sh", "-c", "mkdir -p /mnt && mount -t tmpfs none /mnt && grep ' /mnt ' /proc/mounts")
        code, out, err = _exec(rt, pb, cid, *mount)
        assert code == 0 and out.startswith("none /mnt tmpfs"), err
        assert _exec(rt, pb, plain_cid, *mount)[0] != 0  # default capabilities: no CAP_SYS_ADMIN
        # a privileged container needs a privileged sandbox
        with pytest.raises(grpc.RpcError) as e:
            rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=plain_sid, config=pb.ContainerConfig(
                metadata=pb.ContainerMetadata(name="p2"), image=pb.ImageSpec(image=DEMO_IMAGE), command=["true"],
                linux=priv)))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "privileged" in e.value.details()
    finally:
        remove_pod(rt, pb, sid)
        remove_pod(rt, pb, plain_sid)
