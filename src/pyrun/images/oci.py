"""OCI image documents and import sources: layout directories, OCI archives, `docker save` tars.

Pure except for the two Source classes, which only read. The registry client
(pyrun.images.pull) produces the same things: a manifest's bytes and a way to open blobs.
"""
from __future__ import annotations

import json
from pathlib import Path

from pyrun.errors import ImageError, NotFound
from pyrun.frozen import Frozen
from pyrun.images import reference
from pyrun.images.mediatypes import MT_CONFIG, MT_INDEX, MT_LAYER, MT_MANIFEST, REF_NAME, canonical_json, digest_of

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a pod create's start-up)
if TYPE_CHECKING:
    from typing import BinaryIO, Protocol

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (MT_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (MT_INDEX, DOCKER_LIST)
CONTAINERD_NAME = "io.containerd.image.name"
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x",
           "riscv64": "riscv64", "i686": "386"}


def host_platform() -> tuple[str, str]:
    import platform
    return "linux", _GOARCH.get(platform.machine(), platform.machine())


def load_json(data: bytes, what: str) -> dict:
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise ImageError(f"{what}: not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ImageError(f"{what}: expected a JSON object")
    return doc


class Descriptor(Frozen):
    media_type: str
    digest: str
    size: int
    annotations: dict
    platform: dict

    @classmethod
    def parse(cls, doc: object, what: str) -> "Descriptor":
        if not isinstance(doc, dict):
            raise ImageError(f"{what}: descriptor is not an object")
        digest = doc.get("digest")
        size = doc.get("size")
        if not isinstance(digest, str):
            raise ImageError(f"{what}: descriptor has no digest")
        try:
            reference.validate_digest(digest)
        except ImageError as e:
            raise ImageError(f"{what}: {e}") from None
        if not isinstance(size, int) or size < 0:
            raise ImageError(f"{what}: descriptor {digest} has no valid size")
        return cls(str(doc.get("mediaType", "")), digest, size, dict(doc.get("annotations") or {}),
                   dict(doc.get("platform") or {}))


class Manifest(Frozen):
    """An image manifest: config descriptor and layer descriptors (bottom first)."""

    config: Descriptor
    layers: tuple[Descriptor, ...]

    @classmethod
    def parse(cls, data: bytes, what: str) -> "Manifest":
        doc = load_json(data, what)
        mt = doc.get("mediaType", MT_MANIFEST)
        if mt in INDEX_TYPES or "manifests" in doc:
            raise ImageError(f"{what}: is an image index, not a manifest")
        if mt not in MANIFEST_TYPES:
            raise ImageError(f"{what}: unsupported manifest media type {mt!r}")
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise ImageError(f"{what}: manifest has no layers list")
        return cls(Descriptor.parse(doc.get("config"), f"{what} config"),
                   tuple(Descriptor.parse(d, f"{what} layers[{i}]") for i, d in enumerate(layers)))


def diff_ids_of(config: dict, what: str) -> list[str]:
    rootfs = config.get("rootfs") or {}
    ids = rootfs.get("diff_ids")
    if rootfs.get("type") != "layers" or not isinstance(ids, list):
        raise ImageError(f"{what}: config has no rootfs.diff_ids")
    for d in ids:
        reference.validate_digest(d)
    return list(ids)


def pick_platform(descs: list[Descriptor], what: str, want: tuple[str, str] | None = None) -> Descriptor:
    """Choose the manifest for this host (linux/amd64 here) from an image index."""
    os_, arch = want or host_platform()
    for d in descs:
        if d.platform.get("os") == os_ and d.platform.get("architecture") == arch:
            return d
    offered = ", ".join(f"{d.platform.get('os')}/{d.platform.get('architecture')}" for d in descs) or "none"
    raise ImageError(f"{what}: no manifest for {os_}/{arch} (offered: {offered})")


# --- sources ------------------------------------------------------------------------------------

if TYPE_CHECKING:
    class Source(Protocol):
        """Read-only access to files of an image layout or archive, by relative path."""

        label: str

        def read(self, rel: str) -> bytes: ...
        def open(self, rel: str) -> BinaryIO: ...
        def exists(self, rel: str) -> bool: ...


def blob_path(digest: str) -> str:
    algo, _, hexpart = reference.validate_digest(digest).partition(":")
    return f"blobs/{algo}/{hexpart}"


class DirSource:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.label = str(root)

    def exists(self, rel: str) -> bool:
        return (self.root / rel).is_file()

    def open(self, rel: str) -> BinaryIO:
        try:
            return open(self.root / rel, "rb")
        except FileNotFoundError:
            raise ImageError(f"{self.label}: {rel} is missing") from None

    def read(self, rel: str) -> bytes:
        with self.open(rel) as f:
            return f.read()

    def close(self) -> None:
        pass


class TarSource:
    """Random access to a tar (OCI archive or docker save) without extracting it."""

    def __init__(self, path: Path):
        import tarfile  # here: reading an image already in the store needs no tar code

        from pyrun.images.tarsafe import GuardedTarInfo
        self.label = str(path)
        try:
            self.tar = tarfile.open(path, "r:*", tarinfo=GuardedTarInfo)
            self.members = {_norm(m.name): m for m in self.tar.getmembers()}
        except (tarfile.TarError, EOFError) as e:
            raise ImageError(f"{path}: not a readable tar archive: {e}") from None

    def exists(self, rel: str) -> bool:
        m = self.members.get(_norm(rel))
        return m is not None and (m.isreg() or m.islnk())

    def open(self, rel: str) -> BinaryIO:
        m = self.members.get(_norm(rel))
        f = self.tar.extractfile(m) if m is not None and (m.isreg() or m.islnk()) else None
        if f is None:
            raise ImageError(f"{self.label}: {rel} is missing")
        return f

    def read(self, rel: str) -> bytes:
        import tarfile
        try:
            return self.open(rel).read()
        except (tarfile.TarError, EOFError) as e:
            raise ImageError(f"{self.label}: {rel}: truncated or corrupt archive: {e}") from None

    def close(self) -> None:
        self.tar.close()


def _norm(name: str) -> str:
    return "/".join(p for p in name.split("/") if p not in ("", "."))


def open_source(path: Path) -> DirSource | TarSource:
    path = Path(path)
    if path.is_dir():
        return DirSource(path)
    if path.is_file():
        return TarSource(path)
    raise NotFound(f"{path}: no such image layout or archive")


# --- choosing what to import --------------------------------------------------------------------

class Selected(Frozen):
    """The manifest chosen from a source, and the name it carries (if any)."""

    manifest_digest: str
    manifest_bytes: bytes
    ref_name: str | None
    # docker save: blobs live at other paths than blobs/sha256/<hex>
    paths: dict[str, str]


def _annotated_name(desc: Descriptor) -> str | None:
    return desc.annotations.get(CONTAINERD_NAME) or desc.annotations.get(REF_NAME)


def _matches(desc: Descriptor, wanted: reference.Reference) -> bool:
    name = _annotated_name(desc)
    if not name:
        return False
    if name == wanted.tag:  # ref.name is often just a tag ("latest")
        return True
    return reference.is_reference(name) and reference.parse(name).name == wanted.name


def select_oci(source: Source, name: str | None) -> Selected:
    """Pick one manifest from an OCI layout's index.json (nested indexes resolved for this host)."""
    if not source.exists("oci-layout"):
        raise ImageError(f"{source.label}: not an OCI image layout (no oci-layout file)")
    index = load_json(source.read("index.json"), f"{source.label}: index.json")
    descs = [Descriptor.parse(d, f"{source.label}: index.json manifests[{i}]")
             for i, d in enumerate(index.get("manifests") or [])]
    if not descs:
        raise ImageError(f"{source.label}: index.json lists no manifests")
    if len(descs) > 1:
        if name is None:
            names = ", ".join(_annotated_name(d) or d.digest for d in descs)
            raise ImageError(f"{source.label}: holds {len(descs)} images ({names}); say which one to import by name")
        wanted = reference.parse(name)
        chosen = [d for d in descs if _matches(d, wanted)]
        if len(chosen) != 1:
            raise ImageError(f"{source.label}: no single image is annotated {REF_NAME}={name!r}")
        descs = chosen
    top = descs[0]
    ref_name = _annotated_name(top)
    desc, data = top, source.read(blob_path(top.digest))
    for _depth in range(4):
        what = f"{source.label}: {desc.digest}"
        if digest_of(data) != desc.digest:
            raise ImageError(f"{what}: digest mismatch: content has {digest_of(data)}")
        doc = load_json(data, what)
        if desc.media_type in INDEX_TYPES or "manifests" in doc:
            nested = [Descriptor.parse(d, f"{what} manifests[{i}]") for i, d in enumerate(doc.get("manifests") or [])]
            desc = pick_platform(nested, what)
            data = source.read(blob_path(desc.digest))
            continue
        return Selected(desc.digest, data, ref_name, {})
    raise ImageError(f"{source.label}: image indexes nested too deeply")


def select_docker(source: Source, name: str | None) -> tuple[Selected, bytes]:
    """A legacy `docker save` tar: synthesise an OCI manifest (returns it with the config bytes).

    Layers there are uncompressed tars, so each layer's digest is its diff_id.
    """
    doc = json.loads(source.read("manifest.json"))
    if not isinstance(doc, list) or not doc:
        raise ImageError(f"{source.label}: manifest.json lists no images")
    if len(doc) > 1 and name is None:
        raise ImageError(f"{source.label}: holds {len(doc)} images; say which one to import by name")
    entry = doc[0]
    if len(doc) > 1:
        want = reference.parse(name).name
        found = [e for e in doc if any(reference.is_reference(t) and reference.parse(t).name == want
                                       for t in e.get("RepoTags") or [])]
        if len(found) != 1:
            raise ImageError(f"{source.label}: no single image is tagged {name!r}")
        entry = found[0]
    cfg = source.read(entry["Config"])
    paths = {}
    layers = []
    for rel in entry.get("Layers") or []:
        with source.open(rel) as f:
            import hashlib
            h, n = hashlib.sha256(), 0
            while chunk := f.read(1 << 20):
                h.update(chunk)
                n += len(chunk)
        digest = "sha256:" + h.hexdigest()
        paths[digest] = rel
        layers.append({"mediaType": MT_LAYER, "digest": digest, "size": n})
    cdigest = digest_of(cfg)
    paths[cdigest] = entry["Config"]
    manifest = canonical_json({"schemaVersion": 2, "mediaType": MT_MANIFEST,
                               "config": {"mediaType": MT_CONFIG, "digest": cdigest, "size": len(cfg)},
                               "layers": layers})
    tags = entry.get("RepoTags") or []
    return Selected(digest_of(manifest), manifest, tags[0] if tags else None, paths), cfg


def select(source: Source, name: str | None) -> Selected:
    if source.exists("oci-layout"):
        return select_oci(source, name)
    if source.exists("manifest.json"):
        return select_docker(source, name)[0]
    raise ImageError(f"{source.label}: neither an OCI image layout (oci-layout, index.json) "
                     "nor a docker save archive (manifest.json)")


def open_blob(source: Source, selected: Selected, digest: str) -> BinaryIO:
    rel = selected.paths.get(digest) or blob_path(digest)
    return source.open(rel)
