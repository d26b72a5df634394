"""check_member against crafted members, and the writer against crafted tars (no root needed)."""
import os
import stat
import tarfile

import pytest

from pyrun.errors import ImageError
from pyrun.images.build import LayerBuilder, gzip_bytes
from pyrun.images.unpack import LayerTooLarge, check_member, unpack_layer

from _images_helpers import crafted_tar, deep_layer, raw_info, sparse_tar, stream

L = "sha256:layer"


# --- check_member (pure) ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../x", "a/../../x", "a/..", "..", "./../etc/passwd", "/../x"])
def test_dotdot_refused(name):
    with pytest.raises(ImageError, match=r"layer sha256:layer: member .*'\.\.'"):
        check_member(raw_info(name), L)


@pytest.mark.parametrize("name, parts", [
    ("/etc/passwd", ("etc", "passwd")), ("./etc//passwd", ("etc", "passwd")), ("//a/./b", ("a", "b")),
])
def test_absolute_and_dot_paths_are_stripped(name, parts):
    assert check_member(raw_info(name), L).parts == parts


def test_root_entry_only_as_directory():
    assert check_member(raw_info("./", tarfile.DIRTYPE), L).parts == ()
    with pytest.raises(ImageError, match="layer root"):
        check_member(raw_info("/", tarfile.REGTYPE), L)


def test_path_through_earlier_symlink_refused():
    with pytest.raises(ImageError, match="through the symlink 'evil'"):
        check_member(raw_info("evil/passwd"), L, symlinks={("evil",)})
    # the symlink itself being replaced is fine
    assert check_member(raw_info("evil", tarfile.DIRTYPE), L, symlinks={("evil",)}).kind == "dir"


@pytest.mark.parametrize("target", ["../outside", "/../../etc/shadow", "a/../../b"])
def test_hardlink_escape_refused(target):
    with pytest.raises(ImageError, match="hardlink target"):
        check_member(raw_info("x", tarfile.LNKTYPE, target), L)


def test_hardlink_through_symlink_refused():
    with pytest.raises(ImageError, match="through the symlink 'lnk'"):
        check_member(raw_info("x", tarfile.LNKTYPE, "lnk/passwd"), L, symlinks={("lnk",)})
    # linking to the symlink itself is fine
    assert check_member(raw_info("x", tarfile.LNKTYPE, "/lnk"), L, symlinks={("lnk",)}).link_parts == ("lnk",)


def test_symlink_targets_are_not_restricted():
    e = check_member(raw_info("bin/sh", tarfile.SYMTYPE, "/../../../bin/busybox"), L)
    assert (e.kind, e.link_target) == ("symlink", "/../../../bin/busybox")


def test_device_nodes_are_kept():
    info = raw_info("dev/null", tarfile.CHRTYPE, mode=0o666)
    info.devmajor, info.devminor = 1, 3
    e = check_member(info, L)
    assert (e.kind, e.devmajor, e.devminor, e.mode) == ("chardev", 1, 3, 0o666)
    assert check_member(raw_info("dev/sda", tarfile.BLKTYPE), L).kind == "blockdev"
    assert check_member(raw_info("p", tarfile.FIFOTYPE), L).kind == "fifo"


def test_huge_names_refused():
    with pytest.raises(ImageError, match="longer than 255"):
        check_member(raw_info("a" * 256), L)
    with pytest.raises(ImageError, match="longer than 65536"):
        check_member(raw_info("/".join(["d" * 200] * 330)), L)
    assert len(check_member(raw_info("/".join(["d" * 200] * 21)), L).parts) == 21  # > PATH_MAX is fine


def test_unknown_member_type_refused():
    with pytest.raises(ImageError, match="unsupported tar member type"):
        check_member(raw_info("x", b"Z"), L)


def test_whiteouts_translated():
    e = check_member(raw_info("etc/.wh.passwd"), L)
    assert (e.kind, e.parts) == ("whiteout", ("etc", "passwd"))
    e = check_member(raw_info("var/cache/.wh..wh..opq"), L)
    assert (e.kind, e.parts) == ("opaque", ("var", "cache"))
    assert check_member(raw_info(".wh..wh.plnk"), L).kind == "opaque-ignored"
    for bad in ("a/.wh.", "a/.wh..", "a/.wh..."):
        with pytest.raises(ImageError):
            check_member(raw_info(bad), L)


