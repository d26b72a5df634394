"""Where data lives: the data root's default, its binding to one state root, writable layers (no root needed)."""
from __future__ import annotations

from pathlib import Path

import pytest

from pyrun.config import DEFAULT_DATA_ROOT, DEFAULT_ROOT, Config, default_data_root
from pyrun.errors import InvalidState, UsageError
from pyrun.runtime import storage

CID = "ab" * 32


def test_the_default_state_root_keeps_its_data_in_var_lib_and_any_other_root_under_itself():
    assert default_data_root(DEFAULT_ROOT) == DEFAULT_DATA_ROOT == Path("/var/lib/pyrun")
    assert default_data_root(Path("/tmp/x")) == Path("/tmp/x/data")
    assert Config().data_root == Path("/var/lib/pyrun")
    assert Config(root=Path("/tmp/x")).data_root == Path("/tmp/x/data")
    assert Config(root=Path("/tmp/x"), data_root=Path("/srv/d")).image_root == Path("/srv/d/images")
    assert Config(root=Path("/tmp/x")).writable_dir == Path("/tmp/x/data/containers")
    assert Config(root=Path("/tmp/x")).legacy_image_root == Path("/tmp/x/images")


def test_from_env_reads_the_option_then_the_environment(monkeypatch):
    monkeypatch.delenv("PYRUN_ROOT", raising=False)
    monkeypatch.delenv("PYRUN_DATA_ROOT", raising=False)
    assert Config.from_env().data_root == DEFAULT_DATA_ROOT
    assert Config.from_env("/tmp/r").data_root == Path("/tmp/r/data")
    monkeypatch.setenv("PYRUN_DATA_ROOT", "/srv/env")
    assert Config.from_env("/tmp/r").data_root == Path("/srv/env")
    assert Config.from_env("/tmp/r", "/srv/opt").data_root == Path("/srv/opt")


def test_claim_binds_a_data_root_to_its_state_root_and_refuses_another(tmp_path):
    cfg = Config(root=tmp_path / "run", data_root=tmp_path / "lib")
    storage.claim(cfg)
    storage.claim(cfg)  # again: fine
    assert storage.owner_of(tmp_path / "lib") == str(tmp_path / "run")
    assert [p.name for p in (tmp_path / "lib").iterdir()] == ["state-root"]
    other = Config(root=tmp_path / "other", data_root=tmp_path / "lib")
    with pytest.raises(InvalidState, match=f"belongs to state root {tmp_path / 'run'}"):
        storage.claim(other)
    with pytest.raises(InvalidState):
        storage.make_writable_layer(other, CID)
    with pytest.raises(InvalidState):
        storage.collect_writable_layers(other, lambda: [])
    assert not (tmp_path / "lib" / "containers").exists()


def test_a_data_root_cannot_be_the_state_root(tmp_path):
    with pytest.raises(UsageError, match="is the state root"):
        storage.claim(Config(root=tmp_path, data_root=tmp_path))


def test_writable_layers_live_in_the_data_root_and_gc_removes_only_unknown_ones(tmp_path):
    cfg = Config(root=tmp_path / "run", data_root=tmp_path / "lib")
    known, orphan = "cd" * 32, CID
    for cid in (known, orphan):
        layer = storage.make_writable_layer(cfg, cid)
        assert layer == tmp_path / "lib" / "containers" / cid
        assert sorted(p.name for p in layer.iterdir()) == ["upper", "work"]
    (tmp_path / "lib" / "containers" / "not-an-id").mkdir()
    seen = []

    def known_ids():
        seen.append(sorted(p.name for p in (tmp_path / "lib" / "containers").iterdir()))
        return [known]
    assert storage.collect_writable_layers(cfg, known_ids) == [orphan]
    assert seen, "the known ids are read after the layers are listed"
    assert sorted(p.name for p in (tmp_path / "lib" / "containers").iterdir()) == [known, "not-an-id"]
    storage.remove_writable_layer(cfg, known)
    storage.remove_writable_layer(cfg, known)  # idempotent
    assert not storage.writable_layer(cfg, known).exists()


def test_no_data_root_means_nothing_to_collect(tmp_path):
    assert storage.collect_writable_layers(Config(root=tmp_path / "run"), lambda: []) == []
    assert not (tmp_path / "run").exists()


def test_containers_of_the_previous_layout_are_those_with_a_writable_layer_in_the_state_root(tmp_path):
    cfg = Config(root=tmp_path)
    assert storage.legacy_containers(cfg) == []
    (tmp_path / "containers" / CID / "upper").mkdir(parents=True)
    (tmp_path / "containers" / ("ef" * 32) / "rootfs").mkdir(parents=True)  # the new layout: no upper
    assert storage.legacy_containers(cfg) == [CID]


def test_open_images_without_an_old_store_only_claims(tmp_path):
    cfg = Config(root=tmp_path / "run")
    store = storage.open_images(cfg)
    assert store.root == tmp_path / "run" / "data" / "images"
    assert store.list() == []
    assert storage.owner_of(cfg.data_root) == str(tmp_path / "run")


# --- issue 15: a data root that can't work is named at once, before anything is made ------------------

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:40 / /srv/over rw,relatime shared:9 - overlay overlay rw,lowerdir=/a,upperdir=/b,workdir=/c
31 22 0:41 / /srv/over/inner rw - tmpfs tmpfs rw
32 22 0:42 / /srv/my\\040space rw - vfat /dev/sdb1 rw
"""


@pytest.mark.parametrize("path, expected", [
    ("/var/lib/pyrun", ("/", "ext4")),
    ("/srv/over/data", ("/srv/over", "overlay")),
    ("/srv/over/inner/x", ("/srv/over/inner", "tmpfs")),
    ("/srv/overlay-not", ("/", "ext4")),                 # a prefix of the name is not a parent
    ("/srv/my space/d", ("/srv/my space", "vfat")),       # mountinfo escapes spaces
])
def test_filesystem_at(path, expected):
    from pyrun.linux.mounts import filesystem_at
    assert filesystem_at(path, MOUNTINFO) == expected


def test_a_data_root_on_overlay_is_refused_naming_it_and_nothing_is_made(tmp_path, monkeypatch):
    import pyrun.linux.mounts as mounts
    monkeypatch.setattr(mounts, "filesystem_of", lambda p: ("/srv/over", "overlay"))
    cfg = Config(root=tmp_path / "state", data_root=tmp_path / "data")
    with pytest.raises(UsageError, match=f"the data root \\(--data-root\\) {tmp_path}/data is on a filesystem "
                                         "of type overlay \\(mounted at /srv/over\\)"):
        storage.claim(cfg)
    assert not (tmp_path / "data").exists()


def test_an_unwritable_data_root_is_named(tmp_path):
    from pyrun.errors import SyscallError
    (tmp_path / "file").write_text("")
    cfg = Config(root=tmp_path / "state", data_root=tmp_path / "file" / "data")
    with pytest.raises(SyscallError, match="the data root \\(--data-root\\)") as e:
        storage.claim(cfg)
    assert e.value.filename == str(tmp_path / "file" / "data")
