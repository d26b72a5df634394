"""Registry credentials: --creds, docker-style config.json auth files, CRI AuthConfig dicts,
and the WWW-Authenticate challenge. Pure except `load_authfile()`, which reads one file.

An auth file (docker config.json, containers-auth.json(5), a Kubernetes
ImagePullSecret's .dockerconfigjson) looks like:

    {"auths": {"registry.example:5000": {"auth": "<base64 user:pass>"},
               "https://index.docker.io/v1/": {"username": "u", "password": "p"}}}

Keys may carry a scheme and a path; entries match on the host (docker.io also
under index.docker.io and registry-1.docker.io), or on host/path prefixes of the
repository, longest first (as containers-auth.json allows).
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pyrun.errors import ImageError, UsageError
from pyrun.images import reference

DOCKER_HUB_KEYS = ("docker.io", "index.docker.io", "registry-1.docker.io")


@dataclass(frozen=True)
class Credentials:
    """What to present to a registry: a user/password, an OAuth2 refresh (identity) token, or a bearer token."""

    username: str | None = None
    password: str | None = None
    identity_token: str | None = None
    registry_token: str | None = None

    def __repr__(self) -> str:  # never print secrets
        return f"Credentials(username={self.username!r}, secrets={'***' if self else None})"

    def __bool__(self) -> bool:
        return bool(self.username or self.password or self.identity_token or self.registry_token)

    def basic_header(self) -> str | None:
        if self.username is None and self.password is None:
            return None
        raw = f"{self.username or ''}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def _decode_auth(value: str, where: str) -> tuple[str, str]:
    try:
        raw = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ImageError(f"{where}: 'auth' is not base64 of user:password") from None
    user, sep, password = raw.partition(":")
    if not sep:
        raise ImageError(f"{where}: 'auth' does not decode to user:password")
    return user, password


def from_dict(doc: dict | None, where: str = "auth") -> Credentials | None:
    """A CRI AuthConfig / auth-file entry: username+password, auth (base64), identity_token, registry_token."""
    if not doc:
        return None
    if not isinstance(doc, dict):
        raise ImageError(f"{where}: expected an object")
    get = lambda *keys: next((doc[k] for k in keys if doc.get(k)), None)  # noqa: E731
    user, password = get("username"), get("password")
    if get("auth"):
        user, password = _decode_auth(get("auth"), where)
    creds = Credentials(user, password, get("identity_token", "identitytoken", "identityToken"),
                        get("registry_token", "registrytoken", "registryToken"))
    return creds if creds else None


def parse_creds(text: str) -> Credentials:
    """--creds user:password (the password may contain ':')."""
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise UsageError("--creds: expected USER:PASSWORD")
    return Credentials(user, password)


def _key_host_path(key: str) -> str:
    k = re.sub(r"^[a-z]+://", "", key).rstrip("/")
    if k.endswith("/v1") or k.endswith("/v2"):
        k = k[:-3]
    host, sep, path = k.partition("/")
    if host in DOCKER_HUB_KEYS:
        host = reference.DEFAULT_DOMAIN
    return host + sep + path


def lookup(auths: dict, repository: str, host: str | None = None) -> Credentials | None:
    """The auth-file entry for `repository` (domain/path), longest matching key first;
    or for `host` alone (a mirror) when given."""
    candidates = {}
    for key, entry in auths.items():
        candidates.setdefault(_key_host_path(key), (key, entry))
    targets = [host] if host else []
    if not host:
        parts = repository.split("/")
        targets = ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]
    for t in targets:
        if t in candidates:
            key, entry = candidates[t]
            return from_dict(entry, f"auth file entry {key!r}")
    return None


def authfile_path(explicit: str | os.PathLike | None = None) -> Path:
    """--authfile, else $REGISTRY_AUTH_FILE, else ~/.docker/config.json."""
    if explicit:
        return Path(explicit)
    if os.environ.get("REGISTRY_AUTH_FILE"):
        return Path(os.environ["REGISTRY_AUTH_FILE"])
    return Path.home() / ".docker" / "config.json"


def parse_authfile(text: str, source: str) -> dict:
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ImageError(f"{source}: not valid JSON: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("auths", {}), dict):
        raise ImageError(f"{source}: expected an object with an 'auths' object")
    return doc.get("auths", {})


def load_authfile(path: Path, required: bool = False) -> dict:
    """The 'auths' object of a docker config.json; {} when the default file does not exist."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        if required:
            raise ImageError(f"{path}: auth file not found") from None
        return {}
    except OSError as e:
        raise ImageError(f"{path}: cannot read the auth file: {e.strerror}") from None
    return parse_authfile(text, str(path))


# --- WWW-Authenticate (RFC 7235) ----------------------------------------------------------------

_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


@dataclass(frozen=True)
class Challenge:
    scheme: str          # "bearer" or "basic" (lower case)
    params: dict


def parse_challenge(header: str) -> Challenge:
    """'Bearer realm="https://a/token",service="reg",scope="repository:x:pull"' -> Challenge. Pure.

    Only the first challenge is read (registries send one).
    """
    header = (header or "").strip()
    scheme, _, rest = header.partition(" ")
    if not scheme:
        raise ImageError("registry answered 401 without a WWW-Authenticate challenge")
    params = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if not m or m.end() == pos:
            break
        value = m.group(2) if m.group(2) is not None else m.group(3)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
        pos = m.end()
    return Challenge(scheme.lower(), params)
