"""ADD, DEL, CHECK and STATUS of a whole network configuration list (what pyrun.runtime.podnet calls).

ADD runs the plugins in order, each getting the previous one's result as prevResult; a
failure runs DEL of the whole list (plugins must tolerate DEL of what they never made)
and reports the ADD error. DEL runs them in reverse order with the cached result, from
the cached config, and removes the cache entry once every plugin succeeded, so DEL
is idempotent and works after the conf dir changed, or for a pod whose pyrun was
killed mid-ADD (`pyrun gc`).
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from pyrun.errors import NetworkError
from pyrun.netns.cni import cache, config, invoke, protocol
from pyrun.netns.cni.cache import CacheEntry
from pyrun.netns.cni.protocol import PodRef


@dataclass(frozen=True)
class CniSettings:
    """--cni-conf-dir, --cni-bin-dir (a list, searched in order), the per-plugin timeout."""

    conf_dir: str = config.DEFAULT_CONF_DIR
    bin_dirs: tuple[str, ...] = config.DEFAULT_BIN_DIRS
    timeout: float = invoke.DEFAULT_TIMEOUT
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ), compare=False)

    @classmethod
    def from_config(cls, cfg: Any) -> "CniSettings":
        values = getattr(cfg, "cni", None) or {}
        if isinstance(values, CniSettings):
            return values
        bin_dirs = values.get("bin_dirs") or config.DEFAULT_BIN_DIRS
        if isinstance(bin_dirs, str):
            bin_dirs = [d for d in bin_dirs.split(":") if d]
        return cls(conf_dir=values.get("conf_dir") or config.DEFAULT_CONF_DIR, bin_dirs=tuple(bin_dirs),
                   timeout=float(values.get("timeout") or invoke.DEFAULT_TIMEOUT))


def _call(entry: CacheEntry, plugin: Mapping, command: str, prev: dict | None, timeout: float,
          base_env: Mapping[str, str]) -> dict | None:
    net = entry.config
    path = config.find_plugin(plugin["type"], entry.bin_dirs)
    conf = protocol.plugin_config(net["name"], net["cniVersion"], plugin, entry.capability_args, prev)
    env = protocol.environment(command, entry.pod, entry.netns, entry.bin_dirs, base_env, entry.ifname)
    return invoke.run_plugin(path, plugin["type"], command, conf, env, timeout)


def _load_with_plugins(settings: CniSettings) -> config.NetworkConfigList:
    """The conf dir's first valid config, once every plugin binary it names is found (a missing
    binary fails before anything is made)."""
    net = config.load_config(settings.conf_dir)
    for t in net.plugin_types():
        config.find_plugin(t, settings.bin_dirs)
    return net


def add(root: Path, settings: CniSettings, pod: PodRef, netns: str, ports: Iterable[Mapping] = ()) -> dict:
    """Attach the pod with the first valid config of the conf dir. Returns the final result."""
    net = _load_with_plugins(settings)
    caps: dict[str, Any] = {}
    mappings = protocol.port_mappings(ports)
    if mappings:
        caps["portMappings"] = mappings
    entry = CacheEntry(config=net.raw, pod=pod, netns=netns, bin_dirs=list(settings.bin_dirs),
                       capability_args=caps)
    path = cache.write(root, entry)  # before ADD: what gc needs if we die in the middle
    prev: dict | None = None
    for i, plugin in enumerate(net.plugins):
        try:
            prev = _call(entry, plugin, "ADD", prev, settings.timeout, settings.env)
        except BaseException as e:
            _roll_back(path, settings, i, e)
            raise
        entry.result = prev
        cache.write(root, entry)  # each step's result: a DEL after a crash gets what was made so far
    return prev or {}


def _roll_back(path: Path, settings: CniSettings, failed: int, error: BaseException) -> None:
    """DEL, in reverse, of the plugins that ran ADD (up to the one that failed). A DEL failing with
    the very error its ADD failed with (a plugin that cannot read its config made nothing) counts
    as done; any other DEL failure keeps the cache entry for `pyrun gc` and is added to the error."""
    try:
        delete_entry(path, settings, upto=failed + 1, same_error_ok=_reason(error))
    except NetworkError as e:
        if isinstance(error, NetworkError):
            error.args = (f"{error.args[0]}; the rollback failed too (pyrun gc retries): {e}",)


def _reason(error: BaseException, command: str = "ADD") -> str | None:
    """The plugin's own message in a NetworkError ("CNI plugin X failed on <command>: <reason>")."""
    marker = f" failed on {command}: "
    text = str(error)
    return text.split(marker, 1)[1] if marker in text else None


