"""Property-based tests over generated (often hostile) layer archives: unpacking never writes
outside its target directory and never fails with anything but ImageError."""
from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyrun.errors import ImageError
from pyrun.images.blobs import DecompressingReader
from pyrun.images.build import gzip_bytes
from pyrun.images.unpack import unpack_layer

COMPONENTS = ["a", "b", "..", ".", "", "etc", ".wh.a", ".wh.b", ".wh..wh..opq", ".wh..wh.plnk", "c\x00d", "x" * 300]
TARGETS = ["a", "b", "..", "../..", "/", "/etc", "../outside", "a/b", "/tmp", "", "../victim/file"]
TYPES = [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE,
         tarfile.CHRTYPE, tarfile.BLKTYPE, b"V", b"7"]

path = st.lists(st.sampled_from(COMPONENTS), min_size=1, max_size=4).map(
    lambda parts: "/".join(parts)) | st.sampled_from(["/", "/abs/a", "../victim/file", "./a/../../b"])
member = st.tuples(path, st.sampled_from(TYPES), st.sampled_from(TARGETS), st.binary(max_size=64),
                   st.integers(0, 0o7777))


def build(members: list[tuple]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, typ, target, data, mode in members:
            info = tarfile.TarInfo(name.replace("\x00", "") or "x")
            info.type, info.mode, info.linkname = typ, mode, target
            info.devmajor, info.devminor = 1, 3
            if typ == tarfile.REGTYPE:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def snapshot(root: Path) -> dict:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = Path(dirpath) / n
            st_ = os.lstat(p)
            out[str(p.relative_to(root))] = (st_.st_mode, st_.st_size, st_.st_mtime_ns)
    return out


def check_unpack(data: bytes) -> None:
    outer = Path(tempfile.mkdtemp(prefix="pyrun-hyp-"))
    try:
        (outer / "victim").mkdir()
        (outer / "victim" / "file").write_bytes(b"untouched")
        target = outer / "layer"
        target.mkdir()
        before = snapshot(outer / "victim")
        try:
            unpack_layer(io.BytesIO(data), target, "hyp", privileged=False)
        except ImageError:
            pass
        assert sorted(p.name for p in outer.iterdir()) == ["layer", "victim"]
        assert snapshot(outer / "victim") == before
        assert (outer / "victim" / "file").read_bytes() == b"untouched"
        for dirpath, dirs, files in os.walk(target):
            for n in dirs + files:  # every created entry lives below the target (symlinks are not followed)
                real = Path(os.path.realpath(Path(dirpath)))
                assert real == target or target in real.parents
    finally:
        shutil.rmtree(outer, ignore_errors=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(member, min_size=1, max_size=12))
def test_generated_archives_stay_inside(members):
    check_unpack(build(members))


@settings(max_examples=200, deadline=None)
@given(st.lists(member, min_size=1, max_size=6), st.data())
def test_damaged_streams_only_raise_image_error(members, data):
    raw = bytearray(build(members))
    how = data.draw(st.sampled_from(["truncate", "flip", "gzip-truncate"]))
    if how == "truncate":
        raw = raw[:data.draw(st.integers(0, len(raw)))]
    elif how == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    else:
        gz = gzip_bytes(bytes(raw))
        raw = bytearray(gz[:data.draw(st.integers(0, len(gz) - 1))])
    outer = Path(tempfile.mkdtemp(prefix="pyrun-hyp-"))
    try:
        (outer / "layer").mkdir()
        try:
            unpack_layer(DecompressingReader(io.BytesIO(bytes(raw)), "hyp"), outer / "layer", "hyp", privileged=False)
        except ImageError:
            pass
        assert [p.name for p in outer.iterdir()] == ["layer"]
    finally:
        shutil.rmtree(outer, ignore_errors=True)
