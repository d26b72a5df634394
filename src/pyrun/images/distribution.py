"""A small client for the OCI distribution API (v2), on the standard library's http.client.

Only what a pull needs: GET a manifest, GET a blob (optionally from an offset
with an HTTP Range), follow redirects, and answer a 401 with Basic credentials
or a Bearer token fetched from the challenge's realm (the docker token
protocol; an OAuth2 refresh token when an identity token is given).

Not here: digest verification and storage (pyrun.images.blobs does both while
the blob streams), endpoint choice (regconf) and credential lookup (auth).
References: https://github.com/opencontainers/distribution-spec/blob/main/spec.md,
https://distribution.github.io/distribution/spec/auth/token/
"""
from __future__ import annotations

import http.client
import json
import socket
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import Callable

from pyrun.errors import ImageError, NotFound
from pyrun.images.auth import Credentials, parse_challenge
from pyrun.images.regconf import Endpoint

MANIFEST_ACCEPT = ", ".join((
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))
MANIFEST_MAX = 4 << 20          # the distribution spec lets registries refuse larger ones too
MAX_REDIRECTS = 5
USER_AGENT = "pyrun"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Fetched:
    data: bytes
    media_type: str
    digest: str | None  # the Docker-Content-Digest header, if sent


def _errors_of(body: bytes) -> str:
    """The registry's error list ({"errors":[{"code","message"}]}) as one short string."""
    try:
        doc = json.loads(body[:65536])
        errs = doc.get("errors") or []
        text = "; ".join(f"{e.get('code', '?')}: {e.get('message', '')}".strip() for e in errs if isinstance(e, dict))
        return text or body[:200].decode(errors="replace").strip()
    except (ValueError, AttributeError):
        return body[:200].decode(errors="replace").strip()


