"""Apply pyrun's nftables table (thin layer over `nft -f -`, nft(8)).

The set of attached pods, their hostPorts and their owners lives in hostports.json in
the node's records directory (shared by every state root, pyrun.netns.nodestate);
every change rewrites that file and replaces the whole `table ip pyrun` in one
atomic nft transaction, both under one flock(2), so concurrent pyrun processes
apply their changes in order and the kernel never sees half a table. With no pod
left the table is deleted. A state root removes and reclaims only its own pods' entries.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from pyrun import explain
from pyrun.errors import NetworkError
from pyrun.netns import rules
from pyrun.netns.rules import PodPorts, PortMapping
from pyrun.netns.settings import NetworkSettings

STATE_FILE = "hostports.json"
LOCK_FILE = "hostports.lock"


def nft_binary() -> str | None:
    return shutil.which("nft", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def run_nft(script: str) -> None:
    """Feed a script to `nft -f -` (one atomic transaction)."""
    explain.emit(f"nft -f - <<'EOF'\n{script.rstrip()}\nEOF")
    nft = nft_binary()
    if nft is None:
        raise NetworkError("nft not found: NAT and hostPorts need nftables (apt install nftables)")
    proc = subprocess.run([nft, "-f", "-"], input=script, text=True, capture_output=True)
    if proc.returncode != 0:
        raise NetworkError(f"nft -f - failed (exit {proc.returncode}): {proc.stderr.strip()}")


def table_exists() -> bool:
    nft = nft_binary()
    if nft is None:
        return False
    proc = subprocess.run([nft, "list", "table", "ip", rules.TABLE], capture_output=True)
    return proc.returncode == 0


def set_pod(network_dir: Path, settings: NetworkSettings, pod_id: str, ip: str,
            ports: Sequence[PortMapping], owner: str | None = None) -> None:
    """Record the pod (and its hostPorts) and re-apply the table. A hostPort another pod holds
    is a NetworkError naming that pod."""
    new = PodPorts(pod_id, ip, tuple(ports), owner)
    with _state(network_dir) as pods:
        rules.check_no_clash(new, pods.values())
        pods[pod_id] = new
        _apply(settings, pods.values())


def remove_pods(network_dir: Path, settings: NetworkSettings, pod_ids: Iterable[str],
                owner: str | None = None) -> list[str]:
    """Forget these pods' rules (those that had any and are `owner`'s, or have no owner) and
    re-apply; returns the ones removed."""
    with _state(network_dir) as pods:
        gone = [p for p in pod_ids if p in pods and pods[p].owner in (None, owner)]
        for p in gone:
            del pods[p]
        if gone or (not pods and table_exists()):
            _apply(settings, pods.values())
    return gone


def reclaim(network_dir: Path, settings: NetworkSettings, live_pod_ids: Iterable[str],
            owner: str | None = None) -> list[str]:
    """Remove the rules of `owner`'s pods that are not live (owner None: of every pod)."""
    live = set(live_pod_ids)
    with _state(network_dir, write=False) as pods:
        dead = [p for p, v in pods.items() if p not in live and (owner is None or v.owner == owner)]
    return remove_pods(network_dir, settings, dead, owner)


def adopt(legacy_dir: Path, network_dir: Path, owner: str) -> list[str]:
    """Take over the pods an older pyrun recorded in a per-root hostports.json, as `owner`'s
    (the kernel already has their rules; the next change renders them with the rest)."""
    with _state(legacy_dir, write=False) as old, _state(network_dir) as pods:
        taken = [p for p in old if p not in pods]
        for p in taken:
            pods[p] = dataclasses.replace(old[p], owner=owner)
    return taken


def drop_table() -> None:
    """Remove pyrun's table (the bridge it served is gone)."""
    if table_exists():
        run_nft(rules.render_nft_delete())


def _apply(settings: NetworkSettings, pods: Iterable[PodPorts]) -> None:
    pods = sorted(pods, key=lambda p: p.pod_id)
    needed = pods and (settings.masquerade or any(p.ports for p in pods))
    if needed:
        run_nft(rules.render_nft_replace(settings.cidr, settings.bridge, pods, settings.masquerade))
    elif table_exists():
        run_nft(rules.render_nft_delete())


@contextlib.contextmanager
def _state(network_dir: Path, write: bool = True) -> Iterator[dict[str, PodPorts]]:
    network_dir = Path(network_dir)
    path = network_dir / STATE_FILE
    try:
        network_dir.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(network_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise NetworkError(f"{network_dir}: cannot open hostPort lock: {e.strerror}") from None
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        pods = _read(path)
        yield pods
        if write:
            tmp = path.with_name(f".{STATE_FILE}.{os.getpid()}")
            data = {p.pod_id: {"ip": p.ip, "ports": [m.to_json() for m in p.ports], "owner": p.owner}
                    for p in pods.values()}
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
            os.replace(tmp, path)
    finally:
        os.close(lock_fd)


def _read(path: Path) -> dict[str, PodPorts]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as e:
        raise NetworkError(f"{path}: corrupt hostPort state ({e})") from None
    return {pod: PodPorts(pod, v["ip"], tuple(rules.port_mappings(v.get("ports", []))), v.get("owner"))
            for pod, v in data.items()}
