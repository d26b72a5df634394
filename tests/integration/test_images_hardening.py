"""Issue 15 through the CLI: hostile layers given to `pyrun image import` (a 401-byte layer once filled
the disk; a 2,000-deep layer made `image prune` crash forever). Each is refused with a clear error that
leaves the store as it was, or is stored safely and removed again by `image rm` / `image prune`."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from pyrun.images.build import LayerBuilder, write_layout, write_layout_tar

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from _images_helpers import DEMO_SCRIPT, sparse_tar  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

GIB = 1 << 30
PATH_MAX = 4096


def store_contents(pyrun) -> dict[str, list[str]]:
    images = pyrun.data_root / "images"
    return {sub: sorted(os.listdir(images / sub)) if (images / sub).is_dir() else []
            for sub in ("blobs/sha256", "layers")}


def busybox_layer() -> bytes:
    spec = importlib.util.spec_from_file_location("build_demo_image", DEMO_SCRIPT)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    if not Path(demo.BUSYBOX).exists():
        pytest.skip(f"needs {demo.BUSYBOX}")
    return demo.base_layer(Path(demo.BUSYBOX))


def deep_layer(levels: int) -> bytes:
    """deep/d/.../d: `levels` directory members, then a file at the bottom (built iteratively)."""
    layer = LayerBuilder(sort=False)
    path = "deep"
    for _ in range(levels):
        layer.dir(path)
        path += "/d"
    layer.file(path, b"bottom\n")
    return layer.tar_bytes()


def test_import_of_a_layer_over_its_limit_names_it_and_leaves_nothing(pyrun, tmp_path):
    write_layout(tmp_path / "l", [LayerBuilder().file("zeros", b"\0" * (3 << 20)).tar_bytes()], {"Cmd": ["sh"]})
    write_layout_tar(tmp_path / "l", tmp_path / "bomb.tar")  # through an OCI archive: its temp files too
    before = store_contents(pyrun)
    p = pyrun("image", "import", str(tmp_path / "bomb.tar"), "test/bomb:1", check=False,
              env={"PYRUN_LAYER_FLOOR": str(1 << 20), "PYRUN_LAYER_RATIO": "10"})
    assert p.returncode == 6 and "Traceback" not in p.stderr, p.stderr
    assert f"limit of {1 << 20} bytes" in p.stderr and "blob sha256:" in p.stderr and "PYRUN_LAYER_FLOOR" in p.stderr
    assert store_contents(pyrun) == before  # no blob, no layer dir, no .tmp-*
    assert "test/bomb" not in pyrun("image", "ls").stdout


def test_a_sparse_layer_is_stored_sparse_and_removed_again(pyrun, tmp_path):
    write_layout(tmp_path / "l", [sparse_tar("big", 4 * GIB, [(0, b"head"), (4 * GIB - 4, b"tail")])],
                 {"Cmd": ["sh"]})
    before = store_contents(pyrun)
    pyrun("image", "import", str(tmp_path / "l"), "test/sparse:1")
    new_layers = sorted(set(store_contents(pyrun)["layers"]) - set(before["layers"]))
    assert len(new_layers) == 1
    st = os.stat(pyrun.data_root / "images" / "layers" / new_layers[0] / "big")
    assert st.st_size == 4 * GIB and st.st_blocks * 512 <= 1 << 20
    pyrun("image", "rm", "test/sparse:1")
    pyrun("image", "prune")
    assert store_contents(pyrun) == before


def test_the_deepest_layer_imports_runs_and_is_pruned(pyrun, write_pod, tmp_path):
    """A member name is at most PATH_MAX bytes (as the kernel takes a path; docker and containerd unpack
    through paths and stop there too), so the deepest tree a layer can hold is ~2,045 levels of "d/":
    deeper than the 2,000 of the issue. The container then adds to it on its own (test_deep_trees.py)."""
    levels = (PATH_MAX - len("deep") - len("/d")) // 2
    write_layout(tmp_path / "l", [busybox_layer(), deep_layer(levels)], {"Cmd": ["sh"]})
    before = store_contents(pyrun)
    pyrun("image", "import", str(tmp_path / "l"), "test/deep:1")
    spec = write_pod("deep-image", [{"name": "c", "image": "test/deep:1", "command": ["sleep", "1000"]}])
    pyrun("pod", "create", spec)
    p = pyrun("exec", "deep-image", "c", "--", "sh", "-c", "cd /deep/d/d/d && ls")
    assert p.stdout.split() == ["d"], p.stdout + p.stderr
    p = pyrun("image", "prune")
    assert "Traceback" not in p.stderr
    assert "test/deep" in pyrun("image", "ls").stdout  # in use: kept
    pyrun("pod", "rm", "-f", "deep-image")
    pyrun("image", "rm", "test/deep:1")
    p = pyrun("image", "prune", check=False)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert store_contents(pyrun) == before


def test_a_5000_level_layer_is_refused_naming_the_member_and_leaves_nothing(pyrun, tmp_path):
    write_layout(tmp_path / "l", [deep_layer(5000)], {"Cmd": ["sh"]})
    before = store_contents(pyrun)
    p = pyrun("image", "import", str(tmp_path / "l"), "test/deeper:1", check=False)
    assert p.returncode == 6 and "Traceback" not in p.stderr, p.stderr
    assert "member 'deep/d/d" in p.stderr and f"longer than {PATH_MAX} bytes" in p.stderr, p.stderr
    assert store_contents(pyrun) == before


def test_a_layer_of_chained_pax_headers_is_refused_and_leaves_nothing(pyrun, tmp_path):
    """3,000 pax headers in a row (3 MiB, a few KiB gzipped) made tarfile recurse into a RecursionError."""
    import tarfile
    pax = tarfile.TarInfo._create_pax_generic_header({"comment": "x"}, tarfile.XHDTYPE, "utf-8")
    layer = pax * 3000 + tarfile.TarInfo("a").tobuf(tarfile.USTAR_FORMAT) + b"\0" * 1024
    write_layout(tmp_path / "l", [layer], {"Cmd": ["sh"]})
    before = store_contents(pyrun)
    p = pyrun("image", "import", str(tmp_path / "l"), "test/chain:1", check=False)
    assert p.returncode == 6 and "Traceback" not in p.stderr, p.stderr
    assert "more than 8 extended headers in a row" in p.stderr, p.stderr
    assert store_contents(pyrun) == before
