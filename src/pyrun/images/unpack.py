"""Safe layer unpacking: pure member checks (`check_member`) and a thin writer (`unpack_layer`).

Policy (documented here because users will ask):
- A leading "/" is stripped from member names and hardlink targets, as docker
  and containerd do; "." components are dropped. Any ".." component is refused.
- Every path component below the layer directory is opened with O_NOFOLLOW
  relative to its parent's file descriptor (openat(2)), so a member can never
  be written through a symlink, whether the symlink came earlier in the same
  tar or was planted any other way. check_member also refuses paths through
  symlinks it has seen, so the error names the member instead of ELOOP.
- Symlink *targets* are not checked: they are only followed inside the
  container, after pivot_root.
- Hardlink targets must be an earlier member of the same layer, inside it.
- Device nodes, fifos, ownership, modes, mtimes and pax SCHILY.xattr.* are kept
  (ownership, devices and trusted.* xattrs need root). trusted.overlay.* xattrs
  from a tar are dropped: only the opaque-dir translation below may set them.
- Whiteouts become overlayfs whiteouts: ".wh.<name>" -> a 0/0 character device
  <name>; ".wh..wh..opq" -> xattr trusted.overlay.opaque=y on its directory.
  A whiteout never hides a file of its own layer (OCI image-spec, layer.md).
- Each layer is unpacked on its own into an empty directory (not onto its
  parents): a member path through a lower layer's symlink makes a real directory.
- Sparse members (GNU 'S', PAX GNU.sparse.*) are written sparse: only their data
  blocks are written, the holes are seeked over and the size set with ftruncate.
- `max_bytes` bounds the data a layer may write (regular file contents, holes not
  counted): a small compressed layer can't expand to fill the disk.
- Cost per member is O(1) in the number of members and O(its name) in its depth: what the
  writer knows is a tree of nodes (one per path), the parent directory's fd and node are
  reused while members stay in one directory or go one level deeper. Names may be longer than
  PATH_MAX (at most MAX_MEMBER_PATH): the kernel never sees a full path, so a layer may be
  any depth a 64 KiB name allows (5,000 levels of "d/" is 10 KB).
- Speed (issue #14): the tar is read through tarstream.ForwardReader (big buffered reads, no
  per-member file objects); an entry is created first and the old one looked at only on EEXIST;
  small new files (<= SMALL_FILE) are created and written by one file thread, in order, while this
  thread parses on; a member that may replace, hide or hardlink a queued file waits for the queue.
"""
from __future__ import annotations

import errno
import os
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import AbstractSet, BinaryIO

from pyrun.errors import ImageError
from pyrun.images.tarsafe import GuardedTarInfo
from pyrun.images.tarstream import ForwardReader
from pyrun.linux.tree import remove_tree, walk_dirs_bottom_up

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
NAME_MAX = 255
MAX_MEMBER_PATH = 1 << 16  # bytes of a member name: 5,000+ levels deep (the writer never hands the kernel a
                           # full path, so PATH_MAX does not apply); tarsafe bounds the header it comes in
XATTR_PAX_PREFIX = "SCHILY.xattr."

_KINDS = {
    tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file", tarfile.GNUTYPE_SPARSE: "file",
    tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "chardev", tarfile.BLKTYPE: "blockdev", tarfile.FIFOTYPE: "fifo",
}


@dataclass(frozen=True)
class Entry:
    """What one tar member asks for, after the checks.

    kind: file, dir, symlink, hardlink, chardev, blockdev, fifo, whiteout, opaque.
    parts: the path inside the layer as components; for "whiteout" the path of
    the hidden entry, for "opaque" the directory made opaque.
    """

    kind: str
    parts: tuple[str, ...]
    member: str
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: float = 0
    link_target: str = ""
    link_parts: tuple[str, ...] = ()
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)
    size: int = 0                                   # a file's size (for sparse files: with the holes)
    sparse: tuple[tuple[int, int], ...] | None = None  # (offset, length) data blocks of a sparse file

    @property
    def path(self) -> str:
        return "/".join(self.parts) or "."


