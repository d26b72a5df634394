"""The import-linter contracts of pyproject.toml hold: the layer order (cli -> cri -> runtime ->
{cgroups, netns, images, spec} -> linux -> explain -> errors/config), no import cycles, and the
front ends reach the runtime only through pyrun.runtime.api (scripts/lint.sh checks them too)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_import_contracts_hold():
    pytest.importorskip("importlinter")
    run = subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                               "sys.exit(lint_imports_command())", str(ROOT / "pyproject.toml"), "--no-cache",
         "--no-logo"],
        cwd=ROOT / "src", capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout
