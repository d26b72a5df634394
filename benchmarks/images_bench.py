"""Image benchmark: unpack throughput of pyrun vs `umoci unpack`, and pull throughput from a local
docker-registry (127.0.0.1 only). Needs root, umoci, skopeo, docker-registry, gzip, tar.

    sudo .venv/bin/python benchmarks/images_bench.py [--dirs usr/bin usr/libexec ...] [--runs 2]

Builds an OCI layout from directories of this machine (one gzip layer each), then measures:
  - pyrun unpack:  ImageStore.layer_dirs() of an imported image (decompress + checked untar)
  - umoci unpack:  `umoci unpack --image layout:latest bundle` (decompress + untar + mtree)
  - pyrun import:  blobs copied + verified (digest and diff_id) + unpack
  - pull:          pull_image() from docker-registry over HTTP, without and with unpack
Throughput is uncompressed MB (10^6 bytes) per second. Writes benchmarks/results/images.md.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests" / "integration"))

from pyrun.images.build import MT_CONFIG, MT_LAYER_GZIP, MT_MANIFEST, canonical_json, digest_of, image_config, write_index  # noqa: E402
from pyrun.images.pull import pull_image  # noqa: E402
from pyrun.images.store import ImageStore  # noqa: E402

DEFAULT_DIRS = ["usr/bin", "usr/lib/python3.11", "usr/libexec", "usr/share/perl", "usr/share/locale"]


def _put(out: Path, path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    dest = out / "blobs" / "sha256" / h.hexdigest()
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.rename(path, dest)
    return "sha256:" + h.hexdigest(), dest.stat().st_size


def build_layout(out: Path, layers: list[list[str]], level: int = 1) -> tuple[int, int]:
    """One gzip (-`level`) layer per list of directories (tar of / relative paths), tagged `latest`;
    returns (total uncompressed bytes, tar entries)."""
    out.mkdir(parents=True, exist_ok=True)
    descs, diff_ids, total, entries = [], [], 0, 0
    for dirs in layers:
        tar = out / "layer.tar"
        subprocess.run(["tar", "-C", "/", "--numeric-owner", "-cf", str(tar), *dirs], check=True)
        total += tar.stat().st_size
        listing = subprocess.run(["tar", "-tf", str(tar)], check=True, capture_output=True).stdout
        entries += listing.count(b"\n")
        diff_ids.append(_put(out, tar)[0])
        gz = out / "layer.tar.gz"
        blob = out / "blobs" / "sha256" / diff_ids[-1].split(":")[1]
        with open(gz, "wb") as f:
            subprocess.run(["gzip", f"-{level}", "-n", "-c", str(blob)], stdout=f, check=True)
        blob.unlink()
        digest, size = _put(out, gz)
        descs.append({"mediaType": MT_LAYER_GZIP, "digest": digest, "size": size})
    cfg = canonical_json(image_config(diff_ids, {"Cmd": ["sh"]}))
    (out / "blobs" / "sha256" / digest_of(cfg).split(":")[1]).write_bytes(cfg)
    manifest = canonical_json({"schemaVersion": 2, "mediaType": MT_MANIFEST, "layers": descs,
                               "config": {"mediaType": MT_CONFIG, "digest": digest_of(cfg), "size": len(cfg)}})
    (out / "blobs" / "sha256" / digest_of(manifest).split(":")[1]).write_bytes(manifest)
    write_index(out, [{"mediaType": MT_MANIFEST, "digest": digest_of(manifest), "size": len(manifest),
                       "annotations": {"org.opencontainers.image.ref.name": "latest"}}])
    return total, entries


def timed(fn) -> float:
    subprocess.run(["sync"])
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dirs", nargs="+", default=DEFAULT_DIRS)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "images.md"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (ownership, devices, whiteouts)")
    work = Path(tempfile.mkdtemp(prefix="pyrun-images-bench-"))
    rows: dict[str, list[float]] = {}
    reg = None
    try:
        layout = work / "layout"
        t = time.perf_counter()
        total, _ = build_layout(layout, [[d] for d in args.dirs])
        print(f"built {len(args.dirs)} layers, {total / 1e6:.0f} MB uncompressed in {time.perf_counter() - t:.1f}s")
        mb = total / 1e6
        for run in range(args.runs):
            store = ImageStore(work / f"store-u{run}")
            img = store.import_path(layout, "bench/img:1", unpack=False)
            rows.setdefault("pyrun unpack (layer_dirs)", []).append(mb / timed(lambda: store.layer_dirs(img)))
            bundle = work / f"bundle{run}"
            rows.setdefault("umoci unpack", []).append(mb / timed(lambda: subprocess.run(
                ["umoci", "unpack", "--image", f"{layout}:latest", str(bundle)], check=True, capture_output=True)))
            store2 = ImageStore(work / f"store-i{run}")
            rows.setdefault("pyrun import (verify + store + unpack)", []).append(
                mb / timed(lambda: store2.import_path(layout, "bench/img:1")))
            for p in (bundle, store.root, store2.root):
                shutil.rmtree(p)
        from _images_registry import RealRegistry, push
        reg = RealRegistry(work / "registry")
        push(layout, f"{reg.host}/bench/img:1", ref="latest")
        for run in range(args.runs):
            s = ImageStore(work / f"pull{run}")
            rows.setdefault("pull from docker-registry (verify + store)", []).append(
                mb / timed(lambda: pull_image(s, f"{reg.host}/bench/img:1", unpack=False)))
            shutil.rmtree(s.root)
            s = ImageStore(work / f"pullu{run}")
            rows.setdefault("pull + unpack", []).append(mb / timed(lambda: pull_image(s, f"{reg.host}/bench/img:1")))
            shutil.rmtree(s.root)
        write_report(Path(args.out), args, total, rows)
    finally:
        if reg:
            reg.stop()
        shutil.rmtree(work, ignore_errors=True)


def write_report(out: Path, args, total: int, rows: dict[str, list[float]]) -> None:
    umoci = max(rows["umoci unpack"])
    pyrun = max(rows["pyrun unpack (layer_dirs)"])
    verdict = ("pyrun unpacks at least as fast as umoci" if pyrun >= umoci
               else f"pyrun unpacks at {pyrun / umoci:.0%} of umoci's speed")
    umoci_v = subprocess.run(["umoci", "--version"], capture_output=True, text=True).stdout.strip()
    lines = [
        "# Image benchmark",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, kernel {platform.release()}, Python "
        f"{platform.python_version()}, {umoci_v}. Image: {len(args.dirs)} gzip (-1) layers from this machine's "
        f"{', '.join('/' + d for d in args.dirs)}: {total / 1e6:.0f} MB uncompressed. "
        f"Best and all of {args.runs} runs, MB/s of uncompressed data (10^6 bytes).",
        "",
        "| what | best MB/s | runs |",
        "|---|---:|---|",
    ]
    for name, vals in rows.items():
        lines.append(f"| {name} | {max(vals):.0f} | {', '.join(f'{v:.0f}' for v in vals)} |")
    lines += ["", f"Verdict: {verdict}.", "",
              "Notes: 'pyrun unpack' is decompress + member checks + openat/O_NOFOLLOW writes; umoci also writes "
              "an mtree manifest of the bundle. 'pull' includes the HTTP transfer from docker-registry on 127.0.0.1 "
              "and digest + diff_id verification while streaming (one pass), fsync and rename.", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
