"""pyrun's own metrics: how long create, start, stop, exec (and remove) take, and how often they fail.

  pyrun_operation_duration_seconds{operation, method}     histogram
  pyrun_operation_errors_total{operation, method, code}   counter (code: the gRPC status name)

The CRI server observes every RPC in one place (pyrun.cri.server's wrapper around each handler);
only the methods in OPERATIONS are counted. Exec's latency is handing out the streaming URL (the
session itself runs on the streaming server); ExecSync's is the whole command. The CLI's
`pyrun metrics serve` has none of these series: the CLI's operations run in other, short-lived
processes.
"""
from __future__ import annotations

OPERATIONS = {
    "RunPodSandbox": "create", "CreateContainer": "create",
    "StartContainer": "start",
    "StopPodSandbox": "stop", "StopContainer": "stop",
    "ExecSync": "exec", "Exec": "exec",
    "RemovePodSandbox": "remove", "RemoveContainer": "remove",
}

# Pod and container operations take from milliseconds (stop of an exited container) to the grace period.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def operation_of(method: str) -> str | None:
    """The operation a CRI method belongs to, None for the ones not measured (pure)."""
    return OPERATIONS.get(method)


class OperationMetrics:
    """The histogram and the error counter, registered in `registry`."""

    def __init__(self, registry):
        from prometheus_client import Counter, Histogram
        self.duration = Histogram("pyrun_operation_duration_seconds", "Latency of pyrun operations (CRI RPCs).",
                                  ["operation", "method"], buckets=BUCKETS, registry=registry)
        self.errors = Counter("pyrun_operation_errors_total", "Failed pyrun operations by gRPC status code.",
                              ["operation", "method", "code"], registry=registry)

    def observe(self, method: str, seconds: float, code: str) -> None:
        """Record one call of `method` that took `seconds` and ended with status `code` ("OK" or an error)."""
        operation = operation_of(method)
        if operation is None:
            return
        self.duration.labels(operation, method).observe(seconds)
        if code != "OK":
            self.errors.labels(operation, method, code).inc()
