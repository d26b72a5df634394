"""Collects every problem (error) and warning found in a manifest, each with its field path."""
from __future__ import annotations


TYPE_CHECKING = False
if TYPE_CHECKING:  # keep typing out of the import path
    from typing import Any

from pyrun.spec.fields import FIELDS, suggest

_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
               int: "an integer", float: "a number", type(None): "null"}


def type_name(value: object) -> str:
    """"a string", "a list", ... for messages."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def join(path: str, key: str | int) -> str:
    """join("spec", "containers") → "spec.containers"; join("spec.containers", 0) → "spec.containers[0]"."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _is_empty(value: object) -> bool:
    """A refused field set to its "off" value (hostPID: false, initContainers: []) is harmless."""
    return value is None or value is False or value == [] or value == ""


class Report:
    """Errors are (path, message) pairs for SpecError; warnings are "path: message" strings."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []
        self.warnings: list[str] = []

    def error(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(f"{path}: {message}" if path else message)

    # --- typed access -------------------------------------------------------------------------------

    def obj(self, value: Any, path: str, kind: str) -> dict[str, Any]:
        """`value` as a mapping whose keys were checked against FIELDS[kind]; {} (plus an error) if not a mapping."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, f"must be an object, not {type_name(value)}")
            return {}
        fields = FIELDS[kind]
        for key, item in value.items():
            here = join(path, str(key))
            if not isinstance(key, str):
                self.error(here, f"field names must be strings, not {type_name(key)}")
            elif key in fields.supported:
                continue
            elif key in fields.ignored:
                if item is not None:
                    self.warn(here, "not supported by pyrun; ignored")
            elif key in fields.refused:
                if not _is_empty(item):
                    self.error(here, "not supported by pyrun (refused: ignoring it would change isolation "
                                     "or what the container runs)")
            else:
                self.error(here, "unknown field" + suggest(key, fields.known()))
        return value

    def string(self, data: dict[str, Any], key: str, path: str, required: bool = False) -> str | None:
        value = data.get(key)
        here = join(path, key)
        if value is None:
            if required:
                self.error(here, "required")
            return None
        if not isinstance(value, str):
            self.error(here, f"must be a string, not {type_name(value)}")
            return None
        if required and not value:
            self.error(here, "required (empty string)")
            return None
        return value

    def boolean(self, data: dict[str, Any], key: str, path: str, default: bool = False) -> bool:
        value = data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.error(join(path, key), f"must be true or false, not {type_name(value)}")
            return default
        return value

    def integer(self, data: dict[str, Any], key: str, path: str) -> int | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(join(path, key), f"must be an integer, not {type_name(value)}")
            return None
        return value

    def items(self, data: dict[str, Any], key: str, path: str) -> list[tuple[str, Any]]:
        """[(path of item, item)] of a list field; [] (plus an error) if it is not a list."""
        value = data.get(key)
        here = join(path, key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(here, f"must be a list, not {type_name(value)}")
            return []
        return [(join(here, i), item) for i, item in enumerate(value)]

    def strings(self, data: dict[str, Any], key: str, path: str) -> tuple[str, ...] | None:
        """A list of strings (None when absent)."""
        if data.get(key) is None:
            return None
        result = []
        ok = isinstance(data[key], list)
        for here, item in self.items(data, key, path):
            if isinstance(item, str):
                result.append(item)
            else:
                ok = False
                self.error(here, f"must be a string, not {type_name(item)}")
        return tuple(result) if ok else None

    def string_map(self, data: dict[str, Any], key: str, path: str) -> dict[str, str]:
        value = data.get(key)
        here = join(path, key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(here, f"must be an object of strings, not {type_name(value)}")
            return {}
        result = {}
        for k, v in value.items():
            if not isinstance(k, str):
                self.error(here, f"keys must be strings, not {type_name(k)} ({k!r})")
            elif not isinstance(v, str):
                self.error(f"{here}[{k!r}]", f"must be a string, not {type_name(v)} (quote it in YAML)")
            else:
                result[k] = v
        return result
