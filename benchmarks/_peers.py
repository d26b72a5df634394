"""Pure parts of benchmarks/peers.py: the peers' configuration and the comparison table.

No side effects here (no processes, no files), so everything is unit-tested without root in
tests/unit/test_bench_peers.py.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import _stats

# Issue #14's targets: ratios are pyrun's median / the peer's median, the rest absolute.
TARGETS = {"create_vs_ctr": 1.0, "exec_vs_runc": 2.0, "rm_vs_runc": 1.0, "startup_vs_python": 3.0,
           "create_bridge_ms": 150.0, "create_none_ms": 100.0, "cri_op": 0.8, "cri_create_start": 0.5,
           "cri_execsync": 0.5, "unpack_vs_tar": 1.0, "unpack_vs_umoci": 0.5, "unpack_rss_kib": 128 * 1024.0,
           "pod_rss_kib": 2048.0, "cri_serve_rss_kib": 80 * 1024.0}
CRI_OPS = ("RunPodSandbox", "CreateContainer", "StartContainer", "ExecSync", "StopContainer", "RemoveContainer",
           "StopPodSandbox", "RemovePodSandbox")

# --- configuration of the peers -------------------------------------------------------------------

def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def containerd_config(base: Path, sandbox_image: str, cni_conf_dir: Path, cni_bin_dir: Path) -> str:
    """containerd 1.6 config (version 2) that keeps everything under `base`: root, state, socket,
    CRI netns pins, runc's state (`Root`, default /run/containerd/runc). cgroupfs driver,
    restrict_oom_score_adj (no CAP_SYS_RESOURCE here), no TCP service, no metrics/debug listener,
    CNI networks from `cni_conf_dir`, plugins from `cni_bin_dir`. Only the shims' sockets stay
    outside, and libcni's cache (see HARD_WIRED_DIRS)."""
    cri = '[plugins."io.containerd.grpc.v1.cri"]'
    return "\n".join([
        "version = 2",
        f"root = {_toml_str(str(base / 'root'))}",
        f"state = {_toml_str(str(base / 'state'))}",
        "oom_score = 0",
        "",
        "[grpc]",
        f"  address = {_toml_str(str(base / 'containerd.sock'))}",
        "",
        "[ttrpc]",
        '  address = ""',
        "",
        "[debug]",
        '  address = ""',
        '  level = "warn"',
        "",
        "[metrics]",
        '  address = ""',
        "",
        '[plugins."io.containerd.internal.v1.opt"]',
        f"  path = {_toml_str(str(base / 'opt'))}",
        "",
        cri,
        "  disable_tcp_service = true",
        '  stream_server_address = "127.0.0.1"',
        '  stream_server_port = "0"',
        "  restrict_oom_score_adj = true",
        "  netns_mounts_under_state_dir = true",
        "  enable_selinux = false",
        f"  sandbox_image = {_toml_str(sandbox_image)}",
        "",
        f"{cri[:-1]}.cni]",
        f"  bin_dir = {_toml_str(str(cni_bin_dir))}",
        f"  conf_dir = {_toml_str(str(cni_conf_dir))}",
        "  max_conf_num = 1",
        "",
        f"{cri[:-1]}.containerd]",
        '  snapshotter = "overlayfs"',
        '  default_runtime_name = "runc"',
        "",
        f"{cri[:-1]}.containerd.runtimes.runc]",
        '  runtime_type = "io.containerd.runc.v2"',
        "",
        f"{cri[:-1]}.containerd.runtimes.runc.options]",
        "  SystemdCgroup = false",
        f"  Root = {_toml_str(str(base / 'runc'))}",
        "",
    ])


# Paths containerd 1.6 writes whatever the config says: the shims' sockets (/run/containerd/s) and
# libcni's result cache (/var/lib/cni/results). The harness removes what appeared there during the
# run, and nothing that existed before.
HARD_WIRED_DIRS = ("/run/containerd", "/var/lib/cni")


def made_paths(before: set[str], after: set[str]) -> list[str]:
    """The paths that exist now and did not before, deepest first (the order to remove them in)."""
    return sorted(after - before, key=lambda d: (-d.count("/"), d))


