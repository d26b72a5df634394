"""Crash recovery: remove what a killed `pyrun` left half-made.

A pod stays in state `creating` while its creator runs (and `removing` while its
remover runs); the record names that process (pid + start time). If it is gone and
the pod is still in that state, nobody will finish the job: `collect_crashed` does.
It runs at the start of `pod create` and `pod ls`, and `pyrun gc` runs it too,
together with the removal of orphaned containers and name reservations, and of
writable layers in the data root that no container of this state root owns (after
a reboot empties the state root, that is all of them). Network objects (veths,
addresses, hostPort rules) are collected only when they name this state root as
their owner; another root's pods on the same bridge are never touched
(pyrun.netns.owner).
"""
from __future__ import annotations

import contextlib
import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a CLI command's start-up)
if TYPE_CHECKING:
    from typing import Callable

from pyrun.config import Config
from pyrun.errors import NotFound, RecordError
from pyrun.runtime.records import PodRecord
from pyrun.runtime.state import POD_CREATING, POD_REMOVING, StateStore


def crashed_pods(store: StateStore, records: list[PodRecord] | None = None) -> list[str]:
    """Pods whose creator or remover died mid-way. records: the pod records already read (pod ls).
    A record this pyrun cannot read (from a newer pyrun) is not ours to collect: it is left alone."""
    known = {p.id: p for p in records or ()}
    out = []
    for pod_id in store.pod_ids():
        try:
            pod = known.get(pod_id) or store.read_pod_or_none(pod_id)
        except (RecordError, ValueError):
            continue
        if pod is None:
            # no record yet: a creator died right after mkdir (or is just starting: give it a moment)
            with contextlib.suppress(FileNotFoundError):
                import time
                if time.time() - os.stat(store.pod_dir(pod_id)).st_mtime > 30:
                    out.append(pod_id)
            continue
        if pod.state in (POD_CREATING, POD_REMOVING):
            owner = pod.creator if pod.state == POD_CREATING else pod.remover
            if owner is None or not owner.alive():
                out.append(pod_id)
    return out


def collect_crashed(cfg: Config, destroy: Callable[[str], object], records: list[PodRecord] | None = None) -> list[str]:
    """Destroy (PodRuntime.destroy, passed in: this module is below pyrun.runtime.pod) every crashed pod.
    records: the pod records the caller has read already (pod ls), so they are not read twice."""
    store = StateStore(cfg.root)
    done = []
    for pod_id in crashed_pods(store, records):
        try:
            destroy(pod_id)
        except Exception as e:  # one pod that can't be removed must not block every other command
            print(f"pyrun: warning: could not clean up crashed pod {pod_id} (pyrun gc retries): {e}",
                  file=sys.stderr)
            continue
        done.append(pod_id)
    return done


def collect_all(cfg: Config, destroy: Callable[[str], object]) -> dict:
    """`pyrun gc`: crashed pods, orphaned containers, names and writable layers, dead network allocations."""
    from pyrun.runtime import storage
    store = StateStore(cfg.root)
    report = {"pods": collect_crashed(cfg, destroy), "containers": [], "names": []}
    live_containers = set()
    for pod_id in store.pod_ids():  # a newer pyrun's record (RecordError) stops gc: its containers are not orphans
        with contextlib.suppress(NotFound, ValueError):
            live_containers.update(store.read_pod(pod_id).container_ids())
    from pyrun.runtime import container as ctr
    for cid in store.container_ids():
        if cid not in live_containers:
            ctr.destroy(store, cid)
            storage.remove_writable_layer(cfg, cid)
            report["containers"].append(cid)
    report["layers"] = storage.collect_writable_layers(cfg, store.container_ids)
    if store.names_dir.exists():
        for name in os.listdir(store.names_dir):
            target = os.readlink(store.names_dir / name)
            if not store.pod_dir(target).exists():
                os.unlink(store.names_dir / name)
                report["names"].append(name)
    from pyrun.runtime import podnet
    report["network"] = podnet.gc(cfg, set(store.pod_ids()))
    return report