def split_path(name: str, layer: str, member: str, what: str = "path") -> tuple[str, ...]:
    """'/./a//b/' -> ('a', 'b'); refuses '..' and over-long names. Pure."""
    if "\x00" in name:
        raise ImageError(f"layer {layer}: member {member!r}: {what} contains a NUL byte")
    if len(name) > MAX_MEMBER_PATH // 4 and len(os.fsencode(name)) > MAX_MEMBER_PATH:
        raise ImageError(f"layer {layer}: member {member[:80]!r}...: {what} is longer than {MAX_MEMBER_PATH} bytes")
    parts = tuple(filter(None, name.split("/")))
    if "." in parts:
        parts = tuple(p for p in parts if p != ".")
    if ".." in parts:
        raise ImageError(f"layer {layer}: member {member!r}: {what} has a '..' component "
                         "and would land outside the layer directory")
    if parts and max(map(len, parts)) > NAME_MAX // 4:  # <= 63 characters are <= 255 bytes
        if any(len(os.fsencode(p)) > NAME_MAX for p in parts):
            raise ImageError(f"layer {layer}: member {member[:80]!r}...: {what} has a component "
                             f"longer than {NAME_MAX} bytes")
    return parts


def _through_symlink(parts: tuple[str, ...], symlinks: "AbstractSet[tuple[str, ...]] | _PathIndex") -> str | None:
    """The first proper prefix of `parts` that is a symlink: O(depth) with a _PathIndex (the writer's),
    O(depth^2) with a plain set (small sets in tests)."""
    if not symlinks:
        return None
    if isinstance(symlinks, _PathIndex):
        return symlinks.symlink_on(parts)
    for i in range(1, len(parts)):
        if parts[:i] in symlinks:
            return "/".join(parts[:i])
    return None


class _Node:
    __slots__ = ("parent", "children", "symlink", "created", "meta")

    def __init__(self, parent: _Node | None = None) -> None:
        self.parent = parent
        self.children: dict[str, _Node] | None = None
        self.symlink = False      # a symlink member made it
        self.created = False      # a member of this layer made it (not a whiteout)
        self.meta: Entry | None = None  # a directory's metadata, applied by finish()


def _child(n: _Node, name: str, create: bool) -> _Node | None:
    if n.children is None or name not in n.children:
        if not create:
            return None
        if n.children is None:
            n.children = {}
        n.children[name] = _Node(n)
    return n.children[name]


class _PathIndex:
    """What the writer knows about the paths it wrote, as a tree of nodes (one per path, not one tuple
    of every component per path): memory O(paths), each lookup O(depth), and forgetting a removed
    directory with everything below it is O(1). A layer of many 2,000-deep names once took ~1 KiB of
    RAM per member and O(depth^2) per member to check for symlinks on the way."""

    def __init__(self) -> None:
        self.root = _Node()
        self.symlinks = 0  # ever added: skip the walk while there are none
        # Members come directory by directory: the last parent looked up (and whether a symlink lies on
        # the way to it) is kept until a symlink is added or a node forgotten (`_version`).
        self._version = 0
        self._last: tuple[tuple[str, ...], _Node, int] | None = None
        self._last_symlink: tuple[tuple[str, ...], str | None, int] | None = None

    def __bool__(self) -> bool:
        return self.symlinks > 0

    def add_symlink(self, parts: tuple[str, ...]) -> None:
        self.node(parts, create=True).symlink = True
        self.symlinks += 1
        self._version += 1

    def node(self, parts: tuple[str, ...], create: bool = False) -> _Node | None:
        if not parts:
            return self.root
        parent = self._parent(parts[:-1], create)
        if parent is None:
            return None
        return _child(parent, parts[-1], create)

    def _parent(self, parts: tuple[str, ...], create: bool) -> _Node | None:
        last = self._last
        n: _Node | None = None
        if last is not None and last[2] == self._version:
            if last[0] == parts:
                return last[1]
            if parts and last[0] == parts[:-1]:  # one level below the last: a deep tree, top-down
                n = _child(last[1], parts[-1], create)
                if n is None:
                    return None
            elif len(parts) < len(last[0]) and last[0][:len(parts)] == parts:  # above it: bottom-up
                n = last[1]
                for _ in range(len(last[0]) - len(parts)):
                    n = n.parent
        if n is None:
            n = self.root
            for p in parts:
                n = _child(n, p, create)
                if n is None:
                    return None
        self._last = (parts, n, self._version)
        return n

    def forget(self, parts: tuple[str, ...]) -> None:
        """Drop the node at `parts` and everything below it (the entry was removed from disk)."""
        parent = self.node(parts[:-1]) if parts else None
        if parent is not None and parent.children:
            parent.children.pop(parts[-1], None)
        self._version += 1

    def symlink_on(self, parts: tuple[str, ...]) -> str | None:
        """The first directory on the way to `parts` that is a symlink of this layer, as a path."""
        key = parts[:-1]
        last = self._last_symlink
        if last is not None and last[2] == self._version and last[0] == key:
            return last[1]
        found = None
        n = self.root
        for i, p in enumerate(key):
            if n.children is None or p not in n.children:
                break
            n = n.children[p]
            if n.symlink:
                found = "/".join(parts[:i + 1])
                break
        self._last_symlink = (key, found, self._version)
        return found

    def created(self, parts: tuple[str, ...]) -> bool:
        n = self.node(parts)
        return n is not None and n.created

    def meta(self, parts: tuple[str, ...]) -> Entry | None:
        n = self.node(parts)
        return n.meta if n is not None else None


