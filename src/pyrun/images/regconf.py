"""Registry endpoints: where to fetch `domain/path`, over HTTP or HTTPS, through which mirrors.

Pure except `load()`, which reads one file. The format is a small subset of
containers-registries.conf(5) in TOML (or the same shape in JSON):

    # /etc/pyrun/registries.toml  (or $PYRUN_REGISTRIES_CONF)
    [[registry]]
    prefix = "docker.io"                  # matches docker.io/... (longest prefix wins)
    location = "registry-1.docker.io"     # optional: where the prefix really lives
    insecure = false                      # plain HTTP for `location`
    mirrors = ["127.0.0.1:5000", { location = "mirror.lab:5000/hub", insecure = true }]

A prefix is `host[/path]`; `location` and each mirror replace that prefix in the
repository name (so "mirror.lab:5000/hub" serves docker.io/library/x as
hub/library/x). Mirrors are tried first, in order, then the location
(containerd's hosts.toml does the same). Loopback hosts (localhost, 127.0.0.0/8,
[::1]) speak HTTP unless a registry entry says `insecure = false`.
"""
from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path

from pyrun.errors import ImageError
from pyrun.images import reference

DEFAULT_PATH = Path("/etc/pyrun/registries.toml")
ENV_PATH = "PYRUN_REGISTRIES_CONF"
DOCKER_HUB_ENDPOINT = "registry-1.docker.io"


@dataclass(frozen=True)
class Endpoint:
    """One place to fetch a repository from: https://host/v2/<path>/... (or http:// when insecure)."""

    host: str            # host[:port]
    path: str            # repository path at that host, e.g. library/busybox
    insecure: bool       # plain HTTP
    mirror: bool = False

    @property
    def base_url(self) -> str:
        return f"{'http' if self.insecure else 'https'}://{self.host}"


@dataclass(frozen=True)
class Mirror:
    location: str
    insecure: bool | None = None


@dataclass(frozen=True)
class RegistryEntry:
    prefix: str
    location: str | None = None
    insecure: bool | None = None
    mirrors: tuple[Mirror, ...] = ()


@dataclass(frozen=True)
class RegistriesConfig:
    registries: tuple[RegistryEntry, ...] = ()
    source: str = "<defaults>"

    def entry_for(self, repository: str) -> RegistryEntry | None:
        """The entry with the longest prefix matching `repository` at a '/' boundary."""
        best = None
        for e in self.registries:
            if repository == e.prefix or repository.startswith(e.prefix + "/"):
                if best is None or len(e.prefix) > len(best.prefix):
                    best = e
        return best


def is_loopback_host(host: str) -> bool:
    name = host
    if name.startswith("["):
        name = name[1:name.find("]")]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _split_location(location: str) -> tuple[str, str]:
    host, _, path = location.partition("/")
    return host, path.strip("/")


def _default_location(prefix: str) -> str:
    """docker.io[/x] is served by registry-1.docker.io[/x]; every other prefix by itself."""
    host, sep, rest = prefix.partition("/")
    return (DOCKER_HUB_ENDPOINT if host == reference.DEFAULT_DOMAIN else host) + sep + rest


def _rewrite(location: str, repository: str, prefix: str) -> tuple[str, str]:
    host, base = _split_location(location)
    rest = repository[len(prefix):].strip("/")
    path = "/".join(p for p in (base, rest) if p)
    return host, path


def endpoints(ref: reference.Reference, config: RegistriesConfig | None = None,
              insecure_hosts: frozenset[str] | set[str] = frozenset()) -> list[Endpoint]:
    """Where to look for `ref`, mirrors first. `insecure_hosts` (from --insecure) force HTTP."""
    config = config or RegistriesConfig()
    repo = ref.repository
    entry = config.entry_for(repo)
    prefix = entry.prefix if entry else ref.domain
    location = (entry.location if entry else None) or _default_location(prefix)

    def make(loc: str, insecure: bool | None, mirror: bool) -> Endpoint:
        host, path = _rewrite(loc, repo, prefix)
        if host in insecure_hosts:
            insecure = True
        if insecure is None:
            insecure = is_loopback_host(host)
        return Endpoint(host, path, insecure, mirror)

    out = [make(m.location, m.insecure, True) for m in (entry.mirrors if entry else ())]
    out.append(make(location, entry.insecure if entry else None, False))
    return out


