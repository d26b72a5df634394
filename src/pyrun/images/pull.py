"""Pull an image from a registry into the store: resolve endpoints and credentials, fetch and
verify the manifest (choosing this platform from an index), then hand the blobs to
`ImageStore.ingest`, which verifies each one while it streams and stores it atomically.

    from pyrun.images.pull import pull_image
    image = pull_image(store, "busybox", {"username": "u", "password": "p"})

A second pull of the same image downloads nothing: blobs already verified in the
store are kept, and a dropped connection resumes with an HTTP Range request.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

from pyrun.errors import ImageError, PyrunError
from pyrun.images import auth as authmod
from pyrun.images import oci, reference, regconf
from pyrun.images.build import digest_of
from pyrun.images.distribution import BlobStream, Fetched, RegistryClient
from pyrun.images.store import Image, ImageStore

SCHEMA1_TYPES = ("application/vnd.docker.distribution.manifest.v1+json",
                 "application/vnd.docker.distribution.manifest.v1+prettyjws")
DEFAULT_PLATFORM = "linux/amd64"


# --- platform (pure) ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def parse_platform(text: str) -> Platform:
    """'linux/amd64', 'linux/arm64/v8', 'linux/arm/v7'."""
    parts = (text or "").split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ImageError(f"invalid platform {text!r}: expected os/arch[/variant], e.g. linux/amd64")
    return Platform(*parts)


def _platform_of(d: oci.Descriptor) -> str:
    p = d.platform
    return "/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x) or "unknown"


def select_manifest(descs: list[oci.Descriptor], want: Platform, what: str) -> oci.Descriptor:
    """The index entry for `want`; with no variant asked, one without a variant (or arm64's v8) first. Pure."""
    same = [d for d in descs if d.platform.get("os") == want.os and d.platform.get("architecture") == want.architecture]
    if want.variant:
        same = [d for d in same if d.platform.get("variant") == want.variant
                or (want.architecture == "arm64" and want.variant == "v8" and not d.platform.get("variant"))]
    else:
        same.sort(key=lambda d: d.platform.get("variant") not in (None, "", "v8"))
    if not same:
        offered = ", ".join(sorted({_platform_of(d) for d in descs})) or "none"
        raise ImageError(f"{what}: no manifest for {want} (offered: {offered}); choose one with --platform")
    return same[0]


# --- progress -----------------------------------------------------------------------------------

class Progress(Protocol):
    """Receives per-blob download events (the CLI draws bars or prints lines)."""

    def start(self, digest: str, size: int, what: str) -> None: ...
    def advance(self, digest: str, n: int) -> None: ...
    def done(self, digest: str, status: str) -> None: ...  # "done", "exists", "failed"


class _Opener:
    """ImageStore.ingest's blob opener: streams from the registry, reporting progress."""

    def __init__(self, client: RegistryClient, manifest: oci.Manifest, progress: Progress | None):
        self.client = client
        self.progress = progress
        self.sizes = {manifest.config.digest: (manifest.config.size, "config")}
        for i, d in enumerate(manifest.layers):
            self.sizes.setdefault(d.digest, (d.size, f"layer {i + 1}/{len(manifest.layers)}"))

    def __call__(self, digest: str) -> "_Tracked":
        size, what = self.sizes[digest]
        return _Tracked(self, BlobStream(self.client, digest, size, on_bytes=self._bytes(digest)), size, what)

    def _bytes(self, digest: str):
        return (lambda n: self.progress.advance(digest, n)) if self.progress else None


class _Tracked:
    def __init__(self, opener: _Opener, stream: BlobStream, size: int, what: str):
        self.opener, self.stream, self.size, self.what = opener, stream, size, what

    def read(self, n: int = -1) -> bytes:
        return self.stream.read(n)

    def __enter__(self) -> "_Tracked":
        if self.opener.progress:
            self.opener.progress.start(self.stream.digest, self.size, self.what)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stream.close()
        if self.opener.progress:
            self.opener.progress.done(self.stream.digest, "failed" if exc_type else "done")


# --- manifests ----------------------------------------------------------------------------------

def _verify(fetched: Fetched, expected: str | None, what: str) -> str:
    got = digest_of(fetched.data)
    if expected and got != expected:
        raise ImageError(f"{what}: digest mismatch: asked for {expected}, the registry sent {got}")
    header = fetched.digest
    if header and header.startswith("sha256:") and header != got:
        raise ImageError(f"{what}: digest mismatch: Docker-Content-Digest says {header}, content has {got}")
    return got


def _kind(fetched: Fetched, what: str) -> str:
    doc = oci.load_json(fetched.data, what)
    mt = doc.get("mediaType") or fetched.media_type
    if mt in SCHEMA1_TYPES or doc.get("schemaVersion") == 1:
        raise ImageError(f"{what}: Docker schema 1 manifests are not supported (push the image again "
                         "with a current client)")
    if mt in oci.INDEX_TYPES or "manifests" in doc:
        return "index"
    return "manifest"


def resolve_manifest(client: RegistryClient, ref: reference.Reference, platform: Platform) -> bytes:
    """Fetch the manifest for `ref` (following an index to `platform`), verified by digest."""
    want = ref.digest or ref.tag or reference.DEFAULT_TAG
    what = f"{client.label}: manifest {want}"
    fetched = client.manifest(want)
    _verify(fetched, ref.digest, what)
    if _kind(fetched, what) == "manifest":
        return fetched.data
    doc = oci.load_json(fetched.data, what)
    descs = [oci.Descriptor.parse(d, f"{what} manifests[{i}]") for i, d in enumerate(doc.get("manifests") or [])]
    chosen = select_manifest(descs, platform, what)
    what = f"{client.label}: manifest {chosen.digest} ({platform})"
    fetched = client.manifest(chosen.digest)
    _verify(fetched, chosen.digest, what)
    if _kind(fetched, what) != "manifest":
        raise ImageError(f"{what}: an image index inside an image index is not supported")
    return fetched.data


# --- credentials per endpoint -------------------------------------------------------------------

def _explicit(auth: dict | authmod.Credentials | None) -> authmod.Credentials | None:
    if isinstance(auth, authmod.Credentials):
        return auth or None
    return authmod.from_dict(auth, "auth")


def credentials_for(ep: regconf.Endpoint, ref: reference.Reference, explicit: authmod.Credentials | None,
                    auths: dict) -> authmod.Credentials | None:
    """Explicit credentials go to the image's own registry only, never to a mirror
    (a mirror gets its own auth-file entry). Pure."""
    if ep.mirror:
        return authmod.lookup(auths, ref.repository, host=ep.host)
    return explicit or authmod.lookup(auths, ref.repository) or authmod.lookup(auths, ref.repository, host=ep.host)


# --- the entry point ----------------------------------------------------------------------------

def pull_image(store: ImageStore, ref: str, auth: dict | authmod.Credentials | None = None, *,
               platform: str = DEFAULT_PLATFORM, config: regconf.RegistriesConfig | str | os.PathLike | None = None,
               progress: Progress | None = None, authfile: str | os.PathLike | None = None,
               insecure_hosts: frozenset[str] | set[str] = frozenset(), timeout: float = 60.0,
               unpack: bool = True) -> Image:
    """Pull `ref` (normalised: busybox -> docker.io/library/busybox:latest) into `store` and tag it.

    auth: {"username","password"} | {"auth": base64("user:pass")} | {"identity_token"} |
    {"registry_token"} (the CRI AuthConfig fields), or None to use the auth file
    (`authfile`, $REGISTRY_AUTH_FILE, ~/.docker/config.json). config: registries
    config (object or path; None reads $PYRUN_REGISTRIES_CONF or /etc/pyrun/registries.toml).
    Raises ImageError (bad reply, digest mismatch, auth failure) or NotFound (no such manifest).
    """
    parsed = reference.parse(ref)
    want = parse_platform(platform)
    regs = config if isinstance(config, regconf.RegistriesConfig) else regconf.load(config)
    explicit = _explicit(auth)
    auths = authmod.load_authfile(authmod.authfile_path(authfile), required=authfile is not None)
    failures: list[str] = []
    eps = regconf.endpoints(parsed, regs, frozenset(insecure_hosts))
    for i, ep in enumerate(eps):
        client = RegistryClient(ep, credentials_for(ep, parsed, explicit, auths), timeout)
        try:
            manifest_bytes = resolve_manifest(client, parsed, want)
        except PyrunError as e:
            if i == len(eps) - 1:
                if failures:
                    raise type(e)(f"{e} (mirrors failed too: {'; '.join(failures)})") from None
                raise
            failures.append(str(e))
            continue
        manifest = oci.Manifest.parse(manifest_bytes, f"{client.label}: manifest")
        if progress:
            for d in (manifest.config, *manifest.layers):
                if store.blobs.exists(d.digest):
                    progress.done(d.digest, "exists")
        return store.ingest(parsed.name, manifest_bytes, _Opener(client, manifest, progress), unpack=unpack,
                            what=f"{client.label}")
    raise ImageError(f"{ref}: no registry endpoint")  # unreachable: endpoints() returns at least one


# --- CLI progress renderers ---------------------------------------------------------------------

def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n}B"


