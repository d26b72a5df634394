"""Read a manifest file: JSON or YAML, detected by content (".json" files always use the JSON parser).

Parsing is bounded, because a manifest may come from anyone: the file is read up to
MAX_MANIFEST_BYTES, mappings and lists may nest MAX_NESTING levels deep, and YAML aliases may
expand to MAX_ALIAS_NODES nodes in all (an "alias bomb" of 9 levels of 9 aliases is 9**9 nodes).
Kubernetes' own YAML decoder likewise refuses excessive aliasing.
"""
from __future__ import annotations

import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # keep typing out of the import path
    from pathlib import Path
    from typing import Any

    import yaml

from pyrun.errors import SpecError
from pyrun.spec.model import LoadedPod
from pyrun.spec.pod import parse_pod

MAX_MANIFEST_BYTES = 4 * 2**20
MAX_NESTING = 100
MAX_ALIAS_NODES = 10_000


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
        data = json.loads(text, object_pairs_hook=_reject_duplicates)
    except json.JSONDecodeError as err:
        raise ValueError(f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    except RecursionError:
        raise ValueError(_too_deep()) from None
    if _nesting(data) > MAX_NESTING:
        raise ValueError(_too_deep())
    return data


def _too_deep() -> str:
    return f"lists and mappings are nested more than {MAX_NESTING} levels deep"


def _nesting(data: Any) -> int:
    """How deep lists and dicts nest in `data` (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if depth <= MAX_NESTING:  # deeper than that is refused anyway: stop counting
            stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_yaml(text: str) -> Any:
    """yaml.safe_load of exactly one document, refusing duplicate keys; errors carry line/column."""
    import yaml  # ≈ 30 ms: only when a YAML manifest is read

    loader_class = _bounded_loader()  # a new class per call: its constructors are its own

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

    loader_class.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    try:
        documents = [d for d in yaml.load_all(text, Loader=loader_class) if d is not None]
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"invalid YAML{where}: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"invalid YAML: {err}") from None
    except RecursionError:  # a safety net: _bounded_loader stops nesting long before this
        raise ValueError(_too_deep()) from None
    if len(documents) > 1:
        raise ValueError(f"contains {len(documents)} YAML documents; a pod manifest is exactly one Pod")
    return documents[0] if documents else None


def _bounded_loader() -> type[yaml.SafeLoader]:
    """A SafeLoader whose composer refuses nesting deeper than MAX_NESTING, aliases that expand to
    more than MAX_ALIAS_NODES nodes in all, and aliases of a node that is not complete yet
    (a recursive structure). Nodes are counted once, as they are composed: O(size of the text)."""
    import yaml  # already loaded by parse_yaml, its only caller

    class BoundedLoader(yaml.SafeLoader):
        def __init__(self, stream: str):
            super().__init__(stream)
            self._depth = 0
            self._alias_nodes = 0
            self._sizes: dict[int, int] = {}  # id(node) -> nodes in it with aliases expanded

        def compose_node(self, parent: Any, index: Any) -> Any:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]  # untyped in types-PyYAML
            where = f"line {mark.line + 1}, column {mark.column + 1}"
            if self.check_event(yaml.AliasEvent):
                node = super().compose_node(parent, index)
                if id(node) not in self._sizes:
                    raise ValueError(f"{where}: a YAML alias refers to a node that contains it (recursive)")
                self._alias_nodes += self._sizes[id(node)]
                if self._alias_nodes > MAX_ALIAS_NODES:
                    raise ValueError(f"{where}: YAML aliases expand to more than {MAX_ALIAS_NODES} nodes "
                                     f"(an alias bomb?)")
                return node
            self._depth += 1
            if self._depth > MAX_NESTING:
                raise ValueError(f"{where}: {_too_deep()}")
            try:
                node = super().compose_node(parent, index)
            finally:
                self._depth -= 1
            self._sizes[id(node)] = 1 + sum(self._sizes.get(id(child), 1) for child in _children(node))
            return node

    return BoundedLoader


def _children(node: Any) -> list[Any]:
    if isinstance(node.value, list):  # a sequence (nodes) or a mapping ((key, value) pairs)
        return [n for item in node.value for n in (item if isinstance(item, tuple) else (item,))]
    return []


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
    text = _read_manifest(source)
    try:
        data = parse_text(text, source)
    except ValueError as err:
        raise SpecError(str(err), source=source) from None
    if data is None:
        raise SpecError("the file is empty; expected a Pod manifest", source=source)
    return parse_pod(data, source=source)


def _read_manifest(source: str) -> str:
    """The manifest's text: at most MAX_MANIFEST_BYTES of UTF-8. Every failure is a SpecError naming the file."""
    try:
        with open(source, "rb") as file:
            raw = file.read(MAX_MANIFEST_BYTES + 1)
            if len(raw) > MAX_MANIFEST_BYTES:
                size = os.fstat(file.fileno()).st_size
                what = f"{size} bytes" if size > MAX_MANIFEST_BYTES else "more than that"
                raise SpecError(f"the manifest is {what}, larger than the {MAX_MANIFEST_BYTES // 2**20} MiB "
                                f"limit of a manifest", source=source)
    except OSError as err:
        raise SpecError(f"cannot read the manifest: {err.strerror or err}", source=source) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SpecError(f"not UTF-8 text (byte {err.start})", source=source) from None
