"""Terminals, stdin and the cgroup view as containerd 1.6 (runc) gives them, through `pyrun cri serve`'s
gRPC API and streaming server (WebSocket): `kubectl exec -it` (a pty of the container's own devpts, TERM,
resize), `kubectl run -i` / `attach -i` (stdin, stdinOnce, tty containers) and /sys/fs/cgroup inside."""
from __future__ import annotations

import json
import os
import time

import pytest

from _cri_helpers import container_config, remove_pod, running_server, sandbox_config
from test_cri_streams_live import collect, open_ws

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


@pytest.fixture(scope="module")
def env(demo_layout):
    with running_server(demo_layout, "pyrun-crit") as e:
        rt, _, pb, ch = e["server"].stubs("v1")
        try:
            yield {"tmp": e["tmp"], "rt": rt, "pb": pb}
        finally:
            ch.close()


def start_pod(env, name, command, **container):
    """A sandbox with one started container "main" (container: more ContainerConfig fields)."""
    rt, pb = env["rt"], env["pb"]
    cfg = sandbox_config(pb, name, env["tmp"])
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg)).pod_sandbox_id
    cc = container_config(pb, "main", list(command), **container)
    cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, sandbox_config=cfg, config=cc)).container_id
    rt.StartContainer(pb.StartContainerRequest(container_id=cid))
    return sid, cid


def read_until(ws, channel: int, needle: bytes, timeout: float = 20) -> bytes:
    """What arrives on `channel` until it contains `needle` (or the stream ends, or `timeout` passes)."""
    got, deadline = b"", time.monotonic() + timeout
    while needle not in got and time.monotonic() < deadline:
        op, msg = ws.recv()
        if op is None or not msg:
            break
        if msg[0] == channel:
            got += msg[1:]
    return got


def test_exec_tty_is_a_terminal_of_the_container(env):
    rt, pb = env["rt"], env["pb"]
    sid, cid = start_pod(env, "exectty", ["sleep", "1000"])
    try:
        url = rt.Exec(pb.ExecRequest(container_id=cid, cmd=["sh"], stdin=True, stdout=True, tty=True)).url
        ws = open_ws(url)
        ws.send_binary(b"\x04" + json.dumps({"Width": 100, "Height": 30}).encode())
        ws.send_binary(b"\x00echo T=$TERM; tty; stty size; exit 4\n")
        got = collect(ws)
        out = got[1].replace(b"\r\n", b"\n")
        assert b"\nT=xterm\n/dev/pts/0\n30 100\n" in out, out
        assert json.loads(got[3])["details"]["causes"][0]["message"] == "4"
        # the container's own devpts: the pty is gone from it once the exec ended
        r = rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["ls", "/dev/pts"], timeout=10))
        assert r.stdout.split() == [b"ptmx"], r
    finally:
        remove_pod(rt, pb, sid)
