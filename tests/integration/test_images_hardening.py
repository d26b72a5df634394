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
from _images_helpers import DEMO_SCRIPT, deep_layer, sparse_tar  # noqa: E402
from _security_helpers import build  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

GIB = 1 << 30


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


@pytest.fixture(scope="module")
def tool_dir(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("tool")
    build(d)  # sectool: `deep-read N FILE` reads a file N levels down with relative chdirs (no PATH_MAX)
    return str(d)


def test_a_5000_level_layer_imports_runs_and_is_pruned(pyrun, write_pod, tmp_path, tool_dir):
    """A layer whose member names are 10 KB (5,000 levels: longer than PATH_MAX) unpacks one component at a
    time; the container reads the file at the bottom; `image rm` + `image prune` remove it all."""
    write_layout(tmp_path / "l", [busybox_layer(), deep_layer(5000)], {"Cmd": ["sh"]})
    before = store_contents(pyrun)
    p = pyrun("image", "import", str(tmp_path / "l"), "test/deep:1", check=False)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    spec = write_pod("deep-image", [{"name": "c", "image": "test/deep:1", "command": ["sleep", "1000"],
                                     "volumeMounts": [{"name": "t", "mountPath": "/t"}]}],
                     volumes=[{"name": "t", "hostPath": {"path": tool_dir, "type": "Directory"}}])
    pyrun("pod", "create", spec)
    p = pyrun("exec", "deep-image", "c", "--", "sh", "-c", "cd /deep && /t/sectool deep-read 4999 d")
    assert p.stdout == "bottom\n", p.stdout + p.stderr
    p = pyrun("image", "prune")
    assert "Traceback" not in p.stderr
    assert "test/deep" in pyrun("image", "ls").stdout  # in use: kept
    pyrun("pod", "rm", "-f", "deep-image")
    pyrun("image", "rm", "test/deep:1")
    p = pyrun("image", "prune", check=False)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert store_contents(pyrun) == before


def test_a_member_name_over_64_kib_is_refused_naming_it_and_leaves_nothing(pyrun, tmp_path):
    layer = LayerBuilder().file("/".join(["d"] * 33000), b"x").tar_bytes()  # one 66 KB name
    write_layout(tmp_path / "l", [layer], {"Cmd": ["sh"]})
    before = store_contents(pyrun)
    p = pyrun("image", "import", str(tmp_path / "l"), "test/deeper:1", check=False)
    assert p.returncode == 6 and "Traceback" not in p.stderr, p.stderr
    assert "member 'd/d/d" in p.stderr and "longer than 65536 bytes" in p.stderr, p.stderr
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
