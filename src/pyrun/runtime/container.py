"""One container of a pod: its directories, its init config, its monitor.

  <data_root>/containers/<id>/upper, work   the overlay's writable layer (kept after exit, for
                                 inspection; pyrun.runtime.storage makes and removes it)
  containers/<id>/rootfs         mount point of the overlay inside the container's mount namespace
  containers/<id>/config.json    what the init needs (namespaces, rootfs, mounts, process, cgroups)
  containers/<id>/container.json the record (CLI/CRI), status.json + exit.json (the monitor)
"""
from __future__ import annotations

import _thread  # threading.Lock is _thread.allocate_lock; importing threading costs the CLI
from pathlib import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a CLI command's start-up)
if TYPE_CHECKING:
    from typing import Mapping, Sequence

from pyrun.errors import ContainerStartError, InvalidState
from pyrun.frozen import replace
from pyrun.runtime import faults, state
from pyrun.linux.procs import ProcessRef, kill_now, wait_reaped
from pyrun.runtime.records import (ContainerRecord, ContainerStatus, DeviceNode, InitConfig, MountSpec, ProcessSpec,
                                   RootfsSpec, SecurityPlan, StepError, Supervision)
from pyrun.runtime.state import CONTAINER_CREATED, CONTAINER_EXITED, StateStore, now_ns, read_status


def init_config(*, cid: str, name: str, pod_id: str, cdir: Path, writable: Path, lower: list[str],
                namespaces: Mapping[str, str | None], mounts: Sequence[Mapping | MountSpec], process: ProcessSpec,
                capabilities: Sequence[str], cgroup_procs: Sequence[str], oom_events: str | None, log_path: str,
                security: SecurityPlan | None = None, devices: Sequence[DeviceNode] = (),
                supervision: Supervision | None = None, tty: bool = False, stdin: bool = False,
                stdin_once: bool = False) -> InitConfig:
    """The document the monitor and init read (pure). mounts: {source, destination, readonly}."""
    return InitConfig(
        id=cid, name=name, pod_id=pod_id, namespaces=dict(namespaces),
        rootfs=RootfsSpec(lower=tuple(lower), upper=str(writable / "upper"), work=str(writable / "work"),
                          target=str(cdir / "rootfs")),
        mounts=tuple(m if isinstance(m, MountSpec) else MountSpec.from_dict(m) for m in mounts), process=process, capabilities=tuple(capabilities),
        cgroup_procs=tuple(cgroup_procs), oom_events=oom_events, log_path=log_path,
        security=security, devices=tuple(devices), supervision=supervision, tty=tty, stdin=stdin,
        stdin_once=stdin and stdin_once)


def make_dirs(cdir: Path) -> None:
    """The state side of a container: the rootfs mount point (the writable layer is in the data root)."""
    (cdir / "rootfs").mkdir(parents=True, exist_ok=True)


def spawn_monitor(cdir: Path, timeout: float = 180.0) -> ProcessRef:
    """Start the container's monitor; return the init process once it is set up (created)."""
    return begin_monitor(cdir).wait(timeout)


class Launch:
    """A container's monitor, started, while its init sets up (namespaces, mounts, pivot_root, user):
    wait() returns the init once it is ready, or raises ContainerStartError naming the step that failed
    (the monitor has then recorded the container exited, reason StartError). Any thread may wait; the
    first one reads the monitor's answer, the others get the same outcome."""

    def __init__(self, cdir: Path, proc, sock):
        self.cdir = cdir
        self._proc = proc
        self._sock = sock
        self._lock = _thread.allocate_lock()
        self._outcome: ProcessRef | Exception | None = None

    def wait(self, timeout: float = 180.0) -> ProcessRef:
        with self._lock:
            if self._outcome is None:
                try:
                    self._outcome = self._ready(timeout)
                except Exception as e:  # noqa: BLE001 - kept for every waiter; raised below
                    self._outcome = e
        if isinstance(self._outcome, Exception):
            raise self._outcome
        return self._outcome

    def finished(self) -> bool:
        """Whether a wait() has the outcome (the monitor has written monitor.json by then, or never will)."""
        return self._outcome is not None

    def _ready(self, timeout: float) -> ProcessRef:
        from pyrun.runtime import sync
        try:
            self._proc.wait()
            msg = sync.recv(self._sock, "ready", timeout=timeout, peer="container monitor")
        except sync.StepFailed as e:
            raise ContainerStartError(_name(self.cdir), e.step, e.message) from None
        finally:
            self._sock.close()
        return ProcessRef(msg["pid"], msg["start_time"])


def begin_monitor(cdir: Path) -> Launch:
    """Start the container's monitor and return without waiting for its init to be set up."""
    faults.check("spawn-monitor")
    from pyrun.runtime import spawn  # here, not at import: `pod ls` reads state and forks nothing
    cdir = cdir.absolute()  # the monitor runs from / (spawn.become)
    job = spawn.Job("monitor", {"cdir": str(cdir)}, title=f"pyrun-monitor {cdir}", log=str(cdir / "monitor.log"),
                    detach=True)
    proc, parent = spawn.spawn_synced(job, wait_started=False)  # the zygote's fork: Launch.wait() reads it
    return Launch(cdir, proc, parent)


def _name(cdir: Path) -> str:
    try:
        return state.read_config(cdir).name
    except (OSError, ValueError, state.RecordError):
        return "?"