CNI_NOOP = "pyrun-bench-noop"


def cni_conflist() -> dict:
    """The CNI network for containerd's pods: nothing but `lo`, the fair peer of pyrun's `--network none`.

    containerd always sets up `lo` itself (the `loopback` plugin, before the configured network), but
    1.6 fails RunPodSandbox with "failed to find network info" unless the configured network reports
    an `eth0` with an address, and a list with only `loopback` reports `lo`. So the configured network
    is CNI_NOOP (cni_noop_plugin()): it creates nothing and reports eth0 = 127.0.0.1."""
    return {"cniVersion": "0.4.0", "name": "pyrun-bench-none", "plugins": [{"type": CNI_NOOP}]}


def cni_noop_plugin() -> str:
    """A CNI plugin (sh) that changes nothing: ADD reports eth0 with 127.0.0.1/8 in the pod's netns."""
    return """#!/bin/sh
# pyrun benchmark: report eth0 = 127.0.0.1 for the pod's netns, create nothing (see benchmarks/_peers.py)
cat >/dev/null
case "$CNI_COMMAND" in
ADD) printf '{"cniVersion":"0.4.0","interfaces":[{"name":"eth0","sandbox":"%s"}],'\
'"ips":[{"version":"4","address":"127.0.0.1/8","interface":0}]}' "$CNI_NETNS" ;;
VERSION) printf '{"cniVersion":"0.4.0","supportedVersions":["0.3.0","0.3.1","0.4.0"]}' ;;
esac
"""


def runc_bundle_spec(spec: dict, args: Sequence[str]) -> dict:
    """`runc spec`'s default config.json made to run `args` detached: no terminal, a writable root.
    The cgroup path is given per container (`cgroups_path`), so it is left out here."""
    out = json.loads(json.dumps(spec))
    out["process"]["args"] = list(args)
    out["process"]["terminal"] = False
    out["root"] = {"path": "rootfs", "readonly": False}
    out["linux"].pop("cgroupsPath", None)
    return out


def with_cgroups_path(spec: dict, cgroups_path: str) -> dict:
    out = dict(spec)
    out["linux"] = dict(spec["linux"], cgroupsPath=cgroups_path)
    return out


# --- comparison ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Comparison:
    """One row of the peers table: pyrun's samples against a peer's (or a fixed target in ms)."""
    operation: str
    pyrun: Sequence[float]           # seconds
    peer_name: str
    peer: Sequence[float] | None     # seconds; None when the target is absolute
    target_ratio: float | None = None
    target_ms: float | None = None

    def ratio(self) -> float | None:
        if not self.peer:
            return None
        return _stats.median(self.pyrun) / _stats.median(self.peer)

    def met(self) -> bool | None:
        if self.target_ratio is not None:
            r = self.ratio()
            return None if r is None else r <= self.target_ratio
        if self.target_ms is not None:
            return _stats.median(self.pyrun) * 1000 <= self.target_ms
        return None

    def target_text(self) -> str:
        if self.target_ratio is not None:
            return f"≤ {self.target_ratio:g}×"
        if self.target_ms is not None:
            return f"≤ {self.target_ms:g} ms"
        return "-"


def _med_p90(values: Sequence[float] | None) -> str:
    if not values:
        return "-"
    s = _stats.summarize(values)
    return f"{s.median * 1000:.1f} / {s.p90 * 1000:.1f}"


def comparison_table(rows: Sequence[Comparison]) -> str:
    """Markdown: operation, pyrun median/p90, peer, peer median/p90, ratio of medians, target, met?"""
    out = []
    for c in rows:
        r = c.ratio()
        met = c.met()
        out.append([c.operation, len(c.pyrun), _med_p90(c.pyrun), c.peer_name, _med_p90(c.peer),
                    "-" if r is None else f"{r:.2f}×", c.target_text(), pass_miss(met)])
    return _stats.markdown_table(["operation", "n", "pyrun ms (median / p90)", "peer", "peer ms (median / p90)",
                                  "ratio", "target", "result"], out)


