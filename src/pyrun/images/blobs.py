"""Content-addressed blobs: blobs/sha256/<hex>, verified while they stream in.

A blob is written to a temporary file in the same directory, hashed as it is
written, fsync'ed, and renamed into place only when the digest matches, so a
killed import or a corrupt source never leaves a wrong blob under a digest name.
Layers can also have their uncompressed digest (the config's diff_id) checked in
the same pass.
"""
from __future__ import annotations

import os
import zlib
from pathlib import Path

from pyrun.frozen import Frozen
from pyrun.linux.tree import fsync_dir
from pyrun.errors import ImageError, NotFound
from pyrun.images.reference import validate_digest

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a pod create reads the store)
if TYPE_CHECKING:
    from typing import BinaryIO, Iterator

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def hex_of(digest: str) -> str:
    """'sha256:abc...' -> 'abc...' after validating it is a sha256 digest."""
    validate_digest(digest)
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256":
        raise ImageError(f"unsupported digest algorithm in {digest!r}: only sha256 is supported")
    return hexpart


def sha256_digest(data: bytes) -> str:
    import hashlib  # not at import: it loads OpenSSL, and a pod create only reads the store
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- streaming decompression (pure: bytes in, bytes out) ----------------------------------------

class Decompressor:
    """Incremental gzip/zstd/plain decoder chosen from the first bytes of the stream."""

    def __init__(self, what: str):
        self.what = what
        self._kind: str | None = None
        self._head = b""
        self._z = None

    @property
    def kind(self) -> str | None:
        return self._kind

    def feed(self, data: bytes) -> bytes:
        if self._kind is None:
            self._head += data
            if len(self._head) < 4 and data:
                return b""
            data, self._head = self._head, b""
            self._start(data)
        if self._kind == "none":
            return data
        try:
            return self._feed_compressed(data)
        except zlib.error as e:
            raise ImageError(f"{self.what}: corrupt gzip data: {e}") from None

    def _start(self, head: bytes) -> None:
        if head.startswith(GZIP_MAGIC):
            self._kind, self._z = "gzip", zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif head.startswith(ZSTD_MAGIC):
            self._kind, self._z = "zstd", _zstd_decompressobj(self.what)
        else:
            self._kind = "none"

    def _feed_compressed(self, data: bytes) -> bytes:
        if self._kind == "zstd":
            return self._z.decompress(data) if data else b""
        out = []
        while data:
            out.append(self._z.decompress(data))
            data = self._z.unused_data
            if data and self._z.eof:  # concatenated gzip members (gzip(1) allows them)
                self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
            elif data:
                break
        return b"".join(out)

    def finish(self) -> bytes:
        """End of input: flush, and refuse a truncated compressed stream."""
        out = b""
        if self._kind is None:
            data, self._head = self._head, b""
            self._start(data)
            out = data if self._kind == "none" else self.feed(data)
        if self._kind == "gzip":
            if not self._z.eof:
                raise ImageError(f"{self.what}: gzip stream is truncated")
            out += self._z.flush()
        return out


def _zstd_decompressobj(what: str):
    try:
        import zstandard  # optional
    except ImportError:
        raise ImageError(f"{what}: zstd layers need the 'zstandard' Python package "
                         "(pip install zstandard)") from None
    return zstandard.ZstdDecompressor().decompressobj()


class DecompressingReader:
    """A read()-able uncompressed view of a (possibly compressed) binary stream, for tarfile."""

    def __init__(self, raw: BinaryIO, what: str):
        self._raw = raw
        self._dec = Decompressor(what)
        self._buf = bytearray()
        self._eof = False

    def read(self, size: int = -1) -> bytes:
        while not self._eof and (size < 0 or len(self._buf) < size):
            chunk = self._raw.read(CHUNK)
            if chunk:
                self._buf += self._dec.feed(chunk)
            else:
                self._buf += self._dec.finish()
                self._eof = True
        if size < 0:
            size = len(self._buf)
        out = bytes(self._buf[:size])
        del self._buf[:size]
        return out


# --- the blob directory -------------------------------------------------------------------------

class Written(Frozen):
    digest: str
    size: int
    diff_id: str | None = None
    uncompressed_size: int | None = None


class BlobStore:
    """blobs/sha256/<hex> under `root`."""

    def __init__(self, root: Path):
        self.dir = Path(root) / "sha256"

    def path(self, digest: str) -> Path:
        return self.dir / hex_of(digest)

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def read(self, digest: str, what: str = "blob") -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"{what} {digest} is not in the image store") from None

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the image store") from None

    def digests(self) -> Iterator[str]:
        if self.dir.is_dir():
            for p in self.dir.iterdir():
                if not p.name.startswith("."):
                    yield "sha256:" + p.name

    def put_bytes(self, data: bytes, digest: str, what: str = "blob") -> Written:
        import io
        return self.put(io.BytesIO(data), digest, what)

    def put(self, stream: BinaryIO, digest: str, what: str = "blob", size: int | None = None,
            diff_id: str | None = None) -> Written:
        """Copy `stream` into the store as `digest`, verifying it (and, if given, the uncompressed diff_id).

        Nothing is stored when a check fails. An existing blob is not rewritten
        (but the stream is still verified when a diff_id is asked for).
        """
        hex_of(digest)
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".tmp-{hex_of(digest)[:16]}-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            written = self._copy_verified(stream, tmp, digest, what, size, diff_id)
            os.rename(tmp, self.path(digest))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(self.dir)
        return written

    def _copy_verified(self, stream: BinaryIO, tmp: Path, digest: str, what: str, size: int | None,
                       diff_id: str | None) -> Written:
        import hashlib
        h = hashlib.sha256()
        uh = hashlib.sha256() if diff_id else None
        dec = Decompressor(what) if diff_id else None
        n = un = 0
        decode_error: ImageError | None = None
        with open(tmp, "xb") as out:
            while chunk := stream.read(CHUNK):
                n += len(chunk)
                h.update(chunk)
                if dec:
                    try:
                        plain = dec.feed(chunk)
                    except ImageError as e:  # report a digest mismatch first: it says more
                        decode_error, dec = e, None
                    else:
                        un += len(plain)
                        uh.update(plain)
                out.write(chunk)
            if dec:
                try:
                    plain = dec.finish()
                    un += len(plain)
                    uh.update(plain)
                except ImageError as e:
                    decode_error = e
            out.flush()
            os.fsync(out.fileno())
        got = "sha256:" + h.hexdigest()
        if got != digest:
            raise ImageError(f"{what}: digest mismatch: expected {digest}, content has {got} ({n} bytes); not stored")
        if size is not None and n != size:
            raise ImageError(f"{what}: size mismatch: descriptor says {size} bytes, content has {n}; not stored")
        if decode_error:
            raise decode_error
        got_diff = "sha256:" + uh.hexdigest() if uh else None
        if diff_id and got_diff != diff_id:
            raise ImageError(f"{what}: uncompressed digest mismatch: config rootfs.diff_ids says {diff_id}, "
                             f"layer content has {got_diff}; not stored")
        return Written(digest, n, got_diff, un if uh else None)

    def remove(self, digest: str) -> int:
        p = self.path(digest)
        try:
            size = p.stat().st_size
            p.unlink()
            return size
        except FileNotFoundError:
            return 0


def atomic_write(path: Path, data: bytes) -> None:
    """Write a file atomically: temp file in the same directory + fsync + rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
