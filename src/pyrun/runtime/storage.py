"""The data root: images and writable layers that outlive a reboot (see pyrun.config).

    <data_root>/state-root             the state root this data root serves (written once)
    <data_root>/images/                the image store (pyrun.images.store)
    <data_root>/containers/<id>/upper  a container's writable layer (overlay upperdir)
    <data_root>/containers/<id>/work   its overlay workdir (same filesystem as upper)

A data root serves one state root: the first pyrun to use it writes the marker, and a
pyrun with another state root is refused, so two instances never share writable layers
and `gc` never removes a layer another instance still uses. After a reboot the state
root is empty but the marker still names it, and `gc` removes the layers of containers
the state root no longer knows.

Before the data root existed, images lived in `<root>/images` and writable layers in
`<root>/containers/<id>/upper`. `open_images` moves such an image store into the data
root (blobs verified again, layers unpacked again when next used), and refuses while
containers of that layout still exist, since their overlays use the old layer dirs.
"""
from __future__ import annotations

import contextlib
import os
import re

from pathlib import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a CLI command's start-up)

from pyrun.config import Config
from pyrun.errors import ImageError, InvalidState, NotFound, UsageError, naming
from pyrun.linux import tree

if TYPE_CHECKING:
    from pyrun.images.store import ImageStore

MARKER = "state-root"
_ID = re.compile(r"[0-9a-f]{64}")


# --- which state root a data root serves ------------------------------------------------------------

def owner_of(data_root: Path) -> str | None:
    """The state root recorded in a data root; None if it records none yet."""
    try:
        return (Path(data_root) / MARKER).read_text().strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


def check_owner(cfg: Config) -> None:
    """Refuse a data root that serves another state root (or the state root itself)."""
    if Path(cfg.data_root) == Path(cfg.root):
        raise UsageError(f"--data-root {cfg.data_root} is the state root (--root) itself; give a separate directory")
    owner = owner_of(cfg.data_root)
    if owner is not None and owner != str(cfg.root):
        raise InvalidState(f"data root {cfg.data_root} belongs to state root {owner} (its {MARKER} file), "
                           f"not to {cfg.root}; give this state root its own --data-root")


# Filesystems that can't hold overlayfs upper/work dirs or image layers (no trusted.* xattrs, no
# whiteout devices, no d_type/tmpfile, or not a disk at all): refused up front, naming the data root.
UNUSABLE_FILESYSTEMS = frozenset({"overlay", "nfs", "nfs4", "cifs", "smb3", "vfat", "msdos", "exfat", "proc",
                                  "sysfs", "cgroup", "cgroup2", "squashfs", "iso9660", "devpts", "debugfs"})
DATA_ROOT = "the data root (--data-root)"


def check_filesystem(data_root: Path) -> None:
    """Refuse a data root on a filesystem overlayfs can't use for writable layers (pure but for mountinfo)."""
    from pyrun.linux.mounts import filesystem_of
    point, fstype = filesystem_of(data_root)
    if fstype in UNUSABLE_FILESYSTEMS:
        raise UsageError(f"{DATA_ROOT} {data_root} is on a filesystem of type {fstype} (mounted at {point}), which can't "
                         "hold image layers and overlayfs writable layers; give a directory on ext4, xfs, btrfs "
                         "or tmpfs")


def claim(cfg: Config) -> None:
    """Make the data root and record cfg.root in it, unless it already names a state root."""
    check_owner(cfg)
    data_root = Path(cfg.data_root)
    if owner_of(data_root) is None:
        check_filesystem(data_root)  # once, when a data root is first used (before anything is made)
    with naming("mkdir", data_root, DATA_ROOT):
        data_root.mkdir(mode=0o711, parents=True, exist_ok=True)
    if owner_of(data_root) is None:
        tmp = data_root / f".{MARKER}.{os.getpid()}.tmp"
        with naming("write", tmp, DATA_ROOT):
            tmp.write_text(f"{cfg.root}\n")
        try:
            os.link(tmp, data_root / MARKER)  # atomic; loses quietly to a concurrent claim
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    check_owner(cfg)


# --- images ----------------------------------------------------------------------------------------

def open_images(cfg: Config) -> ImageStore:
    """The image store of cfg's data root, claimed, with a store of the previous layout moved in."""
    from pyrun.images.store import ImageStore  # not at import: `pod ls` does not need the image code
    claim(cfg)
    store = ImageStore(cfg.image_root)
    if _has_legacy_images(cfg):
        migrate_legacy_images(cfg, store)
    return store


