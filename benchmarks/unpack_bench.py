"""Layer unpack benchmark (issue #14): `pyrun image import` of the cached big layer vs GNU `tar -xzf`.

Uses the layout cached under /var/cache/pyrun-bench (made by images_bench.py / the perf notes: a gzip
layer of /usr/share and Python's library). Runs alternate (tar, pyrun, tar, pyrun, ...); each run is a
child process timed with its peak RSS (wait4). Every tree is removed after its run.

    python benchmarks/unpack_bench.py [--runs 3] [--cache DIR] [--python PY] [--tree LABEL=SRC ...]

Each --tree (a src/ directory, e.g. of `git archive main`) is one more pyrun in the alternation, so a
before/after comparison runs under the same load; without --tree, this checkout's src/.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CACHE = Path("/var/cache/pyrun-bench/unpack-usr-share+usr-lib-python3.11+usr-lib-python3-gz6")

IMPORT = ("import sys; from pathlib import Path; from pyrun.images.store import ImageStore; "
          "ImageStore(Path(sys.argv[1])).import_path(Path(sys.argv[2]), 'bench/unpack:1')")


def timed(argv: list[str], env: dict | None = None) -> tuple[float, float, float, float]:
    """Wall seconds, peak RSS (MiB) and CPU seconds (user + system, with its children: gzip, pigz) of one
    child, and its system CPU seconds alone. On a loaded machine the CPU time says more than the wall time."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed: {proc.returncode}")
    return wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cache", type=Path, default=CACHE)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--tree", action="append", default=[], help="LABEL=SRC: a pyrun source tree to time")
    ap.add_argument("--no-tar", action="store_true")
    args = ap.parse_args()
    meta = json.loads((args.cache / "meta.json").read_text())
    trees = dict(t.split("=", 1) for t in args.tree) or {
        "pyrun import": str(Path(__file__).resolve().parent.parent / "src")}
    rows: dict[str, list[tuple[float, float, float, float]]] = {}
    for _ in range(args.runs):
        for name in (["tar -xzf"] if not args.no_tar else []) + list(trees):
            work = Path(tempfile.mkdtemp(prefix="pyrun-unpack-bench-", dir="/var/tmp"))
            try:
                if name == "tar -xzf":
                    (work / "t").mkdir()
                    r = timed(["tar", "-xzf", meta["blob"], "-C", str(work / "t")])
                else:
                    r = timed([args.python, "-c", IMPORT, str(work / "store"), meta["layout"]],
                              dict(os.environ, PYTHONPATH=trees[name]))
            finally:
                subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=True)
            rows.setdefault(name, []).append(r)
            print(f"{name}: {r[0]:.1f} s, {r[1]:.0f} MiB, {r[2]:.1f} s CPU ({r[3]:.1f} s system)", flush=True)
    print(f"layer: {meta['gzip_bytes'] / 2**20:.0f} MiB gzip, {meta['entries']} entries")
    for name, rs in rows.items():
        print(f"{name}: median {statistics.median(r[0] for r in rs):.1f} s wall, "
              f"{statistics.median(r[2] for r in rs):.1f} s CPU, peak RSS {max(r[1] for r in rs):.0f} MiB "
              f"({len(rs)} runs)")


if __name__ == "__main__":
    main()