class LineProgress:
    """Plain lines (not a terminal): one when a blob starts, one when it ends."""

    def __init__(self, write):
        self.write = write
        self.sizes: dict[str, int] = {}

    def start(self, digest: str, size: int, what: str) -> None:
        self.sizes[digest] = size
        self.write(f"{_short(digest)}: pulling {what} ({_human(size)})\n")

    def advance(self, digest: str, n: int) -> None:
        pass

    def done(self, digest: str, status: str) -> None:
        text = {"done": "pull complete", "exists": "already exists", "failed": "failed"}[status]
        self.write(f"{_short(digest)}: {text}\n")


class BarProgress:
    """A bar per blob on a terminal; blobs download one after another, so each gets its own line."""

    WIDTH = 30

    def __init__(self, write):
        self.write = write
        self.cur: dict[str, list] = {}

    def start(self, digest: str, size: int, what: str) -> None:
        self.cur[digest] = [0, max(size, 1), what]
        self._draw(digest)

    def advance(self, digest: str, n: int) -> None:
        st = self.cur.get(digest)
        if st:
            old = st[0] * self.WIDTH // st[1]
            st[0] += n
            if st[0] * self.WIDTH // st[1] != old or st[0] >= st[1]:
                self._draw(digest)

    def _draw(self, digest: str) -> None:
        done, total, what = self.cur[digest]
        fill = min(self.WIDTH, done * self.WIDTH // total)
        self.write(f"\r{_short(digest)}: [{'#' * fill}{'.' * (self.WIDTH - fill)}] "
                   f"{_human(done)}/{_human(total)} {what}\x1b[K")

    def done(self, digest: str, status: str) -> None:
        if digest in self.cur:
            self._draw(digest)
            self.write(f"  {'failed' if status == 'failed' else 'done'}\n")
            del self.cur[digest]
        else:
            self.write(f"{_short(digest)}: already exists\n")

