"""SPDY/3.1 for the streaming server, without root: framing, header compression, negotiation, and
exec/attach/port-forward sessions running host commands (an ExecPlan's argv is any command line)."""
from __future__ import annotations

import functools
import io
import json
import socket
import struct
import threading
import time
import zlib

import pytest
from _spdy_client import SpdyClient
from _streaming_helpers import command_ends

from pyrun.cri import remotecommand as rc
from pyrun.cri import spdy
from pyrun.cri.portforward import ForwardPlan, parse_port, request_id
from pyrun.cri.streaming import StreamServer
from pyrun.netns.dial import connect_in_netns

DIAL_HERE = functools.partial(connect_in_netns, None)  # 127.0.0.1 of this network namespace

V4, V3, V2 = "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io"


# --- framing (pure) ------------------------------------------------------------------------------

def test_the_dictionary_is_spdy3s():
    assert len(spdy.DICTIONARY) == 1423 and zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options") and spdy.DICTIONARY.endswith(b",*,enq=0.")


def test_header_blocks_round_trip_lowercased_with_nul_separated_values():
    block = spdy.pack_headers({"streamType": "error", "Port": ["80", "81"]})
    assert block[:4] == b"\x00\x00\x00\x02" and b"streamtype" in block and b"80\x0081" in block
    assert spdy.unpack_headers(block) == {"streamtype": ["error"], "port": ["80", "81"]}
    with pytest.raises(spdy.FrameError, match="truncated"):
        spdy.unpack_headers(block[:-1])
    with pytest.raises(spdy.FrameError, match="after its 2 headers"):
        spdy.unpack_headers(block + b"x")


def test_one_zlib_stream_per_direction_and_a_size_limit():
    c, d = spdy.HeaderCompressor(), spdy.HeaderDecompressor()
    for i in range(3):  # later blocks depend on the earlier ones: the state is shared
        assert d.decompress(c.compress({"streamtype": "data", "requestid": str(i)}))["requestid"] == [str(i)]
    with pytest.raises(spdy.FrameError):  # a later block alone means nothing without the stream before it
        spdy.HeaderDecompressor().decompress(c.compress({"a": "b"}))
    bomb = spdy.HeaderCompressor().compress({"x": "y" * (spdy.MAX_HEADER_BLOCK + 10)})
    with pytest.raises(spdy.FrameError, match="larger than"):
        spdy.HeaderDecompressor().decompress(bomb)
    with pytest.raises(spdy.FrameError, match="does not decompress"):
        spdy.HeaderDecompressor().decompress(b"not zlib at all")


def test_frames_encode_and_parse():
    raw = spdy.data_frame(5, b"hi", fin=True) + spdy.rst_stream(3, spdy.RST_CANCEL) + spdy.goaway(7)
    f = io.BytesIO(raw)
    data = spdy.read_frame(f)
    assert (data.control, data.stream_id, data.payload, data.fin) == (False, 5, b"hi", True)
    rst = spdy.read_frame(f)
    assert rst.control and rst.type == spdy.RST_STREAM and struct.unpack(">II", rst.payload) == (3, 5)
    assert spdy.read_frame(f).type == spdy.GOAWAY and spdy.read_frame(f) is None
    assert raw[8 + 2:8 + 2 + 4] == b"\x80\x03\x00\x03"  # control bit, version 3, type 3


