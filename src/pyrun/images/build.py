"""Build OCI image layouts offline, deterministically. Standard library only.

Used by scripts/build-demo-image.py (run by the system python3, no venv) and by
tests to craft images and hostile layers:

    layer = LayerBuilder()
    layer.dir("etc")
    layer.file("etc/motd", b"hi\\n")
    layer.symlink("bin/sh", "/bin/busybox")
    layer.whiteout("etc/removed")
    write_layout(out_dir, [layer.tar_bytes()], config={...}, ref_name="pyrun/demo:latest")

Same input, same bytes: members are sorted, mtimes/uids fixed, gzip mtime 0.
"""
from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

from pyrun.images.mediatypes import (MT_CONFIG, MT_INDEX, MT_LAYER, MT_LAYER_GZIP, MT_MANIFEST,  # noqa: F401
                                    OCI_LAYOUT_VERSION, REF_NAME, canonical_json, digest_of)


class LayerBuilder:
    """Collects tar members; tar_bytes() renders them (sorted by path unless sort=False)."""

    def __init__(self, mtime: int = 0, sort: bool = True):
        self.mtime = mtime
        self.sort = sort
        self._members: list[tuple[tarfile.TarInfo, bytes | None]] = []

    def _info(self, path: str, type_: bytes, mode: int, uid: int, gid: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(path)
        info.type, info.mode, info.uid, info.gid, info.mtime = type_, mode, uid, gid, self.mtime
        info.uname = info.gname = ""
        return info

    def add(self, info: tarfile.TarInfo, data: bytes | None = None) -> "LayerBuilder":
        """Add a raw member as is (for crafting hostile tars)."""
        if data is not None:
            info.size = len(data)
        self._members.append((info, data))
        return self

    def dir(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> "LayerBuilder":
        return self.add(self._info(path, tarfile.DIRTYPE, mode, uid, gid))

    def file(self, path: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0,
             xattrs: dict[str, str] | None = None) -> "LayerBuilder":
        info = self._info(path, tarfile.REGTYPE, mode, uid, gid)
        if xattrs:
            info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
        return self.add(info, data)

    def symlink(self, path: str, target: str, uid: int = 0, gid: int = 0) -> "LayerBuilder":
        info = self._info(path, tarfile.SYMTYPE, 0o777, uid, gid)
        info.linkname = target
        return self.add(info)

    def hardlink(self, path: str, target: str) -> "LayerBuilder":
        info = self._info(path, tarfile.LNKTYPE, 0o644, 0, 0)
        info.linkname = target
        return self.add(info)

    def device(self, path: str, char: bool, major: int, minor: int, mode: int = 0o666) -> "LayerBuilder":
        info = self._info(path, tarfile.CHRTYPE if char else tarfile.BLKTYPE, mode, 0, 0)
        info.devmajor, info.devminor = major, minor
        return self.add(info)

    def fifo(self, path: str, mode: int = 0o644) -> "LayerBuilder":
        return self.add(self._info(path, tarfile.FIFOTYPE, mode, 0, 0))

    def whiteout(self, path: str) -> "LayerBuilder":
        """Hide `path` of the layers below: adds '<dir>/.wh.<name>'."""
        head, _, name = path.rstrip("/").rpartition("/")
        return self.file(f"{head}/.wh.{name}" if head else f".wh.{name}", b"", mode=0o644)

    def opaque(self, directory: str) -> "LayerBuilder":
        """Hide everything below `directory` in the layers below: adds '<dir>/.wh..wh..opq'."""
        return self.file(f"{directory.rstrip('/')}/.wh..wh..opq", b"", mode=0o644)

    def tar_bytes(self) -> bytes:
        members = sorted(self._members, key=lambda m: m[0].name) if self.sort else self._members
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for info, data in members:
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
        return buf.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    """Deterministic gzip (mtime 0, no file name)."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as gz:
        gz.write(data)
    return buf.getvalue()


def _write_blob(out: Path, data: bytes) -> str:
    digest = digest_of(data)
    path = out / "blobs" / "sha256" / digest.split(":", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def image_config(diff_ids: list[str], config: dict | None = None, history: list[dict] | None = None,
                 architecture: str = "amd64", created: str = "1970-01-01T00:00:00Z") -> dict:
    """An OCI image config document (image-spec config.md)."""
    return {
        "created": created,
        "architecture": architecture,
        "os": "linux",
        "config": config or {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history or [{"created": created, "created_by": "pyrun.images.build"} for _ in diff_ids],
    }


def build_image(out: Path, layers: list[bytes], config: dict | None = None, compress: bool = True,
                history: list[dict] | None = None, architecture: str = "amd64") -> dict:
    """Write the blobs of one image (layers given as uncompressed tars); returns its manifest descriptor."""
    out = Path(out)
    descs, diff_ids = [], []
    for tar in layers:
        diff_ids.append(digest_of(tar))
        blob = gzip_bytes(tar) if compress else tar
        descs.append({"mediaType": MT_LAYER_GZIP if compress else MT_LAYER,
                      "digest": _write_blob(out, blob), "size": len(blob)})
    cfg = canonical_json(image_config(diff_ids, config, history, architecture))
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": _write_blob(out, cfg), "size": len(cfg)},
        "layers": descs,
    }
    mbytes = canonical_json(manifest)
    return {"mediaType": MT_MANIFEST, "digest": _write_blob(out, mbytes), "size": len(mbytes),
            "platform": {"architecture": architecture, "os": "linux"}}


def write_index(out: Path, manifests: list[dict]) -> None:
    """Write oci-layout and index.json listing `manifests` (descriptors)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": OCI_LAYOUT_VERSION}))
    index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": manifests}
    (out / "index.json").write_bytes(canonical_json(index))


def write_layout(out: Path, layers: list[bytes], config: dict | None = None, ref_name: str | None = None,
                 compress: bool = True, history: list[dict] | None = None, architecture: str = "amd64") -> str:
    """A one-image OCI layout in `out`; returns the manifest digest."""
    desc = build_image(out, layers, config, compress, history, architecture)
    if ref_name:
        desc["annotations"] = {REF_NAME: ref_name}
    write_index(out, [desc])
    return desc["digest"]


def write_layout_tar(layout: Path, tar_path: Path) -> None:
    """Pack a layout directory into a deterministic tar (an "OCI archive")."""
    layout = Path(layout)
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk(layout):
            dirs.sort()
            for name in [*dirs, *sorted(files)]:
                path = Path(root) / name
                info = tar.gettarinfo(str(path), arcname=str(path.relative_to(layout)))
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                if info.isreg():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
