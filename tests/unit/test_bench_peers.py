"""The pure parts of benchmarks/peers.py (benchmarks/_peers.py): the peers' configuration, the ratio
and target math, the leak bookkeeping and the markdown report."""
from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import _peers  # noqa: E402

# --- configuration --------------------------------------------------------------------------------


def _config(tmp_path: Path) -> dict:
    text = _peers.containerd_config(tmp_path / "ctd", "docker.io/pyrun/pause:bench", tmp_path / "cni",
                                    tmp_path / "cni-bin")
    return tomllib.loads(text)


def test_containerd_config_is_toml_and_keeps_every_path_under_its_base(tmp_path):
    cfg = _config(tmp_path)
    base = str(tmp_path / "ctd")
    assert cfg["version"] == 2
    assert cfg["root"] == f"{base}/root" and cfg["state"] == f"{base}/state"
    assert cfg["grpc"]["address"] == f"{base}/containerd.sock"
    assert cfg["plugins"]["io.containerd.internal.v1.opt"]["path"] == f"{base}/opt"
    runc = cfg["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"] == {"SystemdCgroup": False, "Root": f"{base}/runc"}  # not /run/containerd/runc


def test_containerd_config_cri_settings(tmp_path):
    cri = _config(tmp_path)["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True  # this VM's root lacks CAP_SYS_RESOURCE
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["disable_tcp_service"] is True
    assert cri["sandbox_image"] == "docker.io/pyrun/pause:bench"
    assert cri["cni"] == {"bin_dir": str(tmp_path / "cni-bin"), "conf_dir": str(tmp_path / "cni"),
                          "max_conf_num": 1}
    assert _config(tmp_path)["ttrpc"]["address"] == "" and _config(tmp_path)["metrics"]["address"] == ""


def test_containerd_config_quotes_paths(tmp_path):
    odd = tmp_path / 'a "quoted" \\ dir'
    cfg = tomllib.loads(_peers.containerd_config(odd, "img", odd, odd))
    assert cfg["root"] == f"{odd}/root"


def test_cni_conflist_names_the_noop_plugin():
    conf = _peers.cni_conflist()
    assert conf["plugins"] == [{"type": _peers.CNI_NOOP}]
    assert conf["cniVersion"] == "0.4.0"


@pytest.mark.parametrize("command", ["ADD", "VERSION"])
def test_cni_noop_plugin_prints_json(command):
    out = subprocess.run(["sh", "-c", _peers.cni_noop_plugin()], input="{}", capture_output=True, text=True,
                         env={"CNI_COMMAND": command, "CNI_NETNS": "/x/netns", "PATH": "/usr/bin:/bin"},
                         check=True).stdout
    doc = json.loads(out)
    if command == "ADD":
        assert doc["interfaces"] == [{"name": "eth0", "sandbox": "/x/netns"}]
        assert doc["ips"] == [{"version": "4", "address": "127.0.0.1/8", "interface": 0}]
    else:
        assert "0.4.0" in doc["supportedVersions"]


def test_cni_noop_plugin_del_prints_nothing():
    p = subprocess.run(["sh", "-c", _peers.cni_noop_plugin()], input="{}", capture_output=True, text=True,
                       env={"CNI_COMMAND": "DEL", "PATH": "/usr/bin:/bin"}, check=True)
    assert p.stdout == ""


def test_runc_bundle_spec_runs_detached_and_leaves_the_input_alone():
    spec = {"process": {"args": ["sh"], "terminal": True}, "root": {"path": "rootfs", "readonly": True},
            "linux": {"cgroupsPath": "/x", "namespaces": []}}
    out = _peers.runc_bundle_spec(spec, ["sleep", "3600"])
    assert out["process"] == {"args": ["sleep", "3600"], "terminal": False}
    assert out["root"] == {"path": "rootfs", "readonly": False}
    assert "cgroupsPath" not in out["linux"]
    assert spec["process"]["terminal"] is True and spec["linux"]["cgroupsPath"] == "/x"
    with_path = _peers.with_cgroups_path(out, "/p/c1")
    assert with_path["linux"]["cgroupsPath"] == "/p/c1" and "cgroupsPath" not in out["linux"]


# --- leaks ------------------------------------------------------------------------------------------


def test_made_paths_are_the_new_ones_deepest_first():
    before = {"/run/containerd"}
    after = {"/run/containerd", "/run/containerd/s", "/run/containerd/s/abc", "/run/containerd/runc",
             "/run/containerd/runc/ns"}
    assert _peers.made_paths(before, after) == ["/run/containerd/runc/ns", "/run/containerd/s/abc",
                                                "/run/containerd/runc", "/run/containerd/s"]
    assert _peers.made_paths(after, after) == []
    assert _peers.made_paths(set(), {"/run/containerd"}) == ["/run/containerd"]


def test_parse_proc_stat_ppid_with_odd_comm():
    assert _peers.parse_proc_stat_ppid("42 (a) b (c)) S 7 42 42 0 -1") == 7


def test_descendants_walks_the_whole_subtree_without_recursion():
    parents = {2: 1, 3: 2, 4: 3, 5: 1, 6: 5}
    assert _peers.descendants(parents, 2) == [3, 4]
    assert _peers.descendants(parents, 1) == [2, 3, 4, 5, 6]
    chain = {i + 1: i for i in range(1, 5000)}  # deeper than Python's recursion limit
    assert len(_peers.descendants(chain, 1)) == 4999


# --- ratio and target math --------------------------------------------------------------------------


def test_alternate_rotates_the_order_each_run():
    names = ["pyrun", "runc", "ctr"]
    assert [_peers.alternate(i, names) for i in range(4)] == [
        ["pyrun", "runc", "ctr"], ["runc", "ctr", "pyrun"], ["ctr", "pyrun", "runc"], ["pyrun", "runc", "ctr"]]


def test_combined_adds_aligned_samples():
    assert _peers.combined([1, 2], [10, 20]) == [11, 22]
    with pytest.raises(ValueError, match="different lengths"):
        _peers.combined([1], [1, 2])


def test_ratio_of_medians_and_ratio_target():
    c = _peers.Comparison("op", [0.1, 0.3, 0.2], "peer", [0.2, 0.4, 0.9], target_ratio=0.8)
    assert c.ratio() == pytest.approx(0.5)
    assert c.met() is True and c.target_text() == "≤ 0.8×"
    assert _peers.Comparison("op", [1.0], "peer", [1.0], target_ratio=0.8).met() is False
    assert _peers.Comparison("op", [1.0], "peer", [1.0], target_ratio=1.0).met() is True  # ≤, not <


def test_absolute_target_in_ms_and_no_target():
    c = _peers.Comparison("create", [0.09, 0.2, 0.1], "-", None, target_ms=100)
    assert c.ratio() is None and c.met() is True and c.target_text() == "≤ 100 ms"
    assert _peers.Comparison("create", [0.101], "-", None, target_ms=100).met() is False
    info = _peers.Comparison("info", [1.0], "runc", [0.5])
    assert info.ratio() == 2.0 and info.met() is None and info.target_text() == "-"


def test_comparison_table_row_states_target_and_pass_or_miss():
    rows = [_peers.Comparison("`a`", [0.010, 0.020], "peer", [0.040, 0.040], target_ratio=0.8),
            _peers.Comparison("`b`", [0.5], "-", None, target_ms=100),
            _peers.Comparison("`c` | pipe", [0.5], "runc", [0.25])]
    lines = _peers.comparison_table(rows).splitlines()
    assert lines[0] == ("| operation | n | pyrun ms (median / p90) | peer | peer ms (median / p90) | ratio | target "
                        "| result |")
    assert lines[2] == "| `a` | 2 | 15.0 / 19.0 | peer | 40.0 / 40.0 | 0.38× | ≤ 0.8× | PASS |"
    assert lines[3] == "| `b` | 1 | 500.0 / 500.0 | - | - | - | ≤ 100 ms | **MISS** |"
    assert lines[4] == "| `c` \\| pipe | 1 | 500.0 / 500.0 | runc | 250.0 / 250.0 | 2.00× | - | info |"


# --- the unpack comparison --------------------------------------------------------------------------


def test_cache_key_names_dirs_and_level():
    assert _peers.cache_key(["usr/share", "/usr/lib/python3.11"], 6) == "usr-share+usr-lib-python3.11-gz6"


def test_tree_differences():
    a = {"x": ("f", 0o644, 0, 0, 3), "d": ("d", 0o755, 0, 0, None), "l": ("l", 0o777, 0, 0, "x")}
    assert _peers.tree_differences(a, dict(a)) == []
    b = dict(a, l=("l", 0o777, 0, 0, "y"), extra=("f", 0o600, 0, 0, 1))
    del b["x"]
    assert _peers.tree_differences(a, b) == ["only in the first: x", "only in the second: extra",
                                             "differs: l: ('l', 511, 0, 0, 'x') vs ('l', 511, 0, 0, 'y')"]
    many = {str(i): ("f",) for i in range(9)}
    out = _peers.tree_differences(many, {})
    assert len(out) == 6 and out[-1] == "... and 4 more"


def test_layer_shortfalls():
    assert _peers.layer_shortfalls(150 << 20, 50_000) == []
    assert _peers.layer_shortfalls(100 << 20, 49_999) == ["100 MiB of gzip, below 150 MiB",
                                                          "49999 entries, below 50000"]


# --- the report -------------------------------------------------------------------------------------


def _result(**phases) -> dict:
    res = {"machine": {"date": "2026-12-02T12:00:00+00:00", "kernel": "6.1", "python": "3.11.2", "cpus": 2,
                       "memory_gib": 8.0,
                       "bytecode": {"mode": "precompiled", "package": "/tmp/x/src/pyrun", "with_pyc": 3,
                                    "pyrun_modules": 3}},
           "loadavg": {"start": [1.0, 2.0, 3.0], "after_cli": [1.5, 2.0, 3.0]},
           "versions": {"runc": ["runc version 1.1.5"], "containerd": ["containerd 1.6.20"]},
           "pyrun_commit": "abc1234 a subject", "runs": 2, "pods": 2, "ls_pods": 50, "mem_pods": 10, "unpack_runs": 1, "seconds": 12.3}
    res.update(phases)
    return res


CLI = {"pyrun create": [0.2, 0.3], "pyrun create bridge": [0.4, 0.4], "runc run -d": [0.05, 0.05],
       "ctr run -d": [0.1, 0.2], "pyrun exec": [0.1, 0.1], "runc exec": [0.05, 0.05], "pyrun rm -f": [0.1, 0.1],
       "runc delete -f": [0.1, 0.1]}
STARTUP = {"pyrun --help": [0.06], "pod ls": [0.1], "python -c pass": [0.02]}


def _cri(scale: float) -> dict:
    return {op: [0.01 * scale, 0.01 * scale] for op in _peers.CRI_OPS}


def test_report_of_a_cli_only_run():
    text = _peers.render(_result(cli=CLI, startup=STARTUP, pod_rss_kib=[{"pause": 500, "monitor (c)": 1000}]))
    assert "- CLI: 2 runs" in text and "- CRI:" not in text and "## Unpack" not in text
    assert "- load average (1/5/15 min): start 1.00 2.00 3.00; after_cli 1.50 2.00 3.00" in text
    assert "- peers: runc version 1.1.5, containerd 1.6.20" in text
    assert "`--bytecode precompiled`" in text and "- pyrun commit: abc1234 a subject" in text
    assert "| `pod create` (--network none) vs `ctr run -d` | 2 | 250.0 / 290.0 | ctr run -d | 150.0 / 190.0 | " \
           "1.67× | ≤ 1× | **MISS** |" in text
    assert "| `pod rm -f` vs `runc delete -f` | 2 | 100.0 / 100.0 | runc delete -f | 100.0 / 100.0 | 1.00× | ≤ 1× " \
           "| PASS |" in text
    assert "| `pod ls` (50 pods) vs `python -c pass` | 1 | 100.0 / 100.0 | python -c pass | 20.0 / 20.0 | 5.00× |" \
        in text
    assert "| pause + monitor per pod (CLI pods) | 1.46 | ≤ 2.00 | PASS |" in text
    # 8 CLI rows, 1 of them informational; PASS: rm, exec (2x), --help (3x); 1 memory PASS
    assert "- targets: 4 PASS, 4 MISS" in text


def test_report_of_cri_rows_and_create_plus_start():
    cri = {"pyrun": _cri(1), "containerd": _cri(2)}
    cri["pyrun"]["ExecSync"] = [0.015, 0.015]
    mem = {"pyrun": {"server_kib": 40 * 1024, "helpers": {"7 pyrun-zygote": 30 * 1024}, "pod_kib": [1500, 1600]},
           "containerd": {"containerd_kib": 50 * 1024, "shims_kib": [13000], "pause_kib": [700]}}
    text = _peers.render(_result(cri=cri, memory=mem, cri_network="cni"))
    assert "- CRI: 2 pods" in text and "`cri serve --network cni`" in text
    assert "| CRI RunPodSandbox | 2 | 10.0 / 10.0 | containerd | 20.0 / 20.0 | 0.50× | ≤ 0.8× | PASS |" in text
    assert "| CRI ExecSync | 2 | 15.0 / 15.0 | containerd | 20.0 / 20.0 | 0.75× | ≤ 0.5× | **MISS** |" in text
    assert "| CRI CreateContainer + StartContainer | 2 | 20.0 / 20.0 | containerd | 40.0 / 40.0 | 0.50× | ≤ 0.5× " \
           "| PASS |" in text
    assert "| `cri serve` + helpers, 10 pods running | 70.00 | ≤ 80.00 | PASS |" in text
    assert "| containerd peer: pause + shim per pod | 13.38 | - | info |" in text
    assert "helpers it keeps (MiB): pyrun-zygote 30.0" in text


def test_report_of_the_unpack_phase():
    unpack = {"samples": {"pyrun": [30.0, 40.0], "tar": [40.0, 40.0], "umoci": [60.0, 70.0]},
              "peak_rss_kib": [100 * 1024, 140 * 1024], "differences": {"tar": [], "umoci": ["only in the first: x"]},
              "layer": {"gzip_bytes": 100 << 20, "tar_bytes": 600 << 20, "entries": 60000,
                        "dirs": ["usr/share", "usr/lib/python3.11"], "diff_id": "sha256:ab"}}
    text = _peers.render(_result(unpack=unpack, unpack_runs=2))
    assert "| `image import` (big layer) vs `tar -xzf` | 2 | 35000.0 / 39000.0 | tar -xzf | 40000.0 / 40000.0 | " \
           "0.88× | ≤ 1× | PASS |" in text
    assert "vs `umoci unpack` | 2 | 35000.0 / 39000.0 | umoci unpack | 65000.0 / 69000.0 | 0.54× | ≤ 0.5× " \
           "| **MISS** |" in text
    assert "/usr/share, /usr/lib/python3.11: 100 MiB gzip, 600 MiB tar, 60000 entries (**smaller than issue #14 " \
           "asks: 100 MiB of gzip, below 150 MiB**)" in text
    assert "vs tar: same tree; vs umoci: DIFFERENT: only in the first: x" in text
    assert "| `image import` of the big layer, peak (max over rounds) | 140.00 | ≤ 128.00 | **MISS** |" in text


# --- options ---------------------------------------------------------------------------------------


def _peers_script():
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_peers", Path(_peers.__file__).with_name("peers.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_options_defaults_and_bounds(capsys):
    peers = _peers_script()
    args = peers.parse_args([])
    assert (args.runs, args.pods, args.ls_pods, args.mem_pods, args.unpack_runs) == (10, 50, 50, 10, 3)
    assert args.bytecode == "precompiled" and args.out.endswith("benchmarks/results/peers.md")
    assert args.cri_network == "cni"
    assert args.unpack_dirs[0] == "usr/share" and not any(d.startswith("/") for d in args.unpack_dirs)
    with pytest.raises(SystemExit):
        peers.parse_args(["--unpack-runs", "0"])
    assert "--unpack-runs must be at least 1" in capsys.readouterr().err
