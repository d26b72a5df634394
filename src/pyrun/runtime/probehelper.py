"""The short-lived helper for the two probes the C monitor does not run itself: httpGet with
`scheme: HTTPS` (TLS without certificate verification, as the kubelet does) and grpc (the gRPC
health protocol, grpc.health.v1.Health/Check). csrc/supervise.c forks, joins the pod's network
namespace and execs

    python -m pyrun.runtime.probehelper https HOST PORT PATH_HEX HEADERS_HEX TIMEOUT
    python -m pyrun.runtime.probehelper grpc HOST PORT SERVICE_HEX TIMEOUT

once per probe period: it prints the probe's message on one line and exits 0 (success) or 1
(failure). An interpreter start per period of such a probe (≈ 0.1 s of CPU) is the price of TLS
and HTTP/2 without linking them into the monitor; nothing stays resident. gRPC needs grpcio
(pyrun's `cri` extra); without it the probe fails saying so.
"""
from __future__ import annotations

import sys

SERVING_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def health_request(service: str) -> bytes:
    """A grpc.health.v1.HealthCheckRequest {service} in protobuf wire format (pure)."""
    data = service.encode()
    if not data:
        return b""
    return b"\x0a" + _varint(len(data)) + data


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def health_status(response: bytes) -> int:
    """The status (field 1, a varint) of a grpc.health.v1.HealthCheckResponse (pure); 0 if absent."""
    i = 0
    while i < len(response):
        key = response[i]
        i += 1
        value, shift = 0, 0
        while i < len(response):
            byte = response[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if key == 0x08:
            return value
        if key & 7 == 2:  # a length-delimited field we do not know: skip its bytes
            i += value
        elif key & 7 != 0:
            return 0
    return 0


def parse_headers(blob: str) -> list[tuple[str, str]]:
    """"Name: value\\r\\n" lines (pyrun.runtime.supervise.handler_words) into pairs (pure)."""
    pairs = []
    for line in blob.split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            pairs.append((name.strip(), value.strip()))
    return pairs


def https(host: str, port: int, path: str, headers: str, timeout: float) -> tuple[bool, str]:
    import http.client
    import ssl
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    names = {name.lower() for name, _ in parse_headers(headers)}
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for name, value in [("User-Agent", "kube-probe/1.31"), ("Accept", "*/*")]:
            if name.lower() not in names:
                conn.putheader(name, value)
        for name, value in parse_headers(headers):
            conn.putheader(name, value)
        conn.endheaders()
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as e:
        return False, f"Get \"https://{host}:{port}{path}\": {e}"
    finally:
        conn.close()
    ok = 200 <= status < 400
    return ok, f"HTTPS probe {'succeeded' if ok else 'failed'} with statuscode: {status}"


def grpc_health(host: str, port: int, service: str, timeout: float) -> tuple[bool, str]:
    try:
        import grpc
    except ImportError:
        return False, "gRPC probes need grpcio (pip install pyrun[cri])"
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    with grpc.insecure_channel(target) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        try:
            response = check(health_request(service), timeout=timeout)
        except grpc.RpcError as e:
            return False, f"failed to connect service {target!r} within {timeout:g}s: {e.code().name}"
    status = health_status(response)
    if status != 1:
        return False, f"service unhealthy (responded with {SERVING_STATUS.get(status, str(status))!r})"
    return True, "service is SERVING"


def main(argv: list[str]) -> int:
    kind, host, port = argv[0], argv[1], int(argv[2])
    text = [bytes.fromhex(a if a != "-" else "").decode() for a in argv[3:-1]]
    timeout = float(argv[-1])
    if kind == "https":
        ok, message = https(host, port, text[0] or "/", text[1], timeout)
    else:
        ok, message = grpc_health(host, port, text[0], timeout)
    print(message.replace("\n", " "), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
