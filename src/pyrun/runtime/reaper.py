"""Finishing removals off the caller's path (the CRI server's RemoveContainer).

A removed container is gone for every caller as soon as its record is (pyrun.runtime.pod:
the pod's entry, then container.json); what is left of it (its cgroup, writable layer and
directory) is taken down here, by one worker thread, in the order submitted, as containerd
takes down a snapshot after its metadata. The pod's stop and removal wait for the cgroups
(wait_cgroups: they may remove the pod's cgroup, the parent of those); the files are nobody
else's and only the server's exit waits for them (close()). If the process dies first,
`pyrun gc` finds a container directory no pod lists and removes it with its layer; the pod's
removal takes its cgroup subtree.
"""
from __future__ import annotations

import _thread  # threading.Lock is _thread.allocate_lock: neither threading nor typing at import
import sys

TYPE_CHECKING = False  # (`pod ls` imports this module)
if TYPE_CHECKING:  # concurrent.futures imports logging: not at import (`pod ls` imports this module)
    from concurrent.futures import Future, ThreadPoolExecutor
    from typing import Callable


class Reaper:
    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._cgroups: dict[str, list[Future]] = {}  # pod id -> its cgroup removals not known to be done
        self._lock = _thread.allocate_lock()

    def submit(self, pod_id: str, what: str, fn: Callable[[], None], cgroups: bool = False) -> None:
        """Run fn on the worker, after what was submitted before; a failure is reported on stderr (the
        leftovers are gc's). cgroups: fn removes cgroups of the pod (wait_cgroups waits for it)."""
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
            future = self._pool.submit(run)
            if cgroups:
                self._cgroups.setdefault(pod_id, []).append(future)

    def wait_cgroups(self, pod_id: str) -> None:
        """Until the cgroup removals submitted for a pod are done."""
        with self._lock:
            futures = self._cgroups.pop(pod_id, [])
        for future in futures:
            future.result()

    def close(self) -> None:
        """Finish everything submitted and stop the worker."""
        with self._lock:
            pool, self._pool = self._pool, None
            self._cgroups.clear()
        if pool is not None:
            pool.shutdown(wait=True)
