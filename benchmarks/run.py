#!/usr/bin/env python3
"""Pod lifecycle benchmark: time `pod create`, `exec`, `pod stop`, `pod rm` and weigh the processes a pod keeps.

Run as root from the repository:

    /work/main/.venv/bin/python benchmarks/run.py [--runs N] [--network none|bridge] [--out benchmarks/results/pod.md]

Everything happens in a temporary state root (/tmp/pyrun-bench-<rand>) under a temporary
cgroup parent (pyrun-bench-<rand>). With --network bridge the harness re-executes itself
under `unshare --net` (a throwaway network namespace with lo up) so the host's interfaces,
routes and firewall never change. Every pod is force-removed at the end, also on failure or
Ctrl-C, and the harness checks that no process, mount or cgroup of the run is left.
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
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _stats  # noqa: E402  (benchmarks/ is not a package)

REPO = Path(__file__).resolve().parents[1]
DEMO_IMAGE = "pyrun/demo:latest"
NETNS_ENV = "PYRUN_BENCH_IN_NETNS"
GRACE_SECONDS = 10
TARGETS = {"create_ms": 150.0, "pause_rss_kib": 1024.0, "helper_rss_kib": 2048.0}
CREATE_PATH_MODULES = ("pyrun.cli.main", "pyrun.runtime.sandbox", "pyrun.runtime.monitor", "pyrun.runtime.nsexec")


class BenchError(RuntimeError):
    pass


# --- the pyrun CLI as a subprocess -----------------------------------------------------------------

class Cli:
    def __init__(self, python: str, root: Path, cgroup_parent: str, network: str, data_root: Path | None = None):
        """data_root None: pyrun's default for `root` (`root`/data)."""
        self.python, self.root, self.cgroup_parent, self.network = python, root, cgroup_parent, network
        self.data_root = data_root

    def argv(self, *args: str) -> list[str]:
        data = ["--data-root", str(self.data_root)] if self.data_root else []
        return [self.python, "-m", "pyrun.cli.main", "--root", str(self.root), *data, "--network", self.network,
                "--cgroup-parent", self.cgroup_parent, *args]

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        p = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise BenchError(f"pyrun {' '.join(args)} exited {p.returncode}:\n{p.stderr.strip()}")
        return p

    def timed(self, *args: str) -> tuple[float, subprocess.CompletedProcess]:
        t0 = time.perf_counter()
        p = self.run(*args)
        return time.perf_counter() - t0, p


def wait_exit(p: subprocess.Popen, timeout: float) -> bool:
    """Wait for `p` to exit (and reap it); False after `timeout` seconds."""
    fd = os.pidfd_open(p.pid)
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    if not ready:
        return False
    p.wait()
    return True


def pod_manifest(name: str) -> dict:
    """One container running `sleep 3600`. With a shared PID namespace pause is PID 1, so `sleep`
    is an ordinary process whose default SIGTERM action ends it at once: `pod stop` then measures
    the SIGTERM round trip, not the grace period."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"shareProcessNamespace": True, "terminationGracePeriodSeconds": GRACE_SECONDS,
                     "containers": [{"name": "c", "image": DEMO_IMAGE, "command": ["sleep", "3600"]}]}}


# --- host-side measurements ---------------------------------------------------------------------

def read_pid(path: Path, *keys: str) -> int:
    doc = json.loads(path.read_text())
    for k in keys:
        doc = doc[k]
    return int(doc)


def process_memory(pid: int) -> dict[str, int]:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return _stats.memory_kib(_stats.parse_smaps_rollup(f.read()))


def process_name(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode(errors="replace").strip()


def kept_processes(root: Path, pod_id: str) -> list[tuple[str, int]]:
    """The pyrun processes a running pod keeps: pause, then one monitor per container."""
    out = [("pause", read_pid(root / "pods" / pod_id / "sandbox.json", "pause", "pid"))]
    pod = json.loads((root / "pods" / pod_id / "pod.json").read_text())
    for entry in pod.get("containers", []):
        out.append((f"monitor ({entry['name']})", read_pid(root / "containers" / entry["id"] / "monitor.json", "pid")))
    return out


def run_timed(argv: list[str], timeout: float = 120, **kw) -> float:
    """Wall time of one command. stdio goes to /dev/null and a file, never a pipe: a detached child
    (pause, a container) would hold a pipe open. The exit is noticed at once through a pidfd:
    subprocess's wait(timeout) polls with sleeps that double from 1 ms, so it saw an exit only at
    about 1, 3, 7, 15, 31, 63, 113 ms, ... after the start, and every time was rounded up to one of those."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, **kw)
        exited = wait_exit(p, timeout)
        dt = time.perf_counter() - t0
        if not exited:
            p.kill()
            p.wait()
            raise subprocess.TimeoutExpired(argv, timeout)
        if p.returncode != 0:
            err.seek(0)
            raise BenchError(f"{' '.join(argv)} exited {p.returncode}:\n{err.read().decode(errors='replace').strip()}")
    return dt


