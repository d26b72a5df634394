"""The streaming server without root: tokens, routes, statuses, and sessions running host commands
(an ExecPlan's argv is any command line) and a port-forward to a listener on 127.0.0.1."""
from __future__ import annotations

import functools
import json
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
from _streaming_helpers import command_ends

from pyrun.cri import remotecommand as rc
from pyrun.cri import websocket as w
from pyrun.cri.portforward import ForwardPlan, ports_from_query
from pyrun.cri.streaming import StreamServer, TokenCache, parse_address, route
from pyrun.errors import UsageError
from pyrun.netns.dial import connect_in_netns

DIAL_HERE = functools.partial(connect_in_netns, None)  # 127.0.0.1 of this network namespace


def test_tokens_are_single_use_kind_bound_and_expire():
    now = [100.0]
    cache = TokenCache(ttl=60, limit=3, clock=lambda: now[0])
    a, b = cache.insert("exec", "A"), cache.insert("attach", "B")
    assert a != b and len(a) >= 16
    assert cache.consume("exec", a) == "A" and cache.consume("exec", a) is None
    assert cache.consume("exec", b) is None  # wrong kind: and it is gone
    c = cache.insert("exec", "C")
    now[0] += 61
    assert cache.consume("exec", c) is None
    for _ in range(3):
        cache.insert("exec", "x")
    with pytest.raises(UsageError, match="too many"):
        cache.insert("exec", "y")
    now[0] += 61
    cache.insert("exec", "z")  # expired ones make room
    assert len(cache) == 1


def test_routes_and_addresses():
    assert route("/exec/abc?port=1") == ("exec", "abc", {"port": ["1"]})
    assert route("/portforward/t") == ("portforward", "t", {})
    assert route("/exec/") is None and route("/other/t") is None and route("/exec/a/b") is None
    assert parse_address("127.0.0.1:0") == ("127.0.0.1", 0) and parse_address("[::1]:10010") == ("::1", 10010)
    for bad in ("127.0.0.1", ":80", "h:x", "h:70000"):
        with pytest.raises(UsageError):
            parse_address(bad)


def test_status_messages_per_protocol():
    assert json.loads(rc.status_message(rc.V4, 0)) == {"metadata": {}, "status": "Success"}
    failed = json.loads(rc.status_message(rc.V5, 3))
    assert failed["status"] == "Failure" and failed["reason"] == "NonZeroExitCode"
    assert failed["details"] == {"causes": [{"reason": "ExitCode", "message": "3"}]}
    assert rc.status_message(rc.V1, 0) is None and b"exit code" in rc.status_message(rc.V1, 3)
    assert rc.parse_resize(b'{"Width": 120, "Height": 40}') == (120, 40) and rc.parse_resize(b"{}") is None
    assert rc.exit_code_of(-9) == 137


def test_ports_from_query():
    assert ports_from_query(["80", "81,82"], (1,)) == (80, 81, 82) and ports_from_query([], (8080,)) == (8080,)
    for bad in (["0"], ["x"], ["70000"]):
        with pytest.raises(ValueError):
            ports_from_query(bad, ())
    with pytest.raises(ValueError):
        ports_from_query([], ())


@pytest.fixture
def streams():
    server = StreamServer("127.0.0.1:0").start()
    yield server
    server.stop()


def open_ws(url: str, protocols=(rc.V5, rc.V4, rc.V1)):
    parts = urlsplit(url)
    return w.connect(parts.hostname, parts.port, parts.path + (f"?{parts.query}" if parts.query else ""),
                     protocols)


def collect(ws: w.WebSocket) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for _, msg in ws.messages():
        out[msg[0]] = out.get(msg[0], b"") + msg[1:]
    return out


def test_exec_streams_and_status(streams):
    plan = rc.ExecPlan(["sh", "-c", "echo out; echo err >&2; exit 3"], stdin=False, stdout=True, stderr=True,
                       tty=False)
    ws, protocol = open_ws(streams.url("exec", plan))
    assert protocol == rc.V5
    got = collect(ws)
    assert got[1] == b"out\n" and got[2] == b"err\n"
    assert json.loads(got[3])["details"]["causes"][0]["message"] == "3"


def test_exec_stdin_to_cat_with_v5_close(streams):
    plan = rc.ExecPlan(["cat"], stdin=True, stdout=True, stderr=True, tty=False)
    ws, _ = open_ws(streams.url("exec", plan))
    ws.send_binary(b"\x00hello ")
    ws.send_binary(b"\x00world\n")
    ws.send_binary(bytes([255, 0]))
    got = collect(ws)
    assert got[1] == b"hello world\n" and json.loads(got[3]) == {"metadata": {}, "status": "Success"}


