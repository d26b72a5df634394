"""Exec, Attach and PortForward over SPDY/3.1 through `pyrun cri serve`, on the real kernel, driven by
the Go peer in tests/tools/spdyclient: it is built on spdystream, the SPDY library of client-go, and
opens its streams exactly as `kubectl exec/attach/port-forward` do through a kubelet's proxy."""
from __future__ import annotations

import os
import time

import pytest

from _cri_helpers import remove_pod, run_pod, running_server
from _spdy_helpers import run_spdyclient

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

NO_STATUS = b"error stream ended without a status"


@pytest.fixture(scope="module")
def env(demo_layout):
    with running_server(demo_layout, "pyrun-spdy") as e:
        rt, _, pb, ch = e["server"].stubs("v1")
        try:
            yield {"tmp": e["tmp"], "rt": rt, "pb": pb, "server": e["server"]}
        finally:
            ch.close()


def exec_url(env, cid, cmd, stdin=False, tty=False, api="v1") -> str:
    rt, pb = env["rt"], env["pb"]
    if api != "v1":
        rt, _, pb, _ = env["server"].stubs(api)
    return rt.Exec(pb.ExecRequest(container_id=cid, cmd=cmd, stdin=stdin, stdout=True, stderr=not tty, tty=tty)).url


def test_kubectl_style_exec_over_spdy(env):
    rt, pb = env["rt"], env["pb"]
    sid, cid = run_pod(rt, pb, "spdy-exec", env["tmp"])
    try:
        url = exec_url(env, cid, ["sh", "-c", "echo out $(hostname); cat; echo err >&2; exit 7"], stdin=True)
        p = run_spdyclient(["exec", "-stdin", "-stdout", "-stderr", url], stdin=b"through stdin\n")
        assert p.returncode == 7, p.stderr
        assert p.stdout == b"out spdy-exec\nthrough stdin\n"
        assert b"protocol: v4.channel.k8s.io" in p.stderr and b"err\n" in p.stderr and NO_STATUS not in p.stderr

        url = exec_url(env, cid, ["sh", "-c", "test -t 0 && stty size"], stdin=True, tty=True)
        p = run_spdyclient(["exec", "-stdin", "-stdout", "-tty", "-resize", "132x43", url])
        assert p.returncode == 0 and p.stdout == b"43 132\r\n", p.stderr

        # an older client (v2: errors as text) through the v1alpha2 API of a Debian 12 kubelet
        url = exec_url(env, cid, ["sh", "-c", "exit 3"], api="v1alpha2")
        p = run_spdyclient(["exec", "-protocols", "v2.channel.k8s.io", "-method", "GET", "-stdout", "-stderr", url])
        assert p.returncode == 2 and b"non-zero exit code" in p.stderr, p.stderr
    finally:
        remove_pod(rt, pb, sid)


def test_attach_over_spdy_ends_with_the_container(env):
    rt, pb = env["rt"], env["pb"]
    sid, cid = run_pod(rt, pb, "spdy-attach", env["tmp"],
                       ["sh", "-c", "sleep 1; for i in 1 2 3; do echo line $i; sleep 0.3; done; echo bye >&2"])
    try:
        url = rt.Attach(pb.AttachRequest(container_id=cid, stdout=True, stderr=True)).url
        p = run_spdyclient(["attach", "-stdout", "-stderr", url])
        assert p.returncode == 0, p.stderr
        assert p.stdout == b"line 1\nline 2\nline 3\n" and b"bye\n" in p.stderr and NO_STATUS not in p.stderr
    finally:
        remove_pod(rt, pb, sid)


def test_port_forward_over_spdy_to_an_echo_server_in_the_pod(env):
    rt, pb = env["rt"], env["pb"]
    sid, _ = run_pod(rt, pb, "spdy-pf", env["tmp"], ["nc", "-ll", "-p", "9000", "-e", "cat"])
    try:
        deadline = time.monotonic() + 15
        while True:  # until nc listens
            url = rt.PortForward(pb.PortForwardRequest(pod_sandbox_id=sid, port=[9000])).url
            p = run_spdyclient(["portforward", url, "9000"])
            if p.returncode == 0 or time.monotonic() > deadline:
                break
            assert b"refused" in p.stderr, p.stderr
            time.sleep(0.3)
        # two TCP connections over one SPDY session, each echoed by `cat` inside the pod
        assert p.returncode == 0 and p.stdout == b"9000: ping 9000\n" * 2, p.stdout + p.stderr
        url = rt.PortForward(pb.PortForwardRequest(pod_sandbox_id=sid, port=[9000])).url
        p = run_spdyclient(["portforward", url, "9001"])  # nothing listens there: the error stream says so
        assert p.returncode == 2 and b"9001 error: error forwarding port 9001" in p.stderr, p.stderr
    finally:
        remove_pod(rt, pb, sid)


def test_spdy_negotiation_and_single_use_tokens(env):
    rt, pb = env["rt"], env["pb"]
    sid, cid = run_pod(rt, pb, "spdy-neg", env["tmp"])
    try:
        url = exec_url(env, cid, ["true"])
        p = run_spdyclient(["raw-upgrade", "-protocols", "v9.channel.k8s.io", url])
        assert p.stdout.startswith(b"status: 403") and b"X-Accepted-Stream-Protocol-Versions: v4.channel.k8s.io" \
            in p.stdout, p.stdout
        assert run_spdyclient(["exec", "-stdout", "-stderr", url]).returncode == 0
        p = run_spdyclient(["exec", "-stdout", "-stderr", url])  # the token is spent
        assert p.returncode == 3 and b"404" in p.stderr, p.stderr
    finally:
        remove_pod(rt, pb, sid)
