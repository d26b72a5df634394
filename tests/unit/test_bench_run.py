"""The pure parts of benchmarks/run.py: the pod manifest, option defaults and the markdown report."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
_spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run)


def test_manifest_shares_the_pid_namespace_so_sleep_stops_on_sigterm():
    m = run.pod_manifest("bench-0")
    assert m["metadata"]["name"] == "bench-0"
    assert m["spec"]["shareProcessNamespace"] is True
    assert m["spec"]["containers"] == [{"name": "c", "image": run.DEMO_IMAGE, "command": ["sleep", "3600"]}]


def test_default_output_names():
    assert run.parse_args([]).out.endswith("benchmarks/results/pod.md")
    assert run.parse_args(["--network", "bridge"]).out.endswith("pod-bridge.md")
    assert run.parse_args(["--bytecode", "none"]).out.endswith("pod-none.md")
    assert run.parse_args(["--runs", "3", "--out", "/x/y.md"]).runs == 3


def test_strace_log_top_process_exit(tmp_path):
    log = tmp_path / "strace.log"
    assert not run._top_exited(log)
    log.write_text('100 1.0 execve("/usr/bin/python3", ["python3"], 0x1 /* 3 vars */) = 0\n')
    assert not run._top_exited(log)
    log.write_text(log.read_text() + "101 1.1 +++ exited with 0 +++\n100 1.2 +++ exited with 0 +++\n")
    assert run._top_exited(log)


def _summary(ms: float) -> dict:
    s = ms / 1000
    return {"n": 2, "median": s, "p90": s, "min": s, "max": s, "mean": s}


def test_render_shows_targets_and_machine():
    mem = {k: {"median": v, "max": v} for k, v in (("rss", 700), ("pss", 600), ("uss", 500))}
    big = {k: {"median": v, "max": v} for k, v in (("rss", 14000), ("pss", 9000), ("uss", 8000))}
    result = {
        "machine": {"date": "2026-01-01T00:00:00+00:00", "kernel": "6.1", "python": "3.11.2", "cpus": 2,
                    "memory_gib": 4.0, "bytecode": {"mode": "asis", "package": "/src/pyrun", "pyrun_modules": 10,
                                                    "with_pyc": 0, "PYTHONDONTWRITEBYTECODE": "1"}},
        "runs": 2, "network": "none", "targets": run.TARGETS,
        "timings": {"pod create": {"summary": _summary(300)}, "exec true": {"summary": _summary(100)}},
        "memory_kib": {"pause": mem, "monitor (c)": big},
    }
    text = run.render(result)
    assert "kernel: 6.1" in text and "2 cpus, 4.0 GiB" in text and "runs: 2" in text
    assert "| pod create | 300.0 | 300.0 | 300.0 | 300.0 | 150 | 2.0x over |" in text
    assert "| pause | 0.68 | 0.68 | 0.59 | 0.49 | 1.00 | ok |" in text
    assert "| monitor (c) | 13.67 |" in text and "6.8x over" in text
