import io

import pytest

from pyrun.errors import ImageError, NotFound
from pyrun.images.blobs import BlobStore, Decompressor, DecompressingReader, PlainReader, atomic_write, sha256_digest
from pyrun.images.build import gzip_bytes


class Trickle(io.BytesIO):
    """Returns at most 3 bytes per read, to exercise stream boundaries."""

    def read(self, size=-1):
        return super().read(3 if size < 0 else min(size, 3))


def test_put_verifies_and_stores(tmp_path):
    blobs = BlobStore(tmp_path)
    data = b"hello"
    w = blobs.put(io.BytesIO(data), sha256_digest(data))
    assert w.size == 5 and blobs.read(w.digest) == data
    assert list(blobs.digests()) == [w.digest]


def test_mismatch_is_refused_and_nothing_stored(tmp_path):
    blobs = BlobStore(tmp_path)
    wrong = sha256_digest(b"other")
    with pytest.raises(ImageError, match="digest mismatch.*not stored"):
        blobs.put(io.BytesIO(b"hello"), wrong, "layer 0")
    assert not blobs.exists(wrong)
    assert list(tmp_path.joinpath("sha256").iterdir()) == []


def test_size_mismatch_refused(tmp_path):
    blobs = BlobStore(tmp_path)
    with pytest.raises(ImageError, match="size mismatch"):
        blobs.put(io.BytesIO(b"hello"), sha256_digest(b"hello"), size=4)
    assert list(tmp_path.joinpath("sha256").iterdir()) == []


def test_diff_id_checked_in_the_same_pass(tmp_path):
    blobs = BlobStore(tmp_path)
    plain = b"x" * 100000
    gz = gzip_bytes(plain)
    w = blobs.put(Trickle(gz), sha256_digest(gz), diff_id=sha256_digest(plain))
    assert w.uncompressed_size == len(plain)
    blobs.remove(w.digest)
    with pytest.raises(ImageError, match="uncompressed digest mismatch"):
        blobs.put(io.BytesIO(gz), sha256_digest(gz), diff_id=sha256_digest(b"not it"))
    assert not blobs.exists(w.digest)


def test_truncated_gzip_refused(tmp_path):
    gz = gzip_bytes(b"y" * 5000)[:-10]
    with pytest.raises(ImageError, match="truncated"):
        BlobStore(tmp_path).put(io.BytesIO(gz), sha256_digest(gz), diff_id=sha256_digest(b"y" * 5000))


def test_missing_blob_is_not_found(tmp_path):
    with pytest.raises(NotFound):
        BlobStore(tmp_path).read(sha256_digest(b"nope"))


def test_bad_digest_refused(tmp_path):
    with pytest.raises(ImageError):
        BlobStore(tmp_path).path("md5:abc")
    with pytest.raises(ImageError, match="only sha256"):
        BlobStore(tmp_path).path("sha512:" + "a" * 128)


@pytest.mark.parametrize("data", [b"", b"ab", b"plain tar bytes" * 100])
def test_decompressor_plain(data):
    d = Decompressor("t")
    out = b"".join(d.feed(data[i:i + 3]) for i in range(0, len(data), 3)) + d.finish()
    assert out == data and d.kind == "none"


def test_decompressor_concatenated_gzip():
    data = gzip_bytes(b"one ") + gzip_bytes(b"two")
    assert DecompressingReader(io.BytesIO(data), "t").read() == b"one two"


def test_zstd_without_package_is_a_clear_error():
    try:
        import zstandard  # noqa: F401
        pytest.skip("zstandard is installed")
    except ImportError:
        pass
    with pytest.raises(ImageError, match="zstd layers need"):
        Decompressor("layer 1").feed(b"\x28\xb5\x2f\xfd" + b"\0" * 10)


