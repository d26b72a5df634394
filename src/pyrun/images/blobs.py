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

from pyrun.linux.tree import fsync_dir
from pyrun.errors import ImageError, NotFound
from pyrun.frozen import Frozen
from pyrun.images.reference import validate_digest

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a pod create reads the store)
if TYPE_CHECKING:
    from typing import BinaryIO, Iterator

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _sha256(data: bytes = b""):
    """hashlib.sha256, imported when a digest is computed: hashlib loads OpenSSL, and a pod create
    only reads the store."""
    import hashlib
    return hashlib.sha256(data)


def hex_of(digest: str) -> str:
    """'sha256:abc...' -> 'abc...' after validating it is a sha256 digest."""
    validate_digest(digest)
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256":
        raise ImageError(f"unsupported digest algorithm in {digest!r}: only sha256 is supported")
    return hexpart


def sha256_digest(data: bytes) -> str:
    return "sha256:" + _sha256(data).hexdigest()


# --- streaming decompression (pure: bytes in, bytes out) ----------------------------------------

class Decompressor:
    """Incremental gzip/zstd/plain decoder chosen from the first bytes of the stream. gzip goes through
    ISA-L (python-isal), which releases the GIL: a thread decompressing runs beside the unpacking one."""

    def __init__(self, what: str):
        self.what = what
        self._kind: str | None = None
        self._head = b""
        self._z = None
        self._trailer = False  # past the last gzip member: the rest is ignored, as gzip(1) does

    @property
    def kind(self) -> str | None:
        return self._kind

    def feed(self, data: bytes) -> bytes:
        return b"".join(self.pieces(data))

    def pieces(self, data: bytes, most: int = 0) -> Iterator[bytes]:
        """What `data` decodes to. With `most`, gzip output comes in pieces of at most that many bytes
        (a small compressed chunk may decode to a thousand times its size: hold one piece at a time)."""
        if self._kind is None:
            self._head += data
            if len(self._head) < 4 and data:
                return
            data, self._head = self._head, b""
            self._start(data)
        if not data:
            return
        if self._kind == "none":
            yield data
        elif self._kind == "zstd":
            yield self._z.decompress(data)
        else:
            try:
                yield from self._gunzip(data, most)
            except (zlib.error, _isal_error()) as e:
                raise ImageError(f"{self.what}: corrupt gzip data: {e}") from None

    def _start(self, head: bytes) -> None:
        if head.startswith(GZIP_MAGIC):
            self._kind, self._z = "gzip", _gunzipobj()
        elif head.startswith(ZSTD_MAGIC):
            self._kind, self._z = "zstd", _zstd_decompressobj(self.what)
        else:
            self._kind = "none"

    def _gunzip(self, data: bytes, most: int) -> Iterator[bytes]:
        while data and not self._trailer:
            out = self._z.decompress(data, most)
            if out:
                yield out
            data = self._z.unconsumed_tail or self._z.unused_data
            if data and self._z.eof:
                if GZIP_MAGIC.startswith(data[:2]):  # concatenated gzip members (gzip(1) allows them)
                    self._z = _gunzipobj()
                else:  # trailing zeros or garbage: gzip(1) warns and ignores them
                    self._trailer = True

    def finish(self) -> bytes:
        """End of input: flush, and refuse a truncated compressed stream."""
        out = b""
        if self._kind is None:
            data, self._head = self._head, b""
            self._start(data)
            out = self.feed(data)
        if self._kind == "gzip":
            if not self._z.eof:
                raise ImageError(f"{self.what}: gzip stream is truncated")
            out += self._z.flush()
        return out


def _gunzipobj():
    """ISA-L's inflate (zlib's format, about 3x the speed of zlib or gzip(1)); imported on first use."""
    from isal import isal_zlib
    return isal_zlib.decompressobj(16 + zlib.MAX_WBITS)


def _isal_error() -> type[Exception]:
    from isal import isal_zlib
    return isal_zlib.error


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