def _has_legacy_images(cfg: Config) -> bool:
    old = cfg.legacy_image_root
    return old != cfg.image_root and ((old / "refs.json").exists() or (old / "blobs").exists())


def legacy_containers(cfg: Config) -> list[str]:
    """Ids of containers of the previous layout (writable layer inside the state root)."""
    try:
        entries = list(os.scandir(cfg.containers_dir))
    except FileNotFoundError:
        return []
    return sorted(e.name for e in entries if os.path.isdir(os.path.join(e.path, "upper")))


def migrate_legacy_images(cfg: Config, store: ImageStore) -> list[str]:
    """Move the image store at <root>/images into `store`; returns the names moved.

    Every manifest, config and layer blob is copied through `store.ingest`, which
    verifies it again; unpacked layers are not copied (they are unpacked when next
    used). The old store is removed only once all its images are in the new one."""
    old_root = cfg.legacy_image_root
    with store.lock.held():
        if not _has_legacy_images(cfg):
            return []  # a concurrent pyrun moved it meanwhile
        busy = legacy_containers(cfg)
        if busy:
            raise InvalidState(
                f"{old_root} holds images of the previous layout (images under the state root), and "
                f"{len(busy)} container(s) of that layout still use them ({busy[0][:12]}...); remove those "
                f"pods (pyrun pod rm -f) and run this again to move the images to {store.root}")
        old = type(store)(old_root)
        moved = []
        for name, digest in sorted(old.refs.load().items()):
            try:
                store.ingest(name, old.blobs.read(digest, f"image {name} manifest"), old.blobs.open,
                             unpack=False, what=f"image {name} (moving from {old_root})")
            except (ImageError, NotFound, OSError) as e:
                raise ImageError(f"cannot move image {name} from {old_root} to {store.root}: {e}; "
                                 f"the old store is left as it was") from None
            moved.append(name)
        trash = cfg.root / f".tmp-legacy-images-{os.getpid()}"
        os.rename(old_root, trash)
        tree.remove_tree(trash)
    return moved


def images_in_use(cfg: Config) -> set[str]:
    """Image ids ("sha256:<hex>") of every container under cfg.root, whatever its state."""
    from pyrun.runtime.state import StateStore
    store = StateStore(cfg.root)
    used = set()
    for cid in store.container_ids():
        with contextlib.suppress(NotFound, ValueError):
            image_id = store.read_container(cid).image_id
            if image_id:
                used.add(image_id)
    return used


# --- writable layers -------------------------------------------------------------------------------

def writable_layer(cfg: Config, cid: str) -> Path:
    return Path(cfg.writable_dir) / cid


def make_writable_layer(cfg: Config, cid: str) -> Path:
    """Create <data_root>/containers/<cid>/{upper,work} (the caller registers remove_writable_layer)."""
    claim(cfg)
    layer = writable_layer(cfg, cid)
    with naming("mkdir", layer, f"a container's writable layer in {DATA_ROOT}"):
        Path(cfg.writable_dir).mkdir(mode=0o711, exist_ok=True)
        layer.mkdir(mode=0o711)
        for sub in ("upper", "work"):
            (layer / sub).mkdir(mode=0o755)
    return layer


def remove_writable_layer(cfg: Config, cid: str) -> None:
    """Remove a container's writable layer (idempotent). Its overlay must be gone: the mount
    lives in the container's own mount namespace, which dies with the container."""
    tree.remove_tree(writable_layer(cfg, cid))  # iterative: a container controls how deep it is


def collect_writable_layers(cfg: Config, known_ids) -> list[str]:
    """Remove the writable layers of containers the state root does not know; returns their ids.

    `known_ids` is called AFTER the layers are listed, so a container being created
    (state dir first, then its layer) is never taken for an orphan."""
    check_owner(cfg)  # never collect the layers of another state root
    try:
        found = sorted(e.name for e in os.scandir(cfg.writable_dir) if _ID.fullmatch(e.name))
    except FileNotFoundError:
        return []
    known = set(known_ids())
    removed = []
    for cid in found:
        if cid not in known:
            remove_writable_layer(cfg, cid)
            removed.append(cid)
    return removed