def start(cdir: Path, name: str) -> int:
    """Release a created container: its init execs the workload. Returns the workload pid."""
    faults.check("start-container")
    from pyrun.runtime import sync
    from pyrun.runtime.monitor import request
    try:
        reply = request(cdir, "start", timeout=40)
    except sync.StepFailed as e:
        raise ContainerStartError(name, e.step, e.message) from None
    return reply["pid"]


def processes(store: StateStore, cid: str) -> tuple[ProcessRef | None, ProcessRef | None]:
    """(init/workload, monitor) of a container, from the monitor's files."""
    cdir = store.container_dir(cid)
    return read_status(cdir).workload, state.read_monitor(cdir)


def destroy(store: StateStore, cid: str) -> None:
    """Kill whatever is left of a container and remove its directory (idempotent)."""
    kill(store, cid)
    remove_dir(store, cid)


def kill(store: StateStore, cid: str) -> None:
    """SIGKILL the container's workload and monitor, if they still run (idempotent). A supervising
    monitor is told to stop first, so that it does not restart the workload it sees killed."""
    if not store.container_dir(cid).exists():
        return
    request_stop(store.container_dir(cid), 0, kill=True)
    kill_workload_then_monitor(*processes(store, cid))


def supervised(cdir: Path) -> bool:
    """Whether the container's monitor restarts, probes or runs hooks (a `pod create` pod's)."""
    try:
        return state.read_config(cdir).supervision is not None
    except (OSError, ValueError, state.RecordError):
        return False


STOP_REPLY_TIMEOUT = 35.0


def request_stop(cdir: Path, grace: float, kill: bool = False) -> bool:
    """Ask a supervising monitor to stop its container: no more restarts; preStop, then SIGTERM, then
    SIGKILL at the end of `grace` (the monitor does it). kill: no preStop (a running one is cut short),
    SIGKILL at once. False if it is not supervising or not there."""
    if not supervised(cdir):
        return False
    from pyrun.errors import PyrunError
    from pyrun.runtime import sync
    from pyrun.runtime.monitor import request
    try:
        if kill:
            request(cdir, "kill", timeout=5)
        else:
            # while the monitor starts the next instance (its Python half, usually a second or two)
            # nobody reads ctl.sock: the request waits in its backlog for the C monitor taking over
            request(cdir, "stop", timeout=STOP_REPLY_TIMEOUT, grace=max(0, int(grace)))
    except (PyrunError, sync.SyncError, OSError):
        return False
    return True


def remove_dir(store: StateStore, cid: str) -> None:
    """Unmount what is under the container's directory and remove it (idempotent)."""
    cdir = store.container_dir(cid)
    if not cdir.exists():
        return
    from pyrun.linux.mounts import unmount_under
    from pyrun.linux.tree import remove_tree
    unmount_under(cdir)
    remove_tree(cdir)  # iterative: the writable layer may be any depth; errors propagate (rm/gc retry)


def kill_workload_then_monitor(init: ProcessRef | None, monitor: ProcessRef | None,
                               reap_timeout: float = 1.0) -> None:
    """SIGKILL the workload, let its monitor reap it, then SIGKILL the monitor.

    Killed together, the workload's zombie is re-parented to the host's init (the monitor is
    outside the pod's PID namespace), and the pod's PID namespace cannot finish dying (pause,
    its PID 1, cannot exit) until that init reaps it: seconds on a host whose PID 1 reaps lazily."""
    if init:
        kill_now([init])
        if monitor:
            wait_reaped(init, reap_timeout)
    if monitor:
        kill_now([monitor])


def record_lost_exit(store: StateStore, cid: str) -> bool:
    """After a stop killed what was left of a container whose monitor had died, record the exit
    the monitor could not (exit code unknown: 255, as containerd says; reason MonitorGone), so the
    container reads exited from then on. Only with the monitor dead: exit.json has one writer at a time."""
    from pyrun.runtime.status import MONITOR_GONE
    cdir = store.container_dir(cid)
    if not cdir.is_dir() or read_status(cdir).state == CONTAINER_EXITED:
        return False
    monitor = state.read_monitor(cdir)  # the status was just read: only the monitor's file
    if monitor is not None and monitor.alive():
        return False
    state.write_exit(cdir, ContainerStatus(
        state=CONTAINER_EXITED, exit_code=255, reason=MONITOR_GONE, finished_at=now_ns(),
        error=StepError("monitor", "the container's monitor died; its exit code is unknown")))
    return True


def state_of(store: StateStore, cid: str, launching: bool = False) -> ContainerRecord:
    """The container status, corrected when the monitor died without recording an exit. launching: its
    monitor is still being started (by the caller's process), so no monitor.json yet is no monitor yet."""
    from pyrun.runtime.status import container_status
    rec = store.read_container(cid)
    monitor_alive = True
    if rec.status.state != CONTAINER_EXITED:  # the status was read with the record: only the monitor's file
        monitor = state.read_monitor(store.container_dir(cid))
        monitor_alive = launching if monitor is None else monitor.alive()
    status = container_status(rec.status, monitor_alive)
    return rec if status is rec.status else replace(rec, status=status)


def require_created(rec: ContainerRecord) -> None:
    if rec.status.state != CONTAINER_CREATED:
        raise InvalidState(f"container {rec.name} is {rec.status.state}, not created")


def write_config(cdir: Path, config: InitConfig) -> None:
    """Write the init's config.json (read by the monitor and the init)."""
    state.write_config(cdir, config)