def with_peak_rss(argv: list[str], report: Path) -> list[str]:
    """`argv` under GNU time, which writes the command's peak RSS (KiB) to `report`. Not wait4 from
    here: a child forked from this big Python process counts the parent's pages until its exec."""
    return ["/usr/bin/time", "-f", "%M", "-o", str(report), "--", *argv]


def wall(argv: list[str], runs: int, env: dict | None = None) -> _stats.Summary:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - t0)
    return _stats.summarize(times)


def import_breakdown(python: str) -> dict:
    """Interpreter start-up and import cost of the modules that start a fresh Python per pod or exec."""
    runs = 10
    out: dict = {"python -c pass": wall([python, "-c", "pass"], runs).to_dict(),
                 "python -I -S -c pass": wall([python, "-I", "-S", "-c", "pass"], runs).to_dict(),
                 "pyrun --help": wall([python, "-m", "pyrun.cli.main", "--help"], runs).to_dict()}
    for mod in CREATE_PATH_MODULES:
        out[f"python -c 'import {mod}'"] = wall([python, "-c", f"import {mod}"], runs).to_dict()
    imports = {}
    for mod in CREATE_PATH_MODULES:
        p = subprocess.run([python, "-X", "importtime", "-c", f"import {mod}"], capture_output=True, text=True,
                           check=True)
        entries = _stats.parse_importtime(p.stderr)
        imports[mod] = {"total_us": sum(e.self_us for e in entries),
                        "top": [e.__dict__ for e in _stats.top_imports(entries, 8)
                                if e.module != mod],
                        "modules": len(entries)}
    out["importtime"] = imports
    return out


def python_starts_per_create(cli: Cli, spec: Path, name: str) -> dict | None:
    """Trace one extra `pod create` with strace (execve only) and count the programs it starts."""
    if not shutil.which("strace"):
        return None
    log = spec.parent / "strace.log"
    tracer = subprocess.Popen(["strace", "-f", "-q", "-ttt", "-e", "trace=execve", "-e", "signal=none", "-o", str(log),
                               *cli.argv("pod", "create", str(spec))],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _top_exited(log):
            time.sleep(0.05)
    finally:
        cli.run("pod", "rm", "-f", name, check=False)  # the traced pause/monitor die, so strace ends
        try:
            tracer.wait(timeout=15)
        except subprocess.TimeoutExpired:
            tracer.kill()
            tracer.wait()
    # successful execve(2) only: execvp() also tries every PATH entry and fails with ENOENT
    text = log.read_text()
    programs = re.findall(r'^\d+ ([\d.]+) execve\("([^"]+)", \[([^\]]*)\].*= 0$', text, re.MULTILINE)
    if not programs:
        return None
    t0 = float(programs[0][0])
    started = []
    for at, path, args in programs:
        words = re.findall(r'"([^"]*)"', args)
        what = " ".join(words[:3]) if "python" in os.path.basename(path) else os.path.basename(path)
        started.append({"at_ms": (float(at) - t0) * 1000, "exec": what})
    top = text.split(None, 1)[0]
    cli_exit = [float(line.split()[1]) for line in text.splitlines()
                if line.split()[:1] == [top] and "+++ exited" in line]
    return {"execs": started, "cli_exit_ms": (cli_exit[0] - t0) * 1000 if cli_exit else None,
            "python_starts": sum(1 for _, p, _ in programs if "python" in os.path.basename(p))}


def _top_exited(log: Path) -> bool:
    try:
        lines = log.read_text().splitlines()
    except FileNotFoundError:
        return False
    if not lines:
        return False
    top = lines[0].split()[0]
    return any(line.split()[:1] == [top] and "+++ exited" in line for line in lines)


def pyrun_package(python: str) -> Path:
    """The pyrun package directory the interpreter imports (honours PYTHONPATH)."""
    p = subprocess.run([python, "-c", "import pyrun, os; print(os.path.dirname(pyrun.__file__))"],
                       capture_output=True, text=True, check=True)
    return Path(p.stdout.strip())


def bytecode_state(package: Path, mode: str) -> dict:
    sources = list(package.rglob("*.py"))
    compiled = [s for s in sources if list((s.parent / "__pycache__").glob(f"{s.stem}.*.pyc"))]
    return {"mode": mode, "package": str(package), "pyrun_modules": len(sources), "with_pyc": len(compiled),
            "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE", "")}


