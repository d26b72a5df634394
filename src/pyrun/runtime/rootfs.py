"""Build a container's root filesystem inside its own mount namespace.

Runs in the container's init, after unshare(CLONE_NEWNS) and `mount --make-rprivate /`,
so every mount here lives and dies with the container's mount namespace and
never shows on the host (mount_namespaces(7)).

Mount propagation (a volume's HostToContainer / Bidirectional), as runc does it: the new
namespace's / is made rslave (or rshared) instead of rprivate, so that the volume's source keeps
receiving (and, shared, sending) mount events; for rshared the mount the rootfs is made on is
made private first, so that nothing of the rootfs (overlay, /proc, /dev, other binds) reaches the
host. Every bind mount then gets its own propagation (rprivate unless asked for).
"""
from __future__ import annotations

import os
import stat

from pyrun.errors import PyrunError
from pyrun.linux import syscalls as linux
from pyrun.linux.syscalls import MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_RELATIME, MS_STRICTATIME

# (path, major, minor): the devices every container gets (the OCI runtime spec's default list).
DEFAULT_DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
                   ("urandom", 1, 9), ("tty", 5, 0))
DEV_SYMLINKS = (("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
                ("/proc/self/fd/2", "stderr"), ("pts/ptmx", "ptmx"))


def secure_join(root: str, path: str) -> str:
    """Resolve `path` inside `root` as if root were "/": symlinks and ".." never leave it.

    Missing components are allowed (they are created later). Pure apart from lstat/readlink.
    """
    root = os.path.abspath(root)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > 255:
                raise PyrunError(f"too many symlinks resolving {path!r} in the container")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def ensure_mount_point(root: str, dest: str, is_file: bool) -> str:
    """Resolve dest inside root and create it (a directory, or an empty file) if missing."""
    target = secure_join(root, dest)
    if is_file:
        linux.mkdir(os.path.dirname(target))
        if not os.path.lexists(target):
            with open(target, "a"):
                pass
    else:
        linux.mkdir(target)
    return target


def mount_overlay(lower: list[str], upper: str, work: str, target: str) -> None:
    """mount -t overlay: image layers (top first) read-only, the container's own upper/work.

    mount(2) takes one page of options; with many layers the lowerdirs are given
    relative to the layer store, from inside it (overlayfs resolves them at mount time).
    """
    from pathlib import Path
    from pyrun.images.overlay import compact_mount_data
    data, cwd = compact_mount_data([Path(p) for p in lower], Path(upper), Path(work))
    if cwd is not None:
        os.chdir(cwd)
    linux.mount("overlay", target, "overlay", 0, data)


def mount_proc(root: str) -> None:
    linux.mount("proc", ensure_mount_point(root, "/proc", False), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def mount_sys(root: str) -> None:
    linux.mount("sysfs", ensure_mount_point(root, "/sys", False), "sysfs",
                MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)


def mount_dev(root: str) -> None:
    """A fresh /dev: tmpfs with the default devices, devpts, shm and mqueue."""
    dev = ensure_mount_point(root, "/dev", False)
    linux.mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k")
    for name, major, minor in DEFAULT_DEVICES:
        linux.mknod_char(os.path.join(dev, name), major, minor, 0o666)
    pts = os.path.join(dev, "pts")
    linux.mkdir(pts)
    linux.mount("devpts", pts, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5")
    shm = os.path.join(dev, "shm")
    linux.mkdir(shm)
    linux.mount("shm", shm, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k")
    mqueue = os.path.join(dev, "mqueue")
    linux.mkdir(mqueue)
    linux.mount("mqueue", mqueue, "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for target, name in DEV_SYMLINKS:
        linux.symlink(target, os.path.join(dev, name))


def make_device_nodes(root: str, nodes) -> None:
    """The devices the container asked for (DeviceNode records, runtime.resources.requested_devices): a node with the host
    device's numbers, mode and owner at each path, replacing what the image or /dev has there.
    The device cgroup, set up before this runs, allows opening exactly these."""
    for node in nodes:
        target = secure_join(root, node.path)
        linux.mkdir(os.path.dirname(target))
        if os.path.lexists(target):
            if stat.S_ISDIR(os.lstat(target).st_mode):
                raise PyrunError(f"device path {node['path']} is a directory in the container")
            os.unlink(target)
        linux.mknod(target, node.type, node.major, node.minor, node.mode, node.uid, node.gid)


def make_rootfs_parent_private(root: str) -> None:
    """The mount the rootfs is made on becomes private (runc's rootfsParentMountPrivate): with a
    shared /, the overlay and everything under it would otherwise show up on the host."""
    from pyrun.linux.mounts import filesystem_of
    point, _ = filesystem_of(root)
    linux.make_private(point, recursive=False)


def bind_into(root: str, source: str, dest: str, readonly: bool, propagation: str | None = None) -> None:
    """Bind a host file or directory (a volume, /etc/hosts, ...) at dest inside the rootfs.
    propagation: rprivate, rslave or rshared for the new mount (None: as the bind made it)."""
    try:
        is_file = not stat.S_ISDIR(os.stat(source).st_mode)
    except FileNotFoundError:
        raise PyrunError(f"mount source {source} does not exist") from None
    target = ensure_mount_point(root, dest, is_file)
    linux.bind_mount(source, target, readonly=readonly, recursive=True,
                     extra_flags=MS_NOSUID | MS_NODEV if readonly else 0)
    if propagation:
        linux.set_propagation(target, propagation)


__all__ = ["secure_join", "ensure_mount_point", "mount_overlay", "mount_proc", "mount_sys", "mount_dev",
           "make_device_nodes", "bind_into", "make_rootfs_parent_private", "MS_RELATIME"]
