#!/usr/bin/env python3
"""Build pyrun's demo image offline from Debian's busybox-static, as an OCI image layout.

    python3 scripts/build-demo-image.py OUT_DIR [--tag pyrun/demo:latest] [--tar FILE]

Layer 1: /bin/busybox, a symlink per applet (busybox --list-full), /etc/passwd,
/etc/group, /tmp (1777), /root, /home, mount points /proc /sys /dev, and
/etc/removed-by-layer-2. Layer 2: /etc/motd, /etc/pyrun-demo, and a whiteout
hiding /etc/removed-by-layer-2. Deterministic: same busybox, same digests.
Standard library only (runs with the system python3, no venv).
"""
from __future__ import annotations

import argparse
import platform
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from pyrun.images.build import LayerBuilder, write_layout, write_layout_tar  # noqa: E402

BUSYBOX = Path("/bin/busybox")
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def applets(busybox: Path) -> list[str]:
    out = subprocess.run([str(busybox), "--list-full"], check=True, capture_output=True, text=True).stdout
    return sorted({line.strip().lstrip("/") for line in out.splitlines() if line.strip()} - {"bin/busybox"})


def base_layer(busybox: Path) -> bytes:
    layer = LayerBuilder()
    for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "home", "proc", "sys", "dev", "var"):
        layer.dir(d, mode=0o700 if d == "root" else 0o755)
    layer.dir("tmp", mode=0o1777)
    layer.file("bin/busybox", busybox.read_bytes(), mode=0o755)
    for path in applets(busybox):
        layer.symlink(path, "/bin/busybox")
    layer.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n")
    layer.file("etc/group", b"root:x:0:\nnobody:x:65534:\n")
    layer.file("etc/hostname", b"pyrun-demo\n")
    layer.file("etc/removed-by-layer-2", b"layer 2 whites this file out; you should not see it\n")
    return layer.tar_bytes()


def top_layer() -> bytes:
    layer = LayerBuilder()
    layer.dir("etc")
    layer.file("etc/motd", b"Welcome to the pyrun demo image (busybox).\n")
    layer.file("etc/pyrun-demo", b"layer 2\n")
    layer.whiteout("etc/removed-by-layer-2")
    return layer.tar_bytes()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path, help="directory for the OCI image layout (created)")
    ap.add_argument("--tag", default="pyrun/demo:latest", help="image name annotation (default %(default)s)")
    ap.add_argument("--tar", type=Path, help="also write the layout as a tar (an OCI archive) to this file")
    ap.add_argument("--busybox", type=Path, default=BUSYBOX, help="static busybox binary (default %(default)s)")
    args = ap.parse_args(argv)
    if not args.busybox.is_file():
        ap.error(f"{args.busybox} not found: apt-get install busybox-static")
    config = {
        "Cmd": ["sh"],
        "Env": [PATH_ENV],
        "WorkingDir": "/",
        "Labels": {"org.opencontainers.image.title": "pyrun demo", "org.opencontainers.image.source": "pyrun"},
    }
    history = [{"created": "1970-01-01T00:00:00Z", "created_by": "busybox-static and applet links"},
               {"created": "1970-01-01T00:00:00Z", "created_by": "motd, pyrun-demo, whiteout"}]
    digest = write_layout(args.out_dir, [base_layer(args.busybox), top_layer()], config, ref_name=args.tag,
                          history=history, architecture=ARCH)
    if args.tar:
        write_layout_tar(args.out_dir, args.tar)
    print(f"{args.tag} {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
