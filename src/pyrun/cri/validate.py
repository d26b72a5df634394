"""The one check every CRI request passes before its handler runs (pyrun.cri.server._wrap).

proto3 strings are UTF-8, and U+0000 is valid UTF-8: a NUL byte can arrive in any string field
(ExecSync/Exec cmd, Attach and PortForward ids, log paths, labels, annotations, the unified
resources map ...). None of them can reach the kernel intact (argv, environ, paths and file
contents cut at the NUL), so every request is walked once, here, and refused with
INVALID_ARGUMENT naming each field, instead of failing later somewhere that names neither.
The manifest path has the same check in pyrun.spec.validate.nul_bytes.
"""
from __future__ import annotations

from pyrun.errors import SpecError

NUL_MESSAGE = "must not contain a NUL byte"


def nul_bytes(message, root: str = "") -> list[tuple[str, str]]:
    """(field path, message) for every string field, map key or map value of a protobuf message holding
    a NUL byte, e.g. ("cmd[1]", ...) or ("config.annotations['a']", ...). An explicit stack, no recursion."""
    found: list[tuple[str, str]] = []
    stack = [(root, message)]
    while stack:
        path, msg = stack.pop()
        for fd, value in msg.ListFields():
            here = f"{path}.{fd.name}" if path else fd.name
            if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
                _map_nul_bytes(here, value, found, stack)
                continue
            items = list(enumerate(value)) if fd.is_repeated else [(None, value)]
            for i, item in items:
                at = here if i is None else f"{here}[{i}]"
                if isinstance(item, str):
                    if "\0" in item:
                        found.append((at, NUL_MESSAGE))
                elif fd.message_type is not None:
                    stack.append((at, item))
    return sorted(found)


def _map_nul_bytes(here: str, value, found: list, stack: list) -> None:
    for key in value:
        item = value[key]
        if isinstance(key, str) and "\0" in key:
            found.append((here, f"key {key!r} {NUL_MESSAGE}"))
        elif isinstance(item, str) and "\0" in item:
            found.append((f"{here}[{key!r}]", NUL_MESSAGE))
        elif not isinstance(item, (str, int, float, bool, bytes)):
            stack.append((f"{here}[{key!r}]", item))


def check_request(request) -> None:
    """SpecError (-> INVALID_ARGUMENT) naming every field of `request` that holds a NUL byte."""
    problems = nul_bytes(request)
    if problems:
        raise SpecError(problems)
