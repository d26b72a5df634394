import json
import multiprocessing
import os
import tarfile
from pathlib import Path

import pytest

from pyrun.errors import ImageError, InvalidState, NotFound
from pyrun.images import oci
from pyrun.images.build import LayerBuilder, build_image, canonical_json, digest_of, write_index, write_layout
from pyrun.images.refs import RefsDb, StoreLock
from pyrun.images.store import ImageStore

from _images_helpers import build_demo, small_layout

needs_busybox = pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="needs busybox-static")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    digest = build_demo(d / "layout", d / "demo.tar")
    return d / "layout", d / "demo.tar", digest


# --- refs db ------------------------------------------------------------------------------------

def test_refs_db_roundtrip(tmp_path):
    db = RefsDb(tmp_path / "refs.json", StoreLock(tmp_path / "lock"))
    assert db.load() == {}
    assert db.set("docker.io/library/a:1", "sha256:" + "1" * 64) is None
    assert db.set("docker.io/library/a:1", "sha256:" + "2" * 64) == "sha256:" + "1" * 64
    db.delete(["docker.io/library/a:1", "missing"])
    assert db.load() == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lock", "refs.json"]


def test_refs_db_corrupt(tmp_path):
    (tmp_path / "refs.json").write_text("{nope")
    with pytest.raises(ImageError, match="corrupt references db"):
        RefsDb(tmp_path / "refs.json", StoreLock(tmp_path / "lock")).load()


def _writer(root, i):
    db = RefsDb(Path(root) / "refs.json", StoreLock(Path(root) / "lock"))
    for j in range(20):
        db.set(f"docker.io/library/p{i}:{j}", "sha256:" + f"{i:x}" * 64)


def test_refs_db_concurrent_processes(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), i)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert len(RefsDb(tmp_path / "refs.json", StoreLock(tmp_path / "lock")).load()) == 80


def test_lock_is_reentrant(tmp_path):
    lock = StoreLock(tmp_path / "lock")
    with lock.held(), lock.held():
        pass


# --- import and query ---------------------------------------------------------------------------

@needs_busybox
@pytest.mark.parametrize("kind", ["layout", "archive"])
def test_import_demo(tmp_path, demo, kind):
    layout, archive, digest = demo
    store = ImageStore(tmp_path / "images")
    img = store.import_path(layout if kind == "layout" else archive)
    assert img.name == "docker.io/pyrun/demo:latest" and img.manifest_digest == digest
    assert img.config["config"]["Cmd"] == ["sh"] and len(img.layer_diff_ids) == 2
    dirs = store.layer_dirs(img)
    assert [d.name for d in dirs] == [d.split(":")[1] for d in reversed(img.layer_diff_ids)]  # top first
    top, base = dirs
    assert (base / "bin/busybox").is_file() and os.readlink(base / "bin/sh") == "/bin/busybox"
    assert (top / "etc/motd").is_file()
    assert os.lstat(top / "etc/removed-by-layer-2").st_rdev == 0
    for ref in ("pyrun/demo", "docker.io/pyrun/demo:latest", img.id, img.id[7:19], img.manifest_digest,
                f"pyrun/demo@{digest}"):
        assert store.resolve(ref).id == img.id, ref
    assert [i.name for i in store.list()] == [img.name]
    assert not [p for p in (tmp_path / "images").rglob(".tmp-*")]


@needs_busybox
def test_reimport_is_idempotent_and_layers_shared(tmp_path, demo):
    layout, archive, _ = demo
    store = ImageStore(tmp_path)
    a = store.import_path(layout, "first")
    b = store.import_path(archive, "second:2")
    assert a.id == b.id
    assert store.layer_dirs(a) == store.layer_dirs(b)
    assert len(list((tmp_path / "layers").iterdir())) == 2
    assert sorted(i.name for i in store.list()) == ["docker.io/library/first:latest", "docker.io/library/second:2"]


def test_two_images_share_a_base_layer(tmp_path):
    base = LayerBuilder().file("etc/os-release", b"base\n").tar_bytes()
    for n in ("one", "two"):
        top = LayerBuilder().file(f"etc/{n}", n.encode()).tar_bytes()
        write_layout(tmp_path / n, [base, top], {"Cmd": ["sh"]}, ref_name=f"test/{n}:1")
    store = ImageStore(tmp_path / "store")
    one, two = (store.import_path(tmp_path / n) for n in ("one", "two"))
    assert store.layer_dirs(one)[1] == store.layer_dirs(two)[1]
    assert store.layer_dirs(one)[0] != store.layer_dirs(two)[0]
    assert len(list((tmp_path / "store/layers").iterdir())) == 3


