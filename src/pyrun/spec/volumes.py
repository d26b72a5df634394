"""spec.volumes[i]: emptyDir and hostPath (a volume with no source defaults to emptyDir, as in k8s)."""
from __future__ import annotations

import math

TYPE_CHECKING = False
if TYPE_CHECKING:  # keep typing out of the import path
    from typing import Any

from pyrun.spec import names
from pyrun.spec.container import check_path
from pyrun.spec.fields import FIELDS
from pyrun.spec.model import VolumeSpec
from pyrun.spec.quantity import int64_problem, parse_quantity
from pyrun.spec.report import Report, join, type_name

MEDIA = ("", "Memory")
HOST_PATH_TYPES = ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice",
                   "BlockDevice")


def _empty_dir(report: Report, name: str, value: Any, path: str) -> VolumeSpec:
    data = report.obj(value, path, "EmptyDirVolumeSource")
    medium = report.string(data, "medium", path) or ""
    if medium not in MEDIA:
        report.error(join(path, "medium"), f'"{medium}" is not supported by pyrun (use "" or "Memory")')
    size_limit = None
    if data.get("sizeLimit") is not None:
        try:
            size_limit = math.ceil(parse_quantity(data["sizeLimit"]))
        except ValueError as err:
            report.error(join(path, "sizeLimit"), str(err))
        else:
            if problem := int64_problem(size_limit, "bytes"):
                report.error(join(path, "sizeLimit"), f"{data['sizeLimit']!r} {problem}")
                size_limit = None
    return VolumeSpec(name, "emptyDir", medium=medium, size_limit=size_limit)


def _host_path(report: Report, name: str, value: Any, path: str) -> VolumeSpec:
    data = report.obj(value, path, "HostPathVolumeSource")
    if not isinstance(value, dict):
        return VolumeSpec(name, "hostPath", host_path="")
    host_path = report.string(data, "path", path, required=True) or ""
    if host_path:
        check_path(report, join(path, "path"), host_path, absolute=True)
        if ".." in host_path.split("/"):
            report.error(join(path, "path"), f'"{host_path}" must not contain ".."')
    kind = report.string(data, "type", path) or ""
    if kind not in HOST_PATH_TYPES:
        report.error(join(path, "type"), f'"{kind}" must be one of {", ".join(repr(t) for t in HOST_PATH_TYPES)}')
    return VolumeSpec(name, "hostPath", host_path=host_path, host_path_type=kind)


def parse_volume(report: Report, value: Any, path: str) -> VolumeSpec:
    """Build one volume at `path`; a placeholder (and an error) if it is not an object."""
    if not isinstance(value, dict):
        report.error(path, f"must be an object, not {type_name(value)}")
        return VolumeSpec("", "emptyDir")
    data = report.obj(value, path, "Volume")
    name = report.string(data, "name", path, required=True)
    if name and (problem := names.dns_label(name)):
        report.error(join(path, "name"), problem)
    fields = FIELDS["Volume"]
    sources = [k for k in data if k in fields.supported - {"name"} or k in fields.refused]
    if len(sources) > 1:
        report.error(path, f"may not specify more than one volume type (found {', '.join(sources)})")
    if "hostPath" in data:
        return _host_path(report, name or "", data["hostPath"], join(path, "hostPath"))
    return _empty_dir(report, name or "", data.get("emptyDir"), join(path, "emptyDir"))
