"""pyrun.cri.websocket: RFC 6455 handshake and framing, over a socketpair (no network)."""
from __future__ import annotations

import base64
import os
import socket
import struct
import threading

import pytest
from hypothesis import given, strategies as st

from pyrun.cri import websocket as w


def pair() -> tuple[w.WebSocket, w.WebSocket, socket.socket, socket.socket]:
    a, b = socket.socketpair()
    server = w.WebSocket(a, a.makefile("rb"), client=False)
    client = w.WebSocket(b, b.makefile("rb"), client=True)
    return server, client, a, b


def test_accept_key_matches_the_rfc_example():
    assert w.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_handshake_checks_and_protocol_choice():
    good = {"Upgrade": "websocket", "Connection": "keep-alive, Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": base64.b64encode(b"x" * 16).decode()}
    assert w.handshake_problem("GET", good) is None
    assert "Upgrade" in w.handshake_problem("GET", {**good, "Upgrade": "h2c"})
    assert "13" in w.handshake_problem("GET", {**good, "Sec-WebSocket-Version": "8"})
    assert "16" in w.handshake_problem("GET", {**good, "Sec-WebSocket-Key": "abc"})
    assert "GET" in w.handshake_problem("POST", good)
    offered = w.offered_protocols("v5.channel.k8s.io, v4.channel.k8s.io,channel.k8s.io")
    assert w.choose_protocol(offered, ("v4.channel.k8s.io", "v5.channel.k8s.io")) == "v5.channel.k8s.io"
    assert w.choose_protocol([], ("a",)) == "" and w.choose_protocol(["b"], ("a",)) is None
    assert b"Sec-WebSocket-Protocol: v4" in w.server_response("k", "v4") and b"Sec-WebSocket-Protocol" not in w.server_response("k", "")


@given(st.binary(max_size=300), st.binary(min_size=4, max_size=4))
def test_masking_is_its_own_inverse(data, key):
    assert w.apply_mask(w.apply_mask(data, key), key) == data


def test_mask_matches_the_definition():
    key = b"\x01\x02\x03\x04"
    data = bytes(range(11))
    assert w.apply_mask(data, key) == bytes(b ^ key[i % 4] for i, b in enumerate(data))


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
def test_frame_lengths_round_trip(size):
    payload = os.urandom(size)
    for mask in (None, b"abcd"):
        frame = w.encode_frame(w.OP_BINARY, payload, mask=mask)
        buf = memoryview(frame)
        pos = [0]

        def read(n):
            out = bytes(buf[pos[0]:pos[0] + n])
            pos[0] += n
            return out
        got = w.read_frame(read, require_mask=mask is not None)
        assert (got.fin, got.opcode, got.payload) == (True, w.OP_BINARY, payload) and pos[0] == len(frame)


def test_length_encodings_are_the_rfc_ones():
    assert w.encode_frame(w.OP_TEXT, b"Hello")[:2] == b"\x81\x05"
    assert w.encode_frame(w.OP_BINARY, b"x" * 256)[:4] == b"\x82\x7e\x01\x00"
    assert w.encode_frame(w.OP_BINARY, b"x" * 65536)[:10] == b"\x82\x7f" + struct.pack("!Q", 65536)
    # RFC 6455 5.7: a masked "Hello"
    assert w.encode_frame(w.OP_TEXT, b"Hello", mask=b"\x37\xfa\x21\x3d") == \
        bytes.fromhex("818537fa213d7f9f4d5158")
    with pytest.raises(ValueError):
        w.encode_frame(w.OP_PING, b"x" * 126)


def test_server_refuses_unmasked_client_frames():
    server, client, a, b = pair()
    b.sendall(w.encode_frame(w.OP_BINARY, b"no mask"))
    assert server.recv() is None
    frame = w.read_frame(client._read_exact, require_mask=False)
    assert frame.opcode == w.OP_CLOSE and w.parse_close(frame.payload)[0] == w.CLOSE_PROTOCOL_ERROR


def test_fragments_are_joined_and_pings_answered_between_them():
    server, client, a, b = pair()
    key = b"\x00\x11\x22\x33"
    b.sendall(w.encode_frame(w.OP_BINARY, b"\x01hel", fin=False, mask=key)
              + w.encode_frame(w.OP_PING, b"are you there", mask=key)
              + w.encode_frame(w.OP_CONTINUATION, b"lo ", fin=False, mask=key)
              + w.encode_frame(w.OP_CONTINUATION, b"world", mask=key))
    assert server.recv() == (w.OP_BINARY, b"\x01hello world")
    pong = w.read_frame(client._read_exact, require_mask=False)
    assert (pong.opcode, pong.payload) == (w.OP_PONG, b"are you there")


def test_continuation_without_start_is_a_protocol_error():
    server, client, a, b = pair()
    b.sendall(w.encode_frame(w.OP_CONTINUATION, b"x", mask=b"abcd"))
    assert server.recv() is None and server.close_sent


def test_closing_handshake_both_ways():
    server, client, a, b = pair()
    client.close(1000, "bye")
    assert server.recv() is None and server.close_received == (1000, "bye") and server.close_sent
    assert client.recv() is None and client.close_received == (1000, "")
    with pytest.raises(BrokenPipeError):
        server.send_binary(b"late")


def test_messages_flow_both_ways_between_threads():
    server, client, a, b = pair()
    got = []
    t = threading.Thread(target=lambda: got.extend(server.messages()))
    t.start()
    for i in range(50):
        client.send_binary(bytes([i]) * (i * 100))
    client.send(w.OP_TEXT, "☃".encode())
    client.close()
    t.join(5)
    assert [m for _, m in got[:-1]] == [bytes([i]) * (i * 100) for i in range(50)]
    assert got[-1] == (w.OP_TEXT, "☃".encode())
    assert server.close_sent and client.recv() is None


def test_eof_ends_recv():
    server, client, a, b = pair()
    client.rfile.close()  # the makefile holds a reference: both go before the descriptor closes
    b.close()
    assert server.recv() is None and server.ended.is_set()


def test_oversized_message_closes_with_1009():
    a, b = socket.socketpair()
    server = w.WebSocket(a, a.makefile("rb"), max_message=10)
    client = w.WebSocket(b, b.makefile("rb"), client=True)
    client.send_binary(b"x" * 11)
    assert server.recv() is None
    frame = w.read_frame(client._read_exact, require_mask=False)
    assert w.parse_close(frame.payload)[0] == w.CLOSE_TOO_BIG
