"""Terminals, stdin and the cgroup view as containerd 1.6 (runc) gives them, through `pyrun cri serve`'s
gRPC API and streaming server (WebSocket): `kubectl exec -it` (a pty of the container's own devpts, TERM,
resize), `kubectl run -i` / `attach -i` (stdin, stdinOnce, tty containers) and /sys/fs/cgroup inside."""
from __future__ import annotations

import json
import os
import time

import pytest

from _cri_helpers import container_config, remove_pod, running_server, sandbox_config
from _spdy_helpers import run_spdyclient
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
    # as runc: the terminal belongs to the container's user
    sc = pb.LinuxContainerSecurityContext(run_as_user=pb.Int64Value(value=1000))
    sid, cid = start_pod(env, "exectty-user", ["sleep", "1000"], linux=pb.LinuxContainerConfig(security_context=sc))
    try:
        url = rt.Exec(pb.ExecRequest(container_id=cid, cmd=["sh", "-c", "id -u; stat -c %u $(tty)"], stdout=True,
                                     tty=True)).url
        assert collect(open_ws(url))[1] == b"1000\r\n1000\r\n"
    finally:
        remove_pod(rt, pb, sid)


def container_state(env, cid):
    rt, pb = env["rt"], env["pb"]
    return rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status


def wait_exited(env, cid, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = container_state(env, cid)
        if status.state == env["pb"].CONTAINER_EXITED:
            return status
        time.sleep(0.1)
    raise AssertionError(f"container {cid} still runs")


def attach_ws(env, cid, stdin=True, tty=False):
    rt, pb = env["rt"], env["pb"]
    return open_ws(rt.Attach(pb.AttachRequest(container_id=cid, stdin=stdin, stdout=True, stderr=not tty,
                                              tty=tty)).url)


def test_attach_stdin_once_closes_stdin_when_the_attach_ends(env):
    """`kubectl run -i`: stdin + stdinOnce; the workload reads what the attach sends, then EOF."""
    rt, pb = env["rt"], env["pb"]
    sid, cid = start_pod(env, "stdinonce", ["sh", "-c", "read line; echo got $line; cat; echo done; exit 5"],
                         stdin=True, stdin_once=True)
    try:
        ws = attach_ws(env, cid)
        ws.send_binary(b"\x00hello\n")
        assert b"got hello\n" in read_until(ws, 1, b"got hello\n")
        ws.send_binary(b"\x00through cat\n")
        ws.send_binary(bytes([255, 0]))  # v5: the client's stdin ended: the container's is closed
        got = read_until(ws, 1, b"done\n")
        assert got == b"through cat\ndone\n", got
        status = wait_exited(env, cid)
        assert status.exit_code == 5
        log = (env["tmp"] / "logs" / "ns_stdinonce_uid-stdinonce" / "main" / "0.log").read_bytes()
        assert b" stdout F got hello\n" in log and b" stdout F done\n" in log
    finally:
        remove_pod(rt, pb, sid)


def test_kubectl_style_attach_stdin_over_spdy(env):
    """What a kubelet proxies for `kubectl run -i` / `kubectl attach -i`: SPDY streams, stdin's end is a FIN."""
    rt, pb = env["rt"], env["pb"]
    sid, cid = start_pod(env, "spdyin", ["sh", "-c", "read line; echo got $line; cat; echo done >&2"],
                         stdin=True, stdin_once=True)
    try:
        url = rt.Attach(pb.AttachRequest(container_id=cid, stdin=True, stdout=True, stderr=True)).url
        p = run_spdyclient(["attach", "-stdin", "-stdout", "-stderr", url], stdin=b"hi\nmore\n", split_diag=True)
        assert p.returncode == 0, p.diag
        assert (p.stdout, p.stderr) == (b"got hi\nmore\n", b"done\n")
        assert wait_exited(env, cid).exit_code == 0
    finally:
        remove_pod(rt, pb, sid)


def test_attach_stdin_stays_open_without_stdin_once_and_is_dropped_without_stdin(env):
    rt, pb = env["rt"], env["pb"]
    sid, cid = start_pod(env, "stdin", ["sh", "-c", "while read line; do echo got $line; done; echo eof"],
                         stdin=True)
    plain_sid, plain_cid = start_pod(env, "nostdin", ["sh", "-c", "cat; echo stdin is empty; sleep 1000"])
    try:
        for word in (b"one", b"two"):  # two attaches one after the other: stdin stays open between them
            ws = attach_ws(env, cid)
            ws.send_binary(b"\x00" + word + b"\n")
            assert b"got " + word + b"\n" in read_until(ws, 1, b"got " + word)
            ws.send_binary(bytes([255, 0]))
            ws.close()
        time.sleep(0.5)
        assert container_state(env, cid).state == pb.CONTAINER_RUNNING
        # no stdin asked for: stdin is /dev/null, and what an attach sends is dropped (as containerd does)
        ws = attach_ws(env, plain_cid)
        ws.send_binary(b"\x00ignored\n")
        ws.close()
        assert container_state(env, plain_cid).state == pb.CONTAINER_RUNNING
    finally:
        remove_pod(rt, pb, sid)
        remove_pod(rt, pb, plain_sid)


def test_attach_to_a_tty_container(env):
    """tty + stdin (`kubectl run -it`): a pty of the container's devpts that the monitor holds; the
    attach types into it and resizes it; the output (logged as stdout) comes back."""
    rt, pb = env["rt"], env["pb"]
    sid, cid = start_pod(env, "tty", ["sh"], stdin=True, stdin_once=True, tty=True)
    try:
        ws = attach_ws(env, cid, tty=True)
        ws.send_binary(b"\x04" + json.dumps({"Width": 120, "Height": 40}).encode())
        ws.send_binary(b"\x00echo T=$TERM; tty; stty size\n")
        got = read_until(ws, 1, b"40 120")
        assert b"T=xterm\r\n/dev/pts/0\r\n40 120" in got, got
        ws.send_binary(bytes([255, 0]))  # a terminal's stdin stays open (as containerd, even with stdinOnce)
        ws.close()
        ws = attach_ws(env, cid, tty=True)
        ws.send_binary(b"\x00exit 3\n")
        got = collect(ws)
        assert json.loads(got[3])["status"] == "Success"
        assert wait_exited(env, cid).exit_code == 3
        log = (env["tmp"] / "logs" / "ns_tty_uid-tty" / "main" / "0.log").read_bytes()
        assert b" stdout F /dev/pts/0\r\n" in log, log
    finally:
        remove_pod(rt, pb, sid)


def test_sys_fs_cgroup_shows_the_containers_own_limits(env):
    """Programs that size themselves from their limits (JVM, Go, Node) read them at /sys/fs/cgroup:
    a cgroup namespace + cgroup2 on v2; read-only binds of the container's own directories on v1/hybrid."""
    rt, pb = env["rt"], env["pb"]
    res = pb.LinuxContainerResources(memory_limit_in_bytes=96 << 20, cpu_period=100000, cpu_quota=50000)
    sid, cid = start_pod(env, "cgview", ["sleep", "1000"], linux=pb.LinuxContainerConfig(resources=res))

    def sh(script):
        r = rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", script], timeout=10))
        return r.exit_code, r.stdout.decode(), r.stderr.decode()

    try:
        code, out, err = sh("test -e /sys/fs/cgroup/cgroup.controllers && echo v2 || ls /sys/fs/cgroup")
        assert code == 0, err
        if out == "v2\n":
            assert sh("cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max")[1] == f"{96 << 20}\n50000 100000\n"
            assert sh("cat /proc/self/cgroup")[1] == "0::/\n"  # its own cgroup namespace
        else:
            names = out.split()
            assert "memory" in names and ("cpu" in names or "cpu,cpuacct" in names), names
            code, out, err = sh("cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us")
            assert (code, out) == (0, f"{96 << 20}\n50000\n"), err
            # its own directory: the sleep and this shell are in it
            assert int(sh("wc -l < /sys/fs/cgroup/memory/cgroup.procs")[1]) >= 2
        code, _, err = sh("mkdir /sys/fs/cgroup/x || echo 1 > /sys/fs/cgroup/memory/memory.limit_in_bytes")
        assert code != 0 and "Read-only file system" in err, err
    finally:
        remove_pod(rt, pb, sid)
