"""The image store: content-addressed blobs, unpacked layers shared by all images, and tags.

<image_root> is <data_root>/images (default /var/lib/pyrun/images: images outlive a reboot).

    <image_root>/blobs/sha256/<hex>     manifests, configs, layer tars (verified on the way in)
    <image_root>/layers/<diff_id hex>/  each layer unpacked once (temp dir + rename when complete)
    <image_root>/refs.json              normalised name:tag -> manifest digest
    <image_root>/lock                   flock(2) held while the store changes

Images are found from refs.json; everything else is derived from blobs, so a
registry pull only has to call `ingest()` with a manifest and a blob opener.

A layer may write at most max(LAYER_FLOOR, its compressed size x LAYER_RATIO) bytes
of file data when unpacked (env PYRUN_LAYER_RATIO, PYRUN_LAYER_FLOOR in bytes), so a
small layer can't fill the disk. An ingest that fails for any reason leaves nothing:
no new blob, no layer directory, no ref.
"""
from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from pyrun import explain
from pyrun.errors import ImageError, InvalidState, NotFound
from pyrun.frozen import Frozen
from pyrun.images import oci, reference
from pyrun.images.blobs import BlobStore, BlobWriter, DecompressingReader, PlainReader, hex_of
from pyrun.images.refs import RefsDb, StoreLock
from pyrun.linux import tree

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a pod create reads the store)
if TYPE_CHECKING:
    from typing import AbstractSet, BinaryIO, Callable

    BlobOpener = Callable[[str], BinaryIO]


LAYER_RATIO = 100            # unpacked file data per byte of the compressed layer blob
LAYER_FLOOR = 512 << 20      # but always at least this much, so tiny layers still work


def layer_limit(compressed_size: int, ratio: int | None = None, floor: int | None = None) -> int:
    """How many bytes of file data a layer of this compressed size may unpack to. Pure."""
    ratio = LAYER_RATIO if ratio is None else ratio
    floor = LAYER_FLOOR if floor is None else floor
    return max(floor, compressed_size * ratio)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        n = int(value)
    except ValueError:
        raise ImageError(f"${name}={value!r}: not an integer") from None
    if n <= 0:
        raise ImageError(f"${name}={value!r}: must be positive")
    return n


class Image(Frozen):
    name: str                      # normalised, e.g. docker.io/library/busybox:latest
    id: str                        # config digest, "sha256:..."
    manifest_digest: str
    config: dict                   # the parsed OCI image config
    layer_diff_ids: tuple[str, ...]  # bottom layer first
    size: int                      # bytes of the stored blobs (compressed layers + config)
    layers: tuple[oci.Descriptor, ...] = ()  # the manifest's layer descriptors, bottom first

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[1][:12]


def _ids(in_use: AbstractSet[str]) -> set[str]:
    """Accept 'sha256:<hex>' and bare '<hex>' ids."""
    return {i if i.startswith("sha256:") else f"sha256:{i}" for i in in_use}