def _xattrs(info: tarfile.TarInfo) -> dict[str, bytes]:
    out = {}
    for key, value in (info.pax_headers or {}).items():
        if key.startswith(XATTR_PAX_PREFIX):
            name = key[len(XATTR_PAX_PREFIX):]
            if name.startswith("trusted.overlay."):
                continue
            out[name] = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    return out


def check_member(info: tarfile.TarInfo, layer: str,
                 symlinks: "AbstractSet[tuple[str, ...]] | _PathIndex" = frozenset()) -> Entry:
    """Decide what a tar member may do inside a layer directory, or raise ImageError. Pure.

    `symlinks` holds the paths (as component tuples) of symlinks created by
    earlier members of the same layer.
    """
    member = info.name
    kind = _KINDS.get(info.type)
    if kind is None:
        raise ImageError(f"layer {layer}: member {member!r}: unsupported tar member type {info.type!r}")
    parts = split_path(member, layer, member)
    via = _through_symlink(parts, symlinks)
    if via:
        raise ImageError(f"layer {layer}: member {member!r}: path goes through the symlink {via!r} "
                         "of an earlier member")
    if not parts:
        if kind != "dir":
            raise ImageError(f"layer {layer}: member {member!r}: only a directory may name the layer root")
    base = parts[-1] if parts else ""
    common = dict(member=member, mode=stat.S_IMODE(info.mode), uid=info.uid, gid=info.gid,
                  mtime=info.mtime, xattrs=_xattrs(info))
    if base == OPAQUE_MARKER:
        return Entry("opaque", parts[:-1], **common)
    if base.startswith(WHITEOUT_PREFIX):
        hidden = base[len(WHITEOUT_PREFIX):]
        if hidden in ("", ".", "..") or hidden.startswith(WHITEOUT_PREFIX):
            if hidden.startswith(WHITEOUT_PREFIX):  # aufs metadata (.wh..wh.plnk, ...): nothing to do
                return Entry("opaque-ignored", parts, **common)
            raise ImageError(f"layer {layer}: member {member!r}: invalid whiteout name")
        return Entry("whiteout", parts[:-1] + (hidden,), **common)
    if kind == "hardlink":
        target = split_path(info.linkname, layer, member, "hardlink target")
        if not target:
            raise ImageError(f"layer {layer}: member {member!r}: hardlink to the layer root")
        via = _through_symlink(target, symlinks)
        if via:
            raise ImageError(f"layer {layer}: member {member!r}: hardlink target {info.linkname!r} "
                             f"goes through the symlink {via!r}")
        return Entry("hardlink", parts, link_target=info.linkname, link_parts=target, **common)
    if kind == "symlink":
        if not info.linkname or "\x00" in info.linkname:
            raise ImageError(f"layer {layer}: member {member!r}: empty or invalid symlink target")
        return Entry("symlink", parts, link_target=info.linkname, **common)
    if kind in ("chardev", "blockdev"):
        return Entry(kind, parts, devmajor=info.devmajor, devminor=info.devminor, **common)
    if kind == "file":
        sparse = getattr(info, "sparse", None)
        return Entry(kind, parts, size=info.size,
                     sparse=tuple((int(o), int(n)) for o, n in sparse) if sparse is not None else None, **common)
    return Entry(kind, parts, **common)


