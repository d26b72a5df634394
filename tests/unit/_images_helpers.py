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