class ImageStore:
    def __init__(self, root: Path, layer_ratio: int | None = None, layer_floor: int | None = None):
        self.root = Path(root)
        self.layer_ratio = layer_ratio or _env_int("PYRUN_LAYER_RATIO", LAYER_RATIO)
        self.layer_floor = layer_floor or _env_int("PYRUN_LAYER_FLOOR", LAYER_FLOOR)
        self.blobs = BlobStore(self.root / "blobs")
        self.layers_dir = self.root / "layers"
        self.lock = StoreLock(self.root / "lock")
        self.refs = RefsDb(self.root / "refs.json", self.lock)

    # --- reading ---------------------------------------------------------------------------------

    def _image(self, name: str, manifest_digest: str) -> Image:
        what = f"image {name}"
        manifest = oci.Manifest.parse(self.blobs.read(manifest_digest, f"{what} manifest"), f"{what} manifest")
        config = oci.load_json(self.blobs.read(manifest.config.digest, f"{what} config"), f"{what} config")
        diff_ids = oci.diff_ids_of(config, f"{what} config")
        size = manifest.config.size + sum(d.size for d in manifest.layers)
        return Image(name, manifest.config.digest, manifest_digest, config, tuple(diff_ids), size, manifest.layers)

    def list(self) -> list[Image]:
        return [self._image(n, d) for n, d in sorted(self.refs.load().items())]

    def resolve(self, ref: str) -> Image:
        """By name (as typed or normalised), name@digest, full or short image id, or manifest digest."""
        refs = self.refs.load()
        if reference.is_reference(ref):
            parsed = reference.parse(ref)
            if parsed.name in refs:  # pulled by digest: stored under name@digest
                return self._image(parsed.name, refs[parsed.name])
            if parsed.digest:
                for n, d in sorted(refs.items()):
                    if d == parsed.digest and reference.parse(n).repository == parsed.repository:
                        return self._image(parsed.name, d)
        found = self._by_id(ref, refs)
        if found is None:
            raise NotFound(f"image {ref!r} not found in {self.root}")
        return found

    def _by_id(self, ref: str, refs: dict[str, str]) -> Image | None:
        hexpart = ref.removeprefix("sha256:")
        if not hexpart or len(hexpart) > 64 or any(c not in "0123456789abcdef" for c in hexpart):
            return None
        images = [self._image(n, d) for n, d in sorted(refs.items())]
        full = f"sha256:{hexpart}"
        exact = [i for i in images if full in (i.id, i.manifest_digest)]
        if exact:
            return exact[0]
        if ref.startswith("sha256:") and len(hexpart) == 64:
            return None
        matches = {i.id: i for i in images if i.id.startswith(full)}
        if len(matches) > 1:
            raise ImageError(f"image id prefix {ref!r} is ambiguous: matches {', '.join(sorted(matches))}")
        return next(iter(matches.values()), None)

    def names_of(self, image_id: str) -> list[str]:
        return sorted(i.name for i in self.list() if i.id == image_id)

    # --- importing -------------------------------------------------------------------------------

    def import_path(self, path: Path, name: str | None = None, unpack: bool = True) -> Image:
        """Import an OCI layout dir, an OCI archive (tar of one) or a `docker save` tar, and tag it.

        `name` (normalised, ":latest" added) picks the image when the source holds
        several, and names it; without it the source's own name annotation is used.
        """
        source = oci.open_source(Path(path))
        try:
            selected = oci.select(source, name)
            final = name or _usable_name(selected.ref_name)
            if not final:
                raise ImageError(f"{source.label}: the image carries no full name (annotation: "
                                 f"{selected.ref_name!r}); give one: pyrun image import PATH NAME[:TAG]")
            parsed = reference.parse(final)
            if parsed.digest and not parsed.tag:
                raise ImageError(f"cannot tag an image as {final!r}: use name[:tag], not a digest")
            tag_name = reference.Reference(parsed.domain, parsed.path, parsed.tag or "latest").name
            return self.ingest(tag_name, selected.manifest_bytes,
                               lambda d: oci.open_blob(source, selected, d), unpack=unpack,
                               what=source.label)
        finally:
            source.close()

    def ingest(self, name: str, manifest_bytes: bytes, open_blob: BlobOpener, unpack: bool = True,
               what: str = "image") -> Image:
        """Store a manifest, its config and its layers (verified), then point `name` at it.

        This is the one entry point for every way images arrive (import, registry
        pulls, the move from the previous layout): `open_blob(digest)` returns a readable stream.
        """
        name = reference.parse(name).name
        manifest_digest = oci.digest_of(manifest_bytes)
        manifest = oci.Manifest.parse(manifest_bytes, f"{what} manifest {manifest_digest}")
        with self.lock.held():
            added: list[str] = []       # blobs and layer dirs this call made: removed again on failure
            unpacked: list[Path] = []
            try:
                self._put(open_blob, manifest.config, f"{what}: config {manifest.config.digest}", added=added)
                config = oci.load_json(self.blobs.read(manifest.config.digest), f"{what}: config")
                diff_ids = oci.diff_ids_of(config, f"{what}: config")
                if len(diff_ids) != len(manifest.layers):
                    raise ImageError(f"{what}: manifest has {len(manifest.layers)} layers but the config "
                                     f"lists {len(diff_ids)} rootfs.diff_ids")
                # A layer about to be unpacked has its diff_id checked in the pass that unpacks it (the first
                # layer of a diff_id is the one unpacked: a repeated diff_id is checked when stored).
                unverified: set[str] = set()
                for i, (desc, diff_id) in enumerate(zip(manifest.layers, diff_ids)):
                    check_now = diff_id
                    layer_what = f"{what}: layer {i} ({desc.digest})"
                    if unpack and diff_id not in unverified and not self._layer_path(diff_id).is_dir():
                        unverified.add(diff_id)
                        check_now = None
                        if not self.blobs.exists(desc.digest):
                            unpacked.append(self._store_and_unpack(open_blob, desc, diff_id, layer_what))
                            added.append(desc.digest)
                            continue
                    self._put(open_blob, desc, layer_what, check_now, added=added)
                if not self.blobs.exists(manifest_digest):
                    self.blobs.put_bytes(manifest_bytes, manifest_digest, f"{what}: manifest")
                    added.append(manifest_digest)
                image = self._image(name, manifest_digest)
                if unpack:
                    unpacked += self._unpack_missing(image, unverified)
                self.refs.set(name, manifest_digest)  # the commit point
            except BaseException:
                for path in unpacked:
                    tree.remove_tree(path)
                for digest in added:
                    self.blobs.remove(digest)
                raise
        return image

    def _put(self, open_blob: BlobOpener, desc: oci.Descriptor, what: str, diff_id: str | None = None,
             added: list[str] | None = None) -> None:
        if self.blobs.exists(desc.digest):
            if diff_id is not None:
                self._diff_verified(desc.digest, diff_id)
            return
        with open_blob(desc.digest) as stream:
            self.blobs.put(stream, desc.digest, what, size=desc.size, diff_id=diff_id)
        if added is not None:
            added.append(desc.digest)

    def _diff_verified(self, digest: str, diff_id: str) -> bool:
        """An already stored layer blob must still match the diff_id this image's config claims."""
        import hashlib
        h = hashlib.sha256()
        with self.blobs.open(digest) as raw:
            reader = DecompressingReader(raw, f"layer {digest}")
            while chunk := reader.read(1 << 20):
                h.update(chunk)
        if "sha256:" + h.hexdigest() != diff_id:
            raise ImageError(f"layer {digest}: uncompressed digest is sha256:{h.hexdigest()}, "
                             f"but the image config says {diff_id}")
        return True

    # --- layers for the runtime ------------------------------------------------------------------

    def _layer_path(self, diff_id: str) -> Path:
        return self.layers_dir / hex_of(diff_id)

    def layer_dirs(self, image: Image) -> list[Path]:
        """Unpacked layer directories in overlay lowerdir order: TOP layer FIRST. Unpacks what is missing."""
        if any(not self._layer_path(d).is_dir() for d in image.layer_diff_ids):
            with self.lock.held():
                self._unpack_missing(image)
        return [self._layer_path(d) for d in image.layer_diff_ids][::-1]

    def _unpack_missing(self, image: Image, unverified: AbstractSet[str] = frozenset()) -> list[Path]:
        """Unpack the layers of `image` that are not unpacked yet (lock held); returns the new dirs.
        The layers in `unverified` (diff_ids) have their uncompressed digest checked as they unpack."""
        made = []
        for desc, diff_id in zip(image.layers, image.layer_diff_ids):
            path = self._layer_path(diff_id)
            if not path.is_dir():
                self._unpack(desc, diff_id, path, verify=diff_id in unverified)
                made.append(path)
        return made

    def _unpack(self, desc: oci.Descriptor, diff_id: str, path: Path, verify: bool = False,
                source: BinaryIO | None = None, blob: BlobWriter | None = None) -> None:
        """Unpack the layer into `path`: from the stored blob, or from `source` while it is written to
        `blob` (whose digest is checked before the layer directory is renamed into place)."""
        self.layers_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.layers_dir / f".tmp-{path.name[:16]}-{os.getpid()}-{os.urandom(4).hex()}"
        limit = layer_limit(desc.size, self.layer_ratio, self.layer_floor)
        explain.emit(explain.argv("tar", "-x", "--same-owner", "--xattrs", "-f", self.blobs.path(desc.digest),
                                  "-C", tmp)
                     + "  # checked member by member; whiteouts -> overlayfs; then: "
                     + explain.argv("mv", tmp, path))
        tmp.mkdir(mode=0o755)
        try:
            with self.blobs.open(desc.digest) if source is None else contextlib.nullcontext(source) as raw:
                _unpack_stream(raw, desc, diff_id, tmp, limit, verify, blob)
            os.rename(tmp, path)
        except BaseException as e:
            tree.remove_tree(tmp)
            from pyrun.images.unpack import LayerTooLarge
            if isinstance(e, LayerTooLarge):
                raise ImageError(f"{e} (blob {desc.digest}, compressed size {desc.size} bytes; the limit "
                                 f"{limit} is max({self.layer_floor}, {self.layer_ratio} x the compressed size): "
                                 "raise it with $PYRUN_LAYER_RATIO / $PYRUN_LAYER_FLOOR)") from None
            raise

    def _store_and_unpack(self, open_blob: BlobOpener, desc: oci.Descriptor, diff_id: str, what: str) -> Path:
        """A layer neither stored nor unpacked: both in one pass over its stream (read once, decompressed
        once; digest, size and diff_id checked before either is kept). Returns the layer directory."""
        path = self._layer_path(diff_id)
        blob = self.blobs.writer(desc.digest, what, desc.size)
        try:
            with open_blob(desc.digest) as stream:
                self._unpack(desc, diff_id, path, verify=True, source=stream, blob=blob)
            try:
                blob.commit()
            except BaseException:
                tree.remove_tree(path)
                raise
        finally:
            blob.abort()
        return path

    # --- removing --------------------------------------------------------------------------------

    def remove(self, ref: str, in_use: AbstractSet[str] = frozenset(), force: bool = False) -> list[str]:
        """Untag an image (by name: that name; by id: all its names). Blobs and layers stay until prune.

        Returns the names removed.
        """
        with self.lock.held():
            image = self.resolve(ref)
            if image.id in _ids(in_use) and not force:
                raise InvalidState(f"image {ref!r} ({image.short_id}) is used by a container; "
                                   "remove the container first or force")
            by_name = reference.is_reference(ref) and reference.parse(ref).name == image.name
            names = [image.name] if by_name else self.names_of(image.id)
            if len(names) > 1 and not force:
                raise InvalidState(f"image {image.short_id} has several names ({', '.join(names)}); "
                                   "remove them by name or force")
            self.refs.delete(names)
            return names

    def prune(self, in_use: AbstractSet[str] = frozenset()) -> int:
        """Delete blobs and unpacked layers that no tagged (or in-use) image references; returns bytes freed."""
        with self.lock.held():
            keep_blobs: set[str] = set()
            keep_layers: set[str] = set()
            for image in self.list():
                keep_blobs |= {image.manifest_digest, image.id, *(d.digest for d in image.layers)}
                keep_layers |= {hex_of(d) for d in image.layer_diff_ids}
            for digest in _ids(in_use) - keep_blobs:  # untagged, but a container still runs it
                keep_layers |= self._keep_untagged(digest, keep_blobs)
            freed = 0
            for digest in list(self.blobs.digests()):
                if digest not in keep_blobs:
                    freed += self.blobs.remove(digest)
            for entry in self._stale_tmp():
                freed += _tree_size(entry)
                tree.remove_tree(entry)
            if self.layers_dir.is_dir():
                for layer in self.layers_dir.iterdir():
                    if layer.name not in keep_layers and not layer.name.startswith("."):
                        freed += _tree_size(layer)
                        tree.remove_tree(layer)
            return freed

    def _keep_untagged(self, config_digest: str, keep_blobs: set[str]) -> set[str]:
        """Add an in-use image's config, manifest(s) and layer blobs to keep_blobs; return its layer dirs."""
        if not self.blobs.exists(config_digest):
            return set()
        keep_blobs.add(config_digest)
        try:
            config = oci.load_json(self.blobs.read(config_digest), config_digest)
            diff_ids = oci.diff_ids_of(config, config_digest)
        except ImageError:
            return set()
        # keep the manifest(s) naming this config and their layer blobs too
        for digest in list(self.blobs.digests()):
            try:
                m = oci.Manifest.parse(self.blobs.read(digest), digest)
            except ImageError:
                continue
            if m.config.digest == config_digest:
                keep_blobs |= {digest, *(d.digest for d in m.layers)}
        return {hex_of(d) for d in diff_ids}

    def _stale_tmp(self) -> list[Path]:
        """Leftovers of killed imports/unpacks (we hold the lock, so none is in progress)."""
        out = []
        for d in (self.blobs.dir, self.layers_dir, self.root):
            if d.is_dir():
                out += [p for p in d.iterdir() if p.name.startswith(".tmp-")]
        return out


