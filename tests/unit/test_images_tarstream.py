"""ForwardReader: reads, forward seeks and the end of the stream, across refills (pure)."""
import io

import pytest

from pyrun.images.tarstream import ForwardReader


def reader(data: bytes, chunk: int = 7) -> ForwardReader:
    src = io.BytesIO(data)
    return ForwardReader(lambda n: src.read(min(n, 5)), chunk=chunk)  # a source that returns short reads


def test_reads_across_refills_and_tells_the_position():
    data = bytes(range(256)) * 4
    r = reader(data)
    assert r.read(3) == data[:3] and r.tell() == 3
    assert r.read(100) == data[3:103] and r.tell() == 103
    assert r.read(-1) == data[103:] and r.tell() == len(data)
    assert r.read(10) == b""


def test_seeks_forward_only_and_stops_at_the_end():
    data = b"0123456789" * 10
    r = reader(data)
    r.read(2)
    assert r.seek(50) == 50 and r.read(3) == b"012"
    with pytest.raises(OSError, match="cannot seek back"):
        r.seek(10)
    assert r.seek(1000) == len(data) and r.read(1) == b""