class PlainReader:
    """read(n) of a blob's uncompressed bytes, which a thread reads, decompresses and (with `hash_plain`)
    hashes ahead of the caller. File reads, ISA-L and hashlib release the GIL, so that work runs on the
    other core while the caller parses the tar: one process, no pipe, no second pass for the diff_id.

    With `tee` (a BlobWriter), every compressed chunk is also written there as it is read: a blob is
    stored and unpacked in one pass. At most `depth` pieces of at most `piece` bytes wait: the memory
    held is bounded, whatever the compression ratio. `finish()` reads to the end of the stream (past
    the tar's end marker, so the digests cover all of it) and returns the plain digest; `close()`
    stops the thread early, after a chunk it has passed to `tee`."""

    def __init__(self, raw: BinaryIO, what: str, hash_plain: bool = False, tee: BlobWriter | None = None,
                 chunk: int = 256 << 10, piece: int = 1 << 20, depth: int = 8):
        import queue
        import threading
        self.what = what
        self.size = 0  # uncompressed bytes decoded so far (final after finish())
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._hash = _sha256() if hash_plain else None
        self._buf = b""
        self._done = False
        self._stop = False
        self._error: BaseException | None = None
        self.in_step = True   # False while a raw read (and its tee) is under way: a failure there breaks
        self.raw_eof = False  # the stream; after close() with in_step, the caller may read on from `raw`
        self._thread = threading.Thread(target=self._run, args=(raw, tee, chunk, piece),
                                        name="pyrun-layer-read", daemon=True)
        self._thread.start()

    def _run(self, raw: BinaryIO, tee: BlobWriter | None, chunk: int, piece: int) -> None:
        dec = Decompressor(self.what)
        try:
            while not self._stop:
                self.in_step = False
                data = raw.read(chunk)
                if tee is not None:
                    tee.write(data)
                self.in_step, self.raw_eof = True, not data
                for plain in dec.pieces(data, piece) if data else (dec.finish(),):
                    if plain and not self._stop:
                        if self._hash is not None:
                            self._hash.update(plain)
                        self.size += len(plain)
                        self._queue.put(plain)
                if not data:
                    break
        except BaseException as e:  # noqa: BLE001 - raised in the reading thread
            self._error = e
        finally:
            self._queue.put(None)

    def read(self, n: int = -1) -> bytes:
        """Up to `n` bytes (all that is left for n < 0); b"" only at the end of the stream."""
        if n < 0:
            return b"".join(iter(lambda: self.read(1 << 30), b""))
        if not self._buf and not self._next():
            return b""
        out, self._buf = (self._buf, b"") if n >= len(self._buf) else (self._buf[:n], self._buf[n:])
        return out

    def _next(self) -> bool:
        if self._done:
            return False
        item = self._queue.get()
        if item is None:
            self._done = True
            self._thread.join()
            if self._error is not None:
                raise self._error
            return False
        self._buf = item
        return True

    def finish(self) -> str | None:
        """Read the rest of the stream; the sha256 digest of all of it (None without `hash_plain`)."""
        self._buf = b""
        while self._next():
            self._buf = b""
        return "sha256:" + self._hash.hexdigest() if self._hash is not None else None

    def close(self) -> None:
        """Stop the thread (idempotent); what was not read is dropped."""
        self._stop = True
        while not self._done:
            self._done = self._queue.get() is None
        self._thread.join()


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
        blob = self.writer(digest, what, size)
        try:
            uh = _sha256() if diff_id else None
            dec = Decompressor(what) if diff_id else None
            un = 0
            decode_error: ImageError | None = None
            while True:
                chunk = stream.read(CHUNK)
                blob.write(chunk)
                if dec:
                    try:
                        plain = dec.feed(chunk) if chunk else dec.finish()
                    except ImageError as e:  # report a digest mismatch first: it says more
                        decode_error, dec = e, None
                    else:
                        un += len(plain)
                        uh.update(plain)
                if not chunk:
                    break
            blob.verify()
            if decode_error:
                raise decode_error
            got_diff = "sha256:" + uh.hexdigest() if uh else None
            if diff_id and got_diff != diff_id:
                raise ImageError(f"{what}: uncompressed digest mismatch: config rootfs.diff_ids says {diff_id}, "
                                 f"layer content has {got_diff}; not stored")
            return blob.commit(got_diff, un if uh else None)
        finally:
            blob.abort()

    def writer(self, digest: str, what: str = "blob", size: int | None = None) -> BlobWriter:
        """A blob to be written piece by piece (write, verify, commit; abort() after, always)."""
        hex_of(digest)
        self.dir.mkdir(parents=True, exist_ok=True)
        return BlobWriter(self, digest, what, size)

    def remove(self, digest: str) -> int:
        p = self.path(digest)
        try:
            size = p.stat().st_size
            p.unlink()
            return size
        except FileNotFoundError:
            return 0


class BlobWriter:
    """One blob arriving in pieces: written to a temporary file in the blob directory and hashed as it
    comes; verify() checks digest and size, commit() fsyncs and renames it into place. abort() (always
    call it, after commit too) removes what a failed or abandoned write left."""

    def __init__(self, store: BlobStore, digest: str, what: str, size: int | None):
        self.digest, self.what, self.size = digest, what, size
        self._path = store.path(digest)
        self._tmp = store.dir / f".tmp-{hex_of(digest)[:16]}-{os.getpid()}-{os.urandom(4).hex()}"
        self._file: BinaryIO | None = open(self._tmp, "xb")
        self._hash = _sha256()
        self.written = 0

    def write(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self.written += len(chunk)
        self._file.write(chunk)

    def verify(self) -> None:
        got = "sha256:" + self._hash.hexdigest()
        if got != self.digest:
            raise ImageError(f"{self.what}: digest mismatch: expected {self.digest}, content has {got} "
                             f"({self.written} bytes); not stored")
        if self.size is not None and self.written != self.size:
            raise ImageError(f"{self.what}: size mismatch: descriptor says {self.size} bytes, "
                             f"content has {self.written}; not stored")

    def commit(self, diff_id: str | None = None, uncompressed_size: int | None = None) -> Written:
        """Verify, then make the blob durable under its digest name."""
        self.verify()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        os.rename(self._tmp, self._path)
        fsync_dir(self._path.parent)
        return Written(self.digest, self.written, diff_id, uncompressed_size)

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._tmp.unlink(missing_ok=True)


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
