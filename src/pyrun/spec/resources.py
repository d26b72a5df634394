"""container.resources: parse, check (k8s ValidateResourceRequirements), default and normalise."""
from __future__ import annotations

import math

TYPE_CHECKING = False
if TYPE_CHECKING:  # keep typing and fractions out of the import path
    from fractions import Fraction
    from typing import Any

from pyrun.spec.fields import suggest
from pyrun.spec.model import RESOURCE_NAMES, Resources
from pyrun.spec.quantity import int64_problem, parse_quantity
from pyrun.spec.report import Report, join, type_name

HUGEPAGE_SIZES = {"hugepages-2Mi": 2 * 2**20, "hugepages-1Gi": 2**30}
_IGNORED_RESOURCES = frozenset({"ephemeral-storage"})


def _quantities(report: Report, data: dict[str, Any], key: str, path: str) -> dict[str, Fraction]:
    value = data.get(key)
    here = join(path, key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        report.error(here, f"must be an object (resource name: quantity), not {type_name(value)}")
        return {}
    result: dict[str, Fraction] = {}
    for name, raw in value.items():
        item = join(here, str(name))
        if name in RESOURCE_NAMES:
            try:
                amount = parse_quantity(raw)
            except ValueError as err:
                report.error(item, str(err))
                continue
            problem = int64_problem(_normalise(name, amount), "millicores" if name == "cpu" else "bytes")
            if problem:
                report.error(item, f"{raw!r} {problem}")
            else:
                result[name] = amount
        elif isinstance(name, str) and (name in _IGNORED_RESOURCES or "/" in name or name.startswith("hugepages-")):
            report.warn(item, "not supported by pyrun; ignored")
        else:
            report.error(item, "unknown resource" + suggest(str(name), frozenset(RESOURCE_NAMES)))
    return result


def _normalise(name: str, amount: Fraction) -> int:
    """cpu → millicores (rounded up, like MilliValue); everything else → bytes (rounded up, like Value)."""
    return math.ceil(amount * 1000) if name == "cpu" else math.ceil(amount)


def _check(report: Report, path: str, requests: dict[str, Fraction], limits: dict[str, Fraction]) -> None:
    for name, request in requests.items():
        here = join(join(path, "requests"), name)
        limit = limits.get(name)
        hugepages = name in HUGEPAGE_SIZES
        if limit is None:
            if hugepages:
                report.error(join(join(path, "limits"), name), "required: hugepages need a limit (equal to the request)")
        elif hugepages and request != limit:
            report.error(here, f"must be equal to the {name} limit (hugepages cannot be overcommitted)")
        elif request > limit:
            report.error(here, f"must be less than or equal to the {name} limit")
    for kind, values in (("requests", requests), ("limits", limits)):
        for name, amount in values.items():
            size = HUGEPAGE_SIZES.get(name)
            if size and amount % size:
                report.error(join(join(path, kind), name), f"must be a multiple of the page size ({name[10:]})")
    has_hugepages = any(n in HUGEPAGE_SIZES for n in (*requests, *limits))
    has_cpu_or_memory = any(n in ("cpu", "memory") for n in (*requests, *limits))
    if has_hugepages and not has_cpu_or_memory:
        report.error(path, "hugepages require a cpu or memory request or limit")


def parse_resources(report: Report, value: Any, path: str) -> Resources:
    """Parse container.resources at `path`, report every problem, and return normalised Resources."""
    data = report.obj(value, path, "ResourceRequirements")
    requests = _quantities(report, data, "requests", path)
    limits = _quantities(report, data, "limits", path)
    _check(report, path, requests, limits)
    defaulted = {**limits, **requests}  # Kubernetes defaulting: a missing request is the limit
    return Resources(
        requests={n: _normalise(n, a) for n, a in defaulted.items()},
        limits={n: _normalise(n, a) for n, a in limits.items()},
    )
