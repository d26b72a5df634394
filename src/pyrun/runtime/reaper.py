"""Finishing removals off the caller's path (the CRI server's RemoveContainer).

A removed container is gone for every caller as soon as its record is (pyrun.runtime.pod: its
processes are killed and its cgroup removed first, then the pod's entry and container.json go);
what is left of it (its writable layer and directory) is taken down here, by one worker thread,
in the order submitted, as containerd takes down a snapshot after its metadata. Those files are
nobody else's: only the server's exit waits for them (close()). If the process dies first,
`pyrun gc` finds a container directory no pod lists and removes it with its layer. (The cgroup is
not left here: a CRI pod's cgroup parent is the kubelet's, where nothing would find it again.)
"""
from __future__ import annotations

import _thread  # threading.Lock is _thread.allocate_lock: neither threading nor typing at import
import sys

TYPE_CHECKING = False  # (`pod ls` imports this module)
if TYPE_CHECKING:  # concurrent.futures imports logging: not at import (`pod ls` imports this module)
    from concurrent.futures import ThreadPoolExecutor
    from typing import Callable


class Reaper:
    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._lock = _thread.allocate_lock()

    def submit(self, what: str, fn: Callable[[], None]) -> None:
        """Run fn on the worker, after what was submitted before; a failure is reported on stderr (the
        leftovers are gc's)."""
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
            self._pool.submit(run)

    def close(self) -> None:
        """Finish everything submitted and stop the worker."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
