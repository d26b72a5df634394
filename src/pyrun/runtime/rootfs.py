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

import contextlib
import os
import stat
from typing import Iterator

from pyrun import explain
from pyrun.errors import PyrunError, SyscallError
from pyrun.linux import syscalls as linux
from pyrun.linux.syscalls import MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_RELATIME, MS_REMOUNT, MS_STRICTATIME

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


@contextlib.contextmanager
def opened_in_root(root: str, path: str) -> Iterator[str]:
    """`path` inside `root`, opened O_PATH, as /proc/self/fd/N for mount(2) to act on (runc's WithProcfd,
    CVE-2021-30465).

    secure_join resolves the path, but mount(2) on that path would resolve it again: a directory another
    container swapped for a symlink in between (in a volume they share) would take the mount out of the
    rootfs, onto the host (and, with Bidirectional propagation, to the host's mounts). The descriptor
    pins what was resolved; the kernel's name for it must be the path resolved, or this refuses."""
    root = os.path.realpath(root)
    target = secure_join(root, path)
    try:
        fd = os.open(target, os.O_PATH | os.O_CLOEXEC)
    except OSError as e:
        raise SyscallError.from_errno(e.errno, "open", target) from None
    try:
        procfd = f"/proc/self/fd/{fd}"
        seen = os.readlink(procfd)
        if seen != target:
            raise PyrunError(f"{path} in the container changed while it was being mounted on (it resolved to "
                             f"{target}, then to {seen}): refusing to mount outside the container's root")
        explain.emit(f"# {target}: opened O_PATH as {procfd} (the mounts below act on what was resolved)")
        yield procfd
    finally:
        os.close(fd)


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


def mount_cgroup_view(root: str, view, readonly: bool) -> None:
    """/sys/fs/cgroup as the container's own cgroups (a pyrun.cgroups.view.CgroupView), over the
    container's sysfs. Runs in the container's init, already in its cgroups, before pivot_root."""
    if not (view.namespace or view.binds):
        return
    target = secure_join(root, "/sys/fs/cgroup")
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC | (MS_RDONLY if readonly else 0)
    if view.namespace:
        linux.unshare(["cgroup"])  # rooted at this process's cgroup: the container's
        linux.mount("cgroup2", target, "cgroup2", flags | MS_RELATIME)
        return
    linux.mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755")
    for source, name in view.binds:
        linux.mkdir(os.path.join(target, name))
        linux.bind_mount(source, os.path.join(target, name), readonly=readonly, recursive=False,
                         extra_flags=MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for name, link in view.links:
        linux.symlink(link, os.path.join(target, name))
    if readonly:
        linux.mount(None, target, None, MS_REMOUNT | flags)


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
    ensure_mount_point(root, dest, is_file)
    with opened_in_root(root, dest) as target:
        linux.mount(source, target, None, linux.MS_BIND | linux.MS_REC)
    if readonly:  # on the new mount: opened again, as runc does
        with opened_in_root(root, dest) as target:
            linux.mount(None, target, None, linux.MS_BIND | linux.MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_RDONLY)
    if propagation:
        with opened_in_root(root, dest) as target:
            linux.set_propagation(target, propagation)


__all__ = ["secure_join", "opened_in_root", "ensure_mount_point", "mount_overlay", "mount_proc", "mount_sys",
           "mount_cgroup_view", "mount_dev", "make_device_nodes", "bind_into", "make_rootfs_parent_private",
           "MS_RELATIME"]
