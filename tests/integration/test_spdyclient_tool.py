"""The spdyclient test tool against its own selftest server (no pyrun involved): exec/attach
over each protocol version, exit codes, stdin half-close, tty resize, protocol negotiation,
and port-forward with several connections on one SPDY session."""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from _spdy_helpers import (EXIT_OK, EXIT_REMOTE, EXIT_UPGRADE, parse_raw_upgrade, run_spdyclient,
                           spdyclient_path)

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

V4, V3, V2, V1 = "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"


class Server:
    def __init__(self, proc: subprocess.Popen, log: Path, addr: str):
        self.proc, self.log, self.addr = proc, log, addr

    def url(self, path: str) -> str:
        return f"http://{self.addr}{path}"

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines()

    def lines_since(self, mark: int) -> list[str]:
        return self.lines()[mark:]

    def wait_for(self, line: str, after: int = 0, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while line not in self.lines_since(after):
            assert time.monotonic() < deadline, f"server never logged {line!r}: {self.lines_since(after)}"
            time.sleep(0.02)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    binary = spdyclient_path()
    log = tmp_path_factory.mktemp("spdyclient") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([binary, "selftest-server", "127.0.0.1:0"], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not log.read_text().startswith("listening "):
            assert proc.poll() is None, f"selftest server exited: {log.read_text()}"
            assert time.monotonic() < deadline, "selftest server did not start"
            time.sleep(0.02)
        yield Server(proc, log, log.read_text().splitlines()[0].split()[1])
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_exec_v4_stdin_stdout_stderr_success(server):
    mark = len(server.lines())
    p = run_spdyclient(["exec", "-stdin", "-stdout", "-stderr", server.url("/exec/tok?stdin=1&stdout=1&stderr=1")],
                       stdin=b"hello\nworld\n", timeout=30, split_diag=True)
    assert p.returncode == EXIT_OK, p
    assert p.stdout == b"hello\nworld\n"
    assert p.stderr == b"err\n"
    assert p.diag.splitlines()[0] == f"protocol: {V4}" and "warning" not in p.diag
    server.wait_for("connection closed", mark)
    log = server.lines_since(mark)
    assert log[0] == f"request POST /exec/tok?stdin=1&stdout=1&stderr=1 protocols={V4},{V3},{V2},{V1}"
    streams = [line.split()[2] for line in log if line.startswith("stream ")]
    assert streams == ["streamType=error", "streamType=stdin", "streamType=stdout", "streamType=stderr"]
    assert "stdin EOF" in log  # the client half-closed stdin at EOF


def test_exec_v4_nonzero_exit_code(server):
    p = run_spdyclient(["exec", "-stdout", "-stderr", server.url("/exec/tok?stdout=1&stderr=1&fail=1")], timeout=30)
    assert p.returncode == 3, p
    assert p.stdout == b"" and b"err\n" in p.stderr and b"protocol: v4.channel.k8s.io" in p.stderr


@pytest.mark.parametrize("protocol", [V3, V2])
def test_exec_v2_v3_error_text(server, protocol):
    ok = run_spdyclient(["exec", "-protocols", protocol, "-stdout", server.url("/exec/tok?stdout=1")], timeout=30)
    assert ok.returncode == EXIT_OK, ok
    bad = run_spdyclient(["exec", "-protocols", protocol, "-stdout", "-stderr",
                          server.url("/exec/tok?stdout=1&stderr=1&fail=1")], timeout=30, split_diag=True)
    assert bad.returncode == EXIT_REMOTE, bad
    assert bad.stderr == b"err\n"
    assert f"protocol: {protocol}" in bad.diag
    assert "error executing remote command: command terminated with non-zero exit code" in bad.diag


def test_attach_tty_sends_resize_and_no_stderr_stream(server):
    mark = len(server.lines())
    p = run_spdyclient(["attach", "-stdout", "-stderr", "-tty", "-resize", "80x24",
                        server.url("/attach/tok?stdout=1&stderr=1&tty=1&resize=1")], timeout=30, split_diag=True)
    assert p.returncode == EXIT_OK, p
    resize = p.stdout.removeprefix(b"resize ")
    assert resize.endswith(b"\n") and json.loads(resize) == {"Width": 80, "Height": 24}
    server.wait_for("connection closed", mark)
    streams = [line.split()[2] for line in server.lines_since(mark) if line.startswith("stream ")]
    assert streams == ["streamType=error", "streamType=stdout", "streamType=resize"]


def test_negotiation_failure_and_missing_header(server):
    p = run_spdyclient(["raw-upgrade", "-protocols", "v9.channel.k8s.io", server.url("/exec/tok")], timeout=30)
    status, headers, body = parse_raw_upgrade(p.stdout)
    assert p.returncode == EXIT_OK and status == 403
    assert headers["X-Accepted-Stream-Protocol-Versions"] == [V4, V3, V2, V1]
    assert b"unable to negotiate protocol" in body

    status, headers, body = parse_raw_upgrade(run_spdyclient(["raw-upgrade", "-protocols", "", server.url("/exec/tok")]).stdout)
    assert status == 400 and "X-Stream-Protocol-Version" not in headers

    status, _, _ = parse_raw_upgrade(run_spdyclient(["raw-upgrade", "-no-upgrade", server.url("/exec/tok")]).stdout)
    assert status == 400

    # exec itself reports a refused upgrade with exit code 3 and the server's text.
    refused = run_spdyclient(["exec", "-protocols", "v9.channel.k8s.io", "-stdout", server.url("/exec/tok")], timeout=30)
    assert refused.returncode == EXIT_UPGRADE
    assert b"unable to upgrade connection: 403 Forbidden" in refused.stderr


def test_raw_upgrade_success_shows_negotiated_protocol(server):
    p = run_spdyclient(["raw-upgrade", "-protocols", f"v5.channel.k8s.io,{V3},{V4}", server.url("/exec/tok")])
    status, headers, _ = parse_raw_upgrade(p.stdout)
    # The server takes the client's first protocol it knows.
    assert status == 101 and headers["X-Stream-Protocol-Version"] == [V3]
    assert headers["Upgrade"] == ["SPDY/3.1"]


def test_portforward_several_connections_on_one_session(server):
    mark = len(server.lines())
    p = run_spdyclient(["portforward", server.url("/portforward/tok"), "8080", "9090"], timeout=30, split_diag=True)
    assert p.returncode == EXIT_OK, p
    assert p.stdout.decode().splitlines() == ["8080: echo ping 8080", "9090: echo ping 9090", "8080: echo ping 8080"]
    assert p.diag.strip() == "protocol: portforward.k8s.io"
    server.wait_for("connection closed", mark)
    log = server.lines_since(mark)
    assert sum(line.startswith("request ") for line in log) == 1
    assert [line.split(maxsplit=2)[2] for line in log if line.startswith("stream ")] == [
        f"streamType={kind} port={port} requestID={rid}"
        for rid, port in enumerate(["8080", "9090", "8080"]) for kind in ("error", "data")]


def test_portforward_error_stream_fails_the_run(server):
    p = run_spdyclient(["portforward", server.url("/portforward/tok"), "1", "8080"], timeout=30, split_diag=True)
    assert p.returncode == EXIT_REMOTE, p
    assert "1 error: selftest: cannot connect to port 1" in p.diag
    assert b"8080: echo ping 8080\n" in p.stdout


def test_portforward_wrong_protocol_is_refused(server):
    p = run_spdyclient(["portforward", "-protocol", "portforward.example", server.url("/portforward/tok"), "8080"],
                       timeout=30)
    assert p.returncode == EXIT_UPGRADE and b"403 Forbidden" in p.stderr


def test_pings_are_answered(server):
    # The client sends a PING at once (then every second) and waits for the answer to a PING
    # in flight before it closes; -v reports the counts.
    p = run_spdyclient(["exec", "-v", "-stdin", "-stdout", server.url("/exec/tok?stdin=1&stdout=1")],
                       stdin=b"x", timeout=30, split_diag=True)
    assert p.returncode == EXIT_OK and p.stdout == b"x"
    pings = [line for line in p.diag.splitlines() if "pings sent=" in line]
    assert len(pings) == 1, p.diag
    sent, answered = (int(word.split("=")[1]) for word in pings[0].split()[-2:])
    assert sent >= 1 and answered == sent, p.diag


def test_exec_v1_with_get(server):
    mark = len(server.lines())
    p = run_spdyclient(["exec", "-method", "GET", "-protocols", V1, "-stdout", "-stderr",
                        server.url("/exec/tok?stdout=1&stderr=1")], timeout=30, split_diag=True)
    assert p.returncode == EXIT_OK, p
    assert p.stderr == b"err\n" and p.diag.splitlines()[0] == f"protocol: {V1}"
    server.wait_for("connection closed", mark)
    assert server.lines_since(mark)[0].startswith(f"request GET /exec/tok?stdout=1&stderr=1 protocols={V1}")
