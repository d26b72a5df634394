"""Shared pytest set-up: markers and the skip for root-only tests."""
from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="integration tests need root and a real kernel")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)
