"""Root + real kernel: import the demo image, check the unpacked layers, mount them as an overlay
in a private mount namespace (a child process), and make sure nothing stays mounted."""
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from pyrun.errors import ImageError
from pyrun.images.build import LayerBuilder, write_layout
from pyrun.images.store import ImageStore
from pyrun.images.unpack import OPAQUE_XATTR, unpack_layer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from _images_helpers import build_demo, crafted_tar, raw_info, stream  # noqa: E402

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="needs busybox-static"),
]

# Runs in a child inside its own mount namespace: mount the overlay with pyrun's own
# wrappers and helper, report what the merged tree shows, unmount. The namespace dies with it.
OVERLAY_PROBE = r"""
import json, os, sys
from pyrun.linux import syscalls as linux
from pyrun.images.overlay import compact_mount_data
from pathlib import Path
lower = [Path(p) for p in json.loads(sys.argv[1])]
target, upper, work = sys.argv[2:5]
linux.make_private("/")
data, cwd = compact_mount_data(lower, Path(upper), Path(work))
if cwd:
    os.chdir(cwd)
linux.mount("overlay", target, "overlay", 0, data)
listing = {p: sorted(os.listdir(os.path.join(target, p))) for p in json.loads(sys.argv[5])}
files = {p: open(os.path.join(target, p)).read() for p in json.loads(sys.argv[6]) if os.path.exists(os.path.join(target, p))}
linux.umount(target)
print(json.dumps({"listing": listing, "files": files}))
"""


def mounted_paths() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


def probe_overlay(tmp_path, lower, dirs, files):
    target, upper, work = (tmp_path / n for n in ("merged", "upper", "work"))
    for d in (target, upper, work):
        d.mkdir()
    before = {m for m in mounted_paths() if m.startswith(str(tmp_path))}
    out = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", OVERLAY_PROBE,
         json.dumps([str(p) for p in lower]), str(target), str(upper), str(work), json.dumps(dirs), json.dumps(files)],
        capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert {m for m in mounted_paths() if m.startswith(str(tmp_path))} == before  # only this test's mounts:
    assert str(target) not in mounted_paths()  # other tests (or runs) may mount elsewhere meanwhile
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    build_demo(d / "layout", d / "demo.tar")
    store = ImageStore(d / "images")
    return store, store.import_path(d / "demo.tar")


def test_demo_layers_unpacked(demo_store):
    store, img = demo_store
    top, base = store.layer_dirs(img)
    st = os.stat(base / "tmp")
    assert stat.S_IMODE(st.st_mode) == 0o1777 and (st.st_uid, st.st_gid) == (0, 0)
    assert stat.S_IMODE(os.stat(base / "root").st_mode) == 0o700
    assert os.access(base / "bin/busybox", os.X_OK)
    assert os.readlink(base / "usr/bin/env") == "/bin/busybox"
    wh = os.lstat(top / "etc/removed-by-layer-2")
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == os.makedev(0, 0)
    for d in ("proc", "sys", "dev"):
        assert (base / d).is_dir()


def test_overlay_hides_whited_out_file(tmp_path, demo_store):
    store, img = demo_store
    got = probe_overlay(tmp_path, store.layer_dirs(img), ["etc"],
                        ["etc/motd", "etc/removed-by-layer-2", "etc/passwd"])
    etc = got["listing"]["etc"]
    assert "removed-by-layer-2" not in etc
    assert {"motd", "pyrun-demo", "passwd", "group"} <= set(etc)
    assert "removed-by-layer-2" not in got["files"] and got["files"]["etc/passwd"].startswith("root:")


def test_opaque_directory(tmp_path):
    base = LayerBuilder().dir("data").file("data/old", b"old").file("data/also-old", b"x").tar_bytes()
    top = LayerBuilder().dir("data").opaque("data").file("data/new", b"new").tar_bytes()
    write_layout(tmp_path / "l", [base, top], ref_name="test/opaque:1")
    store = ImageStore(tmp_path / "s")
    img = store.import_path(tmp_path / "l")
    assert os.getxattr(store.layer_dirs(img)[0] / "data", OPAQUE_XATTR) == b"y"
    got = probe_overlay(tmp_path, store.layer_dirs(img), ["data"], [])
    assert got["listing"]["data"] == ["new"]


