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


def schema_path() -> Path:
    """The JSON Schema (draft 2020-12) of the manifest subset pyrun accepts."""
    from pathlib import Path

    return Path(__file__).with_name("pod.schema.json")
