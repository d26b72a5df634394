"""A misbehaving registry (http.server in a thread on 127.0.0.1): every failure is a clear
ImageError and leaves a clean store; a dropped connection resumes with an HTTP Range request;
bearer auth against a fake token endpoint."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from pyrun.errors import ImageError
from pyrun.images.build import LayerBuilder, canonical_json, digest_of, write_layout
from pyrun.images.store import ImageStore
from pyrun.images.pull import pull_image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _images_registry import FakeRegistry  # noqa: E402
from test_images_pull import assert_clean  # noqa: E402  (it puts tests/unit on sys.path too)
from _images_helpers import sparse_tar  # noqa: E402

pytestmark = [pytest.mark.integration]


@pytest.fixture
def fake(tmp_path):
    reg = FakeRegistry()
    layout = tmp_path / "layout"
    big = os.urandom(300_000)  # incompressible: the blob is > 256 kB
    write_layout(layout, [LayerBuilder().file("etc/a", b"a\n").tar_bytes(),
                          LayerBuilder().file("data/big", big).tar_bytes()], {"Cmd": ["sh"]})
    reg.add_layout(layout, "x/app", "1")
    reg.manifest = json.loads(reg.manifests[("x/app", "1")][0])
    yield reg
    reg.stop()


def layer(reg: FakeRegistry, i: int) -> str:
    return reg.manifest["layers"][i]["digest"]


def test_layer_digest_mismatch_is_refused(fake, tmp_path):
    bad = bytearray(fake.blobs[layer(fake, 1)])
    bad[100] ^= 0xFF
    fake.corrupt[layer(fake, 1)] = bytes(bad)
    store = ImageStore(tmp_path / "images")
    with pytest.raises(ImageError, match=r"layer 1 \(sha256:.*digest mismatch.*not stored"):
        pull_image(store, f"{fake.host}/x/app:1", unpack=False)
    assert_clean(store)
    assert not store.blobs.exists(layer(fake, 1))


def test_missing_blob(fake, tmp_path):
    del fake.blobs[layer(fake, 0)]
    store = ImageStore(tmp_path / "images")
    with pytest.raises(ImageError, match=f"blob {layer(fake, 0)} is missing from the registry"):
        pull_image(store, f"{fake.host}/x/app:1")
    assert_clean(store)


def test_connection_closed_mid_blob_every_time(fake, tmp_path):
    fake.truncate[layer(fake, 1)] = 1000
    store = ImageStore(tmp_path / "images")
    with pytest.raises(ImageError, match=r"connection lost after \d+ of \d+ bytes.*nothing stored"):
        pull_image(store, f"{fake.host}/x/app:1")
    assert_clean(store)


def test_connection_closed_once_resumes_with_range(fake, tmp_path):
    digest = layer(fake, 1)
    fake.truncate[digest] = 100_000
    fake.truncate_once = True
    store = ImageStore(tmp_path / "images")
    img = pull_image(store, f"{fake.host}/x/app:1")
    assert (store.layer_dirs(img)[0] / "data" / "big").stat().st_size == 300_000
    ranges = [h.get("Range") for p, h in fake.requests if p.endswith(digest)]
    assert ranges == [None, "bytes=100000-"]


def test_manifest_not_matching_the_asked_digest(fake, tmp_path):
    data, mt = fake.manifests[("x/app", "1")]
    other = digest_of(b"something else")
    fake.manifests[("x/app", other)] = (data, mt)
    store = ImageStore(tmp_path / "images")
    with pytest.raises(ImageError, match="digest mismatch: asked for"):
        pull_image(store, f"{fake.host}/x/app@{other}")
    assert_clean(store)


def test_schema1_is_refused(fake, tmp_path):
    fake.manifests[("x/app", "old")] = (canonical_json({"schemaVersion": 1, "fsLayers": []}),
                                        "application/vnd.docker.distribution.manifest.v1+prettyjws")
    with pytest.raises(ImageError, match="schema 1 manifests are not supported"):
        pull_image(ImageStore(tmp_path / "images"), f"{fake.host}/x/app:old")


def test_bearer_token_flow(fake, tmp_path):
    fake.bearer = True
    fake.users = {"bob": "pw"}
    store = ImageStore(tmp_path / "images")
    img = pull_image(store, f"{fake.host}/x/app:1", {"username": "bob", "password": "pw"}, unpack=False)
    assert img.name == f"{fake.host}/x/app:1"
    token_requests = [h for p, h in fake.requests if p.startswith("/token")]
    assert len(token_requests) == 1 and token_requests[0]["Authorization"].startswith("Basic ")
    assert all(h.get("Authorization") == f"Bearer {fake.token}" for p, h in fake.requests if "/blobs/" in p)


def test_bearer_with_registry_token_and_bad_password(fake, tmp_path):
    fake.bearer = True
    fake.users = {"bob": "pw"}
    store = ImageStore(tmp_path / "images")
    pull_image(store, f"{fake.host}/x/app:1", {"registry_token": fake.token}, unpack=False)
    assert not [p for p, _ in fake.requests if p.startswith("/token")]
    store2 = ImageStore(tmp_path / "images2")
    with pytest.raises(ImageError, match="token server .* refused .*401.*check the credentials"):
        pull_image(store2, f"{fake.host}/x/app:1", {"username": "bob", "password": "nope"})
    assert_clean(store2)


def test_basic_401_with_bad_credentials(fake, tmp_path):
    fake.basic = True
    fake.users = {"bob": "pw"}
    store = ImageStore(tmp_path / "images")
    with pytest.raises(ImageError, match="authentication failed as 'bob'.*check the credentials"):
        pull_image(store, f"{fake.host}/x/app:1", {"username": "bob", "password": "bad"})
    assert_clean(store)
    assert pull_image(store, f"{fake.host}/x/app:1", {"username": "bob", "password": "pw"}, unpack=False)


def test_nothing_listens(tmp_path):
    from _images_registry import free_port
    store = ImageStore(tmp_path / "images")
    with pytest.raises(ImageError, match="cannot reach http://127.0.0.1"):
        pull_image(store, f"127.0.0.1:{free_port()}/x/app:1")
    assert_clean(store)


# --- issue 15: a pulled layer can't fill the disk ---------------------------------------------------

def _serve(tmp_path, layer_tar: bytes) -> FakeRegistry:
    reg = FakeRegistry()
    write_layout(tmp_path / "bomb", [layer_tar], {"Cmd": ["sh"]})
    reg.add_layout(tmp_path / "bomb", "x/bomb", "1")
    reg.manifest = json.loads(reg.manifests[("x/bomb", "1")][0])
    return reg


def test_pull_of_a_layer_over_its_limit_fails_naming_it_and_leaves_nothing(tmp_path):
    reg = _serve(tmp_path, LayerBuilder().file("zeros", b"\0" * (3 << 20)).tar_bytes())  # 3 MiB -> ~3 kB gzipped
    try:
        store = ImageStore(tmp_path / "images", layer_floor=1 << 20, layer_ratio=10)
        with pytest.raises(ImageError) as err:
            pull_image(store, f"{reg.host}/x/bomb:1")
        assert layer(reg, 0) in str(err.value) and f"limit of {1 << 20} bytes" in str(err.value), err.value
        assert_clean(store)
        assert list(store.blobs.digests()) == []  # not even the verified blobs stay
    finally:
        reg.stop()


def test_pull_of_a_sparse_layer_is_written_sparse(tmp_path):
    gib = 1 << 30
    reg = _serve(tmp_path, sparse_tar("big", 4 * gib, [(0, b"head"), (4 * gib - 4, b"tail")]))
    try:
        store = ImageStore(tmp_path / "images")
        image = pull_image(store, f"{reg.host}/x/bomb:1")
        [layer_dir] = store.layer_dirs(image)
        st = os.stat(layer_dir / "big")
        assert st.st_size == 4 * gib and st.st_blocks * 512 <= 1 << 20
    finally:
        reg.stop()