def test_corrupted_blob_refused_nothing_left(tmp_path):
    small_layout(tmp_path / "l", {"a": b"hello"})
    manifest = oci.Manifest.parse(_manifest_bytes(tmp_path / "l"), "m")
    layer_path = tmp_path / "l" / oci.blob_path(manifest.layers[0].digest)
    blob = bytearray(layer_path.read_bytes())
    blob[-12] ^= 0xFF
    layer_path.write_bytes(bytes(blob))
    store = ImageStore(tmp_path / "store")
    with pytest.raises(ImageError, match="digest mismatch"):
        store.import_path(tmp_path / "l")
    assert store.list() == []
    assert not (tmp_path / "store/blobs/sha256" / manifest.layers[0].digest.split(":")[1]).exists()
    assert not [p for p in (tmp_path / "store").rglob(".tmp-*")]


def _manifest_bytes(layout: Path) -> bytes:
    digest = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    return (layout / oci.blob_path(digest)).read_bytes()


def _layout_with_wrong_diff_id(tmp_path):
    layer = LayerBuilder().file("a", b"1").tar_bytes()
    out = tmp_path / "l"
    desc = build_image(out, [layer])
    manifest = json.loads((out / oci.blob_path(desc["digest"])).read_bytes())
    cfg = json.loads((out / oci.blob_path(manifest["config"]["digest"])).read_bytes())
    cfg["rootfs"]["diff_ids"] = [digest_of(b"lie")]
    cbytes = canonical_json(cfg)
    (out / oci.blob_path(digest_of(cbytes))).write_bytes(cbytes)
    manifest["config"].update(digest=digest_of(cbytes), size=len(cbytes))
    mbytes = canonical_json(manifest)
    (out / oci.blob_path(digest_of(mbytes))).write_bytes(mbytes)
    write_index(out, [{"mediaType": oci.MT_MANIFEST, "digest": digest_of(mbytes), "size": len(mbytes)}])
    return out


@pytest.mark.parametrize("unpack", [True, False])
def test_diff_id_mismatch_refused(tmp_path, unpack):
    """Checked while unpacking (one pass) or while storing the blob: either way nothing is left."""
    out = _layout_with_wrong_diff_id(tmp_path)
    store = ImageStore(tmp_path / "s")
    with pytest.raises(ImageError, match="uncompressed digest mismatch"):
        store.import_path(out, "x", unpack=unpack)
    assert list(store.blobs.digests()) == []
    assert not store.layers_dir.exists() or not any(store.layers_dir.iterdir())
    assert store.list() == []


def test_uncompressed_layers(tmp_path):
    small_layout(tmp_path / "l", {"a": b"plain"}, compress=False)
    store = ImageStore(tmp_path / "s")
    img = store.import_path(tmp_path / "l")
    assert img.layers[0].media_type == oci.MT_LAYER
    assert (store.layer_dirs(img)[0] / "a").read_bytes() == b"plain"


def test_name_required_without_annotation(tmp_path):
    small_layout(tmp_path / "l", {"a": b"1"}, ref_name="latest")
    store = ImageStore(tmp_path / "s")
    with pytest.raises(ImageError, match="give one"):
        store.import_path(tmp_path / "l")
    assert store.import_path(tmp_path / "l", "mine:v1").name == "docker.io/library/mine:v1"


def test_several_manifests_pick_by_annotation(tmp_path):
    out = tmp_path / "multi"
    descs = []
    for tag in ("1.0", "2.0"):
        d = build_image(out, [LayerBuilder().file("v", tag.encode()).tar_bytes()])
        d["annotations"] = {"org.opencontainers.image.ref.name": tag}
        descs.append(d)
    write_index(out, descs)
    store = ImageStore(tmp_path / "s")
    with pytest.raises(ImageError, match="holds 2 images"):
        store.import_path(out)
    img = store.import_path(out, "multi:2.0")
    assert (store.layer_dirs(img)[0] / "v").read_bytes() == b"2.0"
    with pytest.raises(ImageError, match="no single image"):
        store.import_path(out, "multi:3.0")