class RegistryClient:
    """Talks to one endpoint (host + repository path). Not thread-safe."""

    def __init__(self, endpoint: Endpoint, creds: Credentials | None = None, timeout: float = 60.0):
        self.endpoint = endpoint
        self.creds = creds
        self.timeout = timeout
        self._auth_header: str | None = None
        self._tried_auth = False

    @property
    def label(self) -> str:
        return f"{self.endpoint.base_url}/{self.endpoint.path}"

    # --- HTTP ------------------------------------------------------------------------------------

    def _connect(self, url: urllib.parse.SplitResult) -> http.client.HTTPConnection:
        if url.scheme == "https":
            return http.client.HTTPSConnection(url.netloc, timeout=self.timeout, context=ssl.create_default_context())
        if url.scheme == "http":
            return http.client.HTTPConnection(url.netloc, timeout=self.timeout)
        raise ImageError(f"{self.label}: unsupported URL scheme in {urllib.parse.urlunsplit(url)!r}")

    def _send(self, method: str, url: str, headers: dict, body: bytes | None = None) -> http.client.HTTPResponse:
        """One request, following redirects. Authorization is dropped when a redirect leaves the host."""
        origin = urllib.parse.urlsplit(url).netloc
        for _ in range(MAX_REDIRECTS + 1):
            parts = urllib.parse.urlsplit(url)
            conn = self._connect(parts)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            h = {"User-Agent": USER_AGENT, **headers}
            if parts.netloc != origin:
                h.pop("Authorization", None)
            try:
                conn.request(method, path or "/", body=body, headers=h)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                raise ImageError(f"{self.label}: cannot reach {parts.scheme}://{parts.netloc}: {_why(e)}") from None
            if resp.status in (301, 302, 303, 307, 308) and resp.getheader("Location"):
                url = urllib.parse.urljoin(url, resp.getheader("Location"))
                resp.read()
                conn.close()
                if resp.status == 303:
                    method, body = "GET", None
                continue
            return resp
        raise ImageError(f"{self.label}: more than {MAX_REDIRECTS} redirects for {method} {url}")

    def request(self, method: str, rel: str, headers: dict | None = None) -> http.client.HTTPResponse:
        """A request to /v2/<path>/<rel>, authenticating once on 401."""
        url = f"{self.endpoint.base_url}/v2/{self.endpoint.path}/{rel}"
        while True:
            h = dict(headers or {})
            if self._auth_header:
                h["Authorization"] = self._auth_header
            resp = self._send(method, url, h)
            if resp.status != 401:
                return resp
            body = resp.read(65536)
            resp.close()
            if self._tried_auth:
                who = f"as {self.creds.username!r}" if self.creds and self.creds.username else "anonymously"
                raise ImageError(f"{self.label}: authentication failed {who} (401: {_errors_of(body)}); "
                                 "check the credentials (--creds, --authfile)")
            self._tried_auth = True
            self._authenticate(resp.getheader("WWW-Authenticate") or "")

    def _authenticate(self, header: str) -> None:
        ch = parse_challenge(header)
        if ch.scheme == "basic":
            basic = self.creds.basic_header() if self.creds else None
            if not basic:
                raise ImageError(f"{self.label}: the registry wants a user name and password "
                                 "(--creds USER:PASS or an --authfile entry)")
            self._auth_header = basic
        elif ch.scheme == "bearer":
            if self.creds and self.creds.registry_token:
                self._auth_header = f"Bearer {self.creds.registry_token}"
            else:
                self._auth_header = f"Bearer {self._fetch_token(ch.params)}"
        else:
            raise ImageError(f"{self.label}: unsupported authentication scheme {ch.scheme!r}")

    def _fetch_token(self, params: dict) -> str:
        realm = params.get("realm")
        if not realm or urllib.parse.urlsplit(realm).scheme not in ("http", "https"):
            raise ImageError(f"{self.label}: bearer challenge without a usable realm ({realm!r})")
        service = params.get("service")
        scope = params.get("scope") or f"repository:{self.endpoint.path}:pull"
        creds = self.creds
        if creds and creds.identity_token:  # OAuth2 refresh token (docker's identitytoken)
            form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                    "client_id": USER_AGENT, "scope": scope, **({"service": service} if service else {})}
            resp = self._send("POST", realm, {"Content-Type": "application/x-www-form-urlencoded"},
                              urllib.parse.urlencode(form).encode())
        else:
            q = urllib.parse.urlencode([*([("service", service)] if service else []), ("scope", scope)])
            headers = {}
            if creds and creds.basic_header():
                headers["Authorization"] = creds.basic_header()
            resp = self._send("GET", realm + ("&" if "?" in realm else "?") + q, headers)
        body = resp.read(1 << 20)
        resp.close()
        if resp.status != 200:
            raise ImageError(f"{self.label}: token server {realm} refused ({resp.status}: {_errors_of(body)}); "
                             "check the credentials (--creds, --authfile)")
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise ImageError(f"{self.label}: token server {realm} sent no token")
        return token

    # --- the API ---------------------------------------------------------------------------------

    def manifest(self, ref: str) -> Fetched:
        """GET /v2/<path>/manifests/<tag or digest>. NotFound when the registry does not know it."""
        resp = self.request("GET", f"manifests/{ref}", {"Accept": MANIFEST_ACCEPT})
        try:
            body = resp.read(MANIFEST_MAX + 1)
        except (OSError, http.client.HTTPException) as e:
            raise ImageError(f"{self.label}: manifest {ref}: connection lost: {_why(e)}") from None
        finally:
            resp.close()
        if resp.status == 404:
            raise NotFound(f"{self.label}: manifest {ref} not found ({_errors_of(body)})")
        if resp.status != 200:
            raise ImageError(f"{self.label}: manifest {ref}: HTTP {resp.status} ({_errors_of(body)})")
        if len(body) > MANIFEST_MAX:
            raise ImageError(f"{self.label}: manifest {ref} is larger than {MANIFEST_MAX} bytes")
        mt = (resp.getheader("Content-Type") or "").split(";", 1)[0].strip()
        return Fetched(body, mt, resp.getheader("Docker-Content-Digest"))

    def open_blob(self, digest: str, offset: int = 0) -> tuple[http.client.HTTPResponse, int]:
        """GET /v2/<path>/blobs/<digest> from `offset`; returns (response, offset it really starts at)."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp = self.request("GET", f"blobs/{digest}", headers)
        if resp.status == 206 and offset:
            start = _content_range_start(resp.getheader("Content-Range"))
            if start == offset:
                return resp, offset
        if resp.status == 200:
            return resp, 0
        body = resp.read(65536)
        resp.close()
        if resp.status == 404:
            raise ImageError(f"{self.label}: blob {digest} is missing from the registry ({_errors_of(body)})")
        raise ImageError(f"{self.label}: blob {digest}: HTTP {resp.status} ({_errors_of(body)})")


def _content_range_start(value: str | None) -> int | None:
    try:
        unit, _, spec = (value or "").partition(" ")
        return int(spec.split("-", 1)[0]) if unit == "bytes" else None
    except ValueError:
        return None


def _why(e: BaseException) -> str:
    if isinstance(e, socket.timeout):
        return "timed out"
    if isinstance(e, ssl.SSLError):
        return f"TLS error: {e.reason or e}"
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


class BlobStream:
    """A read()-able blob download that resumes with a Range request when the connection drops.

    Yields at most `size` bytes (a registry cannot make the store read forever);
    the store's digest check decides whether they are right. `on_bytes(n)` reports progress.
    """

    def __init__(self, client: RegistryClient, digest: str, size: int, retries: int = 3,
                 on_bytes: Callable[[int], None] | None = None):
        self.client = client
        self.digest = digest
        self.size = size
        self.retries = retries
        self.on_bytes = on_bytes
        self.delivered = 0
        self._resp: http.client.HTTPResponse | None = None
        self._skip = 0

    def _open(self) -> None:
        self._resp, start = self.client.open_blob(self.digest, self.delivered)
        self._skip = self.delivered - start  # the server ignored the Range: drop what we already have

    def read(self, n: int = CHUNK) -> bytes:
        if n is None or n < 0:
            n = CHUNK
        while self.delivered < self.size:
            want = min(n, self.size - self.delivered)
            chunk, err = b"", None
            try:
                if self._resp is None:
                    self._open()
                chunk = self._resp.read(want + self._skip if self._skip else want)
            except (OSError, http.client.HTTPException) as e:
                err = _why(e)
            if self._skip and chunk:
                drop = min(self._skip, len(chunk))
                chunk, self._skip = chunk[drop:], self._skip - drop
                if not chunk:
                    continue
            if chunk:
                self.delivered += len(chunk)
                if self.on_bytes:
                    self.on_bytes(len(chunk))
                return chunk
            self._drop()
            if self.retries <= 0:
                raise ImageError(f"{self.client.label}: blob {self.digest}: connection lost after "
                                 f"{self.delivered} of {self.size} bytes ({err or 'closed early'}); nothing stored")
            self.retries -= 1
        return b""

    def _drop(self) -> None:
        if self._resp is not None:
            self._resp.close()
            self._resp = None

    def close(self) -> None:
        self._drop()

    def __enter__(self) -> "BlobStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

