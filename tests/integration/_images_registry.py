"""Registries for the image tests, all on 127.0.0.1 only.

- `RealRegistry`: Debian's docker-registry (distribution) on a free port, storage in a
  temp dir, optionally with htpasswd basic auth or docker token auth (a tiny token
  server in this process signs RS256 JWTs with openssl; the registry trusts its cert).
  Stopped by PID.
- `FakeRegistry`: a few-line distribution API on http.server in a thread, serving what
  a test puts in it — and misbehaving on request (wrong bytes, truncated blobs,
  bearer auth).
- `push()`: skopeo copy of an OCI layout into a registry.
"""
from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need(*tools: str) -> None:
    for t in tools:
        if not shutil.which(t) and not Path(t).exists():
            pytest.skip(f"needs {t}")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- token server ---------------------------------------------------------------------------------

class TokenIssuer:
    """Makes a self-signed RSA cert (openssl) and signs docker-registry bearer tokens with it."""

    def __init__(self, workdir: Path, service: str, issuer: str = "pyrun-test-issuer"):
        self.key = workdir / "token.key"
        self.cert = workdir / "token.crt"
        self.service, self.issuer = service, issuer
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key),
                        "-out", str(self.cert), "-days", "2", "-subj", "/CN=pyrun-test-token"],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"], check=True,
                             capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()

    def token(self, subject: str, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            typ, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": typ, "name": name, "actions": [a for a in actions.split(",") if a]})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": self.issuer, "sub": subject, "aud": self.service, "exp": now + 600, "nbf": now - 10,
                  "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)], input=signing_input.encode(),
                             check=True, capture_output=True).stdout
        return f"{signing_input}.{b64url(sig)}"


