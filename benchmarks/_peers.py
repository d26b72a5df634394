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

# --- configuration of the peers -------------------------------------------------------------------

def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def containerd_config(base: Path, sandbox_image: str, cni_conf_dir: Path, cni_bin_dir: Path) -> str:
    """containerd 1.6 config (version 2) that keeps everything under `base`: root, state, socket,
    CRI netns pins. cgroupfs driver, restrict_oom_score_adj (no CAP_SYS_RESOURCE here), no TCP
    service, no metrics/debug listener, CNI networks from `cni_conf_dir`, plugins from `cni_bin_dir`."""
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
        "",
    ])


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
                    "-" if r is None else f"{r:.2f}×", c.target_text(),
                    "-" if met is None else ("yes" if met else "**no**")])
    return _stats.markdown_table(["operation", "n", "pyrun ms (median / p90)", "peer", "peer ms (median / p90)",
                                  "ratio", "target", "met?"], out)


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
