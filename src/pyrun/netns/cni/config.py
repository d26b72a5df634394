"""Which CNI network configuration to use (pure, except `read_conf_dir`).

libcni's rule, as the kubelet's runtimes apply it: files ending .conflist, .conf or
.json in the conf dir, in lexical order; the first one that is a valid network
configuration list wins (a single-plugin .conf/.json is a list of one). Files that
are not valid are skipped, and their reasons are kept so "no valid config" can say
what was wrong with each.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyrun.errors import NetworkError

EXTENSIONS = (".conflist", ".conf", ".json")
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
DEFAULT_CONF_DIR = "/etc/cni/net.d"
DEFAULT_BIN_DIRS = ("/opt/cni/bin", "/usr/lib/cni")
# a network name, and a plugin type (a binary's name, so no '/'): letters, digits, '_', '.', '-'
_IDENTIFIER = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")


@dataclass(frozen=True)
class NetworkConfigList:
    """A parsed, valid network configuration list. `raw` is the list as JSON (what is cached)."""

    name: str
    cni_version: str
    plugins: tuple[dict[str, Any], ...]
    source: str
    disable_check: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    def plugin_types(self) -> list[str]:
        return [p["type"] for p in self.plugins]


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split("."))


def has_check(version: str) -> bool:
    """CHECK exists from 0.4.0 on."""
    return version_tuple(version) >= (0, 4, 0)


def has_status(version: str) -> bool:
    """STATUS exists from 1.1.0 on."""
    return version_tuple(version) >= (1, 1, 0)


def parse_config(source: str, text: str) -> NetworkConfigList:
    """One file's text -> a NetworkConfigList; NetworkError naming the file and field if it is not valid."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise NetworkError(f"{source}: not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise NetworkError(f"{source}: must be a JSON object")
    if source.endswith(".conflist") or "plugins" in doc:
        listed = doc
    else:  # a single network configuration: a list of one plugin
        listed = {k: doc[k] for k in ("cniVersion", "name", "disableCheck") if k in doc}
        listed["plugins"] = [{k: v for k, v in doc.items() if k not in ("name", "cniVersion")}]
    return _validate_list(source, listed)


def _validate_list(source: str, doc: dict[str, Any]) -> NetworkConfigList:
    problems = []
    name = doc.get("name")
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        problems.append(f"name {name!r}: must be letters, digits, '_', '.', '-' (starting with a letter or digit)")
    version = doc.get("cniVersion")
    if version not in SUPPORTED_VERSIONS:
        problems.append(f"cniVersion {version!r}: pyrun supports {', '.join(SUPPORTED_VERSIONS)}")
    plugins = doc.get("plugins")
    if not isinstance(plugins, list) or not plugins:
        problems.append("plugins: must be a non-empty list")
        plugins = []
    for i, p in enumerate(plugins):
        if not isinstance(p, dict):
            problems.append(f"plugins[{i}]: must be an object")
        elif not isinstance(p.get("type"), str) or not _IDENTIFIER.match(p["type"]):
            problems.append(f"plugins[{i}].type {p.get('type')!r}: must name a plugin binary (no '/')")
    if problems:
        raise NetworkError(f"{source}: " + "; ".join(problems))
    return NetworkConfigList(name=str(name), cni_version=str(version), plugins=tuple(plugins), source=source,
                             disable_check=bool(doc.get("disableCheck", False)),
                             raw={**doc, "plugins": plugins})


def config_files(names: list[str]) -> list[str]:
    """The names libcni would consider, in lexical order."""
    return sorted(n for n in names if n.endswith(EXTENSIONS))


def select_config(files: list[tuple[str, str]], conf_dir: str = "") -> NetworkConfigList:
    """The first valid configuration of (file name, text) pairs, in lexical order of the names.

    NetworkError if there is none, listing why each file was skipped."""
    skipped = []
    for name, text in sorted(files):
        if not name.endswith(EXTENSIONS):
            continue
        try:
            return parse_config(os.path.join(conf_dir, name) if conf_dir else name, text)
        except NetworkError as e:
            skipped.append(str(e))
    where = conf_dir or "the CNI conf dir"
    if not skipped:
        raise NetworkError(f"no CNI network config in {where} (files ending {', '.join(EXTENSIONS)})")
    raise NetworkError(f"no valid CNI network config in {where}: " + " | ".join(skipped))


def read_conf_dir(conf_dir: str) -> list[tuple[str, str]]:
    """(name, text) of the candidate files in conf_dir (the side effect of config selection)."""
    try:
        names = config_files(os.listdir(conf_dir))
    except FileNotFoundError:
        raise NetworkError(f"CNI conf dir {conf_dir} does not exist") from None
    except OSError as e:
        raise NetworkError(f"CNI conf dir {conf_dir}: {e.strerror}") from None
    out = []
    for name in names:
        try:
            out.append((name, Path(conf_dir, name).read_text()))
        except (OSError, UnicodeDecodeError) as e:
            out.append((name, f"<unreadable: {e}>"))
    return out


def load_config(conf_dir: str) -> NetworkConfigList:
    return select_config(read_conf_dir(conf_dir), conf_dir)


def find_plugin(plugin_type: str, bin_dirs: list[str] | tuple[str, ...], exists: Any = os.path.isfile) -> str:
    """The binary for a plugin type: the first bin dir that has it (NetworkError naming the dirs if none)."""
    for d in bin_dirs:
        path = os.path.join(d, plugin_type)
        if exists(path):
            return path
    raise NetworkError(f"CNI plugin {plugin_type!r} not found in {':'.join(bin_dirs)} (--cni-bin-dir)")
