"""Image references: parse, validate and normalise names the way docker and the kubelet do.

Pure. The grammar is the one of github.com/distribution/reference:

    reference := name [ ":" tag ] [ "@" digest ]
    name      := [domain "/"] path-component ("/" path-component)*

Normalisation (what `docker pull busybox` means):
    busybox                 -> docker.io/library/busybox:latest
    pyrun/demo              -> docker.io/pyrun/demo:latest
    localhost:5000/x:1      -> localhost:5000/x:1
    busybox@sha256:<hex>    -> docker.io/library/busybox@sha256:<hex>   (no :latest added)

The first component is a registry domain only if it contains "." or ":", is
"localhost", or has an upper-case letter; otherwise the image lives on docker.io.
"""
from __future__ import annotations

import re

from pyrun.errors import ImageError
from pyrun.frozen import Frozen

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAINS = ("index.docker.io", "registry-1.docker.io")
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_MAX = 255

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_PATH_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_DOMAIN_RE = re.compile(_DOMAIN)
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}")
_SHA256_RE = re.compile(r"sha256:[a-f0-9]{64}")
HEX64_RE = re.compile(r"[a-f0-9]{64}")


class Reference(Frozen):
    """A parsed, normalised image reference."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """domain/path, e.g. docker.io/library/busybox."""
        return f"{self.domain}/{self.path}"

    @property
    def name(self) -> str:
        """The canonical string: repository[:tag][@digest]."""
        s = self.repository
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s

    def familiar(self) -> str:
        """The short form people type: busybox:latest, pyrun/demo:1."""
        repo = self.path if self.domain == DEFAULT_DOMAIN else self.repository
        if self.domain == DEFAULT_DOMAIN and repo.startswith(OFFICIAL_PREFIX) and repo.count("/") == 1:
            repo = repo[len(OFFICIAL_PREFIX):]
        s = repo + (f":{self.tag}" if self.tag else "")
        return s + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.name


def validate_digest(digest: str) -> str:
    """Check `algorithm:hex`; sha256 digests must be 64 lower-case hex digits."""
    if not _DIGEST_RE.fullmatch(digest):
        raise ImageError(f"invalid digest {digest!r}: expected sha256:<64 hex digits>")
    if digest.startswith("sha256:") and not _SHA256_RE.fullmatch(digest):
        raise ImageError(f"invalid digest {digest!r}: sha256 needs 64 lower-case hex digits")
    return digest


def validate_tag(tag: str) -> str:
    if not _TAG_RE.fullmatch(tag):
        raise ImageError(f"invalid tag {tag!r}: use letters, digits, '_', '.', '-' (max 128, not starting with '.' or '-')")
    return tag


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost" and first.lower() == first):
        return DEFAULT_DOMAIN, name
    return first, rest


def parse(text: str, default_tag: bool = True) -> Reference:
    """Parse and normalise a reference; ImageError names what is wrong.

    default_tag adds ":latest" when neither a tag nor a digest is given.
    """
    if not text:
        raise ImageError("invalid image reference: empty")
    name, digest = text, None
    if "@" in text:
        name, _, digest = text.partition("@")
        validate_digest(digest)
    tag = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
        validate_tag(tag)
    if not name:
        raise ImageError(f"invalid image reference {text!r}: no repository name")
    if HEX64_RE.fullmatch(name):
        raise ImageError(f"invalid image reference {text!r}: a repository name cannot be a 64-digit hex string")
    domain, path = _split_domain(name)
    if domain in LEGACY_DOMAINS:
        domain = DEFAULT_DOMAIN
    if not _DOMAIN_RE.fullmatch(domain):
        raise ImageError(f"invalid image reference {text!r}: bad registry domain {domain!r}")
    if not _PATH_RE.fullmatch(path):
        raise ImageError(f"invalid image reference {text!r}: repository {path!r} must be lower-case "
                         "components of letters and digits separated by '.', '_', '__', '-' and '/'")
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    if len(domain) + 1 + len(path) > NAME_MAX:
        raise ImageError(f"invalid image reference {text!r}: repository name longer than {NAME_MAX} characters")
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def normalise(text: str) -> str:
    """parse(text).name: 'busybox' -> 'docker.io/library/busybox:latest'."""
    return parse(text).name


def is_reference(text: str) -> bool:
    try:
        parse(text)
    except ImageError:
        return False
    return True