def use_package_copy(work: Path, precompile: bool, python: str) -> None:
    """Import pyrun from a copy of src/pyrun without any __pycache__ (PYTHONPATH wins over the editable
    install's .pth entry, and the sandbox/monitor/nsexec children inherit it); optionally compile it.
    The tree under src/ is never touched."""
    dest = work / "src"
    shutil.copytree(REPO / "src" / "pyrun", dest / "pyrun", ignore=shutil.ignore_patterns("__pycache__"))
    if precompile:
        subprocess.run([python, "-m", "compileall", "-q", str(dest / "pyrun")], check=True)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(dest), os.environ.get("PYTHONPATH")]))


def machine(bytecode: dict) -> dict:
    with open("/proc/meminfo") as f:
        mem_kib = int(next(line.split()[1] for line in f if line.startswith("MemTotal:")))
    return {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "kernel": platform.release(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "memory_gib": round(mem_kib / 1024 / 1024, 1), "bytecode": bytecode}


# --- cleanup and leak checks ----------------------------------------------------------------------

def remove_everything(cli: Cli) -> list[str]:
    """Force-remove every pod of the run; return what could not be removed."""
    problems = []
    p = cli.run("pod", "ls", "-o", "json", check=False)
    pods = json.loads(p.stdout) if p.returncode == 0 and p.stdout.strip() else []
    for pod in pods:
        r = cli.run("pod", "rm", "-f", pod["id"], check=False)
        if r.returncode != 0:
            problems.append(f"pod rm -f {pod['name']}: {r.stderr.strip()}")
    cli.run("gc", check=False)
    return problems


def leftovers(root: Path, cgroup_parent: str, pids: set[int]) -> list[str]:
    """Processes, mounts and cgroups of this run that still exist."""
    found = []
    for pid in sorted(pids):
        if os.path.exists(f"/proc/{pid}") and _state(pid) != "Z":
            found.append(f"process {pid} still alive: {process_name(pid)}")
    needle = str(root).encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            with contextlib.suppress(OSError):
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if needle in f.read():
                        found.append(f"process {entry} mentions the state root: {process_name(int(entry))}")
    with open("/proc/self/mountinfo") as f:
        found += [f"mount left: {line.split()[4]}" for line in f if line.split()[4].startswith(str(root))]
    found += [f"cgroup left: {d}" for d in cgroup_dirs(cgroup_parent)]
    return found


def _state(pid: int) -> str:
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    return "?"


def cgroup_dirs(cgroup_parent: str) -> list[str]:
    base = Path("/sys/fs/cgroup")
    dirs = [base / cgroup_parent] if (base / cgroup_parent / "cgroup.procs").exists() else []
    dirs += [d / cgroup_parent for d in base.iterdir() if (d / cgroup_parent).is_dir()]
    return [str(d) for d in dirs]


def remove_empty_cgroups(cgroup_parent: str) -> None:
    """rmdir what is left of our own cgroup parent, deepest first (only empty cgroups can go)."""
    for top in cgroup_dirs(cgroup_parent):
        subdirs = sorted((d for d, _, _ in os.walk(top)), key=lambda d: -d.count("/"))
        for d in subdirs:
            with contextlib.suppress(OSError):
                os.rmdir(d)


def clean_up(cli: Cli, root: Path, work: Path, pids: set[int], failure: BaseException | None) -> None:
    """Remove everything a run made, then raise: BenchError naming what was left behind, else the
    run's own failure (called from a `finally`, so an interrupted run is cleaned up too)."""
    problems = remove_everything(cli)
    with contextlib.suppress(Exception):
        from pyrun.linux.mounts import unmount_under
        unmount_under(root)
    remove_empty_cgroups(cli.cgroup_parent)
    problems += leftovers(root, cli.cgroup_parent, pids)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    if problems:
        raise BenchError("left behind after the benchmark:\n  " + "\n  ".join(problems))
    if failure is not None:
        raise failure


# --- the benchmark --------------------------------------------------------------------------------

def bench(args: argparse.Namespace) -> dict:
    tag = secrets.token_hex(3)
    root = Path(f"/tmp/pyrun-bench-{tag}")
    cli = Cli(args.python, root, f"pyrun-bench-{tag}", args.network)
    work = Path(tempfile.mkdtemp(prefix="pyrun-bench-work-"))
    seen_pids: set[int] = set()
    failure = None
    try:
        if args.bytecode != "asis":
            use_package_copy(work, args.bytecode == "precompiled", args.python)
        bytecode = bytecode_state(pyrun_package(args.python), args.bytecode)
        result: dict = {"machine": machine(bytecode), "runs": args.runs, "network": args.network,
                        "targets": TARGETS}
        subprocess.run([args.python, str(REPO / "scripts" / "build-demo-image.py"), str(work / "layout")],
                       check=True, capture_output=True)
        cli.run("image", "import", str(work / "layout"), DEMO_IMAGE)
        timings: dict[str, list[float]] = {"pod create": [], "exec true": [], "pod stop": [], "pod rm": []}
        memory: dict[str, list[dict]] = {}
        for i in range(args.runs):
            name = f"bench-{i}"
            spec = work / f"{name}.json"
            spec.write_text(json.dumps(pod_manifest(name)))
            dt, p = cli.timed("pod", "create", str(spec))
            timings["pod create"].append(dt)
            pod_id = p.stdout.strip().splitlines()[-1]
            for role, pid in kept_processes(root, pod_id):
                seen_pids.add(pid)
                memory.setdefault(role, []).append(process_memory(pid))
            timings["exec true"].append(cli.timed("exec", name, "c", "--", "true")[0])
            timings["pod stop"].append(cli.timed("pod", "stop", name)[0])
            timings["pod rm"].append(cli.timed("pod", "rm", name)[0])
            print(f"run {i + 1}/{args.runs}: create {_stats.fmt_ms(timings['pod create'][-1])} ms", file=sys.stderr)
        result["timings"] = {op: {"summary": _stats.summarize(v).to_dict(), "samples": v} for op, v in timings.items()}
        result["memory_kib"] = {role: {k: _stats.summarize([s[k] for s in samples]).to_dict()
                                       for k in ("rss", "pss", "uss")} for role, samples in memory.items()}
        if not args.skip_breakdown:
            result["breakdown"] = import_breakdown(args.python)
            spec = work / "traced.json"
            spec.write_text(json.dumps(pod_manifest("traced")))
            result["process_starts"] = python_starts_per_create(cli, spec, "traced")
    except BaseException as e:  # KeyboardInterrupt too: clean up, then report
        failure = e
    finally:
        clean_up(cli, root, work, seen_pids, failure)
    result["clean"] = True
    return result


# --- report ---------------------------------------------------------------------------------------

def render(result: dict) -> str:
    m = result["machine"]
    bc = m["bytecode"]
    lines = [f"# pyrun pod benchmark (network: {result['network']})", "",
             f"- date: {m['date']}", f"- kernel: {m['kernel']}", f"- python: {m['python']}",
             f"- machine: {m['cpus']} cpus, {m['memory_gib']} GiB memory",
             f"- runs: {result['runs']} (one pod each: pause + 1 container `sleep 3600`, shareProcessNamespace)",
             f"- bytecode ({bc['mode']}): {bc['with_pyc']}/{bc['pyrun_modules']} modules of {bc['package']} have a .pyc; "
             f"PYTHONDONTWRITEBYTECODE={bc['PYTHONDONTWRITEBYTECODE'] or '(unset)'}",
             "- nothing left behind: every pod removed, no process, mount or cgroup of the run remains", "",
             "## Latency (wall time of the `pyrun` command, ms)", ""]
    targets = {"pod create": result["targets"]["create_ms"]}
    rows = []
    for op, t in result["timings"].items():
        s = t["summary"]
        target = targets.get(op)
        rows.append([op, _stats.fmt_ms(s["median"]), _stats.fmt_ms(s["p90"]), _stats.fmt_ms(s["min"]),
                     _stats.fmt_ms(s["max"]), f"{target:.0f}" if target else "-",
                     _stats.verdict(s["median"] * 1000, target)])
    lines.append(_stats.markdown_table(["operation", "median", "p90", "min", "max", "target (median)", "vs target"],
                                       rows))
    lines += ["`pod stop` is SIGTERM to the workload (not PID 1, so it dies at once) until pyrun has recorded "
              "the exit; `exec true` includes the start of the in-container helper.", "",
              "## Memory of the processes a pod keeps (per pod, median over runs, MiB)", ""]
    rows = []
    for role, mem in result["memory_kib"].items():
        target = result["targets"]["pause_rss_kib" if role == "pause" else "helper_rss_kib"]
        rows.append([role, _stats.fmt_mib(mem["rss"]["median"]), _stats.fmt_mib(mem["rss"]["max"]),
                     _stats.fmt_mib(mem["pss"]["median"]), _stats.fmt_mib(mem["uss"]["median"]),
                     _stats.fmt_mib(target), _stats.verdict(mem["rss"]["median"], target)])
    lines.append(_stats.markdown_table(["process", "RSS", "RSS max", "PSS", "USS", "target RSS", "vs target"], rows))
    lines += ["From /proc/<pid>/smaps_rollup right after `pod create`. PSS shares pages with every process "
              "mapping them (other Python processes, libc); USS is what removing the process frees.", ""]
    if "breakdown" in result:
        lines += _render_breakdown(result)
    return "\n".join(lines)


def _render_breakdown(result: dict) -> list[str]:
    b = result["breakdown"]
    lines = ["## Where create time goes", "", "Wall time of Python start-ups and imports (median of 10, ms):", ""]
    rows = [[cmd, _stats.fmt_ms(s["median"]), _stats.fmt_ms(s["p90"])]
            for cmd, s in b.items() if cmd != "importtime"]
    lines.append(_stats.markdown_table(["command", "median", "p90"], rows))
    lines += ["`python -X importtime -c 'import M'` (one run; biggest cumulative imports):", ""]
    rows = []
    for mod, info in b["importtime"].items():
        top = ", ".join(f"{e['module']} {e['cumulative_us'] / 1000:.1f}" for e in info["top"][:5])
        rows.append([mod, f"{info['total_us'] / 1000:.1f}", info["modules"], top])
    lines.append(_stats.markdown_table(["module", "import ms", "modules", "largest (ms, cumulative)"], rows))
    starts = result.get("process_starts")
    if starts:
        lines += [f"Programs started by one `pod create` (strace -f -ttt execve, one traced run; strace slows "
                  f"it down): {len(starts['execs'])}, of which {starts['python_starts']} Python interpreters:", ""]
        rows = [[_stats.fmt_ms(e["at_ms"] / 1000), f"`{e['exec']}`"] for e in starts["execs"]]
        if starts.get("cli_exit_ms") is not None:
            rows.append([_stats.fmt_ms(starts["cli_exit_ms"] / 1000), "`pyrun pod create` exits"])
        lines.append(_stats.markdown_table(["ms after start", "execve"], rows))
    return lines


# --- entry point ----------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20, help="pods to create (default 20)")
    ap.add_argument("--network", choices=["none", "bridge"], default="none")
    ap.add_argument("--out", default=None, help="markdown report (default benchmarks/results/pod[-bridge].md); "
                                                "a .json with the raw samples is written next to it")
    ap.add_argument("--python", default=sys.executable, help="interpreter that runs pyrun (default: this one)")
    ap.add_argument("--bytecode", choices=["asis", "none", "precompiled"], default="asis",
                    help="asis: import pyrun from src/ as it is; none / precompiled: from a temporary copy of "
                         "src/pyrun without / with compiled .pyc files (src/ is never changed)")
    ap.add_argument("--skip-breakdown", action="store_true", help="skip the import-time and strace breakdown")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    if args.out is None:
        suffix = ("" if args.network == "none" else f"-{args.network}") + \
                 ("" if args.bytecode == "asis" else f"-{args.bytecode}")
        args.out = str(REPO / "benchmarks" / "results" / f"pod{suffix}.md")
    return args


def reexec_in_netns(script: str, argv: list[str], env_name: str) -> int:
    """Run the harness `script` again in a new network namespace (unshare(1)), lo up, with $`env_name`=1."""
    sh = 'ip link set lo up && exec "$0" "$@"'
    cmd = ["unshare", "--net", "--", "sh", "-c", sh, sys.executable, os.path.abspath(script), *argv]
    child = subprocess.Popen(cmd, env=dict(os.environ, **{env_name: "1"}))
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:
            continue  # the child got the same Ctrl-C and cleans up; wait for it


def run_and_report(name: str, bench_fn, render_fn, args: argparse.Namespace) -> int:
    """bench_fn(args), then its report to args.out (markdown, printed too) and the samples next to it
    (.json). SIGTERM acts like Ctrl-C: the harness cleans up before it exits."""
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        result = bench_fn(args)
    except BenchError as e:
        print(f"{name}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted (cleaned up)", file=sys.stderr)
        return 130
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_fn(result))
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    print(out.read_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks/run.py: needs root (namespaces, mounts, cgroups)", file=sys.stderr)
        return 2
    if args.network == "bridge" and os.environ.get(NETNS_ENV) != "1":
        return reexec_in_netns(__file__, argv, NETNS_ENV)
    return run_and_report("benchmarks/run.py", bench, render, args)


if __name__ == "__main__":
    sys.exit(main())
