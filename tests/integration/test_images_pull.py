"""Pulls from Debian's docker-registry on 127.0.0.1 (anonymous, htpasswd, token auth), images pushed
with skopeo (OCI, Docker v2s2, an index, zstd and plain layers), mirrors, a pod from a pulled image."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from pyrun.errors import ImageError, NotFound
from pyrun.images import regconf
from pyrun.images.build import (MT_INDEX, LayerBuilder, build_image, canonical_json, digest_of, write_index,
                                write_layout)
from pyrun.images.store import ImageStore
from pyrun.images.pull import pull_image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from _images_helpers import build_demo  # noqa: E402
from _images_registry import RealRegistry, free_port, need, push  # noqa: E402

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (layers with whiteouts, pods)")]

USERS = {"alice": "s3cret"}


def assert_clean(store: ImageStore) -> None:
    """No ref, no temp file, no unpacked layer; every kept blob is complete and verified."""
    assert store.refs.load() == {}
    for d in (store.blobs.dir, store.layers_dir):
        if d.is_dir():
            assert not [p for p in d.iterdir() if p.name.startswith(".tmp-")]
    if store.layers_dir.is_dir():
        assert list(store.layers_dir.iterdir()) == []
    for digest in store.blobs.digests():
        assert digest_of(store.blobs.read(digest)) == digest


class Events:
    def __init__(self):
        self.log = []

    def start(self, digest, size, what):
        self.log.append(("start", digest))

    def advance(self, digest, n):
        pass

    def done(self, digest, status):
        self.log.append((status, digest))


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("layouts")
    out = {"demo": d / "demo"}
    build_demo(out["demo"])
    # an index: amd64 and arm64 images with different content
    idx = d / "multi"
    descs = [build_image(idx, [LayerBuilder().file("arch", arch.encode()).tar_bytes()], {"Cmd": ["sh"]},
                         architecture=arch) for arch in ("amd64", "arm64")]
    index = canonical_json({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": descs})
    (idx / "blobs" / "sha256" / digest_of(index).split(":")[1]).write_bytes(index)
    write_index(idx, [{"mediaType": MT_INDEX, "digest": digest_of(index), "size": len(index)}])
    out["multi"] = idx
    # zstd and uncompressed layers in one image
    import zstandard
    z = d / "zstd"
    tars = [LayerBuilder().file("etc/z", b"zstd!\n").tar_bytes(), LayerBuilder().file("etc/plain", b"p\n").tar_bytes()]
    write_layout(z, tars, {"Cmd": ["sh"]}, compress=False)
    manifest_path = _manifest_path(z)
    m = json.loads(manifest_path.read_bytes())
    blob = zstandard.ZstdCompressor().compress(tars[0])
    (z / "blobs" / "sha256" / digest_of(blob).split(":")[1]).write_bytes(blob)
    m["layers"][0] = {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": digest_of(blob),
                      "size": len(blob)}
    mb = canonical_json(m)
    (z / "blobs" / "sha256" / digest_of(mb).split(":")[1]).write_bytes(mb)
    write_index(z, [{"mediaType": m["mediaType"], "digest": digest_of(mb), "size": len(mb)}])
    out["zstd"] = z
    return out


def _manifest_path(layout: Path) -> Path:
    desc = json.loads((layout / "index.json").read_text())["manifests"][0]
    return layout / "blobs" / "sha256" / desc["digest"].split(":")[1]


@pytest.fixture(scope="module")
def registry(tmp_path_factory, images):
    need("skopeo")
    reg = RealRegistry(tmp_path_factory.mktemp("registry"))
    try:
        push(images["demo"], f"{reg.host}/demo/app:1")
        push(images["demo"], f"{reg.host}/demo/app:v2s2", fmt="v2s2")
        push(images["demo"], f"{reg.host}/hub/demo/app:1")
        push(images["multi"], f"{reg.host}/multi:1", all_=True)
        push(images["zstd"], f"{reg.host}/zstd:1")
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="module", params=["htpasswd", "token"])
def auth_registry(request, tmp_path_factory, images):
    need("skopeo")
    reg = RealRegistry(tmp_path_factory.mktemp(f"registry-{request.param}"), auth=request.param, users=USERS)
    try:
        push(images["demo"], f"{reg.host}/private/app:1", creds="alice:s3cret")
        yield reg
    finally:
        reg.stop()


def test_anonymous_pull_unpacks_and_second_pull_downloads_nothing(registry, tmp_path):
    store = ImageStore(tmp_path / "images")
    ev = Events()
    img = pull_image(store, f"{registry.host}/demo/app:1", progress=ev)
    assert img.name == f"{registry.host}/demo/app:1"
    top, base = store.layer_dirs(img)
    assert (base / "bin" / "busybox").is_file() and (top / "etc" / "pyrun-demo").is_file()
    assert [s for s, _ in ev.log] == ["start", "done"] * 3
    again = Events()
    assert pull_image(store, f"{registry.host}/demo/app:1", progress=again).id == img.id
    assert [s for s, _ in again.log] == ["exists"] * 3
    assert store.resolve(f"{registry.host}/demo/app@{img.manifest_digest}").id == img.id


def test_pull_by_digest_and_docker_v2s2(registry, tmp_path):
    store = ImageStore(tmp_path / "images")
    v2 = pull_image(store, f"{registry.host}/demo/app:v2s2")
    manifest = json.loads(store.blobs.read(v2.manifest_digest))
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert v2.layer_diff_ids == pull_image(store, f"{registry.host}/demo/app:1").layer_diff_ids
    by_digest = pull_image(store, f"{registry.host}/demo/app@{v2.manifest_digest}")
    assert by_digest.id == v2.id
    # layers shared between the three names are stored and unpacked once
    assert len(list(store.layers_dir.iterdir())) == 2


def test_index_platform_selection(registry, tmp_path):
    store = ImageStore(tmp_path / "images")
    amd = pull_image(store, f"{registry.host}/multi:1")
    assert (store.layer_dirs(amd)[0] / "arch").read_bytes() == b"amd64"
    arm = pull_image(store, f"{registry.host}/multi:1", platform="linux/arm64")
    assert (store.layer_dirs(arm)[0] / "arch").read_bytes() == b"arm64"
    with pytest.raises(ImageError, match=r"no manifest for linux/s390x \(offered: linux/amd64, linux/arm64\)"):
        pull_image(store, f"{registry.host}/multi:1", platform="linux/s390x")


def test_zstd_and_uncompressed_layers(registry, tmp_path):
    pytest.importorskip("zstandard")
    store = ImageStore(tmp_path / "images")
    img = pull_image(store, f"{registry.host}/zstd:1")
    top, base = store.layer_dirs(img)
    assert (base / "etc" / "z").read_bytes() == b"zstd!\n" and (top / "etc" / "plain").read_bytes() == b"p\n"


def test_unknown_tag_is_not_found(registry, tmp_path):
    store = ImageStore(tmp_path / "images")
    with pytest.raises(NotFound, match="manifest nope not found"):
        pull_image(store, f"{registry.host}/demo/app:nope")
    assert_clean(store)


def test_docker_io_short_name_through_mirrors(registry, tmp_path):
    """busybox-style names normalise to docker.io/...; the config sends them to a local mirror
    (a dead one first), and never to docker.io: the location is a closed local port too."""
    dead = f"127.0.0.1:{free_port()}"
    conf = tmp_path / "registries.toml"
    conf.write_text(f'[[registry]]\nprefix = "docker.io"\nlocation = "{dead}"\n'
                    f'mirrors = ["{dead}/x", {{ location = "{registry.host}/hub", insecure = true }}]\n')
    store = ImageStore(tmp_path / "images")
    img = pull_image(store, "demo/app:1", config=conf)
    assert img.name == "docker.io/demo/app:1"
    assert store.resolve("demo/app:1").id == img.id
    # all endpoints dead: the error names each
    conf.write_text(f'[[registry]]\nprefix = "docker.io"\nlocation = "{dead}"\nmirrors = ["{dead}/m"]\n')
    with pytest.raises(ImageError, match="cannot reach.*mirrors failed too"):
        pull_image(ImageStore(tmp_path / "other"), "demo/app:1", config=regconf.load(conf))


def test_auth_with_creds_and_authfile(auth_registry, tmp_path):
    ref = f"{auth_registry.host}/private/app:1"
    store = ImageStore(tmp_path / "images")
    with pytest.raises(ImageError, match="wants a user name and password|token server .* refused"):
        pull_image(store, ref, authfile=_authfile(tmp_path, {}))
    assert_clean(store)
    img = pull_image(store, ref, {"username": "alice", "password": "s3cret"})
    assert store.layer_dirs(img)
    store2 = ImageStore(tmp_path / "images2")
    authfile = _authfile(tmp_path, {f"http://{auth_registry.host}": {"auth": _b64("alice:s3cret")}})
    assert pull_image(store2, ref, authfile=authfile).id == img.id


def test_bad_credentials_end_clean(auth_registry, tmp_path):
    store = ImageStore(tmp_path / "images")
    with pytest.raises(ImageError, match="check the credentials"):
        pull_image(store, f"{auth_registry.host}/private/app:1", {"auth": _b64("alice:wrong")})
    assert_clean(store)


def test_cli_pull_then_run_a_pod(registry, pyrun, write_pod, tmp_path):
    ref = f"{registry.host}/demo/app:1"
    p = pyrun("image", "pull", ref)
    assert p.stdout.split()[0] == ref
    assert "pull complete" in p.stderr or "already exists" in p.stderr
    spec = write_pod("pulled", [{"name": "c", "image": ref, "command": ["sh", "-c", "cat /etc/pyrun-demo; sleep 100"]}])
    pyrun("pod", "create", spec)
    assert pyrun.wait_for("pulled", "c", "running")["state"] == "running"
    assert pyrun("exec", "pulled", "c", "--", "cat", "/etc/motd").returncode == 0
    busy = pyrun("image", "rm", ref, check=False)
    assert busy.returncode == 5 and "used by a container" in busy.stderr
    pyrun("pod", "rm", "-f", "pulled")
    pyrun("image", "rm", ref)
    bad = pyrun("image", "pull", f"{registry.host}/demo/app:missing", check=False)
    assert bad.returncode == 3 and "not found" in bad.stderr and "Traceback" not in bad.stderr


def _b64(s: str) -> str:
    import base64
    return base64.b64encode(s.encode()).decode()


def _authfile(tmp_path: Path, auths: dict) -> Path:
    p = tmp_path / f"auth-{len(list(tmp_path.iterdir()))}.json"
    p.write_text(json.dumps({"auths": auths}))
    return p
