"""Manifest builders for the pyrun.spec unit tests."""
from __future__ import annotations

import copy
from typing import Any

from pyrun.errors import SpecError
from pyrun.spec import LoadedPod, parse_pod


def container(name: str = "main", image: str = "pyrun/demo:latest", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": image, **fields}


def manifest(*containers: dict[str, Any], name: str = "demo", metadata: dict | None = None,
             top: dict | None = None, **spec: Any) -> dict[str, Any]:
    """A minimal valid Pod manifest; keyword arguments become spec fields."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **(metadata or {})},
        "spec": {"containers": list(containers) or [container()], **spec},
        **(top or {}),
    }


def with_container(**fields: Any) -> dict[str, Any]:
    """A manifest with one container carrying `fields`."""
    return manifest(container(**fields))


def problems(data: Any) -> list[tuple[str, str]]:
    """Every problem parse_pod reports (fails the test if it accepts the manifest)."""
    try:
        parse_pod(copy.deepcopy(data))
    except SpecError as err:
        return err.problems
    raise AssertionError("parse_pod accepted an invalid manifest")


def paths(data: Any) -> list[str]:
    return [p for p, _ in problems(data)]


def message(data: Any, path: str) -> str:
    """The message reported for `path` (fails if there is none)."""
    found = [m for p, m in problems(data) if p == path]
    assert found, f"no problem at {path}; got {problems(data)}"
    return found[0]


def ok(data: Any) -> LoadedPod:
    return parse_pod(copy.deepcopy(data))