def test_exec_v1_protocol_and_tokens_are_single_use(streams):
    url = streams.url("exec", rc.ExecPlan(["false"], stdin=False, stdout=True, stderr=False, tty=False))
    ws, protocol = open_ws(url, (rc.V1,))
    assert protocol == rc.V1 and b"non-zero exit code" in collect(ws)[3]
    with pytest.raises(ConnectionError, match="404"):
        open_ws(url)


def test_exec_with_a_tty(streams):
    plan = rc.ExecPlan(["sh", "-c", "test -t 0 && stty size && echo tty-ok"], stdin=True, stdout=True,
                       stderr=False, tty=True)
    ws, _ = open_ws(streams.url("exec", plan))
    ws.send_binary(b"\x04" + json.dumps({"Width": 100, "Height": 30}).encode())
    time.sleep(0.3)  # let the resize land before the command asks
    got = collect(ws)
    assert b"tty-ok" in got[1]
    assert json.loads(got[3])["status"] == "Success"


def test_client_leaving_kills_the_command(streams, tmp_path):
    marker = tmp_path / "pid"
    plan = rc.ExecPlan(["sh", "-c", f"echo $$ > {marker}; echo started; exec sleep 100"], stdin=False,
                       stdout=True, stderr=False, tty=False)
    ws, _ = open_ws(streams.url("exec", plan))
    while b"started" not in ws.recv()[1]:
        pass
    ws.close()
    pid = int(marker.read_text())
    assert command_ends(pid), "the command survived its client"


def test_refusals(streams):
    with pytest.raises(ConnectionError, match="404"):
        open_ws(streams.base_url + "/exec/nosuchtoken")
    url = streams.url("exec", rc.ExecPlan(["true"], stdin=False, stdout=True, stderr=False, tty=False))
    with pytest.raises(ConnectionError, match="400"):
        open_ws(url, ("SPDY/3.1",))
    parts = urlsplit(streams.url("exec", rc.ExecPlan(["true"], False, True, False, False)))
    with socket.create_connection((parts.hostname, parts.port)) as s:  # a protocol header, no upgrade
        s.sendall(f"GET {parts.path} HTTP/1.1\r\nHost: x\r\n"
                  "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n".encode())
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 400") and b"SPDY" in reply


def test_attach_follows_the_log_until_the_container_stops(streams, tmp_path):
    log = tmp_path / "0.log"
    log.write_bytes(b"2024-01-01T00:00:00.000000000Z stdout F old line\n")
    running = threading.Event()
    running.set()
    plan = rc.AttachPlan(str(log), stdout=True, stderr=True, tty=False, running=running.is_set)
    ws, _ = open_ws(streams.url("attach", plan))
    assert ws.recv() == (w.OP_BINARY, b"\x01")  # the hello
    with open(log, "ab") as f:
        f.write(b"2024-01-01T00:00:01.000000000Z stdout P new \n2024-01-01T00:00:01.000000000Z stdout F line\n")
        f.write(b"2024-01-01T00:00:01.000000000Z stderr F oops\n")
    time.sleep(0.5)
    running.clear()
    got = collect(ws)
    assert got[1] == b"new line\n" and got[2] == b"oops\n"
    assert json.loads(got[3])["status"] == "Success"


def test_port_forward_to_a_loopback_listener(streams):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def echo():
        conn, _ = listener.accept()
        with conn:
            data = conn.recv(100)
            conn.sendall(b"echo:" + data)
    t = threading.Thread(target=echo)
    t.start()
    try:
        ws, protocol = open_ws(streams.url("portforward", ForwardPlan(dial=DIAL_HERE, ports=(port,))),
                               ("v4.channel.k8s.io",))
        assert ws.recv()[1] == b"\x00" + port.to_bytes(2, "little")
        assert ws.recv()[1] == b"\x01" + port.to_bytes(2, "little")
        ws.send_binary(b"\x00ping")
        assert collect(ws) == {0: b"echo:ping"}
    finally:
        t.join(5)
        listener.close()


def test_port_forward_reports_a_refused_port_on_the_error_channel(streams):
    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there now
    ws, _ = open_ws(streams.url("portforward", ForwardPlan(dial=DIAL_HERE, ports=(1,))) + f"?port={port}")
    got = collect(ws)
    assert got[0] == port.to_bytes(2, "little") and b"failed to connect" in got[1]

