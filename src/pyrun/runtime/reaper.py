"""Finishing removals off the caller's path (the CRI server's RemoveContainer).

A removed container is gone for every caller as soon as its record is (pyrun.runtime.pod:
the pod's entry, then container.json); what is left of it (its cgroup, writable layer and
directory) is taken down here, by one worker thread, as containerd takes down a snapshot after
its metadata. The pod's stop waits for the cgroups (wait(pod_id, cgroups_only=True): the stop may
remove the pod's), its removal for everything (wait(pod_id)), and the server for all of it before it
exits (close()). If the process dies first, `pyrun gc`
finds a container directory no pod lists and removes it with its layer; the pod's removal
takes its cgroup subtree.
"""
from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # concurrent.futures imports logging: not at import (`pod ls` imports this module)
    from concurrent.futures import Future, ThreadPoolExecutor


class Reaper:
    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        # pod id -> its removals not known to be done: (future, whether it removes cgroups)
        self._pending: dict[str, list[tuple[Future, bool]]] = {}
        self._lock = threading.Lock()

    def submit(self, pod_id: str, what: str, fn: Callable[[], None], cgroups: bool = False) -> None:
        """Run fn on the worker (in the order submitted); a failure is reported on stderr (the leftovers
        are gc's). cgroups: fn removes cgroups (what a pod's stop waits for)."""
        def run() -> None:
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - nobody waits for the answer: say it
                print(f"pyrun: warning: could not finish removing {what} ({e}); pyrun gc removes what is left",
                      file=sys.stderr, flush=True)
        from concurrent.futures import ThreadPoolExecutor
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pyrun-reaper")
            self._pending.setdefault(pod_id, []).append((self._pool.submit(run), cgroups))

    def wait(self, pod_id: str | None = None, cgroups_only: bool = False) -> None:
        """Until the removals of a pod (of every pod with None) are done; cgroups_only: those that
        remove cgroups (and, one worker doing them in order, what was submitted before them)."""
        with self._lock:
            if pod_id is None:
                jobs = [j for js in self._pending.values() for j in js]
                self._pending.clear()
            elif cgroups_only:
                jobs = [j for j in self._pending.get(pod_id, []) if j[1]]
            else:
                jobs = self._pending.pop(pod_id, [])
        for future, _ in jobs:
            future.result()

    def close(self) -> None:
        """Finish every removal and stop the worker."""
        self.wait()
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
