import pytest

from pyrun.errors import ImageError
from pyrun.images import reference
from pyrun.images.reference import normalise, parse

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text, expected", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1"),
    ("pyrun/demo", "docker.io/pyrun/demo:latest"),
    ("localhost:5000/x:1", "localhost:5000/x:1"),
    ("localhost/x", "localhost/x:latest"),
    ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
    ("ghcr.io/a/b/c:v1.2-rc_3", "ghcr.io/a/b/c:v1.2-rc_3"),
    ("Example.COM/x", "Example.COM/x:latest"),
    ("ab-c__d/e", "docker.io/ab-c__d/e:latest"),
    (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}"),
    (f"busybox:1@{DIGEST}", f"docker.io/library/busybox:1@{DIGEST}"),
    ("[::1]:5000/x", "[::1]:5000/x:latest"),
])
def test_normalise(text, expected):
    assert normalise(text) == expected


@pytest.mark.parametrize("text", [
    "", "Busybox", "busybox:", "busybox:.bad", ":tag", "a//b", "a/", "-a", "a__-b/", "busybox@sha256:short",
    "busybox@sha256:" + "AB" * 32, "ab" * 32, "busybox:" + "t" * 129, "a/" * 200 + "b", "bad host/x",
])
def test_invalid(text):
    with pytest.raises(ImageError):
        parse(text)


def test_parts_and_familiar():
    r = parse("busybox:1.36")
    assert (r.domain, r.path, r.tag, r.digest) == ("docker.io", "library/busybox", "1.36", None)
    assert r.repository == "docker.io/library/busybox"
    assert r.familiar() == "busybox:1.36"
    assert parse("localhost:5000/x:1").familiar() == "localhost:5000/x:1"
    assert parse("pyrun/demo").familiar() == "pyrun/demo:latest"


def test_no_default_tag():
    assert parse("busybox", default_tag=False).tag is None


def test_error_names_the_reference():
    with pytest.raises(ImageError, match="Busybox"):
        parse("Busybox")


def test_validate_digest():
    assert reference.validate_digest(DIGEST) == DIGEST
    with pytest.raises(ImageError, match="sha256"):
        reference.validate_digest("sha256:" + "a" * 63)