def test_atomic_write_leaves_no_temp(tmp_path):
    atomic_write(tmp_path / "f", b"1")
    atomic_write(tmp_path / "f", b"2")
    assert [p.name for p in tmp_path.iterdir()] == ["f"]
    assert (tmp_path / "f").read_bytes() == b"2"


# --- PlainReader: the decompressing reader thread -------------------------------------------------

def _read_all(r, n):
    out = []
    while chunk := r.read(n):
        assert len(chunk) <= n
        out.append(chunk)
    return b"".join(out)


@pytest.mark.parametrize("n", [1, 7, 1 << 20])
def test_plain_reader_gunzips_in_pieces_and_hashes(n):
    plain = bytes(range(256)) * 400
    r = PlainReader(Trickle(gzip_bytes(plain)) if n == 7 else io.BytesIO(gzip_bytes(plain)), "t", hash_plain=True,
                    chunk=1000, piece=333, depth=2)
    try:
        assert _read_all(r, n) == plain
        assert r.finish() == sha256_digest(plain) and r.size == len(plain)
    finally:
        r.close()


def test_plain_reader_finish_hashes_what_was_not_read():
    plain = b"tar data" + b"\0" * 5000
    r = PlainReader(io.BytesIO(gzip_bytes(plain)), "t", hash_plain=True, piece=100)
    assert r.read(8) == b"tar data"
    assert r.finish() == sha256_digest(plain)
    r.close()


def test_plain_reader_bounds_what_a_bomb_decodes_to():
    bomb = gzip_bytes(b"\0" * (64 << 20))  # 64 KiB that decode to 64 MiB
    r = PlainReader(io.BytesIO(bomb), "t", chunk=1 << 20, piece=1 << 16, depth=2)
    try:
        assert len(r.read(1 << 30)) <= 1 << 16
    finally:
        r.close()  # stops the thread with most of the bomb undecoded


def test_plain_reader_raises_the_threads_error():
    gz = bytearray(gzip_bytes(b"z" * 100000))
    gz[20:40] = b"\xff" * 20
    r = PlainReader(io.BytesIO(bytes(gz)), "layer 3")
    with pytest.raises(ImageError, match="layer 3: corrupt gzip data"):
        _read_all(r, 4096)
    r.close()
    r = PlainReader(io.BytesIO(gzip_bytes(b"y" * 5000)[:-10]), "layer 4")
    with pytest.raises(ImageError, match="layer 4: gzip stream is truncated"):
        r.finish()
    r.close()


def test_plain_reader_plain_and_concatenated_and_trailing_garbage():
    for raw, plain in [(b"not compressed" * 99, b"not compressed" * 99),
                       (gzip_bytes(b"one ") + gzip_bytes(b"two"), b"one two"),
                       (gzip_bytes(b"data") + b"\0" * 1024, b"data")]:  # gzip(1) ignores trailing zeros too
        r = PlainReader(Trickle(raw), "t")
        assert _read_all(r, 5) == plain
        r.close()


def test_plain_reader_tees_the_compressed_stream_into_a_blob(tmp_path):
    plain = b"layer" * 10000
    gz = gzip_bytes(plain)
    store = BlobStore(tmp_path)
    blob = store.writer(sha256_digest(gz), "layer 0", len(gz))
    try:
        r = PlainReader(io.BytesIO(gz), "t", tee=blob, chunk=100)
        assert r.read(5) == b"layer"
        r.finish()
        r.close()
        assert blob.commit().digest == sha256_digest(gz)
    finally:
        blob.abort()
    assert store.read(sha256_digest(gz)) == gz
    assert [p.name for p in store.dir.iterdir()] == [sha256_digest(gz).split(":")[1]]


def test_blob_writer_abort_leaves_nothing(tmp_path):
    store = BlobStore(tmp_path)
    blob = store.writer(sha256_digest(b"x"), "blob", 1)
    blob.write(b"y")
    with pytest.raises(ImageError, match="digest mismatch"):
        blob.commit()
    blob.abort()
    assert list(store.dir.iterdir()) == []
