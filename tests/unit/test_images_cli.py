import json

import pytest
from click.testing import CliRunner

from pyrun.cli.image import human_size, image
from pyrun.config import Config
from pyrun.errors import InvalidState, NotFound

from _images_helpers import small_layout


@pytest.fixture
def run(tmp_path):
    cfg = Config(root=tmp_path / "root")

    def invoke(*args):
        return CliRunner().invoke(image, list(args), obj=cfg, catch_exceptions=True)
    return invoke


def test_import_ls_inspect_rm_prune(tmp_path, run, monkeypatch):
    small_layout(tmp_path / "l", {"a": b"1"})
    r = run("import", str(tmp_path / "l"))
    assert r.exit_code == 0, r.output
    name, image_id = r.output.split()
    assert name == "docker.io/test/small:1"
    r = run("ls")
    header, row = r.output.splitlines()
    assert header.split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "SIZE"]
    assert row.split()[:3] == ["docker.io/test/small", "1", image_id[7:19]]
    rows = json.loads(run("ls", "-o", "json").output)
    assert rows[0]["id"] == image_id and rows[0]["tag"] == "1"
    doc = json.loads(run("inspect", "test/small:1").output)
    assert doc["id"] == image_id and doc["config"]["config"]["Cmd"] == ["sh"]
    assert len(doc["layers"]) == 1 and doc["history"]
    monkeypatch.setattr("pyrun.cli.image.images_in_use", lambda cfg: {image_id})
    r = run("rm", "test/small:1")
    assert isinstance(r.exception, InvalidState)
    r = run("rm", "-f", "test/small:1")
    assert r.exit_code == 0 and "Untagged: docker.io/test/small:1" in r.output
    monkeypatch.setattr("pyrun.cli.image.images_in_use", lambda cfg: set())
    r = run("prune")
    assert r.exit_code == 0 and r.output.startswith("Reclaimed ")
    assert isinstance(run("inspect", "test/small:1").exception, NotFound)


def test_import_with_name(tmp_path, run):
    small_layout(tmp_path / "l", {"a": b"1"}, ref_name=None)
    r = run("import", str(tmp_path / "l"), "mine:2")
    assert r.exit_code == 0 and r.output.startswith("docker.io/library/mine:2 ")


@pytest.mark.parametrize("n, text", [(0, "0B"), (999, "999B"), (1000, "1kB"), (1032748, "1.03MB"), (5 * 10**9, "5GB")])
def test_human_size(n, text):
    assert human_size(n) == text
