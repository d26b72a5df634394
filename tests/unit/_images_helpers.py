"""Helpers for the image tests: craft layers and layouts with pyrun.images.build."""
from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

from pyrun.images.build import LayerBuilder, write_layout

REPO = Path(__file__).resolve().parents[2]
DEMO_SCRIPT = REPO / "scripts" / "build-demo-image.py"


def build_demo(out: Path, tar: Path | None = None, tag: str = "pyrun/demo:latest") -> str:
    """Run scripts/build-demo-image.py; returns the manifest digest."""
    cmd = [sys.executable, str(DEMO_SCRIPT), str(out), "--tag", tag] + (["--tar", str(tar)] if tar else [])
    out_text = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return out_text.split()[1]


def small_layout(out: Path, files: dict[str, bytes], ref_name: str | None = "test/small:1",
                 compress: bool = True, extra_layers: list[bytes] = ()) -> str:
    layer = LayerBuilder()
    for path, data in files.items():
        layer.file(path, data)
    return write_layout(out, [layer.tar_bytes(), *extra_layers], {"Cmd": ["sh"]}, ref_name=ref_name,
                        compress=compress)


def raw_info(name: str, type_: bytes = tarfile.REGTYPE, linkname: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = type_, linkname, mode
    return info


def crafted_tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    layer = LayerBuilder(sort=False)
    for info, data in members:
        layer.add(info, data)
    return layer.tar_bytes()


def stream(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)


def sparse_member(name: str, real_size: int, blocks: list[tuple[int, bytes]]) -> tuple[tarfile.TarInfo, bytes]:
    """A PAX 1.0 sparse member (GNU tar --sparse --posix): `real_size` apparent bytes, only `blocks` stored.

    The stored data is the sparse map ("<count>\\n<offset>\\n<length>\\n...", padded to 512 bytes) followed
    by the data blocks back to back; GNU.sparse.realsize says how big the file really is."""
    mapping = f"{len(blocks)}\n" + "".join(f"{offset}\n{len(data)}\n" for offset, data in blocks)
    raw = mapping.encode()
    raw += b"\0" * (-len(raw) % 512)
    raw += b"".join(data for _, data in blocks)
    info = tarfile.TarInfo(f"GNUSparseFile.0/{name}")
    info.size = len(raw)
    info.mode = 0o644
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": name,
                        "GNU.sparse.realsize": str(real_size)}
    return info, raw


def sparse_tar(name: str, real_size: int, blocks: list[tuple[int, bytes]]) -> bytes:
    """A layer tar holding one sparse member (PAX format, as the 401-byte disk filler of issue 15 was)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info, raw = sparse_member(name, real_size, blocks)
        tar.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


def deep_layer(levels: int) -> bytes:
    """deep/d/d/.../d (`levels` directories, each its own member) and a file at the bottom; iterative."""
    layer = LayerBuilder(sort=False)
    path = "deep"
    for _ in range(levels):
        layer.dir(path)
        path += "/d"
    layer.file(path, b"bottom\n")
    return layer.tar_bytes()
