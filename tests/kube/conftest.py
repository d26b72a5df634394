"""The kube stage: real Kubernetes binaries (tests/kube/build.sh) driving pyrun.

Runs as root on a real kernel; skipped unless PYRUN_KUBE_BIN names the binaries' directory
(./test.sh builds them and sets it unless --no-kube; by hand:
PYRUN_KUBE_BIN=$(tests/kube/build.sh | tail -n1) pytest tests/kube).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from _kube_nodes import find_kube_bin


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.kube)


@pytest.fixture(scope="session")
def kube_bin() -> Path:
    if os.geteuid() != 0:
        pytest.skip("the kube stage needs root")
    b = find_kube_bin()
    if b is None or not (b / "kubelet").exists():
        pytest.skip("PYRUN_KUBE_BIN is not set (the directory tests/kube/build.sh prints)")
    return b
