"""Read a manifest file: JSON or YAML, detected by content (".json" files always use the JSON parser)."""
from __future__ import annotations

import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # keep typing out of the import path
    from pathlib import Path
    from typing import Any

from pyrun.errors import SpecError
from pyrun.spec.model import LoadedPod
from pyrun.spec.pod import parse_pod


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f'duplicate key "{key}"')
        result[key] = value
    return result


def parse_json(text: str) -> Any:
    """json.loads that refuses duplicate keys. Raises SpecError-ready ValueError with line/column."""
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicates)
    except json.JSONDecodeError as err:
        raise ValueError(f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None


def parse_yaml(text: str) -> Any:
    """yaml.safe_load of exactly one document, refusing duplicate keys; errors carry line/column."""
    import yaml  # ≈ 30 ms: only when a YAML manifest is read

    class _Loader(yaml.SafeLoader):
        pass

    def construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
        loader.flatten_mapping(node)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                mark = key_node.start_mark
                raise ValueError(f'line {mark.line + 1}, column {mark.column + 1}: duplicate key "{key}"')
            if isinstance(key, (str, int, float, bool)):
                seen.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep=True)

    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    try:
        documents = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"invalid YAML{where}: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"invalid YAML: {err}") from None
    if len(documents) > 1:
        raise ValueError(f"contains {len(documents)} YAML documents; a pod manifest is exactly one Pod")
    return documents[0] if documents else None


def parse_text(text: str, filename: str = "") -> Any:
    """Decode manifest text: JSON for ".json" files or text starting with "{", otherwise YAML."""
    if filename.endswith(".json"):
        return parse_json(text)
    if text.lstrip().startswith("{"):
        try:
            return parse_json(text)
        except ValueError as json_error:
            try:
                return parse_yaml(text)  # a YAML flow mapping is not always JSON
            except ValueError:
                raise json_error from None
    return parse_yaml(text)


def load_pod_file(path: str | os.PathLike[str] | Path) -> LoadedPod:
    """Read, decode, validate and default the manifest at `path`. Every failure is a SpecError naming the file."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as file:
            text = file.read()
    except UnicodeDecodeError as err:
        raise SpecError(f"not UTF-8 text (byte {err.start})", source=source) from None
    except OSError as err:
        raise SpecError(f"cannot read the manifest: {err.strerror or err}", source=source) from None
    try:
        data = parse_text(text, source)
    except ValueError as err:
        raise SpecError(str(err), source=source) from None
    if data is None:
        raise SpecError("the file is empty; expected a Pod manifest", source=source)
    return parse_pod(data, source=source)
