"""pyrun's unpacked layers, seen through a real overlay mount, match `umoci unpack` of the same
image file by file: type, mode, owner, content, link target, device numbers."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from pyrun.images.build import LayerBuilder, write_layout
from pyrun.images.store import ImageStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from _images_helpers import build_demo  # noqa: E402
from _images_tree import describe, diff_trees, overlay_tree, umoci_unpack  # noqa: E402

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(not shutil.which("umoci"), reason="needs umoci")]


def tricky_layers() -> list[bytes]:
    base = LayerBuilder()
    for d in ("etc", "opq", "opq/sub", "gone-dir", "replace", "usr", "usr/bin", "home", "home/u"):
        base.dir(d)
    base.dir("home/u", mode=0o700, uid=1000, gid=1000)
    base.file("etc/keep", b"keep\n")
    base.file("etc/gone", b"bye\n")
    base.file("etc/setuid", b"#!/bin/sh\n", mode=0o4755)
    base.file("home/u/own", b"mine\n", mode=0o600, uid=1000, gid=100)
    base.file("opq/a", b"a\n")
    base.file("opq/sub/b", b"b\n")
    base.file("gone-dir/x", b"x\n")
    base.file("replace/file", b"was a file\n")
    base.symlink("usr/bin/link", "../../etc/keep")
    base.file("usr/bin/tool", b"\x7fELF" + bytes(range(256)) * 40, mode=0o755)
    base.hardlink("usr/bin/tool-hard", "usr/bin/tool")
    base.device("etc/null", True, 1, 3)
    base.device("etc/blk", False, 7, 0, mode=0o660)
    base.fifo("etc/fifo", mode=0o600)
    top = LayerBuilder()
    top.dir("opq")
    top.opaque("opq")
    top.file("opq/new", b"new\n")
    top.whiteout("etc/gone")
    top.whiteout("gone-dir")
    top.dir("replace/file", mode=0o750)
    top.file("replace/file/inner", b"now a dir\n")
    top.file("etc/keep", b"changed\n", mode=0o640, uid=5, gid=6)
    top.symlink("usr/bin/link", "/etc/other")
    top.dir("tmp", mode=0o1777)
    return [base.tar_bytes(), top.tar_bytes()]


@pytest.mark.parametrize("which", ["tricky", "demo"])
def test_overlay_rootfs_matches_umoci(which, tmp_path):
    layout = tmp_path / "layout"
    if which == "tricky":
        write_layout(layout, tricky_layers(), {"Cmd": ["sh"]}, ref_name="latest")
    else:
        build_demo(layout, tag="latest")
    store = ImageStore(tmp_path / "images")
    img = store.import_path(layout, "test/cmp:1")
    ours = overlay_tree(store.layer_dirs(img), tmp_path / "merged")
    theirs = describe(umoci_unpack(layout, "latest", tmp_path / "bundle"))
    assert len(ours) > 5
    assert diff_trees(ours, theirs) == []
    if which == "tricky":
        assert "etc/gone" not in ours and "gone-dir" not in ours and "opq/a" not in ours
        assert ours["opq/new"]["type"] == "file" and ours["replace/file"]["type"] == "dir"
        assert ours["etc/keep"] == theirs["etc/keep"] and ours["etc/keep"]["uid"] == 5
