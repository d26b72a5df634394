#!/usr/bin/env python3
"""How long a Prometheus scrape of `pyrun metrics serve` takes with N running pods (target: < 100 ms for 100).

Run as root from the repository root:

    .venv/bin/python benchmarks/metrics_bench.py [--pods 100] [--scrapes 30] [--out benchmarks/results/metrics-100.md]

It creates N pods (pause + one `sleep 3600` container each, --network none) in a temporary state root
and cgroup parent, starts `pyrun metrics serve --listen 127.0.0.1:0`, and times GET /metrics from a
client (what Prometheus waits for), then the two halves in this process: reading the records and
cgroups (pyrun.runtime.metrics_source) and rendering the text (prometheus_client). Everything it
made is removed at the end, also on failure or Ctrl-C.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _stats  # noqa: E402  (benchmarks/ is not a package)
from run import DEMO_IMAGE, REPO, BenchError, Cli, clean_up, pod_manifest  # noqa: E402

TARGET_MS = 100.0


def create_pods(cli: Cli, work: Path, n: int, workers: int) -> None:
    def create(i: int) -> None:
        spec = work / f"m{i}.json"
        spec.write_text(json.dumps(pod_manifest(f"m{i}")))
        cli.run("pod", "create", str(spec))
    with ThreadPoolExecutor(workers) as pool:
        for done, _ in enumerate(pool.map(create, range(n)), 1):
            if done % 10 == 0:
                print(f"{done}/{n} pods", file=sys.stderr)


@contextlib.contextmanager
def metrics_server(cli: Cli, log: Path):
    with open(log, "wb") as out:
        proc = subprocess.Popen(cli.argv("metrics", "serve", "--listen", "127.0.0.1:0"), stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(r"on (http://\S+/metrics)", log.read_text(errors="replace"))):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"pyrun metrics serve did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield found.group(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)


# What Prometheus 2.42 sends with a scrape.
PROMETHEUS_HEADERS = {"Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                                "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                      "Accept-Encoding": "gzip"}


def time_scrapes(url: str, n: int) -> tuple[list[float], int, int]:
    """Wall times of n GETs as Prometheus sends them (after one warm-up), the size of the last body and
    its sample count."""
    request = urllib.request.Request(url, headers=PROMETHEUS_HEADERS)
    urllib.request.urlopen(request, timeout=30).read()
    times, body = [], b""
    for _ in range(n):
        t0 = time.perf_counter()
        with urllib.request.urlopen(request, timeout=30) as r:
            body = r.read()
        times.append(time.perf_counter() - t0)
        time.sleep(0.2)
    samples = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    return times, len(body), samples


def time_halves(cli: Cli, n: int) -> dict[str, list[float]]:
    """In this process: reading records + cgroups, and that plus rendering, each timed n times, as wall
    time and as this thread's CPU time (which other processes competing for the CPUs do not inflate)."""
    from prometheus_client import CollectorRegistry, generate_latest

    from pyrun.config import Config
    from pyrun.metrics.collector import ContainerCollector
    from pyrun.runtime.metrics_source import MetricsSource
    source = MetricsSource(Config.from_env(cli.root, cgroup_parent=cli.cgroup_parent))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ContainerCollector(source.targets))
    steps = {"read records and cgroups": source.targets, "read + render (generate_latest)":
             lambda: generate_latest(registry)}
    out: dict[str, list[float]] = {}
    source.targets()
    for _ in range(n):
        for what, fn in steps.items():
            w0, c0 = time.perf_counter(), time.thread_time()
            fn()
            out.setdefault(what + ", wall", []).append(time.perf_counter() - w0)
            out.setdefault(what + ", CPU", []).append(time.thread_time() - c0)
    return out


def bench(args: argparse.Namespace) -> dict:
    tag = secrets.token_hex(3)
    root = Path(f"/tmp/pyrun-mbench-{tag}")
    cli = Cli(sys.executable, root, f"pyrun-mbench-{tag}", "none")
    work = Path(tempfile.mkdtemp(prefix="pyrun-mbench-work-"))
    failure, result = None, {}
    try:
        subprocess.run([sys.executable, str(REPO / "scripts" / "build-demo-image.py"), str(work / "layout")],
                       check=True, capture_output=True)
        cli.run("image", "import", str(work / "layout"), DEMO_IMAGE)
        create_pods(cli, work, args.pods, args.workers)
        with metrics_server(cli, work / "metrics.log") as url:
            scrapes, size, samples = time_scrapes(url, args.scrapes)
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        result = {"pods": args.pods, "bytes": size, "samples": samples, "load": load,
                  "timings": {"GET /metrics (client wall time)": scrapes} | time_halves(cli, args.scrapes)}
    except BaseException as e:  # KeyboardInterrupt too: clean up, then report
        failure = e
    finally:
        clean_up(cli, root, work, set(), failure)
    return result


def render(result: dict) -> str:
    lines = [f"# pyrun metrics scrape benchmark ({result['pods']} pods)", "",
             f"- date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
             f"- kernel: {platform.release()}, python {platform.python_version()}, {os.cpu_count()} cpus",
             f"- pods: {result['pods']} (pause + 1 container `sleep 3600` each, --network none), all running",
             f"- one scrape: {result['bytes']} bytes, {result['samples']} samples "
             f"(a series set per pod and per container)",
             f"- target: a scrape with 100 pods < {TARGET_MS:.0f} ms", "",
             "| what | n | median (ms) | p90 (ms) | max (ms) |", "|---|---:|---:|---:|---:|"]
    for what, samples in result["timings"].items():
        s = _stats.summarize(samples)
        lines.append(f"| {what} | {s.n} | {_stats.fmt_ms(s.median)} | {_stats.fmt_ms(s.p90)} | {_stats.fmt_ms(s.max)} |")
    lines += ["", "GET /metrics is timed from a client on loopback against `pyrun metrics serve` (a thread per "
              "scrape, no process started), with the headers Prometheus sends (OpenMetrics preferred, gzip "
              "accepted; pyrun answers in the text format, uncompressed). The other rows run the same code in the benchmark's process: "
              "reading every pod and container record and cgroup, then that plus rendering the text format, "
              "as wall time and as the thread's CPU time. On a busy machine the wall times grow with the load "
              f"(load average when measured: {result['load']}); the CPU times do not.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pods", type=int, default=100)
    p.add_argument("--scrapes", type=int, default=30)
    p.add_argument("--workers", type=int, default=2, help="pods created at the same time")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("metrics_bench.py must run as root", file=sys.stderr)
        return 2
    text = render(bench(args))
    out = args.out or REPO / "benchmarks" / "results" / f"metrics-{args.pods}.md"
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
