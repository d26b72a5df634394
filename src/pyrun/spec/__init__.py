"""Pure Pod-manifest layer: load (JSON/YAML), validate (every problem at once), default, QoS, process merge.

No side effects besides reading the manifest file in load_pod_file.
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from pyrun.spec.load import load_pod_file
    from pyrun.spec.model import (ContainerSpec, EnvVar, FieldRef, LoadedPod, PodSpec, PortSpec, ProcessSpec,
                                  Resources, VolumeMount, VolumeSpec)
    from pyrun.spec.pod import parse_pod

__all__ = ["ContainerSpec", "EnvVar", "FieldRef", "LoadedPod", "PodSpec",
           "PortSpec", "ProcessSpec", "Resources", "VolumeMount", "VolumeSpec", "load_pod_file", "parse_pod",
           "schema_path"]

# Imported on first use (PEP 562), so `from pyrun.spec.security import ...` (pyrun exec, the
# container init) does not build the whole model and validator.
_LAZY = {"load_pod_file": "pyrun.spec.load", "parse_pod": "pyrun.spec.pod",
         **{name: "pyrun.spec.model" for name in __all__ if name[0].isupper()}}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def schema_path() -> Path:
    """The JSON Schema (draft 2020-12) of the manifest subset pyrun accepts."""
    from pathlib import Path

    return Path(__file__).with_name("pod.schema.json")
