"""The prometheus_client Collector of the container_* series: one read of every cgroup per scrape.

collect() runs in the HTTP server's thread at each scrape: it asks the runtime for the current
targets (Runtime.metrics_targets, pyrun.runtime.metrics_source: state records and cgroup files, no
processes) and turns
them into families (pyrun.metrics.series). A scrape that fails is logged and exports nothing of
these series (prometheus_client answers 500, so Prometheus marks the target down), never half.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from pyrun.metrics import series

log = logging.getLogger("pyrun.metrics")


class ContainerCollector:
    def __init__(self, targets: Callable[[], list], clock: Callable[[], float] = time.time):
        self._targets = targets  # () -> list of pyrun.runtime.metrics_source.Target
        self._clock = clock

    def collect(self):
        targets = self._targets()
        return iter(series.families(targets, self._clock()))

    def describe(self):
        return iter(())  # registering must not scrape: the families are only known at scrape time
