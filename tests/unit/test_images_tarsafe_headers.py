"""GuardedTarInfo.frombuf: its fast path for plain ustar/GNU headers must parse exactly as tarfile does,
and hand every other header (and every error) to tarfile."""
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrun.images.tarsafe import GuardedTarInfo

FIELDS = ("name", "mode", "uid", "gid", "size", "mtime", "chksum", "type", "linkname", "uname", "gname",
          "devmajor", "devminor")


def header(name="a/b", type_=tarfile.REGTYPE, fmt=tarfile.USTAR_FORMAT, **attrs) -> bytes:
    info = tarfile.TarInfo(name)
    info.type = type_
    for k, v in attrs.items():
        setattr(info, k, v)
    return info.tobuf(fmt, "utf-8", "surrogateescape")[:tarfile.BLOCKSIZE]


def parse(cls, buf):
    try:
        info = cls.frombuf(buf, "utf-8", "surrogateescape")
    except tarfile.HeaderError as e:
        return type(e)
    return tuple(getattr(info, f) for f in FIELDS) + (getattr(info, "_sparse_structs", None),)


def same_as_tarfile(buf: bytes) -> None:
    assert parse(GuardedTarInfo, buf) == parse(tarfile.TarInfo, buf)


@pytest.mark.parametrize("buf", [
    header(),
    header("dir/", tarfile.DIRTYPE, mode=0o755),
    header("old-v7-dir/", tarfile.AREGTYPE),
    header("link", tarfile.SYMTYPE, linkname="../target"),
    header("hard", tarfile.LNKTYPE, linkname="a/b"),
    header("p/" * 60 + "name", tarfile.REGTYPE),  # ustar prefix
    header("f", size=8 ** 11 - 1, mtime=1_700_000_000, uid=65534, gid=65534, uname="nobody", gname="nogroup"),
    header("f", size=8 ** 11, fmt=tarfile.GNU_FORMAT),  # base-256 size: tarfile's path
    header("f", uid=-1 & 0o7777777, fmt=tarfile.GNU_FORMAT),
    header("dev", tarfile.CHRTYPE, devmajor=1, devminor=3),
    header("x", tarfile.XHDTYPE),
    header("s", tarfile.GNUTYPE_SPARSE, fmt=tarfile.GNU_FORMAT),
    header("ü-name"),
    b"\0" * 512,
    b"\0" * 100,
    b"",
])
def test_headers_parse_as_tarfile_parses_them(buf):
    same_as_tarfile(buf)


def test_bad_and_signed_checksums_and_malformed_numbers_go_to_tarfile():
    good = bytearray(header())
    bad = bytearray(good)
    bad[0] ^= 1  # the checksum no longer matches
    same_as_tarfile(bytes(bad))
    assert parse(GuardedTarInfo, bytes(bad)) is tarfile.InvalidHeaderError
    high = bytearray(header("n"))
    high[90] = 0xE9  # a byte with the high bit set: only the signed sum (old Sun/NeXT tars) may match
    signed = 256 + sum((b - 256 if b > 127 else b) for b in high[:148] + high[156:])
    high[148:156] = b"%06o\0 " % signed
    same_as_tarfile(bytes(high))
    for field, junk in ((100, b"12x4567\0"), (124, b"9" * 11 + b"\0"), (108, b" 1 2 3\0\0"), (136, b"\xff" * 11 + b"\0")):
        buf = bytearray(good)
        buf[field:field + len(junk)] = junk
        buf[148:156] = b"%06o\0 " % (256 + sum(buf[:148]) + sum(buf[156:]))
        same_as_tarfile(bytes(buf))


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=512, max_size=512), st.sampled_from([b"0", b"\0", b"5", b"2", b"1", b"x", b"L", b"S"]))
def test_random_headers_parse_as_tarfile_parses_them(raw, type_):
    buf = bytearray(raw)
    buf[156:157] = type_
    buf[148:156] = b"%06o\0 " % (256 + sum(buf[:148]) + sum(buf[156:]))  # most random headers: a good checksum
    same_as_tarfile(bytes(buf))


def test_plain_headers_take_the_fast_path(monkeypatch):
    def no(*_):
        raise AssertionError("tarfile's parser was used")
    bufs = [header(), header("d/", tarfile.DIRTYPE), header("p/" * 60 + "n"), header("l", tarfile.SYMTYPE, linkname="t")]
    expected = [parse(tarfile.TarInfo, b) for b in bufs]
    monkeypatch.setattr(tarfile, "calc_chksums", no)
    assert [parse(GuardedTarInfo, b) for b in bufs] == expected