# --- parsing (pure) -----------------------------------------------------------------------------

def _bool(value: object, where: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ImageError(f"{where}: expected true or false, got {value!r}")


def _location(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip("/") or any(c.isspace() for c in value) or "://" in value:
        raise ImageError(f"{where}: expected host[:port][/path] (no scheme), got {value!r}")
    return value.strip("/")


def parse(doc: object, source: str) -> RegistriesConfig:
    """Validate a parsed TOML/JSON document; ImageError names the file and the field."""
    if not isinstance(doc, dict):
        raise ImageError(f"{source}: expected a table with [[registry]] entries")
    unknown = set(doc) - {"registry"}
    if unknown:
        raise ImageError(f"{source}: unknown key(s) {', '.join(sorted(unknown))} (only [[registry]] is read)")
    entries = []
    for i, r in enumerate(doc.get("registry") or []):
        where = f"{source}: registry[{i}]"
        if not isinstance(r, dict):
            raise ImageError(f"{where}: expected a table")
        bad = set(r) - {"prefix", "location", "insecure", "mirrors", "mirror"}
        if bad:
            raise ImageError(f"{where}: unknown key(s) {', '.join(sorted(bad))}")
        prefix = _location(r.get("prefix", r.get("location")), f"{where}.prefix")
        if prefix.split("/", 1)[0] in reference.LEGACY_DOMAINS:
            prefix = reference.DEFAULT_DOMAIN + prefix[len(prefix.split("/", 1)[0]):]
        location = _location(r["location"], f"{where}.location") if "location" in r else None
        mirrors = []
        raw = r.get("mirrors", r.get("mirror")) or []
        if not isinstance(raw, list):
            raise ImageError(f"{where}.mirrors: expected a list")
        for j, m in enumerate(raw):
            mw = f"{where}.mirrors[{j}]"
            if isinstance(m, str):
                mirrors.append(Mirror(_location(m, mw)))
            elif isinstance(m, dict):
                mirrors.append(Mirror(_location(m.get("location"), f"{mw}.location"),
                                      _bool(m.get("insecure"), f"{mw}.insecure")))
            else:
                raise ImageError(f"{mw}: expected a string or a table with location")
        entries.append(RegistryEntry(prefix, location, _bool(r.get("insecure"), f"{where}.insecure"), tuple(mirrors)))
    return RegistriesConfig(tuple(entries), source)


def parse_text(text: str, source: str) -> RegistriesConfig:
    if source.endswith(".json"):
        try:
            return parse(json.loads(text), source)
        except ValueError as e:
            raise ImageError(f"{source}: not valid JSON: {e}") from None
    import tomllib
    try:
        return parse(tomllib.loads(text), source)
    except tomllib.TOMLDecodeError as e:
        raise ImageError(f"{source}: not valid TOML: {e}") from None


def load(path: Path | str | None = None) -> RegistriesConfig:
    """Read `path`, or $PYRUN_REGISTRIES_CONF, or /etc/pyrun/registries.toml if it exists."""
    explicit = path is not None or ENV_PATH in os.environ
    p = Path(path or os.environ.get(ENV_PATH) or DEFAULT_PATH)
    try:
        text = p.read_text()
    except FileNotFoundError:
        if explicit:
            raise ImageError(f"{p}: registries config not found") from None
        return RegistriesConfig()
    except OSError as e:
        raise ImageError(f"{p}: cannot read the registries config: {e.strerror}") from None
    return parse_text(text, str(p))
