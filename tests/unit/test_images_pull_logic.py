"""Pure parts of registry pulls: endpoints and mirrors, credentials, challenges, platforms, progress."""
from __future__ import annotations

import base64
import io

import pytest

from pyrun.errors import ImageError, UsageError
from pyrun.images import auth, oci, reference, regconf
from pyrun.images.distribution import BlobStream
from pyrun.images.pull import (BarProgress, LineProgress, Platform, credentials_for, parse_platform,
                               select_manifest)

H = "sha256:" + "a" * 64


def eps(ref: str, text: str = "", insecure=frozenset()):
    conf = regconf.parse_text(text, "r.toml") if text else None
    return [(e.host, e.path, e.insecure, e.mirror) for e in regconf.endpoints(reference.parse(ref), conf, insecure)]


def test_docker_hub_short_names_go_to_registry_1():
    assert eps("busybox") == [("registry-1.docker.io", "library/busybox", False, False)]
    assert eps("index.docker.io/x/y:1") == [("registry-1.docker.io", "x/y", False, False)]


def test_loopback_is_http_and_insecure_flag():
    assert eps("localhost:5000/a") == [("localhost:5000", "a", True, False)]
    assert eps("127.0.0.1:5000/a")[0][2] is True
    assert eps("[::1]:5000/a")[0][2] is True
    assert eps("reg.lab:5000/a")[0][2] is False
    assert eps("reg.lab:5000/a", insecure={"reg.lab:5000"})[0][2] is True


def test_mirrors_first_with_prefix_rewrite_and_longest_prefix():
    text = '''
[[registry]]
prefix = "docker.io"
mirrors = ["mirror.lab:5000/hub", { location = "m2.lab", insecure = true }]

[[registry]]
prefix = "docker.io/library"
location = "local.lab/official"
insecure = true
'''
    assert eps("pyrun/demo", text) == [("mirror.lab:5000", "hub/pyrun/demo", False, True),
                                       ("m2.lab", "pyrun/demo", True, True),
                                       ("registry-1.docker.io", "pyrun/demo", False, False)]
    assert eps("busybox", text) == [("local.lab", "official/busybox", True, False)]


def test_config_json_and_errors():
    conf = regconf.parse_text('{"registry": [{"prefix": "a.lab", "mirrors": ["b.lab"]}]}', "r.json")
    assert conf.registries[0].mirrors[0].location == "b.lab"
    for bad, msg in [('x = 1', "unknown key"), ('[[registry]]\nprefix = "https://a"', "no scheme"),
                     ('[[registry]]\nprefix = "a"\ninsecure = "yes"', "true or false"),
                     ('[[registry]]\nprefix = "a"\nfoo = 1', "unknown key"), ('[[registry', "not valid TOML")]:
        with pytest.raises(ImageError, match=msg):
            regconf.parse_text(bad, "r.toml")


def test_load_default_missing_is_empty(tmp_path, monkeypatch):
    monkeypatch.delenv(regconf.ENV_PATH, raising=False)
    monkeypatch.setattr(regconf, "DEFAULT_PATH", tmp_path / "none.toml")
    assert regconf.load().registries == ()
    with pytest.raises(ImageError, match="not found"):
        regconf.load(tmp_path / "missing.toml")


def test_auth_dicts_and_creds():
    b64 = base64.b64encode(b"u:p:q").decode()
    assert auth.from_dict({"auth": b64}) == auth.Credentials("u", "p:q")
    assert auth.from_dict({"username": "u", "password": "p"}).basic_header() == "Basic " + base64.b64encode(b"u:p").decode()
    assert auth.from_dict({"identity_token": "it"}).identity_token == "it"
    assert auth.from_dict({"registry_token": "rt"}).registry_token == "rt"
    assert auth.from_dict({}) is None and auth.from_dict({"username": ""}) is None
    with pytest.raises(ImageError, match="not base64"):
        auth.from_dict({"auth": "!!"})
    assert auth.parse_creds("a:b:c") == auth.Credentials("a", "b:c")
    with pytest.raises(UsageError):
        auth.parse_creds("nopass")
    assert "p" not in repr(auth.Credentials("u", "secretpw"))


def test_authfile_lookup():
    auths = auth.parse_authfile('{"auths": {"https://index.docker.io/v1/": {"auth": "%s"},'
                                ' "reg.lab:5000": {"username": "r", "password": "s"},'
                                ' "reg.lab:5000/team": {"username": "t", "password": "s"}}}'
                                % base64.b64encode(b"hub:pw").decode(), "c.json")
    assert auth.lookup(auths, "docker.io/library/busybox").username == "hub"
    assert auth.lookup(auths, "reg.lab:5000/other/x").username == "r"
    assert auth.lookup(auths, "reg.lab:5000/team/x").username == "t"
    assert auth.lookup(auths, "x", host="reg.lab:5000").username == "r"
    assert auth.lookup(auths, "other.lab/x") is None
    with pytest.raises(ImageError, match="'auths'"):
        auth.parse_authfile('{"auths": []}', "c.json")