def test_xattrs_from_pax_and_overlay_ones_dropped():
    info = raw_info("bin/ping")
    info.pax_headers = {"SCHILY.xattr.security.capability": "\x01\x00\x00\x02",
                        "SCHILY.xattr.trusted.overlay.redirect": "/etc", "comment": "x"}
    assert check_member(info, L).xattrs == {"security.capability": b"\x01\x00\x00\x02"}


# --- the writer ---------------------------------------------------------------------------------

def unpack(tmp_path, data: bytes):
    dest = tmp_path / "layer"
    dest.mkdir()
    unpack_layer(stream(data), dest, L)
    return dest


def test_unpack_files_dirs_links(tmp_path):
    layer = LayerBuilder(mtime=1000)
    layer.dir("etc", mode=0o750).file("etc/passwd", b"root\n", mode=0o600)
    layer.file("usr/bin/tool", b"#!/bin/sh\n", mode=0o4755)  # parents missing from the tar
    layer.symlink("bin", "usr/bin").hardlink("etc/passwd-", "etc/passwd")
    layer.dir("tmp", mode=0o1777)
    dest = unpack(tmp_path, layer.tar_bytes())
    assert (dest / "etc/passwd").read_bytes() == b"root\n"
    assert stat.S_IMODE(os.stat(dest / "etc").st_mode) == 0o750
    assert stat.S_IMODE(os.stat(dest / "etc/passwd").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(dest / "usr/bin/tool").st_mode) == 0o4755
    assert stat.S_IMODE(os.stat(dest / "tmp").st_mode) == 0o1777
    assert os.stat(dest / "etc").st_mtime == 1000 and os.stat(dest / "etc/passwd").st_mtime == 1000
    assert os.readlink(dest / "bin") == "usr/bin"
    assert os.lstat(dest / "bin").st_mtime == 1000
    assert os.stat(dest / "etc/passwd-").st_ino == os.stat(dest / "etc/passwd").st_ino


