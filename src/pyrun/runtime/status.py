"""What a pod and its containers are, as `pod ls`, `pod inspect` and the CRI report it.

Pure: functions of the records on disk and the liveness facts the caller gathered
(is the pause process alive, is each container's monitor alive). The caller does
the I/O (`observe` in pyrun.runtime.pod); nothing here reads a file or a process.

The STATUS column follows kubectl's rules (printPod in kubectl's printers):
  * pyrun's own pod states first: Creating, Removing, Stopped;
  * a running pod whose pause process is gone is NotReady (the CRI: SANDBOX_NOTREADY);
  * otherwise start from Running and walk the containers from the last to the first:
    a container that is not running sets the reason (its exit reason: Completed,
    Error, OOMKilled, StartError, ...; MonitorGone for an unknown one; Pending for
    one created but not started), so the first such container in the pod wins;
  * Completed while another container still runs reads NotReady (kubectl: the pod
    has no Ready condition then).
"""
from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a CLI command's start-up)
if TYPE_CHECKING:
    from typing import Sequence

from pyrun.frozen import Frozen, replace
from pyrun.runtime.records import ContainerRecord, ContainerStatus, PodRecord

from pyrun.runtime.state import (CONTAINER_CREATED, CONTAINER_EXITED, CONTAINER_RUNNING, CONTAINER_UNKNOWN,
                                 CONTAINER_WAITING,
                                 POD_CREATING, POD_REMOVING, POD_RUNNING, POD_STOPPED)

MONITOR_GONE = "MonitorGone"

_POD_STATES = {POD_CREATING: "Creating", POD_REMOVING: "Removing", POD_STOPPED: "Stopped"}


class PodStatus(Frozen):
    status: str              # kubectl-style STATUS: Running, NotReady, Completed, Error, OOMKilled, Stopped, ...
    sandbox_ready: bool      # the CRI's SANDBOX_READY: the pod runs and its pause process is alive
    ready: int               # containers running and ready (a readiness probe passing, if they have one)
    total: int               # containers
    ip: str | None           # the pod's address while it holds one (never after stop)

    def to_dict(self) -> dict:
        return {"status": self.status, "sandbox_ready": self.sandbox_ready, "ready": f"{self.ready}/{self.total}",
                "ip": self.ip}


def container_status(status: ContainerStatus, monitor_alive: bool) -> ContainerStatus:
    """A container's status as reported: one that has not exited but whose monitor is gone is
    unknown (reason MonitorGone): nothing records its exit or copies its output any more."""
    if status.state != CONTAINER_EXITED and not monitor_alive:
        return replace(status, state=CONTAINER_UNKNOWN, reason=MONITOR_GONE)
    return status


def container_ready(status: ContainerStatus) -> bool:
    """Running, and ready as its monitor says (readiness and startup probes, postStart) when supervised."""
    return status.state == CONTAINER_RUNNING and status.ready is not False


def container_reason(status: ContainerStatus) -> str | None:
    """What a container that is not running contributes to the pod's STATUS (None while it runs)."""
    state = status.state
    if state == CONTAINER_RUNNING:
        return None
    if state == CONTAINER_EXITED:
        if status.reason:
            return str(status.reason)
        code = status.exit_code or 0
        return f"Signal:{code - 128}" if status.signal and code > 128 else f"ExitCode:{code}"
    if state == CONTAINER_CREATED:
        return "Pending"
    return str(status.reason or "Unknown")


def pod_ip(pod: PodRecord) -> str | None:
    """The pod's address while the pod holds it: a stopped (or removing) pod gave it back."""
    if pod.state not in (POD_RUNNING, POD_CREATING):
        return None
    return pod.ip or None


def pod_status(pod: PodRecord, containers: Sequence[ContainerRecord], pause_alive: bool) -> PodStatus:
    """The pod's status from its record, its containers' records (each with a status as
    `container_status` made it, in the pod's order) and whether its pause process lives."""
    statuses = [c.status for c in containers]
    ready = sum(1 for s in statuses if container_ready(s))
    state = pod.state
    sandbox_ready = state == POD_RUNNING and pause_alive
    if state in _POD_STATES:
        status = _POD_STATES[state]
    elif not sandbox_ready:
        status = "NotReady"
    else:
        status = _kubectl_reason(statuses)
    return PodStatus(status=status, sandbox_ready=sandbox_ready, ready=ready, total=len(statuses), ip=pod_ip(pod))


def _kubectl_reason(statuses: Sequence[ContainerStatus]) -> str:
    reason, has_running = "Running", False
    for s in reversed(statuses):
        why = container_reason(s)
        if why is not None:
            reason = why
        else:
            has_running = True
    if reason == "Completed" and has_running:
        reason = "NotReady"
    return reason


def require_running(name: str, status: ContainerStatus) -> None:
    """The one "container must be running" check (exec, attach, reopen-log): InvalidState otherwise."""
    from pyrun.errors import InvalidState
    if status.state != CONTAINER_RUNNING:
        raise InvalidState(f"container {name} is {status.state or 'unknown'}, not running")


def may_still_write(status: ContainerStatus) -> bool:
    """Whether a container can still add to its log: created or running (a log follower waits)."""
    return status.state in (CONTAINER_CREATED, CONTAINER_RUNNING, CONTAINER_WAITING)
