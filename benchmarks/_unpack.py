"""The unpack comparison of benchmarks/peers.py: `pyrun image import` vs GNU `tar -xzf` vs `umoci unpack`.

All three unpack one big gzip layer built once from this machine's /usr/share and Python's
standard library (issue #14 asks for >= 150 MiB of gzip and >= 50k entries) and cached under
/var/cache/pyrun-bench. Runs alternate between the three; `sync` before each timed command so
nobody pays for the previous one's dirty pages. The first run also checks that the three trees
are the same (paths, types, modes, owners, sizes, link targets).
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

import _peers
import run as podbench  # benchmarks/run.py: Cli, run_timed, with_peak_rss, BenchError

CACHE = Path("/var/cache/pyrun-bench")
REF = "bench/unpack:latest"
GZIP_LEVEL = 6  # gzip's default, what image builders use


def default_dirs() -> list[str]:
    """/usr/share and the system Python's library (/usr/lib/python3.X and /usr/lib/python3), relative to
    / (tar -C /); the running interpreter's standard library when there is no system Python. Not a
    pyenv or venv tree: its site-packages varies from machine to machine."""
    v = sys.version_info
    system = [d for d in (f"usr/lib/python{v.major}.{v.minor}", f"usr/lib/python{v.major}") if os.path.isdir("/" + d)]
    return ["usr/share", *(system or [sysconfig.get_paths()["stdlib"].lstrip("/")])]


def cached_layer(cache: Path, dirs: list[str]) -> dict:
    """The OCI layout with the one layer of `dirs`: built on first use, then read from the cache.

    Returns its description: layout, blob (the gzip layer), diff_id, gzip_bytes, tar_bytes, entries, dirs."""
    base = cache / f"unpack-{_peers.cache_key(dirs, GZIP_LEVEL)}"
    meta = base / "meta.json"
    if meta.exists():
        return json.loads(meta.read_text())
    import images_bench  # builds OCI layouts from host directories; imports pyrun
    from pyrun.linux.tree import remove_tree
    tmp = base.with_name(f".tmp-{base.name}-{os.getpid()}")
    remove_tree(tmp)
    try:
        tar_bytes, entries = images_bench.build_layout(tmp / "layout", [dirs], level=GZIP_LEVEL)
        desc = layer_of(tmp / "layout")
        desc.update(layout=str(base / "layout"), blob=str(base / desc.pop("blob_rel")), tar_bytes=tar_bytes,
                    entries=entries, dirs=dirs)
        (tmp / "meta.json").write_text(json.dumps(desc, indent=2) + "\n")
        os.rename(tmp, base)
    except BaseException:
        remove_tree(tmp)
        raise
    return desc


def layer_of(layout: Path) -> dict:
    """blob_rel (path of the layer blob relative to the layout's parent), gzip_bytes and diff_id of a
    one-layer layout."""
    blob = lambda digest: layout / "blobs" / digest.replace(":", "/", 1)  # noqa: E731
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads(blob(index["manifests"][0]["digest"]).read_text())
    config = json.loads(blob(manifest["config"]["digest"]).read_text())
    (layer,) = manifest["layers"]
    return {"blob_rel": str(blob(layer["digest"]).relative_to(layout.parent)), "gzip_bytes": layer["size"],
            "diff_id": config["rootfs"]["diff_ids"][0]}


def unpack_phase(runs: int, layer: dict, work: Path, python: str, cgroup_parent: str) -> dict:
    """`runs` rounds of pyrun / tar / umoci, rotated each round; peak RSS of each `pyrun image import`."""
    from pyrun.linux.tree import remove_tree
    out = {"pyrun": work / "unpack-pyrun", "tar": work / "unpack-tar", "umoci": work / "unpack-umoci"}
    cli = podbench.Cli(python, out["pyrun"], cgroup_parent, "none")
    rss_report = work / "unpack-pyrun.rss"
    argv = {"pyrun": podbench.with_peak_rss(cli.argv("image", "import", layer["layout"], REF), rss_report),
            "tar": ["tar", "-xzf", layer["blob"], "-C", str(out["tar"])],
            "umoci": ["umoci", "unpack", "--image", f"{layer['layout']}:latest", str(out["umoci"])]}
    samples: dict[str, list[float]] = {who: [] for who in argv}
    peak_rss: list[int] = []
    differences = None
    for i in range(runs):
        for who in _peers.alternate(i, list(argv)):
            if who == "tar":
                out["tar"].mkdir()
            subprocess.run(["sync"], check=True)
            samples[who].append(podbench.run_timed(argv[who], timeout=3600))
            if who == "pyrun":
                peak_rss.append(int(rss_report.read_text().split()[-1]))
        if differences is None:
            differences = compare_trees(pyrun_layer_dir(out["pyrun"], layer["diff_id"]), out["tar"],
                                        out["umoci"] / "rootfs")
        for d in out.values():
            remove_tree(d)
        print(f"unpack run {i + 1}/{runs}: " + ", ".join(f"{who} {v[-1]:.1f} s" for who, v in samples.items()),
              file=sys.stderr)
    return {"samples": samples, "peak_rss_kib": peak_rss, "differences": differences,
            "layer": {k: v for k, v in layer.items() if k not in ("layout", "blob")}}


def pyrun_layer_dir(root: Path, diff_id: str) -> Path:
    from pyrun.config import Config
    from pyrun.images.store import ImageStore
    store = ImageStore(Config(root=root).image_root)
    dirs = store.layer_dirs(store.resolve(REF))
    if len(dirs) != 1:
        raise podbench.BenchError(f"{REF} in {root} has {len(dirs)} layers, expected 1")
    return dirs[0]


def compare_trees(pyrun: Path, tar: Path, umoci: Path) -> dict[str, list[str]]:
    """How pyrun's tree differs from tar's and from umoci's (empty lists: the same trees)."""
    mine = tree_listing(pyrun)
    return {"tar": _peers.tree_differences(mine, tree_listing(tar)),
            "umoci": _peers.tree_differences(mine, tree_listing(umoci))}


def tree_listing(root: Path) -> dict[str, tuple]:
    """relative path -> (type, mode, uid, gid, size or link target) of every entry below `root`.
    Iterative (a stack of directories), symlinks never followed."""
    out: dict[str, tuple] = {}
    todo = [""]
    while todo:
        rel = todo.pop()
        with os.scandir(root / rel if rel else root) as it:
            for e in it:
                path = f"{rel}/{e.name}" if rel else e.name
                st = e.stat(follow_symlinks=False)
                kind = stat.S_IFMT(st.st_mode)
                what = os.readlink(e.path) if stat.S_ISLNK(st.st_mode) else \
                    st.st_size if stat.S_ISREG(st.st_mode) else None
                out[path] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, what)
                if stat.S_ISDIR(st.st_mode):
                    todo.append(path)
    return out