@pytest.mark.parametrize("raw, message", [
    (b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01", "version 2"),
    (spdy.data_frame(1, b"abc")[:-1], "inside a frame"),
    (b"\x00\x00\x00\x00\x00\x00\x00\x00", "stream 0"),
])
def test_bad_frames_are_errors(raw, message):
    with pytest.raises(spdy.FrameError, match=message):
        spdy.read_frame(io.BytesIO(raw))


def test_expected_streams_follow_client_go():
    E, I, O, R, S = rc.ERROR, rc.STDIN, rc.STDOUT, rc.RESIZE, rc.STDERR
    assert rc.expected_streams(V4, True, True, True, False) == {E, I, O, S}
    assert rc.expected_streams(V4, True, True, True, True) == {E, I, O, R}  # a tty: no stderr, resize
    assert rc.expected_streams(V2, False, True, False, True) == {E, O}  # v2 has no resize
    assert rc.expected_streams(rc.V1, False, False, False, False) == {E}


def test_port_forward_pairing_and_ports():
    class S:
        def __init__(self, sid, **h):
            self.id, self.h = sid, h

        def header(self, name):
            return self.h.get(name, "")
    assert request_id(S(9, requestID="4", streamType="data")) == "4"
    assert request_id(S(1, streamType="error")) == "1" and request_id(S(3, streamType="data")) == "1"
    assert parse_port("8080") == 8080
    for bad in ("x", "0", "70000", ""):
        with pytest.raises(ValueError):
            parse_port(bad)


# --- the server ----------------------------------------------------------------------------------

@pytest.fixture
def streams():
    server = StreamServer("127.0.0.1:0").start()
    yield server
    server.stop()


def run_exec(streams, plan, protocols=(V4,), stdin=b"", types=None, kind="exec"):
    client = SpdyClient(streams.url(kind, plan), protocols)
    assert client.status == 101, client.body
    ids = {t: client.open(t) for t in (types or ["error", "stdin", "stdout", "stderr"])}
    if "stdin" in ids:
        if stdin:
            client.send(ids["stdin"], stdin)
        client.send(ids["stdin"], b"", fin=True)
    outputs = [ids[t] for t in ("error", "stdout", "stderr") if t in ids]
    assert client.wait_fin(*outputs), (client.data, client.fin)
    assert all(ids[t] in client.replied for t in ids)
    client.close()
    return client, {t: client.data.get(sid, b"") for t, sid in ids.items()}


def test_exec_over_spdy_v4(streams):
    plan = rc.ExecPlan(["sh", "-c", "cat; echo err >&2; exit 3"], stdin=True, stdout=True, stderr=True, tty=False)
    client, got = run_exec(streams, plan, protocols=("v5.channel.k8s.io", V4, V3), stdin=b"hello\n")
    assert client.protocol == V4
    assert got["stdout"] == b"hello\n" and got["stderr"] == b"err\n"
    status = json.loads(got["error"])
    assert status["reason"] == "NonZeroExitCode" and status["details"]["causes"][0]["message"] == "3"


def test_exec_over_spdy_v2_writes_only_failures_as_text(streams):
    ok = rc.ExecPlan(["true"], stdin=False, stdout=True, stderr=False, tty=False)
    _, got = run_exec(streams, ok, (V2,), types=["error", "stdout"])
    assert got["error"] == b""
    bad = rc.ExecPlan(["false"], stdin=False, stdout=True, stderr=False, tty=False)
    _, got = run_exec(streams, bad, (V2,), types=["error", "stdout"])
    assert b"non-zero exit code" in got["error"]


def test_exec_over_spdy_with_a_tty_and_resize(streams):
    plan = rc.ExecPlan(["sh", "-c", "sleep 0.5; stty size"], stdin=True, stdout=True, stderr=False, tty=True)
    client = SpdyClient(streams.url("exec", plan), (V4,))
    ids = {t: client.open(t) for t in ("error", "stdin", "stdout", "resize")}
    client.send(ids["resize"], json.dumps({"Width": 101, "Height": 33}).encode() + b"\n")
    assert client.wait_fin(ids["error"], ids["stdout"])
    assert b"33 101" in client.data[ids["stdout"]]
    assert json.loads(client.data[ids["error"]])["status"] == "Success"
    client.close()


def test_pings_are_echoed_and_a_gone_client_kills_the_command(streams, tmp_path):
    marker = tmp_path / "pid"
    plan = rc.ExecPlan(["sh", "-c", f"echo $$ > {marker}; exec sleep 60"], stdin=False, stdout=True, stderr=False,
                       tty=False)
    client = SpdyClient(streams.url("exec", plan), (V4,))
    client.open("error")
    client.open("stdout")
    client.ping(7)
    assert client.wait(lambda: client.pongs == [7])
    assert client.wait(lambda: marker.exists() and marker.read_text().strip(), 5)
    pid = int(marker.read_text())
    client.close()
    assert command_ends(pid), "the command survived its client"


def test_negotiation_failures(streams):
    plan = rc.ExecPlan(["true"], False, True, False, False)
    url = streams.url("exec", plan)
    nothing = SpdyClient(url, ())
    assert nothing.status == 400 and b"X-Stream-Protocol-Version is required" in nothing.body
    wrong = SpdyClient(url, ("v9.channel.k8s.io",))
    assert wrong.status == 403 and b"unable to negotiate protocol" in wrong.body
    assert wrong.headers["x-accepted-stream-protocol-versions"][0] == V4
    ok = SpdyClient(url, (V4,), method="GET")  # the token survived the refusals; GET works too
    assert ok.status == 101
    ok.close()
    assert SpdyClient(streams.url("portforward", ForwardPlan(DIAL_HERE, ())), (V4,)).status == 403


def test_unwanted_streams_are_reset_and_missing_ones_time_out(streams, monkeypatch):
    monkeypatch.setattr(rc, "STREAM_CREATION_TIMEOUT", 0.5)
    plan = rc.ExecPlan(["true"], stdin=False, stdout=True, stderr=False, tty=False)
    client = SpdyClient(streams.url("exec", plan), (V4,))
    bogus = client.open("stdin")  # not asked for
    assert client.wait(lambda: bogus in client.reset)
    client.open("error")  # stdout never comes
    assert client.closed.wait(5) and client.goaway


def test_attach_over_spdy_follows_the_log(streams, tmp_path):
    log = tmp_path / "0.log"
    log.write_bytes(b"")
    running = threading.Event()
    running.set()
    plan = rc.AttachPlan(str(log), stdout=True, stderr=True, tty=False, running=running.is_set)
    client = SpdyClient(streams.url("attach", plan), (V4,))
    ids = {t: client.open(t) for t in ("error", "stdout", "stderr")}
    assert client.wait(lambda: len(client.replied) == 3)
    time.sleep(0.3)
    with open(log, "ab") as f:
        f.write(b"2024-01-01T00:00:01.000000000Z stdout F hello\n2024-01-01T00:00:01.000000000Z stderr F oops\n")
    assert client.wait(lambda: client.data.get(ids["stderr"]) == b"oops\n")
    running.clear()
    assert client.wait_fin(ids["error"], ids["stdout"])
    assert client.data[ids["stdout"]] == b"hello\n"
    client.close()


@pytest.fixture
def echo_server():
    """A TCP listener on 127.0.0.1 that answers every connection with 'echo:' + what it read to EOF."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                data = b""
                while chunk := conn.recv(4096):
                    data += chunk
                conn.sendall(b"echo:" + data)
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield listener.getsockname()[1]
    stop.set()
    t.join()
    listener.close()


def test_port_forward_over_spdy_pairs_streams_per_connection(streams, echo_server):
    client = SpdyClient(streams.url("portforward", ForwardPlan(DIAL_HERE, ())), ("portforward.k8s.io",))
    assert client.status == 101 and client.protocol == "portforward.k8s.io"
    for rid in ("0", "1"):  # two connections over one session
        err = client.open("error", port=str(echo_server), requestID=rid)
        client.send(err, b"", fin=True)  # client-go closes its side of the error stream at once
        data = client.open("data", port=str(echo_server), requestID=rid)
        client.send(data, f"ping {rid}".encode(), fin=True)
        assert client.wait_fin(data, err)
        assert client.data[data] == f"echo:ping {rid}".encode() and not client.data.get(err)
    err = client.open("error", port="1", requestID="2")  # nothing listens on port 1
    data = client.open("data", port="1", requestID="2")
    assert client.wait_fin(data, err)
    assert b"error forwarding port 1" in client.data[err]
    client.close()