def test_file_through_earlier_symlink_never_escapes(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    data = crafted_tar((raw_info("evil", tarfile.SYMTYPE, str(outside)), None), (raw_info("evil/pwned"), b"x"))
    with pytest.raises(ImageError, match="'evil/pwned'.*symlink 'evil'"):
        unpack(tmp_path, data)
    assert list(outside.iterdir()) == []


def test_relative_symlink_escape_via_dotdot_target(tmp_path):
    # symlink pointing up and out, then a file through it
    data = crafted_tar((raw_info("a", tarfile.DIRTYPE, mode=0o755), None),
                       (raw_info("a/up", tarfile.SYMTYPE, "../.."), None), (raw_info("a/up/escaped"), b"x"))
    with pytest.raises(ImageError, match="symlink"):
        unpack(tmp_path, data)
    assert not (tmp_path / "escaped").exists()


def test_hardlink_to_outside_file_refused(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s")
    data = crafted_tar((raw_info("h", tarfile.LNKTYPE, "../secret"), None))
    with pytest.raises(ImageError, match="'h'.*'\\.\\.'"):
        unpack(tmp_path, data)
    (tmp_path / "2").mkdir()
    data = crafted_tar((raw_info("h", tarfile.LNKTYPE, str(secret)), None))  # absolute: "/tmp/.../secret"
    with pytest.raises(ImageError, match="not an earlier member"):
        unpack(tmp_path / "2", data)
    assert os.stat(secret).st_nlink == 1


def test_hardlink_through_symlink_refused_by_writer(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_text("s")
    data = crafted_tar((raw_info("s", tarfile.SYMTYPE, str(outside)), None),
                       (raw_info("h", tarfile.LNKTYPE, "s/f"), None))
    with pytest.raises(ImageError, match="through the symlink"):
        unpack(tmp_path, data)


def test_later_member_replaces_earlier(tmp_path):
    data = crafted_tar((raw_info("x", tarfile.SYMTYPE, "/etc"), None), (raw_info("x", tarfile.DIRTYPE, mode=0o755), None),
                       (raw_info("x/f"), b"ok"), (raw_info("y"), b"1"), (raw_info("y"), b"2"))
    dest = unpack(tmp_path, data)
    assert (dest / "x").is_dir() and not (dest / "x").is_symlink()
    assert (dest / "x/f").read_bytes() == b"ok" and (dest / "y").read_bytes() == b"2"


def test_whiteout_becomes_char_device(tmp_path):
    data = LayerBuilder().dir("etc").whiteout("etc/gone").tar_bytes()
    try:
        dest = unpack(tmp_path, data)
    except ImageError as e:
        pytest.skip(f"no whiteout devices here: {e}")
    st = os.lstat(dest / "etc/gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert not (dest / "etc/.wh.gone").exists()


def test_whiteout_does_not_hide_own_layer(tmp_path):
    data = crafted_tar((raw_info("keep"), b"mine"), (raw_info(".wh.keep"), b""))
    dest = unpack(tmp_path, data)
    assert (dest / "keep").read_bytes() == b"mine"


def test_truncated_stream(tmp_path):
    data = LayerBuilder().file("big", b"z" * 20000).tar_bytes()
    with pytest.raises(ImageError, match="layer sha256:layer: bad or truncated"):
        unpack(tmp_path, data[:5000])


def test_garbage_stream(tmp_path):
    with pytest.raises(ImageError, match="bad or truncated"):
        unpack(tmp_path, b"\x01" * 1024)


def test_truncated_gzip_layer(tmp_path):
    from pyrun.images.blobs import DecompressingReader
    dest = tmp_path / "l"
    dest.mkdir()
    gz = gzip_bytes(LayerBuilder().file("a", os.urandom(50000)).tar_bytes())[:20000]
    with pytest.raises(ImageError):
        unpack_layer(DecompressingReader(stream(gz), "layer x"), dest, "x")


# --- issue 15: unpacking can't fill the disk ------------------------------------------------------

GIB = 1 << 30


def test_sparse_member_is_written_sparse(tmp_path):
    """A 4 GiB PAX sparse member holding 8 bytes of data: 4 GiB apparent, a few blocks allocated."""
    data = sparse_tar("big", 4 * GIB, [(0, b"head"), (4 * GIB - 4, b"tail")])
    assert len(data) < 16 * 1024
    dest = unpack(tmp_path, data)
    st = os.stat(dest / "big")
    assert st.st_size == 4 * GIB
    assert st.st_blocks * 512 <= 1 << 20, st.st_blocks  # allocated: the two data blocks, not the holes
    with open(dest / "big", "rb") as f:
        assert f.read(4) == b"head"
        f.seek(GIB)
        assert f.read(4) == b"\0" * 4
        f.seek(4 * GIB - 4)
        assert f.read() == b"tail"


def test_sparse_holes_do_not_count_against_the_limit(tmp_path):
    dest = tmp_path / "layer"
    dest.mkdir()
    unpack_layer(stream(sparse_tar("big", 4 * GIB, [(GIB, b"x" * 100)])), dest, L, max_bytes=1000)
    assert os.stat(dest / "big").st_size == 4 * GIB


@pytest.mark.parametrize("bad", [[(10, b"abc"), (5, b"x")],          # unordered
                                 [(4 * GIB - 1, b"xy")]])            # beyond the real size
def test_bad_sparse_map_refused(tmp_path, bad):
    with pytest.raises(ImageError, match=r"layer sha256:layer: member 'big': bad sparse map entry"):
        unpack(tmp_path, sparse_tar("big", 4 * GIB, bad))


def test_layer_over_its_limit_names_layer_member_and_limit(tmp_path):
    dest = tmp_path / "layer"
    dest.mkdir()
    data = LayerBuilder().file("a", b"x" * 600).file("b", b"y" * 600).tar_bytes()
    with pytest.raises(LayerTooLarge, match=r"layer sha256:layer: member 'b': .* limit of 1000 bytes"):
        unpack_layer(stream(data), dest, L, max_bytes=1000)
    # refused before a byte of it is written (the caller removes dest): not created, or empty
    assert not (dest / "b").exists() or os.stat(dest / "b").st_size == 0


def test_sparse_data_over_the_limit_is_refused(tmp_path):
    dest = tmp_path / "layer"
    dest.mkdir()
    data = sparse_tar("big", 4 * GIB, [(0, b"x" * 700), (GIB, b"y" * 700)])
    with pytest.raises(LayerTooLarge, match="limit of 1000 bytes"):
        unpack_layer(stream(data), dest, L, max_bytes=1000)


def test_a_5000_level_layer_unpacks_and_is_removed(tmp_path):
    """Issue 15: a layer with a 2,000-deep directory made `image prune` crash forever (RecursionError).
    Member names of 10 KB are longer than PATH_MAX: the writer opens one component at a time."""
    from pyrun.linux.tree import remove_tree, tree_usage
    dest = unpack(tmp_path, deep_layer(5000))
    try:
        assert tree_usage(dest)[2] == 5000 + 1  # the directories and the file at the bottom
        fd = os.open(dest / "deep", os.O_RDONLY)
        for _ in range(4999):
            fd, old = os.open("d", os.O_RDONLY, dir_fd=fd), fd
            os.close(old)
        with os.fdopen(os.open("d", os.O_RDONLY, dir_fd=fd)) as f:
            assert f.read() == "bottom\n"
        os.close(fd)
    finally:
        remove_tree(dest)  # pytest's own tmp cleanup recurses: never leave it a deep tree
    assert not dest.exists()


def test_a_member_name_over_64_kib_is_refused_naming_it(tmp_path):
    name = "/".join(["d"] * 33000)  # 65,999 bytes
    with pytest.raises(ImageError, match=r"layer sha256:layer: member 'd/d/d.*longer than 65536 bytes"):
        unpack(tmp_path, crafted_tar((raw_info(name), b"x")))
    assert not (tmp_path / "layer" / "d").exists()  # refused before anything was made


def test_a_directory_replaced_by_a_symlink_is_never_written_through(tmp_path):
    """The writer's path index caches the last parent: a symlink replacing it must still be seen."""
    outside = tmp_path / "outside"
    outside.mkdir()
    data = crafted_tar((raw_info("d", tarfile.DIRTYPE, mode=0o755), None), (raw_info("d/e/f1"), b"1"),
                       (raw_info("d/e", tarfile.SYMTYPE, str(outside)), None), (raw_info("d/e/f2"), b"2"))
    with pytest.raises(ImageError, match=r"'d/e/f2'.*symlink 'd/e'"):
        unpack(tmp_path, data)
    assert list(outside.iterdir()) == []


def test_what_a_replaced_directory_held_is_forgotten(tmp_path):
    """A hardlink may only name an earlier member that still exists: not one under a replaced directory."""
    data = crafted_tar((raw_info("d/f"), b"1"), (raw_info("d"), b"now a file"), (raw_info("h", tarfile.LNKTYPE, "d/f"), None))
    with pytest.raises(ImageError, match="not an earlier member"):
        unpack(tmp_path, data)


def test_many_deep_members_keep_one_node_per_path(tmp_path):
    """Issue 15 hardening: long names cost O(depth) each, not O(depth) of memory per member
    (a small layer of such names once needed ~1 KiB of RAM per member, and O(depth^2) per member once
    it held a symlink)."""
    from pyrun.images.unpack import LayerWriter, check_member
    from pyrun.linux.tree import remove_tree
    base = "/".join(["d"] * 1000)
    dest = tmp_path / "layer"
    dest.mkdir()
    writer = LayerWriter(dest, L)
    try:
        writer.write(check_member(raw_info("link", tarfile.SYMTYPE, "/etc"), L, writer.paths), None)
        for i in range(200):
            writer.write(check_member(raw_info(f"{base}/f{i}"), L, writer.paths), stream(b""))
        nodes, stack = 0, [writer.paths.root]
        while stack:
            n = stack.pop()
            nodes += 1
            stack.extend((n.children or {}).values())
        assert nodes == 1 + 1 + 1000 + 200  # the root, the symlink, the chain, the files
    finally:
        writer.close()
        remove_tree(dest)


# --- tarfile's own trust, bounded (pyrun.images.tarsafe) ----------------------------------------------

def _pax(records: dict) -> bytes:
    return tarfile.TarInfo._create_pax_generic_header(records, tarfile.XHDTYPE, "utf-8")


def _member(name: str) -> bytes:
    info = tarfile.TarInfo(name)
    return info.tobuf(tarfile.USTAR_FORMAT)


END = b"\0" * 1024


@pytest.mark.parametrize("data, why", [
    (_pax({"comment": "x"}) * 3000 + _member("a") + END, "more than 8 extended headers in a row"),  # RecursionError
    (_pax({"comment": "x" * (2 << 20)}) + _member("a") + END, "an extended header of"),
])
def test_hostile_extended_headers_are_a_clear_error(tmp_path, data, why):
    with pytest.raises(ImageError, match=f"layer sha256:layer: bad or truncated tar stream: .*{why}"):
        unpack(tmp_path, data)


def _sparse_with_map(mapping: bytes) -> bytes:
    info = tarfile.TarInfo("GNUSparseFile.0/big")
    info.size = len(mapping) + (-len(mapping) % 512)
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "big",
                        "GNU.sparse.realsize": "100"}
    return info.tobuf(tarfile.PAX_FORMAT) + mapping + b"\0" * (-len(mapping) % 512) + END


@pytest.mark.parametrize("mapping, why", [
    (b"99999999\n0\n1\n", "a sparse map of b'99999999' entries"),
    (b"3\n0\n", "malformed or truncated sparse map"),  # tarfile itself raised ValueError here
    (b"1\nx\n1\n", "malformed sparse map entry"),
])
def test_hostile_sparse_maps_are_a_clear_error(tmp_path, mapping, why):
    with pytest.raises(ImageError, match=f"bad or truncated tar stream: .*{why}"):
        unpack(tmp_path, _sparse_with_map(mapping))


def test_an_oci_archive_with_chained_headers_is_refused(tmp_path):
    from pyrun.images.oci import TarSource
    archive = tmp_path / "evil.tar"
    archive.write_bytes(_pax({"comment": "x"}) * 3000 + _member("index.json") + END)
    with pytest.raises(ImageError, match="(?s)not a readable tar archive: .*extended headers in a row"):
        TarSource(archive)


def _old_gnu_sparse(extension_blocks: list[bytes]) -> bytes:
    """An old-GNU sparse ('S') header saying more map blocks follow, then `extension_blocks`."""
    info = tarfile.TarInfo("big")
    info.size = 0
    head = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    head[156:157] = b"S"
    head[482] = 1                                   # isextended
    head[483:495] = b"%011o\0" % 100                # realsize
    head[148:156] = b" " * 8
    head[148:155] = b"%06o\0" % sum(head)           # checksum
    return bytes(head) + b"".join(extension_blocks)


def _extension_block(entries: int, more: bool) -> bytes:
    block = bytearray(512)
    for i in range(entries):
        block[i * 24:i * 24 + 24] = b"%011o\0%011o\0" % (i * 10 + 1, 1)
    block[504] = 1 if more else 0
    return bytes(block)


@pytest.mark.parametrize("blocks, why", [
    ([_extension_block(21, True)] * 3200, "a sparse map of more than 65536 entries"),
    ([_extension_block(21, True)], "a truncated sparse header"),  # tarfile itself raised IndexError here
])
def test_hostile_old_gnu_sparse_headers_are_a_clear_error(tmp_path, blocks, why):
    with pytest.raises(ImageError, match=f"bad or truncated tar stream: .*{why}"):
        unpack(tmp_path, _old_gnu_sparse(blocks))


def test_queued_small_files_are_on_disk_before_anything_replaces_hides_or_links_them(tmp_path):
    """Small new files are written by the file thread; a later member that replaces, hides or hardlinks
    one (or a directory holding one) sees it written first, and the data of every file is whole."""
    from pyrun.images.unpack import SMALL_FILE
    big = b"B" * (SMALL_FILE + 1)
    members = [(raw_info(f"many/f{i}"), str(i).encode()) for i in range(200)]
    members += [(raw_info("d/inner"), b"gone"), (raw_info("d"), b"now a file"),       # dir -> file
                (raw_info("f"), b"first"), (raw_info("f", tarfile.DIRTYPE, mode=0o755), None),  # file -> dir
                (raw_info("t"), b"target"), (raw_info("hl", tarfile.LNKTYPE, "t"), None),  # link to a queued file
                (raw_info("big"), big), (raw_info("after-big"), b"small"),
                (raw_info("many/f7"), b"seven again")]
    dest = unpack(tmp_path, crafted_tar(*members))
    assert all((dest / f"many/f{i}").read_bytes() == str(i).encode() for i in range(200) if i != 7)
    assert (dest / "many/f7").read_bytes() == b"seven again"
    assert (dest / "d").read_bytes() == b"now a file"
    assert (dest / "f").is_dir()
    assert os.stat(dest / "hl").st_ino == os.stat(dest / "t").st_ino and (dest / "hl").read_bytes() == b"target"
    assert (dest / "big").read_bytes() == big and (dest / "after-big").read_bytes() == b"small"


def test_an_error_in_the_file_thread_names_the_member(tmp_path, monkeypatch):
    from pyrun.images import unpack as unpack_mod

    def failing(self, pfd, name, e, data):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(unpack_mod.LayerWriter, "_write_small_file", failing)
    with pytest.raises(ImageError, match=r"layer sha256:layer: member 'a/b': .*No space left"):
        unpack(tmp_path, crafted_tar((raw_info("a/b"), b"x"), (raw_info("c"), b"y")))
