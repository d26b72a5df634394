"""Finishing removals off the caller's path (the CRI server's RemoveContainer).

A removed container is gone for every caller as soon as its record is (pyrun.runtime.pod:
the pod's entry, then container.json); what is left of it (its cgroup, writable layer and
directory) is taken down here, by one worker thread, as containerd takes down a snapshot after
its metadata. Until then the pod waits for it before it is stopped or removed (wait(pod_id)), and
the server waits for all of it before it exits (close()). If the process dies first, `pyrun gc`
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
        self._pending: dict[str, list[Future]] = {}  # pod id -> its removals not known to be done
        self._lock = threading.Lock()

    def submit(self, pod_id: str, what: str, fn: Callable[[], None]) -> None:
        """Run fn on the worker; a failure is reported on stderr (the leftovers are gc's)."""
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
            self._pending.setdefault(pod_id, []).append(self._pool.submit(run))

    def wait(self, pod_id: str | None = None) -> None:
        """Until the removals of a pod (of every pod with None) are done."""
        with self._lock:
            if pod_id is None:
                futures = [f for fs in self._pending.values() for f in fs]
                self._pending.clear()
            else:
                futures = self._pending.pop(pod_id, [])
        for future in futures:
            future.result()

    def close(self) -> None:
        """Finish every removal and stop the worker."""
        self.wait()
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