def test_explicit_creds_never_go_to_mirrors():
    ref = reference.parse("reg.lab/x")
    explicit = auth.Credentials("me", "pw")
    main = regconf.Endpoint("reg.lab", "x", False)
    mirror = regconf.Endpoint("mirror.lab", "x", False, mirror=True)
    assert credentials_for(main, ref, explicit, {}) is explicit
    assert credentials_for(mirror, ref, explicit, {}) is None
    assert credentials_for(mirror, ref, explicit, {"mirror.lab": {"username": "m", "password": "x"}}).username == "m"


def test_parse_challenge():
    c = auth.parse_challenge('Bearer realm="https://auth.lab/token",service="reg",scope="repository:a/b:pull,push"')
    assert c.scheme == "bearer"
    assert c.params == {"realm": "https://auth.lab/token", "service": "reg", "scope": "repository:a/b:pull,push"}
    assert auth.parse_challenge('Basic realm="x \\"q\\""').params == {"realm": 'x "q"'}
    with pytest.raises(ImageError, match="without a WWW-Authenticate"):
        auth.parse_challenge("")


def desc(os_, arch, variant=None):
    p = {"os": os_, "architecture": arch, **({"variant": variant} if variant else {})}
    return oci.Descriptor("m", H, 1, {}, p)


def test_platform_selection():
    descs = [desc("linux", "arm", "v6"), desc("linux", "arm", "v7"), desc("linux", "arm64", "v8"),
             desc("linux", "amd64"), desc("unknown", "unknown")]
    assert select_manifest(descs, parse_platform("linux/amd64"), "i") is descs[3]
    assert select_manifest(descs, parse_platform("linux/arm/v7"), "i") is descs[1]
    assert select_manifest(descs, parse_platform("linux/arm64"), "i") is descs[2]
    assert select_manifest([desc("linux", "arm64")], parse_platform("linux/arm64/v8"), "i").platform["architecture"] == "arm64"
    with pytest.raises(ImageError, match="offered: linux/amd64, linux/arm/v6"):
        select_manifest(descs, Platform("linux", "s390x"), "i")
    with pytest.raises(ImageError, match="os/arch"):
        parse_platform("amd64")


def test_progress_renderers():
    out = io.StringIO()
    p = LineProgress(out.write)
    p.start(H, 2_500_000, "layer 1/2")
    p.advance(H, 100)
    p.done(H, "done")
    p.done(H, "exists")
    assert out.getvalue().splitlines() == ["aaaaaaaaaaaa: pulling layer 1/2 (2.5MB)", "aaaaaaaaaaaa: pull complete",
                                           "aaaaaaaaaaaa: already exists"]
    out = io.StringIO()
    b = BarProgress(out.write)
    b.start(H, 100, "config")
    b.advance(H, 50)
    b.advance(H, 50)
    b.done(H, "done")
    assert "[###############...............]" in out.getvalue() and out.getvalue().endswith("done\n")


class FakeResp:
    def __init__(self, data: bytes):
        self.buf = io.BytesIO(data)

    def read(self, n):
        return self.buf.read(n)

    def close(self):
        pass


class FakeClient:
    """open_blob serves `parts` in turn; each part is (start, bytes) and ends 'early'."""

    label = "fake"

    def __init__(self, data: bytes, cuts: list[int], honour_range=True):
        self.data, self.cuts, self.honour, self.offsets = data, list(cuts), honour_range, []

    def open_blob(self, digest, offset=0):
        self.offsets.append(offset)
        start = offset if self.honour else 0
        end = self.cuts.pop(0) if self.cuts else len(self.data)
        return FakeResp(self.data[start:end]), start


def read_all(s: BlobStream) -> bytes:
    out = b""
    while chunk := s.read(7):
        out += chunk
    return out


def test_blob_stream_resumes_and_caps():
    data = bytes(range(256)) * 4
    c = FakeClient(data, [100, 500])
    assert read_all(BlobStream(c, H, len(data))) == data and c.offsets == [0, 100, 500]
    c = FakeClient(data, [100], honour_range=False)  # server ignores Range: skip what we have
    assert read_all(BlobStream(c, H, len(data))) == data
    assert read_all(BlobStream(FakeClient(data + b"extra", []), H, len(data))) == data
    with pytest.raises(ImageError, match="connection lost after 10 of 1024 bytes"):
        read_all(BlobStream(FakeClient(data, [10, 10, 10, 10, 10]), H, len(data), retries=3))
