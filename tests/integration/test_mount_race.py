"""The init's bind mounts and masks act on the path opened inside the rootfs (/proc/self/fd/N, as runc
does since CVE-2021-30465), in a private mount namespace of a child process: nothing reaches the host."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def run_in_private_mounts(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, "-c",
                           textwrap.dedent(script)], capture_output=True, text=True, timeout=60)


def mount_points(path) -> list[str]:
    """Mount points at or under path in this (the test's) mount namespace."""
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path))]


def test_binds_and_masks_land_inside_the_rootfs(tmp_path):
    root, src = tmp_path / "root", tmp_path / "src"
    (root / "data").mkdir(parents=True)
    (root / "proc" / "acpi").mkdir(parents=True)
    (root / "proc" / "kcore").write_text("secret")
    (root / "dev").mkdir()
    src.mkdir()
    (src / "f").write_text("volume")
    done = run_in_private_mounts(f"""
        import os
        from pyrun.runtime import rootfs, security
        root = {str(root)!r}
        os.mknod(root + "/dev/null", 0o20666, os.makedev(1, 3))
        rootfs.bind_into(root, {str(src)!r}, "/data", readonly=True, propagation="rprivate")
        security.mask_paths(root, ["/proc/acpi", "/proc/kcore", "/proc/missing"], ["/data"])
        assert open(root + "/data/f").read() == "volume"
        try:
            open(root + "/data/g", "w")
            raise SystemExit("/data is writable")
        except OSError as e:
            assert e.errno == 30, e  # EROFS
        assert os.listdir(root + "/proc/acpi") == [] and open(root + "/proc/kcore").read() == ""
        mine = [line.split() for line in open("/proc/self/mountinfo") if line.split()[4].startswith(root)]
        assert sorted(m[4] for m in mine) == sorted([root + "/data", root + "/data", root + "/proc/acpi",
                                                     root + "/proc/kcore"]), mine
        print("ok")
    """)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    assert mount_points(tmp_path) == []


def test_a_mount_point_swapped_for_a_symlink_to_the_host_is_refused(tmp_path):
    """Another container of the pod swaps a directory of a shared volume for a symlink to a host directory
    between the resolution and the mount: the mount is refused, the host directory gets nothing."""
    root, src, host = tmp_path / "root", tmp_path / "src", tmp_path / "host"
    (root / "vol" / "sub").mkdir(parents=True)
    src.mkdir()
    host.mkdir()
    done = run_in_private_mounts(f"""
        import os
        from pyrun.errors import PyrunError
        from pyrun.runtime import rootfs
        root, host = {str(root)!r}, {str(host)!r}
        real, calls = rootfs.secure_join, []
        def resolve_then_swap(base, path):  # the 2nd resolution: the one the mount is made on
            resolved = real(base, path)
            calls.append(path)
            if len(calls) == 2:
                os.rmdir(root + "/vol/sub")
                os.symlink(host, root + "/vol/sub")
            return resolved
        rootfs.secure_join = resolve_then_swap
        try:
            rootfs.bind_into(root, {str(src)!r}, "/vol/sub", readonly=False)
            raise SystemExit("mounted")
        except PyrunError as e:
            assert "changed while it was being mounted on" in str(e), e
        assert not any(line.split()[4].startswith(host) for line in open("/proc/self/mountinfo"))
        print("ok")
    """)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    assert mount_points(tmp_path) == []