# --- the writer ---------------------------------------------------------------------------------

class _Dirs:
    """Open directories below the layer root, one O_NOFOLLOW component at a time (openat(2))."""

    def __init__(self, root_fd: int, layer: str):
        self.root_fd = root_fd
        self.layer = layer
        self._cached: tuple[tuple[str, ...], int] | None = None  # the last parent opened for writing

    def parent(self, parts: tuple[str, ...], member: str) -> int:
        """The directory `parts` (created as needed), borrowed: valid until forget() or the next call."""
        if self._cached is not None and self._cached[0] == parts:
            return self._cached[1]
        fd = self._open_below_cached(parts, member)
        if fd is None:
            fd = self.open(parts, member, create=True)
        self.forget()
        self._cached = (parts, fd)
        return fd

    def forget_below(self, parts: tuple[str, ...]) -> None:
        """The directory `parts` was removed: drop the cached fd if it was that one or below it (never
        the caller's parent fd, which the replacing member is about to be written into)."""
        if self._cached is not None and self._cached[0][:len(parts)] == parts:
            self.forget()

    def forget(self) -> None:
        """Drop the cached fd (a directory was removed: the cached one may be gone from the tree)."""
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None

    def _open_below_cached(self, parts: tuple[str, ...], member: str) -> int | None:
        """`parts` opened from the cached directory when it is one of its ancestors (a tar lists a deep
        tree top-down: each member one level below the last), else None. Keeps a chain of N levels at
        O(N) openat calls instead of O(N^2). As safe as the cache: removing a directory forgets it."""
        if self._cached is None:
            return None
        base, base_fd = self._cached
        if len(base) >= len(parts) or parts[:len(base)] != base:
            return None
        return self.open(parts, member, create=True, start=(len(base), base_fd))

    def open(self, parts: tuple[str, ...], member: str, create: bool,
             start: tuple[int, int] | None = None) -> int:
        """Open `parts` one O_NOFOLLOW component at a time, from the root (or from `start`: a number of
        components already open as a borrowed fd)."""
        skip, from_fd = start if start is not None else (0, self.root_fd)
        fd = os.dup(from_fd)
        try:
            for p in parts[skip:]:
                nfd = self._step(fd, p, parts, member, create)
                os.close(fd)
                fd = nfd
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _step(self, fd: int, name: str, parts: tuple[str, ...], member: str, create: bool) -> int:
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            return os.open(name, flags, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                raise ImageError(f"layer {self.layer}: member {member!r}: {'/'.join(parts)} does not exist") from None
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise ImageError(f"layer {self.layer}: member {member!r}: path component {name!r} is a "
                                 "symlink or not a directory; refusing to write through it") from None
            raise
        os.mkdir(name, 0o755, dir_fd=fd)  # a parent the tar did not list: root-owned 0755, like docker
        return os.open(name, flags, dir_fd=fd)


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _remove(name: str, dir_fd: int, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        remove_tree(f"/proc/self/fd/{dir_fd}/{name}")  # iterative: the tree may be any depth
    else:
        os.unlink(name, dir_fd=dir_fd)


_SPECIAL_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX  # always set with fchmod, after fchown


def _current_umask() -> int:
    """The process umask, read without changing it (os.umask would race other threads, e.g. the CRI
    server's); 0o777 (every mode set with fchmod) when the kernel does not say."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o777


SMALL_FILE = 256 << 10  # files up to this size are written by the file thread
QUEUED_FILES = 32       # at most this many wait for it: <= 8 MiB of data held


class _FileThread:
    """One thread that creates and writes the small new files the writer hands it, in order. Its
    first error is raised by the writer's next submit() or drain(); after it, queued files are
    skipped (the caller removes the half-made layer)."""

    def __init__(self, write_file, layer: str):
        import queue
        import threading
        self._write_file = write_file
        self._layer = layer
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUED_FILES)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._start = lambda: threading.Thread(target=self._run, name="pyrun-unpack-files", daemon=True)

    def submit(self, pfd: int, name: str, e: Entry, data: bytes) -> None:
        """Queue a file; `pfd` (a dup of its parent directory) is closed by the thread."""
        if self._error is not None:
            os.close(pfd)
            self._raise()
        if self._thread is None:
            self._thread = self._start()
            self._thread.start()
        self._queue.put((pfd, name, e, data))

    def drain(self) -> None:
        """Wait until every queued file is written; raise the thread's error."""
        if self._thread is not None:
            self._queue.join()
        self._raise()

    def stop(self) -> None:
        if self._thread is not None:
            if self._error is None:
                self._error = ImageError(f"layer {self._layer}: unpack stopped")  # skip what is queued
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            pfd, name, e, data = job
            try:
                if self._error is None:
                    self._write_file(pfd, name, e, data)
            except ImageError as err:
                self._error = err
            except OSError as err:
                self._error = ImageError(f"layer {self._layer}: member {e.member!r}: {err}")
            except BaseException as err:  # noqa: BLE001 - handed to the writer's thread
                self._error = err
            finally:
                os.close(pfd)
                self._queue.task_done()
        self._queue.task_done()


class LayerTooLarge(ImageError):
    """A layer wants to write more data than its limit allows."""


class LayerWriter:
    """Writes checked entries below one directory. Not thread-safe; one per layer."""

    def __init__(self, root: Path, layer: str, privileged: bool | None = None, max_bytes: int | None = None):
        self.layer = layer
        self.privileged = os.geteuid() == 0 if privileged is None else privileged
        self.root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        self.dirs = _Dirs(self.root_fd, layer)
        self.paths = _PathIndex()  # symlinks, what this layer created, directory metadata
        self.has_dir_meta = False
        self.max_bytes = max_bytes
        self.written = 0
        self._owner = (os.geteuid(), os.getegid())  # what a new file gets without fchown
        self._umask = _current_umask()
        self.files = _FileThread(self._write_small_file, layer)

    def close(self) -> None:
        self.files.stop()
        self.dirs.forget()
        os.close(self.root_fd)

    def _fail(self, e: Entry, what: str) -> ImageError:
        return ImageError(f"layer {self.layer}: member {e.member!r}: {what}")

    def write(self, e: Entry, content: BinaryIO | None) -> None:
        """Write one entry. Every path written gets a node in `paths` (whiteouts and opaque directories
        too), so a path without a node is absent from the (initially empty) layer directory."""
        if e.kind == "opaque-ignored":
            return
        fresh = self.paths.node(e.parts) is None
        if not (fresh and e.kind in ("file", "dir", "symlink")):
            self.files.drain()  # it may replace, hide or link to a file still queued
        if e.kind == "opaque":
            self._opaque(e)
            self.paths.node(e.parts, create=True)
            return
        if not e.parts:
            self._set_dir_meta(e)
            return
        pfd = self.dirs.parent(e.parts[:-1], e.member)
        if fresh and e.kind == "file" and e.sparse is None and e.size <= SMALL_FILE:
            self._queue_small_file(pfd, e, content)
        else:
            self._write_in(pfd, e.parts[-1], e, content)
        if e.kind == "symlink":
            self.paths.add_symlink(e.parts)
        node = self.paths.node(e.parts, create=True)
        if e.kind != "whiteout":
            node.created = True

    def _queue_small_file(self, pfd: int, e: Entry, content: BinaryIO | None) -> None:
        """A new small file: its data is read here, then created and written by the file thread while
        this thread parses the next members (the file system's time overlaps Python's)."""
        data = b""
        if e.size and content is not None:
            self._count(e, e.size)
            data = content.read(e.size)
            if len(data) != e.size:
                raise self._truncated(e)
        self.files.submit(os.dup(pfd), e.parts[-1], e, data)

    def _truncated(self, e: Entry) -> ImageError:
        return ImageError(f"layer {self.layer}: bad or truncated tar stream: it ends inside the data "
                          f"of member {e.member!r}")

    def _write_small_file(self, pfd: int, name: str, e: Entry, data: bytes) -> None:
        """The file thread's part: create (O_EXCL|O_NOFOLLOW in its parent's fd), write, metadata."""
        fd, chmod = self._create_file(pfd, name, e)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            self._meta_fd(fd, e, chmod=chmod)
        finally:
            os.close(fd)

    def _set_dir_meta(self, e: Entry) -> None:
        self.paths.node(e.parts, create=True).meta = e
        self.has_dir_meta = True

    def _replaced(self, parts: tuple[str, ...], old: os.stat_result) -> None:
        """Forget what we knew about the entry at `parts` (just removed) and, for a directory,
        everything below it: O(depth), whatever was removed."""
        if stat.S_ISDIR(old.st_mode):
            self.dirs.forget_below(parts)
        self.paths.forget(parts)

    def _write_in(self, pfd: int, name: str, e: Entry, content: BinaryIO | None) -> None:
        if e.kind == "whiteout":
            self._whiteout(pfd, name, e)
            return
        # Create first (O_EXCL, mkdir, symlink, link, mknod all fail with EEXIST): in a layer's fresh
        # directory nothing is there, so the usual case costs no lstat. Only when a name is taken is
        # the old entry looked at, removed (or, dir over dir, kept), and the creation done again.
        try:
            self._create(pfd, name, e, content)
            return
        except FileExistsError:
            pass
        old = _lstat(name, pfd)
        if old is not None:
            if e.kind == "dir" and stat.S_ISDIR(old.st_mode):
                self._set_dir_meta(e)
                return
            _remove(name, pfd, old)
            self._replaced(e.parts, old)
        self._create(pfd, name, e, content)

    def _whiteout(self, pfd: int, name: str, e: Entry) -> None:
        old = _lstat(name, pfd)
        if old is not None and self.paths.created(e.parts):
            return  # a whiteout hides lower layers only, never its own layer's files
        if old is not None:
            _remove(name, pfd, old)
            self._replaced(e.parts, old)
        self._mknod(pfd, name, e, stat.S_IFCHR, 0, 0)

    def _create(self, pfd: int, name: str, e: Entry, content: BinaryIO | None) -> None:
        """Make the entry `name` in `pfd`; FileExistsError (before anything is written or read from
        `content`) when the name is taken."""
        if e.kind == "dir":
            os.mkdir(name, 0o700, dir_fd=pfd)
            self._set_dir_meta(e)
        elif e.kind == "file":
            self._file(pfd, name, e, content)
        elif e.kind == "symlink":
            os.symlink(e.link_target, name, dir_fd=pfd)
            self._meta_at(pfd, name, e, chmod=False)
        elif e.kind == "hardlink":
            self._hardlink(pfd, name, e)
        elif e.kind in ("chardev", "blockdev"):
            self._mknod(pfd, name, e, stat.S_IFCHR if e.kind == "chardev" else stat.S_IFBLK, e.devmajor, e.devminor)
        elif e.kind == "fifo":
            os.mkfifo(name, 0o600, dir_fd=pfd)
            self._meta_at(pfd, name, e)

    def _create_file(self, pfd: int, name: str, e: Entry) -> tuple[int, bool]:
        """A new file, opened for writing; and whether its mode still needs an fchmod. A plain mode the
        umask keeps whole (0644, 0755 under umask 022) is given at creation."""
        exact = not e.mode & (self._umask | _SPECIAL_BITS)
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     e.mode if exact else 0o600, dir_fd=pfd)
        return fd, not exact

    def _file(self, pfd: int, name: str, e: Entry, content: BinaryIO | None) -> None:
        fd, chmod = self._create_file(pfd, name, e)
        try:
            if content is not None:
                if e.sparse is not None:
                    self._sparse(fd, e, content)
                else:
                    self._copy(fd, e, content, e.size)
            self._meta_fd(fd, e, chmod=chmod)
        finally:
            os.close(fd)

    def _count(self, e: Entry, n: int) -> None:
        self.written += n
        if self.max_bytes is not None and self.written > self.max_bytes:
            raise LayerTooLarge(f"layer {self.layer}: member {e.member!r}: the layer's unpacked data exceeds "
                                f"its limit of {self.max_bytes} bytes; refusing to unpack it")

    def _copy(self, fd: int, e: Entry, content: BinaryIO, size: int) -> None:
        """Copy `size` bytes of content into fd, counting them against the layer limit first."""
        self._count(e, size)
        left = size
        while left > 0:
            chunk = content.read(min(left, 1 << 20))
            if not chunk:
                raise self._truncated(e)
            os.write(fd, chunk)
            left -= len(chunk)

    def _sparse(self, fd: int, e: Entry, content: BinaryIO) -> None:
        """Data blocks only: seek over the holes, then set the real size (holes stay unallocated).

        `content` is the member's raw data in the archive: the data blocks one after another."""
        end = 0
        for offset, length in e.sparse:
            if length == 0:
                continue  # GNU maps end with (size, 0) and zero padding entries
            if offset < end or length < 0 or offset + length > e.size:
                raise ImageError(f"layer {self.layer}: member {e.member!r}: bad sparse map entry "
                                 f"({offset}, {length}): overlapping, unordered or beyond the size {e.size}")
            end = offset + length
            os.lseek(fd, offset, os.SEEK_SET)
            self._copy(fd, e, content, length)
        os.ftruncate(fd, e.size)

    def _meta_fd(self, fd: int, e: Entry, chmod: bool = True) -> None:
        """Owner, mode, xattrs and mtime of an open file or directory, from its tar member."""
        if (e.uid, e.gid) != self._owner:  # a new file is already ours (no setgid dirs while unpacking)
            self._chown(e, lambda: os.fchown(fd, e.uid, e.gid))
        if chmod:
            os.fchmod(fd, e.mode)
        if e.xattrs:
            self._set_xattrs(fd, e)
        os.utime(fd, (e.mtime, e.mtime))

    def _hardlink(self, pfd: int, name: str, e: Entry) -> None:
        if not self.paths.created(e.link_parts):
            raise self._fail(e, f"hardlink target {e.link_target!r} is not an earlier member of this layer")
        tfd = self.dirs.open(e.link_parts[:-1], e.member, create=False)
        try:
            os.link(e.link_parts[-1], name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        except FileExistsError:
            raise  # the name is taken: the caller replaces what is there
        except OSError as err:
            raise self._fail(e, f"cannot hardlink to {e.link_target!r}: {err.strerror}") from None
        finally:
            os.close(tfd)

    def _mknod(self, pfd: int, name: str, e: Entry, fmt: int, major: int, minor: int) -> None:
        try:
            os.mknod(name, fmt | 0o600, os.makedev(major, minor), dir_fd=pfd)
        except PermissionError:
            what = "whiteout" if e.kind == "whiteout" else "device node"
            raise self._fail(e, f"creating a {what} needs root (CAP_MKNOD)") from None
        self._meta_at(pfd, name, e)

    def _meta_at(self, pfd: int, name: str, e: Entry, chmod: bool = True) -> None:
        """Metadata for entries we must not open (devices, fifos, symlinks): *at() calls, no following."""
        self._chown(e, lambda: os.chown(name, e.uid, e.gid, dir_fd=pfd, follow_symlinks=False))
        if chmod:
            os.chmod(name, e.mode, dir_fd=pfd)  # just created by us as a non-symlink in a dir we hold
        if e.xattrs:
            self._set_xattrs(f"/proc/self/fd/{pfd}/{name}", e, follow=False)
        os.utime(name, (e.mtime, e.mtime), dir_fd=pfd, follow_symlinks=False)

    def _chown(self, e: Entry, call) -> None:
        try:
            call()
        except PermissionError:
            if self.privileged:
                raise
            # unprivileged (tests, rootless): ownership cannot be kept

    def _set_xattrs(self, target, e: Entry, follow: bool = True) -> None:
        for key, value in e.xattrs.items():
            try:
                os.setxattr(target, key, value, follow_symlinks=follow)
            except OSError as err:
                if err.errno in (errno.ENOTSUP, errno.EOPNOTSUPP) or (not self.privileged and err.errno == errno.EPERM):
                    continue
                raise self._fail(e, f"cannot set xattr {key}: {err.strerror}") from None

    def _opaque(self, e: Entry) -> None:
        fd = self.dirs.open(e.parts, e.member, create=True)
        try:
            os.setxattr(fd, OPAQUE_XATTR, b"y")
        except OSError as err:
            raise self._fail(e, f"cannot mark the directory opaque ({OPAQUE_XATTR}): {err.strerror}"
                             + (" (needs root)" if err.errno == errno.EPERM else "")) from None
        finally:
            os.close(fd)

    def finish(self) -> None:
        """Directory metadata last, deepest first, so writing children does not change their mtimes."""
        self.files.drain()
        self.dirs.forget()
        if not self.has_dir_meta:
            return
        # One bottom-up walk of what was written (O(entries), any depth), instead of opening each
        # directory from the root (O(depth) each: quadratic for a deep chain).
        for parent_fd, name, parts in walk_dirs_bottom_up(f"/proc/self/fd/{self.root_fd}/."):
            e = self.paths.meta(parts())
            if e is not None:
                self._meta_at_dir(parent_fd, name, e)
        if self.paths.root.meta is not None:
            self._meta_fd(self.root_fd, self.paths.root.meta)

    def _meta_at_dir(self, parent_fd: int, name: str, e: Entry) -> None:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        try:
            self._meta_fd(fd, e)
        finally:
            os.close(fd)


class _RawData:
    """A member's stored data, read straight from the archive stream. For a sparse member: its data
    blocks one after another (tarfile's own reader would hand out the holes as zeros: gigabytes of
    them for a few hundred bytes of tar)."""

    def __init__(self, fileobj, offset: int):
        self.fileobj = fileobj
        self.offset = offset
        self.started = False

    def read(self, n: int) -> bytes:
        if not self.started:
            self.fileobj.seek(self.offset)  # forward only, as a stream allows
            self.started = True
        return self.fileobj.read(n)


def _content(tar: tarfile.TarFile, info: tarfile.TarInfo, entry: Entry):
    """A file's data, read straight from the stream (its `size` bytes, or a sparse file's data blocks):
    no per-member extractfile() object. The writer reads exactly that many bytes, never past them."""
    if entry.kind != "file":
        return None
    return _RawData(tar.fileobj, info.offset_data)


def unpack_layer(stream: BinaryIO, dest: Path, layer: str, privileged: bool | None = None,
                 max_bytes: int | None = None) -> None:
    """Unpack an (uncompressed) tar stream into the existing, empty directory `dest`.

    ImageError names the layer and the member for every refusal; truncated or
    corrupt streams are ImageErrors too. More than `max_bytes` of file data is
    LayerTooLarge. On any error `dest` is left for the caller to remove.
    """
    writer = LayerWriter(dest, layer, privileged, max_bytes)
    member: str | None = None
    try:
        reader = ForwardReader(stream.read)
        with tarfile.TarFile(fileobj=reader, mode="r", errorlevel=2, tarinfo=GuardedTarInfo) as tar:
            for info in tar:
                member = info.name
                entry = check_member(info, layer, writer.paths)
                writer.write(entry, _content(tar, info, entry))
                tar.members.clear()  # a stream is read once: keep no TarInfo of past members
        member = None
        writer.finish()
    except (tarfile.TarError, EOFError) as e:
        raise ImageError(f"layer {layer}: bad or truncated tar stream: {e}") from None
    except ImageError:
        raise
    except OSError as e:
        where = f"member {member!r}" if member else "setting directory metadata"
        raise ImageError(f"layer {layer}: {where}: {e}") from None
    finally:
        writer.close()