def _unpack_stream(raw: BinaryIO, desc: oci.Descriptor, diff_id: str, dest: Path, limit: int, verify: bool,
                   blob: BlobWriter | None) -> None:
    """Decompress (in a thread), hash and unpack one layer stream into `dest`; with `blob`, the compressed
    stream is written there too and its digest checked (a wrong digest is the error reported first:
    it says more than the broken tar or gzip data it usually comes with)."""
    from pyrun.images.unpack import unpack_layer  # not at import: pod create only reads the store
    plain = PlainReader(raw, f"layer {diff_id}", hash_plain=verify, tee=blob)
    try:
        try:
            unpack_layer(plain, dest, diff_id, max_bytes=limit)
            got = plain.finish()
        finally:
            plain.close()
    except ImageError:
        if blob is not None and plain.in_step:
            while chunk := raw.read(1 << 20):
                blob.write(chunk)
            blob.verify()
        raise
    if blob is not None:
        blob.verify()
    if verify and got != diff_id:
        raise ImageError(f"layer {desc.digest}: uncompressed digest mismatch: config rootfs.diff_ids says {diff_id}, "
                         f"layer content has {got}; not stored")


def _usable_name(annotation: str | None) -> str | None:
    """An OCI ref.name annotation names the image only when it has a repository ('x/y' or 'x:tag');
    a bare word like "latest" is just a tag (image-spec annotations.md)."""
    if annotation and ("/" in annotation or ":" in annotation) and reference.is_reference(annotation):
        return annotation
    return None


def _tree_size(path: Path) -> int:
    """Apparent bytes of a file, or of the regular files below a directory (iteratively, any depth)."""
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size if path.exists() or path.is_symlink() else 0
    return sum(st.st_size for _, _, st in tree.walk(path) if stat.S_ISREG(st.st_mode))
