"""linux/tree.py: iterative, fd-relative walk / remove / usage / apply over hostile trees (no root needed)."""
from __future__ import annotations

import os
import stat
import sys

import pytest

from pyrun.errors import SyscallError
from pyrun.linux import tree

DEPTH = 5000


def _deep(root, depth: int, name: str = "d") -> None:
    """root/d/d/.../d (depth levels) with a file and a symlink to / at the bottom, made fd-relative."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        wfd = os.open("file", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(wfd, b"bottom")
        os.close(wfd)
        os.symlink("/", "up", dir_fd=fd)
    finally:
        os.close(fd)


def test_remove_5000_levels_without_recursion(tmp_path):
    root = tmp_path / "t"
    root.mkdir()
    _deep(root, DEPTH)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)  # any recursion per level would blow up here
    try:
        tree.remove_tree(root)
    finally:
        sys.setrecursionlimit(limit)
    assert not root.exists()


def test_walk_and_usage_5000_levels(tmp_path):
    root = tmp_path / "t"
    root.mkdir()
    _deep(root, DEPTH)
    kinds = [stat.S_IFMT(st.st_mode) for _, _, st in tree.walk(root)]
    assert kinds.count(stat.S_IFDIR) == DEPTH
    assert kinds.count(stat.S_IFREG) == 1 and kinds.count(stat.S_IFLNK) == 1
    size, _, inodes = tree.tree_usage(root)
    tree.remove_tree(root)  # pytest's own tmp cleanup (shutil.rmtree) recurses: never leave it a deep tree
    assert inodes == DEPTH + 2 and size >= len(b"bottom")


def test_paths_longer_than_path_max(tmp_path):
    root = tmp_path / "t"
    root.mkdir()
    name = "n" * 200
    _deep(root, 40, name)  # 40 * 201 bytes > PATH_MAX (4096)
    assert sum(1 for _ in tree.walk(root)) == 42
    tree.remove_tree(root)
    assert not root.exists()


def test_symlinks_are_never_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("precious")
    root = tmp_path / "t"
    (root / "a").mkdir(parents=True)
    os.symlink(outside, root / "a" / "link")
    os.symlink(outside / "keep", root / "filelink")
    seen = []
    tree.apply_each(root, lambda fd, name, st: seen.append((name, stat.S_IFMT(st.st_mode))))
    assert ("link", stat.S_IFLNK) in seen and ("keep", stat.S_IFREG) not in seen
    tree.remove_tree(root)
    assert (outside / "keep").read_text() == "precious" and not root.exists()


def test_root_symlink_is_unlinked_not_followed(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "f").write_text("x")
    os.symlink(target, tmp_path / "link")
    tree.remove_tree(tmp_path / "link")
    assert (target / "f").exists() and not os.path.lexists(tmp_path / "link")


def test_missing_is_fine_and_errors_name_the_path(tmp_path):
    tree.remove_tree(tmp_path / "nope")
    with pytest.raises(FileNotFoundError):
        tree.remove_tree(tmp_path / "nope", missing_ok=False)
    assert tree.tree_usage(tmp_path / "nope") == (0, 0, 0)
    if os.geteuid() == 0:
        pytest.skip("root removes from read-only directories")
    root = tmp_path / "t"
    (root / "ro").mkdir(parents=True)
    (root / "ro" / "f").write_text("x")
    os.chmod(root / "ro", 0o500)
    try:
        with pytest.raises(SyscallError, match="ro"):
            tree.remove_tree(root)
    finally:
        os.chmod(root / "ro", 0o700)


def test_wide_directory_is_linear(tmp_path):
    root = tmp_path / "t"
    root.mkdir()
    for i in range(2000):
        (root / f"d{i}").mkdir()
        (root / f"d{i}" / "f").write_text("x")
    assert sum(1 for _ in tree.walk(root)) == 4000
    tree.remove_tree(root)
    assert not root.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_mount_point_inside_is_refused_not_crossed(tmp_path):
    import subprocess
    root = tmp_path / "t"
    (root / "a" / "mnt").mkdir(parents=True)
    (root / "a" / "f").write_text("x")
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(root / "a" / "mnt")], check=True)
    try:
        (root / "a" / "mnt" / "inside").write_text("on the other filesystem")
        assert all(name != "inside" for _, name, _ in tree.walk(root))
        with pytest.raises(SyscallError, match=r"a/mnt"):
            tree.remove_tree(root)
        assert (root / "a" / "mnt" / "inside").exists()
    finally:
        subprocess.run(["umount", str(root / "a" / "mnt")], check=True)
    tree.remove_tree(root)
    assert not root.exists()


def test_walk_dirs_bottom_up_5000_levels_children_first(tmp_path):
    """The order cgroup removal and the unpacker's directory metadata need: a directory after all below it."""
    root = tmp_path / "t"
    root.mkdir()
    _deep(root, DEPTH)
    (root / "side").mkdir()
    seen, done = [], set()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        for parent_fd, name, parts in tree.walk_dirs_bottom_up(root):
            p = parts()
            assert p[-1] == name and stat.S_ISDIR(os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode)
            assert p[:-1] not in done  # the parent comes after its children
            seen.append(p)
            done.add(p)
    finally:
        sys.setrecursionlimit(limit)
    assert len(seen) == DEPTH + 1 and {len(p) for p in seen} == set(range(1, DEPTH + 1))
    chain = [p for p in seen if p[0] == "d"]
    assert [len(p) for p in chain] == list(range(DEPTH, 0, -1))  # deepest first
    tree.remove_tree(root)


def test_walk_dirs_bottom_up_lets_the_caller_rmdir(tmp_path):
    root = tmp_path / "t"
    for d in ("a/b/c", "a/x", "e"):
        (root / d).mkdir(parents=True)
    for parent_fd, name, _ in tree.walk_dirs_bottom_up(root):
        os.rmdir(name, dir_fd=parent_fd)
    assert os.listdir(root) == []