def test_nested_index_picks_host_platform(tmp_path):
    out = tmp_path / "ml"
    arm = build_image(out, [LayerBuilder().file("arch", b"arm64").tar_bytes()], architecture="arm64")
    amd = build_image(out, [LayerBuilder().file("arch", b"amd64").tar_bytes()], architecture="amd64")
    index = canonical_json({"schemaVersion": 2, "mediaType": oci.MT_INDEX, "manifests": [arm, amd]})
    (out / oci.blob_path(digest_of(index))).write_bytes(index)
    write_index(out, [{"mediaType": oci.MT_INDEX, "digest": digest_of(index), "size": len(index),
                       "annotations": {"io.containerd.image.name": "docker.io/test/ml:1"}}])
    store = ImageStore(tmp_path / "s")
    img = store.import_path(out)
    assert img.name == "docker.io/test/ml:1"
    want = oci.host_platform()[1]
    assert (store.layer_dirs(img)[0] / "arch").read_bytes() == want.encode()


def test_docker_save_archive(tmp_path):
    layer = LayerBuilder().file("hello", b"from docker").tar_bytes()
    cfg = canonical_json({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/hello"]},
                          "rootfs": {"type": "layers", "diff_ids": [digest_of(layer)]}})
    hexid = digest_of(cfg).split(":")[1]
    archive = tmp_path / "save.tar"
    import io
    with tarfile.open(archive, "w") as tar:
        for name, data in ((f"{hexid}.json", cfg), ("abc/layer.tar", layer),
                           ("manifest.json", json.dumps([{"Config": f"{hexid}.json", "RepoTags": ["hello:saved"],
                                                          "Layers": ["abc/layer.tar"]}]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    store = ImageStore(tmp_path / "s")
    img = store.import_path(archive)
    assert img.name == "docker.io/library/hello:saved" and img.id == digest_of(cfg)
    assert (store.layer_dirs(img)[0] / "hello").read_bytes() == b"from docker"


def test_not_an_image(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(ImageError, match="neither an OCI image layout"):
        ImageStore(tmp_path / "s").import_path(tmp_path / "d", "x")
    (tmp_path / "f").write_bytes(b"junk" * 100)
    with pytest.raises(ImageError, match="not a readable tar"):
        ImageStore(tmp_path / "s").import_path(tmp_path / "f", "x")
    with pytest.raises(NotFound):
        ImageStore(tmp_path / "s").import_path(tmp_path / "missing", "x")


def test_resolve_not_found_names_the_ref(tmp_path):
    with pytest.raises(NotFound, match="'nginx'"):
        ImageStore(tmp_path).resolve("nginx")


def test_lazy_unpack(tmp_path):
    small_layout(tmp_path / "l", {"a": b"1"})
    store = ImageStore(tmp_path / "s")
    img = store.import_path(tmp_path / "l", unpack=False)
    assert not (tmp_path / "s/layers").exists()
    assert (store.layer_dirs(img)[0] / "a").read_bytes() == b"1"


def test_bad_layer_leaves_no_layer_dir(tmp_path):
    from _images_helpers import crafted_tar, raw_info
    evil = crafted_tar((raw_info("../escape"), b"x"))
    write_layout(tmp_path / "l", [evil], ref_name="test/evil:1")
    store = ImageStore(tmp_path / "s")
    with pytest.raises(ImageError, match=r"member '\.\./escape'"):
        store.import_path(tmp_path / "l")
    assert list((tmp_path / "s/layers").iterdir()) == []
    assert list((tmp_path / "s/blobs/sha256").iterdir()) == []  # stored in the same pass: not kept either
    assert not (tmp_path / "s/escape").exists() and not (tmp_path / "escape").exists()


# --- remove and prune ---------------------------------------------------------------------------

def test_remove_and_prune(tmp_path):
    small_layout(tmp_path / "l", {"a": b"1"})
    small_layout(tmp_path / "k", {"b": b"2"}, ref_name="test/keep:1")
    store = ImageStore(tmp_path / "s")
    img = store.import_path(tmp_path / "l")
    keep = store.import_path(tmp_path / "k")
    with pytest.raises(InvalidState, match="used by a container"):
        store.remove("test/small:1", in_use={img.id})
    assert store.remove("test/small:1") == ["docker.io/test/small:1"]
    with pytest.raises(NotFound):
        store.resolve("test/small:1")
    assert store.layer_dirs(keep)
    freed = store.prune()
    assert freed > 0
    remaining = set(store.blobs.digests())
    assert remaining == {keep.manifest_digest, keep.id, keep.layers[0].digest}
    assert [p.name for p in (tmp_path / "s/layers").iterdir()] == [keep.layer_diff_ids[0].split(":")[1]]
    assert store.prune() == 0


def test_prune_keeps_untagged_in_use_image(tmp_path):
    small_layout(tmp_path / "l", {"a": b"1"})
    store = ImageStore(tmp_path / "s")
    img = store.import_path(tmp_path / "l")
    store.remove(img.id, in_use={img.id}, force=True)
    store.prune(in_use={img.id})
    assert store.layer_dirs(img)[0].is_dir() and store.blobs.exists(img.layers[0].digest)
    store.prune()
    assert list(store.blobs.digests()) == []


def test_remove_by_id_with_several_names_needs_force(tmp_path):
    small_layout(tmp_path / "l", {"a": b"1"})
    store = ImageStore(tmp_path / "s")
    img = store.import_path(tmp_path / "l", "x:1")
    store.import_path(tmp_path / "l", "y:1")
    with pytest.raises(InvalidState, match="several names"):
        store.remove(img.short_id)
    assert sorted(store.remove(img.short_id, force=True)) == ["docker.io/library/x:1", "docker.io/library/y:1"]


def test_prune_removes_stale_temp_files(tmp_path):
    store = ImageStore(tmp_path)
    (tmp_path / "blobs/sha256").mkdir(parents=True)
    (tmp_path / "blobs/sha256/.tmp-dead").write_bytes(b"x" * 10)
    (tmp_path / "layers/.tmp-dead/etc").mkdir(parents=True)
    assert store.prune() == 10
    assert not list((tmp_path / "layers").iterdir())


def test_unpack_is_explained(tmp_path):
    from pyrun import explain
    small_layout(tmp_path / "l", {"a": b"1"})
    lines = explain.record()
    try:
        img = ImageStore(tmp_path / "s").import_path(tmp_path / "l")
    finally:
        explain.stop_recording()
    assert len(lines) == 1 and lines[0].startswith("tar -x") and img.layer_diff_ids[0].split(":")[1] in lines[0]


# --- issue 15: a layer can't fill the disk ------------------------------------------------------

def _store_contents(root: Path) -> dict[str, list[str]]:
    return {sub: sorted(os.listdir(root / sub)) if (root / sub).is_dir() else []
            for sub in ("blobs/sha256", "layers")}


def test_oversize_layer_refused_naming_layer_and_limit_and_leaves_nothing(tmp_path):
    small_layout(tmp_path / "ok", {"a": b"1"}, ref_name="test/ok:1")
    layer = LayerBuilder().file("big", b"\0" * (3 << 20)).tar_bytes()  # 3 MiB of zeros: a few KiB gzipped
    write_layout(tmp_path / "l", [layer], ref_name="test/big:1")
    store = ImageStore(tmp_path / "s", layer_floor=1 << 20, layer_ratio=10)
    store.import_path(tmp_path / "ok")
    before = _store_contents(tmp_path / "s")
    manifest = json.loads((tmp_path / "l/blobs/sha256" / json.loads((tmp_path / "l/index.json").read_text())
                           ["manifests"][0]["digest"].split(":")[1]).read_text())
    blob = manifest["layers"][0]["digest"]
    with pytest.raises(ImageError) as err:
        store.import_path(tmp_path / "l")
    text = str(err.value)
    assert blob in text and f"limit of {1 << 20} bytes" in text and "PYRUN_LAYER_FLOOR" in text, text
    assert _store_contents(tmp_path / "s") == before  # no blob, no layer dir, no .tmp-*
    assert [i.name for i in store.list()] == ["docker.io/test/ok:1"]


def test_sparse_layer_imports_sparse(tmp_path):
    from _images_helpers import sparse_tar
    gib = 1 << 30
    write_layout(tmp_path / "l", [sparse_tar("big", 4 * gib, [(0, b"head"), (4 * gib - 4, b"tail")])],
                 ref_name="test/sparse:1")
    store = ImageStore(tmp_path / "s")
    image = store.import_path(tmp_path / "l")
    [layer] = store.layer_dirs(image)
    st = os.stat(layer / "big")
    assert st.st_size == 4 * gib and st.st_blocks * 512 <= 1 << 20