def test_many_layers_use_the_compact_form(tmp_path):
    layers = [LayerBuilder().file(f"f{i:02}", str(i).encode()).tar_bytes() for i in range(50)]
    write_layout(tmp_path / "l", layers, ref_name="test/tall:1")
    store = ImageStore(tmp_path / "s")
    img = store.import_path(tmp_path / "l")
    lower = store.layer_dirs(img)
    assert len(",".join(map(str, lower))) > 4096  # too long for one mount(2) data page
    got = probe_overlay(tmp_path, lower, ["."], [])
    assert len(got["listing"]["."]) == 50


def test_ownership_devices_xattrs_kept(tmp_path):
    layer = LayerBuilder()
    layer.file("owned", b"x", mode=0o4750, uid=1234, gid=5678)
    layer.dir("home/user", mode=0o700, uid=1000, gid=1000)
    layer.device("dev/null", char=True, major=1, minor=3)
    layer.device("dev/loop9", char=False, major=7, minor=9, mode=0o660)
    layer.fifo("run/fifo")
    layer.file("bin/ping", b"ELF", mode=0o755, xattrs={"security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00"
                                                                           "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"})
    layer.file("trusted", b"t", xattrs={"trusted.pyrun-test": "v", "trusted.overlay.redirect": "/x"})
    layer.symlink("lnk", "/nowhere", uid=42, gid=43)
    dest = tmp_path / "layer"
    dest.mkdir()
    unpack_layer(stream(layer.tar_bytes()), dest, "test")
    st = os.stat(dest / "owned")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o4750)
    st = os.stat(dest / "home/user")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o700)
    st = os.stat(dest / "dev/null")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3) and stat.S_IMODE(st.st_mode) == 0o666
    st = os.stat(dest / "dev/loop9")
    assert stat.S_ISBLK(st.st_mode) and st.st_rdev == os.makedev(7, 9) and stat.S_IMODE(st.st_mode) == 0o660
    assert stat.S_ISFIFO(os.stat(dest / "run/fifo").st_mode)
    assert os.getxattr(dest / "bin/ping", "security.capability")[:4] == b"\x01\x00\x00\x02"
    assert os.getxattr(dest / "trusted", "trusted.pyrun-test") == b"v"
    assert "trusted.overlay.redirect" not in os.listxattr(dest / "trusted")
    st = os.lstat(dest / "lnk")
    assert (st.st_uid, st.st_gid) == (42, 43)


def test_crafted_layer_never_writes_outside(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    attacks = [
        [(raw_info("../victim/a"), b"x")],
        [(raw_info("s", tarfile.SYMTYPE, str(victim)), None), (raw_info("s/b"), b"x")],
        [(raw_info("d", tarfile.DIRTYPE, mode=0o755), None), (raw_info("d/s", tarfile.SYMTYPE, "../../victim"), None),
         (raw_info("d/s/c"), b"x")],
        [(raw_info("s", tarfile.SYMTYPE, str(victim)), None), (raw_info("s/.wh.x"), b"")],
        [(raw_info("s", tarfile.SYMTYPE, str(victim)), None), (raw_info("s/.wh..wh..opq"), b"")],
        [(raw_info("s", tarfile.SYMTYPE, str(victim)), None), (raw_info("s/dev", tarfile.CHRTYPE), None)],
    ]
    for i, members in enumerate(attacks):
        dest = tmp_path / f"l{i}"
        dest.mkdir()
        with pytest.raises(ImageError, match=f"layer evil{i}: member"):
            unpack_layer(stream(crafted_tar(*members)), dest, f"evil{i}")
    assert list(victim.iterdir()) == []
    assert os.listxattr(victim) == []
