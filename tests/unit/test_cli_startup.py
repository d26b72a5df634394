"""Light commands import only what they need (issue #14): a behaviour check on sys.modules of a
fresh interpreter, not a timing one."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from pyrun.cli import _roothelp, root

# Run pyrun's entry point in a fresh interpreter and write the imported module names to argv[1]
# (at exit, so commands that end with sys.exit count too, and those that end with os._exit; no import
# of its own).
_PROBE = """
import sys, atexit, os
out = sys.argv[1]
def dump():
    with open(out, "w") as f:
        f.write("\\n".join(sorted(sys.modules)))
atexit.register(dump)
_exit = os._exit
os._exit = lambda code: (dump(), _exit(code))
sys.argv = ["pyrun"] + sys.argv[2:]
from pyrun.cli.main import main
main()
"""

# never for a command that only reads state or prints help
HEAVY = ("yaml", "pyroute2", "grpc", "google.protobuf", "_cffi_backend", "pyrun._syscalls", "tarfile",
         "subprocess", "hashlib", "socket", "logging", "pyrun.runtime.spawn", "pyrun.images.store", "pyrun.cgroups")


def _modules(tmp_path, *args: str, env: dict | None = None) -> tuple[set[str], subprocess.CompletedProcess]:
    out = tmp_path / "modules.txt"
    p = subprocess.run([sys.executable, "-c", _PROBE, str(out), *args], capture_output=True, text=True,
                       env=dict(os.environ, **(env or {})), timeout=60)
    return set(out.read_text().split("\n")), p


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY
                  or any(m.startswith(h + ".") for h in HEAVY))


def test_cached_root_help_is_what_click_renders():
    """pyrun.cli._roothelp is current: regenerate it with pyrun.cli.root.render_help(WIDTH) when the root
    command's options or LAZY_COMMANDS change."""
    assert _roothelp.TEXT == root.render_help(_roothelp.WIDTH)


def test_help_imports_no_click_and_prints_clicks_text(tmp_path):
    modules, p = _modules(tmp_path, "--help", env={"COLUMNS": "80"})
    assert p.returncode == 0, p.stderr
    assert p.stdout == root.render_help(78)
    assert "click" not in modules
    assert _heavy(modules) == []


def test_help_on_a_narrow_terminal_is_clicks_own(tmp_path):
    modules, p = _modules(tmp_path, "-h", env={"COLUMNS": "60"})
    assert p.returncode == 0, p.stderr
    assert "click" in modules
    assert p.stdout == root.render_help(58)


def test_pod_ls_reads_state_without_fork_image_cgroup_or_network_code(tmp_path):
    state = tmp_path / "state"
    modules, p = _modules(tmp_path, "--root", str(state), "pod", "ls", "-o", "json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == []
    assert _heavy(modules) == []
    assert "click" not in modules  # pyrun.cli.fastargs read argv


def test_a_json_manifest_loads_without_yaml(tmp_path):
    spec = tmp_path / "pod.json"
    spec.write_text(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
                                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))
    code = ("import sys; from pyrun.spec import load_pod_file; load_pod_file(sys.argv[1]);"
            "import pyrun.runtime.pod, pyrun.runtime.podnet;"
            "print(' '.join(m for m in ('yaml', 'pyroute2', 'grpc') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code, str(spec)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == ""