class TokenServer:
    """GET /token?service=..&scope=..  with Basic user:pass -> {"token": ...}; 401 on bad credentials."""

    def __init__(self, issuer: TokenIssuer, users: dict[str, str]):
        self.issuer, self.users = issuer, users
        self.requests: list[dict] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                import urllib.parse
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                user = None
                hdr = self.headers.get("Authorization", "")
                if hdr.startswith("Basic "):
                    u, _, p = base64.b64decode(hdr[6:]).decode().partition(":")
                    if outer.users.get(u) != p:
                        return self._send(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
                    user = u
                outer.requests.append({"user": user, "scope": q.get("scope", [])})
                if user is None:
                    return self._send(401, {"errors": [{"code": "UNAUTHORIZED", "message": "login required"}]})
                self._send(200, {"token": outer.issuer.token(user, q.get("scope", [])), "expires_in": 600})

            def _send(self, code, doc):
                body = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --- the real registry ----------------------------------------------------------------------------

class RealRegistry:
    BINARY = "/usr/bin/docker-registry"

    def __init__(self, workdir: Path, auth: str = "none", users: dict[str, str] | None = None):
        need(self.BINARY)
        self.workdir = workdir
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.users = users or {}
        self.token_server: TokenServer | None = None
        (workdir / "storage").mkdir(parents=True, exist_ok=True)
        lines = ["version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: true",
                 "storage:", "  filesystem:", f"    rootdirectory: {workdir / 'storage'}",
                 "  delete:", "    enabled: true", "http:", f"  addr: 127.0.0.1:{self.port}",
                 f"  secret: {os.urandom(8).hex()}"]
        if auth == "htpasswd":
            htpasswd = workdir / "htpasswd"
            htpasswd.write_text("".join(f"{u}:{bcrypt_hash(p)}\n" for u, p in self.users.items()))
            lines += ["auth:", "  htpasswd:", "    realm: pyrun-test", f"    path: {htpasswd}"]
        elif auth == "token":
            issuer = TokenIssuer(workdir, service="pyrun-test-registry")
            self.token_server = TokenServer(issuer, self.users)
            lines += ["auth:", "  token:", f"    realm: {self.token_server.realm}",
                      f"    service: {issuer.service}", f"    issuer: {issuer.issuer}",
                      f"    rootcertbundle: {issuer.cert}"]
        (workdir / "config.yml").write_text("\n".join(lines) + "\n")
        self.log = open(workdir / "registry.log", "wb")
        self.proc = subprocess.Popen([self.BINARY, "serve", str(workdir / "config.yml")], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
                return
            except urllib.error.HTTPError:
                return  # 401: up, wants auth
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"docker-registry did not start: {(self.workdir / 'registry.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        if self.token_server:
            self.token_server.stop()


def bcrypt_hash(password: str) -> str:
    try:
        import bcrypt
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
    except ImportError:
        need("htpasswd")
        out = subprocess.run(["htpasswd", "-nbB", "x", password], check=True, capture_output=True, text=True).stdout
        return out.strip().split(":", 1)[1]


def push(layout: Path, dest: str, creds: str | None = None, fmt: str | None = None, all_: bool = False,
         ref: str | None = None) -> None:
    """skopeo copy oci:LAYOUT[:ref] docker://DEST (plain HTTP: it is 127.0.0.1)."""
    need("skopeo")
    cmd = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--insecure-policy"]
    if creds:
        cmd += ["--dest-creds", creds]
    if fmt:
        cmd += ["--format", fmt]
    if all_:
        cmd += ["--all"]
    src = f"oci:{layout}" + (f":{ref}" if ref else "")
    p = subprocess.run(cmd + [src, f"docker://{dest}"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "HOME": str(layout.parent)})
    if p.returncode != 0:
        raise AssertionError(f"skopeo copy failed: {p.stderr}")


# --- a fake registry -------------------------------------------------------------------------------

class FakeRegistry:
    """Serves /v2/<name>/manifests/<ref> and /v2/<name>/blobs/<digest> from dicts.

    Knobs: `corrupt` (digest -> bytes served instead), `truncate` (digest -> bytes sent before
    the connection is closed; applied to every request), `bearer` (token required; token
    endpoint /token with `users`), `basic` (users for Basic auth). `requests` logs paths and
    headers.
    """

    def __init__(self):
        self.manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.blobs: dict[str, bytes] = {}
        self.corrupt: dict[str, bytes] = {}
        self.truncate: dict[str, int] = {}
        self.truncate_once = False  # only the first request of a truncated blob is cut
        self.bearer = False
        self.basic = False
        self.users: dict[str, str] = {}
        self.requests: list[tuple[str, dict]] = []
        self.token = "tok-" + os.urandom(8).hex()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.requests.append((self.path, dict(self.headers)))
                outer.handle(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add_layout(self, layout: Path, name: str, tag: str) -> None:
        """Serve every blob of an OCI layout, and its index.json's first manifest as name:tag."""
        for p in (layout / "blobs" / "sha256").iterdir():
            self.blobs["sha256:" + p.name] = p.read_bytes()
        desc = json.loads((layout / "index.json").read_text())["manifests"][0]
        data = self.blobs[desc["digest"]]
        self.manifests[(name, tag)] = (data, desc["mediaType"])
        self.manifests[(name, desc["digest"])] = (data, desc["mediaType"])

    def _auth_ok(self, h) -> bool:
        got = h.headers.get("Authorization", "")
        if self.bearer:
            return got == f"Bearer {self.token}"
        if self.basic:
            if not got.startswith("Basic "):
                return False
            u, _, p = base64.b64decode(got[6:]).decode().partition(":")
            return self.users.get(u) == p
        return True

    def handle(self, h) -> None:
        import urllib.parse
        url = urllib.parse.urlsplit(h.path)
        if url.path == "/token":
            hdr = h.headers.get("Authorization", "")
            if hdr.startswith("Basic "):
                u, _, p = base64.b64decode(hdr[6:]).decode().partition(":")
                if self.users.get(u) != p:
                    return self.send(h, 401, json.dumps({"errors": [{"code": "DENIED", "message": "bad"}]}).encode())
            return self.send(h, 200, json.dumps({"token": self.token}).encode(), "application/json")
        if not self._auth_ok(h):
            challenge = (f'Bearer realm="http://{self.host}/token",service="fake",scope="repository:x:pull"'
                         if self.bearer else 'Basic realm="fake"')
            return self.send(h, 401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                             "application/json", {"WWW-Authenticate": challenge})
        parts = url.path.split("/")
        if url.path == "/v2/":
            return self.send(h, 200, b"{}")
        if len(parts) >= 5 and parts[1] == "v2" and parts[-2] in ("manifests", "blobs"):
            name, kind, ref = "/".join(parts[2:-2]), parts[-2], parts[-1]
            if kind == "manifests" and (name, ref) in self.manifests:
                data, mt = self.manifests[(name, ref)]
                return self.send(h, 200, data, mt, {"Docker-Content-Digest": "sha256:" + hashlib.sha256(data).hexdigest()})
            if kind == "blobs" and ref in self.blobs:
                return self.send_blob(h, ref)
        self.send(h, 404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"unknown"}]}', "application/json")

    def send_blob(self, h, digest: str) -> None:
        data = self.corrupt.get(digest, self.blobs[digest])
        start = 0
        rng = h.headers.get("Range", "")
        if rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
        body = data[start:]
        h.send_response(206 if start else 200)
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Content-Type", "application/octet-stream")
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.end_headers()
        cut = self.truncate.pop(digest, None) if self.truncate_once else self.truncate.get(digest)
        if cut is not None:
            h.wfile.write(body[:cut])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        h.wfile.write(body)

    @staticmethod
    def send(h, code: int, body: bytes, ctype: str = "application/json", headers: dict | None = None) -> None:
        h.send_response(code)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