def delete_entry(path: Path, settings: CniSettings, upto: int | None = None,
                 same_error_ok: str | None = None) -> bool:
    """DEL of one cache entry, plugins in reverse order (only the first `upto` of them, for a
    rollback); the entry goes once all succeeded. Every plugin is tried; the first error is
    raised after. False if there was no entry."""
    entry = cache.read(path)
    if entry is None:
        return False
    if entry.netns and not _is_netns(entry.netns):
        entry.netns = ""  # the pod's namespace is gone: plugins then only release what is outside it
    first: NetworkError | None = None
    plugins = list(entry.config.get("plugins") or [])[:upto]
    for plugin in reversed(plugins):
        try:
            _call(entry, plugin, "DEL", entry.result, settings.timeout, settings.env)
        except NetworkError as e:
            if same_error_ok is not None and plugin is plugins[-1] and _reason(e, "DEL") == same_error_ok:
                continue
            first = first or e
    if first:
        raise first
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return True


def delete(root: Path, settings: CniSettings, container_id: str) -> list[str]:
    """DEL every network the pod was attached to (by its cache entries); idempotent."""
    done = []
    for path in cache.entries_of(root, container_id):
        if delete_entry(path, settings):
            done.append(path.name)
    return done


def check(root: Path, settings: CniSettings, container_id: str) -> list[str]:
    """CHECK (0.4.0 and later, unless the list says disableCheck) with the cached result.
    Returns the networks checked; NetworkError naming the plugin if one reports a problem."""
    checked = []
    for path in cache.entries_of(root, container_id):
        entry = cache.read(path)
        if entry is None or entry.result is None:
            raise NetworkError(f"pod sandbox {container_id}: no CNI result cached in {path} (ADD never finished)")
        net = entry.config
        if not config.has_check(net["cniVersion"]) or net.get("disableCheck"):
            continue
        for plugin in net.get("plugins") or []:
            _call(entry, plugin, "CHECK", entry.result, settings.timeout, settings.env)
        checked.append(net["name"])
    return checked


def status(settings: CniSettings) -> config.NetworkConfigList:
    """Is the network ready for pods? The config is valid, every plugin binary is there, and (1.1.0
    and later) each plugin's STATUS succeeds. Returns the config; NetworkError says why not."""
    net = _load_with_plugins(settings)
    if config.has_status(net.cni_version):
        entry = CacheEntry(config=net.raw, pod=PodRef("", "", "", ""), netns="", bin_dirs=list(settings.bin_dirs),
                           capability_args={})
        for plugin in net.plugins:
            _call(entry, plugin, "STATUS", None, settings.timeout, settings.env)
    return net


def gc(root: Path, settings: CniSettings, live_container_ids: Iterable[str]) -> list[str]:
    """DEL, with its cached config, every cache entry whose pod no longer exists (killed mid-ADD,
    or removed while a DEL failed). Returns the entries removed."""
    live = set(live_container_ids)
    removed = []
    for path in cache.all_entries(root):
        entry = cache.read(path)
        if entry is None or entry.pod.container_id in live:
            continue
        try:
            if delete_entry(path, settings):
                removed.append(path.name)
        except NetworkError as e:
            import sys
            print(f"pyrun: warning: CNI DEL of {path.name} failed (gc retries): {e}", file=sys.stderr)
    return removed


def _is_netns(path: str) -> bool:
    """A pinned network namespace is still there: the path is on nsfs (the bind mount), not the
    empty file under it."""
    try:
        return os.stat(path).st_dev == os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return False