def pass_miss(met: bool | None) -> str:
    """PASS or MISS against the target; `info` for a row without one (shown for context)."""
    return "info" if met is None else ("PASS" if met else "**MISS**")


def combined(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """Per-run sums of two aligned sample lists (e.g. CreateContainer + StartContainer of one pod)."""
    if len(a) != len(b):
        raise ValueError(f"cannot add samples of different lengths: {len(a)} and {len(b)}")
    return [x + y for x, y in zip(a, b)]


def alternate(i: int, names: Sequence[str]) -> list[str]:
    """The order in which run `i` visits the runtimes: rotated by one each run, so no runtime is
    always first (a warm cache or a just-freed core helps whoever runs next)."""
    k = i % len(names)
    return list(names[k:]) + list(names[:k])


def parse_proc_stat_ppid(stat: str) -> int:
    """The parent pid from /proc/<pid>/stat (the comm field may contain spaces and parentheses)."""
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(parents: dict[int, int], root: int) -> list[int]:
    """Every pid below `root` in a pid -> ppid map (iterative, no recursion)."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return sorted(out)


# --- the unpack comparison -------------------------------------------------------------------------

def cache_key(dirs: Sequence[str], level: int) -> str:
    """A file name for the cached layer of `dirs` at gzip `level`: usr-share+usr-lib-python3.11-gz6."""
    return "+".join(d.strip("/").replace("/", "-") for d in dirs) + f"-gz{level}"


def tree_differences(a: dict[str, tuple], b: dict[str, tuple], most: int = 5) -> list[str]:
    """What differs between two tree listings (path -> attributes): paths only in one, then paths whose
    attributes differ; at most `most` examples and a count of the rest. Empty: the same tree."""
    only_a, only_b = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
    changed = sorted(p for p in a.keys() & b.keys() if a[p] != b[p])
    out = [f"only in the first: {p}" for p in only_a] + [f"only in the second: {p}" for p in only_b]
    out += [f"differs: {p}: {a[p]} vs {b[p]}" for p in changed]
    return out[:most] + ([f"... and {len(out) - most} more"] if len(out) > most else [])


LAYER_MIN_GZIP_MIB, LAYER_MIN_ENTRIES = 150, 50_000


def layer_shortfalls(gzip_bytes: int, entries: int) -> list[str]:
    """How a layer falls short of issue #14's unpack benchmark layer (>= 150 MiB gzip, >= 50k entries)."""
    out = []
    if gzip_bytes < LAYER_MIN_GZIP_MIB << 20:
        out.append(f"{gzip_bytes / (1 << 20):.0f} MiB of gzip, below {LAYER_MIN_GZIP_MIB} MiB")
    if entries < LAYER_MIN_ENTRIES:
        out.append(f"{entries} entries, below {LAYER_MIN_ENTRIES}")
    return out


# --- the report ------------------------------------------------------------------------------------

def comparisons(res: dict) -> list[Comparison]:
    """The rows of the main table, from the samples of a run (phases that did not run are left out)."""
    T, rows = TARGETS, []
    if "cli" in res:
        rows += _cli_rows(res["cli"], res["startup"], res["ls_pods"])
    if "cri" in res:
        py, cd = res["cri"]["pyrun"], res["cri"]["containerd"]
        for op in CRI_OPS:
            target = T["cri_execsync"] if op == "ExecSync" else T["cri_op"]
            rows.append(Comparison(f"CRI {op}", py[op], "containerd", cd[op], target_ratio=target))
        rows.append(Comparison("CRI CreateContainer + StartContainer",
                               combined(py["CreateContainer"], py["StartContainer"]), "containerd",
                               combined(cd["CreateContainer"], cd["StartContainer"]),
                               target_ratio=T["cri_create_start"]))
    if "unpack" in res:
        u = res["unpack"]["samples"]
        rows += [Comparison("`image import` (big layer) vs `tar -xzf`", u["pyrun"], "tar -xzf", u["tar"],
                            target_ratio=T["unpack_vs_tar"]),
                 Comparison("`image import` (big layer) vs `umoci unpack`", u["pyrun"], "umoci unpack", u["umoci"],
                            target_ratio=T["unpack_vs_umoci"])]
    return rows


def _cli_rows(s: dict, st: dict, ls_pods: int) -> list[Comparison]:
    C, T = Comparison, TARGETS
    return [
        C("`pod create` (--network none) vs `ctr run -d`", s["pyrun create"], "ctr run -d", s["ctr run -d"],
          target_ratio=T["create_vs_ctr"]),
        C("`pod create` (--network none) vs `runc run -d`", s["pyrun create"], "runc run -d", s["runc run -d"]),
        C("`pod create` (--network none), absolute", s["pyrun create"], "-", None, target_ms=T["create_none_ms"]),
        C("`pod create` (bridge), absolute", s["pyrun create bridge"], "-", None, target_ms=T["create_bridge_ms"]),
        C("`exec POD CTR -- true` vs `runc exec`", s["pyrun exec"], "runc exec", s["runc exec"],
          target_ratio=T["exec_vs_runc"]),
        C("`pod rm -f` vs `runc delete -f`", s["pyrun rm -f"], "runc delete -f", s["runc delete -f"],
          target_ratio=T["rm_vs_runc"]),
        C("`pyrun --help` vs `python -c pass`", st["pyrun --help"], "python -c pass", st["python -c pass"],
          target_ratio=T["startup_vs_python"]),
        C(f"`pod ls` ({ls_pods} pods) vs `python -c pass`", st["pod ls"], "python -c pass", st["python -c pass"],
          target_ratio=T["startup_vs_python"]),
    ]


def render(res: dict) -> str:
    """The markdown report of a run: machine and load, the comparison table, memory, the unpack layer."""
    m, la = res["machine"], res["loadavg"]
    fmt_la = lambda v: " ".join(f"{x:.2f}" for x in v)  # noqa: E731
    rows = comparisons(res)
    results = [c.met() for c in rows] + [met for *_, met in memory_rows(res)]
    lines = ["# pyrun vs its peers (runc, ctr run, containerd CRI, tar, umoci)", "",
             f"- date: {m['date']}; kernel {m['kernel']}, python {m['python']}, {m['cpus']} cpus, "
             f"{m['memory_gib']} GiB",
             "- load average (1/5/15 min): " + "; ".join(f"{k} {fmt_la(v)}" for k, v in la.items())]
    if res.get("versions"):
        lines.append(f"- peers: {', '.join(v[0] for v in res['versions'].values() if v)}")
    if "cli" in res:
        lines.append(f"- CLI: {res['runs']} runs, alternating pyrun / runc / ctr (rotated each run); one pod or "
                     f"container `sleep 3600` each; `pod ls` with {res['ls_pods']} pods")
    if "cri" in res:
        net = {"cni": "both run the same CNI network (containerd's loopback, then a plugin that creates nothing "
                      "and reports eth0 = 127.0.0.1): `cri serve --network cni`",
               "none": "pyrun with `--network none`, containerd with its CNI network (loopback, then a plugin "
                       "that creates nothing and reports eth0 = 127.0.0.1)"}[res.get("cri_network", "none")]
        lines.append(f"- CRI: {res['pods']} pods, alternating pyrun / containerd pod by pod, each pod "
                     f"RunPodSandbox … RemovePodSandbox with one ExecSync `true`; {net}")
    if res.get("pyrun_commit"):
        lines.append(f"- pyrun commit: {res['pyrun_commit']}")
    if "bytecode" in m:
        bc = m["bytecode"]
        lines.append(f"- pyrun (`--bytecode {bc['mode']}`) imported from {bc['package']}: {bc['with_pyc']} of {bc['pyrun_modules']} modules "
                     "have a .pyc")
    lines += [f"- whole run: {res.get('seconds', 0):.0f} s; nothing left behind (checked)",
              f"- targets: {results.count(True)} PASS, {results.count(False)} MISS", "",
              comparison_table(rows),
             "Ratio = pyrun median / peer median; `result` compares it (or the absolute median) with the target of "
             "issue #14. Wall time of each command as a user runs it (pyrun as `python -m pyrun.cli.main`), or "
             "client-side time of each CRI call over the unix socket (same Python gRPC client for both).", "",
             "The machine is small and shared with other work (see the load average above): absolute times move "
             "from run to run, ratios of runs made side by side much less; the absolute targets assume an idle "
             "machine.", "",
             "Run it: `scripts/apt-ensure.sh runc containerd containernetworking-plugins umoci time; "
             ".venv/bin/python benchmarks/peers.py` (as root; options and what it does: benchmarks/README.md).", ""]
    if "unpack" in res:
        lines += render_unpack(res["unpack"], res["unpack_runs"])
    if memory_rows(res):
        lines += render_memory(res)
    return "\n".join(lines)


def render_unpack(u: dict, runs: int) -> list[str]:
    layer, diff = u["layer"], u["differences"] or {}
    short = layer_shortfalls(layer["gzip_bytes"], layer["entries"])
    same = "; ".join(f"vs {who}: " + ("same tree" if not d else "DIFFERENT: " + "; ".join(d))
                     for who, d in diff.items())
    return ["## Unpack", "",
            f"One gzip layer of {', '.join('/' + d for d in layer['dirs'])}: {layer['gzip_bytes'] / (1 << 20):.0f} MiB "
            f"gzip, {layer['tar_bytes'] / (1 << 20):.0f} MiB tar, {layer['entries']} entries"
            + (f" (**smaller than issue #14 asks: {', '.join(short)}**)" if short else "") + f". Rounds: {runs}, "
            "alternating `pyrun image import` of the OCI layout (copy + verify digest and diff_id + unpack) / "
            "`tar -xzf` of the blob / `umoci unpack` of the layout; `sync` before each. Trees compared after the "
            f"first round (path, type, mode, owner, size, link target): {same or 'not compared'}.", ""]


def memory_rows(res: dict) -> list[list]:
    """[what, RSS KiB, target KiB or None, met or None] for the memory table."""
    T, rows = TARGETS, []
    med = lambda v: _stats.median(v) if v else 0  # noqa: E731
    if res.get("pod_rss_kib"):
        rows.append(["pause + monitor per pod (CLI pods)", med([sum(d.values()) for d in res["pod_rss_kib"]]),
                     T["pod_rss_kib"]])
    if "memory" in res:
        py, cd, n = res["memory"]["pyrun"], res["memory"]["containerd"], res["mem_pods"]
        rows += [["pause + monitor per pod (CRI pods)", med(py["pod_kib"]), T["pod_rss_kib"]],
                 [f"`cri serve` + helpers, {n} pods running", py["server_kib"] + sum(py["helpers"].values()),
                  T["cri_serve_rss_kib"]],
                 ["containerd peer: pause + shim per pod", med(cd["pause_kib"]) + med(cd["shims_kib"]), None],
                 ["containerd peer: shim per pod", med(cd["shims_kib"]), None],
                 [f"containerd peer: containerd, {n} pods running", cd["containerd_kib"], None]]
    if "unpack" in res:
        rows.append(["`image import` of the big layer, peak (max over rounds)", max(res["unpack"]["peak_rss_kib"]),
                     T["unpack_rss_kib"]])
    return [[what, kib, target, None if target is None else kib <= target] for what, kib, target in rows]


def render_memory(res: dict) -> list[str]:
    table = [[what, _stats.fmt_mib(kib), "-" if target is None else f"≤ {_stats.fmt_mib(target)}", pass_miss(met)]
             for what, kib, target, met in memory_rows(res)]
    lines = ["## Memory (RSS, MiB)", "", _stats.markdown_table(["what", "RSS MiB", "target", "result"], table)]
    if "memory" in res:
        py = res["memory"]["pyrun"]
        helpers = ", ".join(f"{k.split(' ', 1)[1]} {v / 1024:.1f}" for k, v in py["helpers"].items()) or "none"
        lines.append(f"`cri serve` itself {py['server_kib'] / 1024:.1f} MiB; helpers it keeps (MiB): {helpers}. ")
    lines += ["RSS from /proc/<pid>/smaps_rollup (shared pages counted in full); the import's peak is GNU time's "
              "maximum resident set size.", ""]
    return lines
