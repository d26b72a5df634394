from pathlib import Path

import pytest

from pyrun.errors import ImageError
from pyrun.images.overlay import MOUNT_DATA_MAX, compact_mount_data, escape, lowerdir_value, mount_data


def test_lowerdir_top_first_and_escaped():
    assert lowerdir_value(["/l/top", "/l/base"]) == "/l/top:/l/base"
    assert escape("/a:b,c\\d") == "/a\\:b\\,c\\\\d"
    with pytest.raises(ImageError):
        lowerdir_value([])


def test_mount_data():
    assert mount_data(["/a", "/b"], "/u", "/w") == "lowerdir=/a:/b,upperdir=/u,workdir=/w"
    assert mount_data(["/a", "/b"]) == "lowerdir=/a:/b"
    with pytest.raises(ImageError, match="go together"):
        mount_data(["/a"], "/u")


def test_compact_mount_data():
    root = Path("/run/pyrun/images/layers")
    few = [root / ("%064x" % i) for i in range(3)]
    assert compact_mount_data(few, Path("/u"), Path("/w")) == (mount_data(few, "/u", "/w"), None)
    many = [root / ("%064x" % i) for i in range(58)]
    data, cwd = compact_mount_data(many, Path("/u"), Path("/w"))
    assert cwd == root and data.startswith("lowerdir=" + "%064x" % 0) and len(data) <= MOUNT_DATA_MAX
    with pytest.raises(ImageError, match="at most"):
        compact_mount_data([root / ("%064x" % i) for i in range(80)])
