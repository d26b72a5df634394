"""Shared pytest set-up of tests/integration and tests/kube: markers, the skip for root-only tests, and the
demo image layout both build pods from."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="integration tests need root and a real kernel")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def demo_layout(tmp_path_factory) -> Path:
    """The demo image (scripts/build-demo-image.py) as an OCI layout, built once per session."""
    out = tmp_path_factory.mktemp("demo-image") / "layout"
    subprocess.run([sys.executable, str(REPO / "scripts" / "build-demo-image.py"), str(out)], check=True,
                   capture_output=True)
    return out
