import io

import pytest

from pyrun.errors import ImageError, NotFound
from pyrun.images.blobs import BlobStore, Decompressor, DecompressingReader, atomic_write, sha256_digest
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
