"""The List* filters of the CRI (pure).

An empty filter field matches everything. Ids match by prefix (crictl passes
truncated ids, containerd resolves them the same way); a label selector matches
when every key is present with exactly that value.
"""
from __future__ import annotations

from typing import Mapping


def labels_match(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def id_matches(object_id: str, wanted: str) -> bool:
    return not wanted or object_id.startswith(wanted)


def sandbox_matches(sandbox, flt) -> bool:
    """sandbox: a pb.PodSandbox; flt: a pb.PodSandboxFilter or None."""
    if flt is None:
        return True
    if not id_matches(sandbox.id, flt.id):
        return False
    if flt.HasField("state") and sandbox.state != flt.state.state:
        return False
    return labels_match(sandbox.labels, flt.label_selector)


def container_matches(container, flt) -> bool:
    """container: a pb.Container; flt: a pb.ContainerFilter (or ContainerStatsFilter) or None."""
    if flt is None:
        return True
    if not id_matches(container.id, flt.id) or not id_matches(container.pod_sandbox_id, flt.pod_sandbox_id):
        return False
    if hasattr(flt, "state") and flt.HasField("state") and container.state != flt.state.state:
        return False
    return labels_match(container.labels, flt.label_selector)


def resolve_id(wanted: str, ids: list[str], what: str) -> str:
    """A full id from a full id or a unique prefix (NotFound otherwise)."""
    from pyrun.errors import NotFound
    if not wanted:
        raise NotFound(f"no {what} id given")
    if wanted in ids:
        return wanted
    matches = [i for i in ids if i.startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise NotFound(f"{what} id prefix {wanted!r} is ambiguous ({len(matches)} matches)")
    raise NotFound(f"{what} {wanted!r} not found")
