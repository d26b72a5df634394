"""On-disk state: atomic JSON records, per-pod locks, name reservations, state transitions.

Layout under the state root (Config.root):
  pods/<pod-id>/pod.json         the pod record (written by the CLI/CRI under the pod lock)
  pods/<pod-id>/lock             flock(2) target serialising changes to one pod
  pods/<pod-id>/ns/{net,ipc,uts,pid}   pinned namespaces (bind mounts of /proc/<pause>/ns/*)
  pods/<pod-id>/sandbox.json     written by the sandbox launcher: the pause process
  names/<namespace>_<name>       symlink -> pod id: the name reservation (symlink(2) is atomic)
  containers/<id>/container.json the container record (CLI/CRI)
  containers/<id>/status.json    written only by the Python monitor (pid, start time, state, ...)
  containers/<id>/exit.json      written only by the C monitor when the workload exits (state
                                 exited, exit code, reason); its fields win over status.json.
                                 If the monitor died, the stop that killed what was left writes
                                 it instead (reason MonitorGone): one writer at a time

Every file holds one typed record of pyrun.runtime.records (versioned JSON; exit.json keeps
the C monitor's unversioned format). This module and records.py are the only code that
touches the JSON: everything else reads and writes records through the functions below.

Each file has one writer, and every write is a temp file + rename(2), so a reader
never sees half a record and a killed writer never leaves one. Writes are not fsync'ed,
except at the commit point of an operation (`sync=True`: the last write of a create or a
stop), which syncs the file and its directory: one fsync per operation instead of one per
record, as containerd commits one bolt transaction. A killed process still leaves whole
records for gc either way; the sync only matters when the machine itself goes down.
"""
from __future__ import annotations

import _thread
import contextlib
import fcntl
import json
import os
import time
from pathlib import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a CLI command's start-up)
if TYPE_CHECKING:
    from typing import Any, Iterator

from pyrun.frozen import replace
from pyrun.linux.procs import ProcessRef
from pyrun.linux.tree import fsync_dir
from pyrun.errors import AlreadyExists, InvalidState, NotFound, naming
from pyrun.errors import RecordError  # noqa: F401 (re-exported: what a record from a newer pyrun raises)
from pyrun.runtime.records import (ContainerRecord, ContainerStatus, InitConfig, PodRecord, SandboxInfo, decode,
                                   encode)

STATE_ROOT = "the state root (--root)"

# Pod states and the transitions allowed between them.
POD_CREATING = "creating"
POD_RUNNING = "running"
POD_STOPPED = "stopped"
POD_REMOVING = "removing"
POD_TRANSITIONS = {
    POD_CREATING: {POD_RUNNING, POD_REMOVING, POD_STOPPED},
    POD_RUNNING: {POD_STOPPED, POD_REMOVING},
    POD_STOPPED: {POD_STOPPED, POD_REMOVING, POD_RUNNING},
    POD_REMOVING: {POD_REMOVING},
}

# Container states (the CRI's: CREATED, RUNNING, EXITED, UNKNOWN).
CONTAINER_CREATED = "created"
CONTAINER_RUNNING = "running"
CONTAINER_EXITED = "exited"
CONTAINER_UNKNOWN = "unknown"
CONTAINER_WAITING = "waiting"  # a supervised container between two instances (restart back-off)
CONTAINER_TRANSITIONS = {
    CONTAINER_CREATED: {CONTAINER_RUNNING, CONTAINER_EXITED},
    CONTAINER_RUNNING: {CONTAINER_EXITED},
    CONTAINER_EXITED: set(),
    CONTAINER_UNKNOWN: {CONTAINER_EXITED},
}


def check_transition(table: dict[str, set[str]], current: str, new: str, what: str) -> None:
    """Raise InvalidState unless current -> new is allowed (pure)."""
    if new not in table.get(current, set()):
        raise InvalidState(f"{what} is {current}; it cannot become {new}")


def new_id() -> str:
    """A 64-hex-digit id, like containerd's."""
    return os.urandom(32).hex()  # what secrets.token_hex does, without importing hashlib and random


def now_ns() -> int:
    return time.time_ns()


# --- atomic files --------------------------------------------------------------------------------

def write_json(path: Path, data: Any, *, sync: bool = False) -> None:
    """Write JSON atomically: temp file in the same directory, rename(2).

    sync: the commit point of an operation; fsync the file before the rename and the
    directory after it, so the record survives a power loss.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{_thread.get_ident()}.tmp")  # unique per thread (CRI server)
    with open(tmp, "w") as f:
        f.write(json.dumps(data, sort_keys=True) + "\n")  # one line: the C encoder (indent= is pure Python)
        if sync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if sync:
        fsync_dir(path.parent)


def read_json(path: str | os.PathLike) -> Any:
    with open(path, "rb") as f:
        return json.loads(f.read())


def read_json_or(path: str | os.PathLike, default: Any) -> Any:
    try:
        return read_json(path)
    except FileNotFoundError:
        return default


@contextlib.contextmanager
def locked(path: Path, shared: bool = False) -> Iterator[None]:
    """Hold flock(2) on `path` (created if missing) for the duration of the block."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


EXIT_FILE = "exit.json"
SUPERVISION_FILE = "sup.json"
STATUS_FILE = "status.json"
CONFIG_FILE = "config.json"
MONITOR_FILE = "monitor.json"
SANDBOX_FILE = "sandbox.json"


def _read_record(cls, path: str | os.PathLike):
    """The record in `path` (FileNotFoundError if there is none; RecordError names the file)."""
    return decode(cls, read_json(path), str(path))


def read_status(cdir: Path) -> ContainerStatus:
    """A container's status: status.json, with sup.json (a supervising C monitor's restarts, back-off and
    probes) and exit.json (the C monitor's exit record) merged over it, in that order."""
    try:
        status = _read_record(ContainerStatus, os.path.join(cdir, STATUS_FILE))  # not Path's /: pod ls reads many
    except FileNotFoundError:
        status = ContainerStatus()
    for name in (SUPERVISION_FILE, EXIT_FILE):
        doc = read_json_or(os.path.join(cdir, name), None)  # not Path's /: pod ls reads many
        if isinstance(doc, dict):
            status = status.merged(doc)
    return status


def write_status(cdir: Path, status: ContainerStatus) -> None:
    """status.json: written only by the Python monitor."""
    write_json(cdir / STATUS_FILE, encode(status))


def write_exit(cdir: Path, status: ContainerStatus) -> None:
    """exit.json, in the C monitor's format (unversioned: csrc/monitor.c writes it too)."""
    write_json(cdir / EXIT_FILE, status.to_dict())


def read_config(cdir: Path) -> InitConfig:
    """A container's config.json (FileNotFoundError if it has none yet)."""
    return _read_record(InitConfig, cdir / CONFIG_FILE)


def write_config(cdir: Path, config: InitConfig) -> None:
    write_json(cdir / CONFIG_FILE, encode(config))


def read_monitor(cdir: Path) -> ProcessRef | None:
    """The container's monitor process (monitor.json: {pid, start_time}), if it wrote one."""
    return ProcessRef.from_dict(read_json_or(os.path.join(cdir, MONITOR_FILE), None))


def write_monitor(cdir: Path, ref: ProcessRef) -> None:
    write_json(cdir / MONITOR_FILE, ref.to_dict())


def read_sandbox(pod_dir: Path) -> SandboxInfo | None:
    """sandbox.json, written by the sandbox launcher once pause runs; None before that."""
    try:
        return _read_record(SandboxInfo, pod_dir / SANDBOX_FILE)
    except FileNotFoundError:
        return None


def write_sandbox(pod_dir: Path, info: SandboxInfo) -> None:
    write_json(pod_dir / SANDBOX_FILE, encode(info))


# --- the store -----------------------------------------------------------------------------------

class StateStore:
    """Pod and container records under one state root."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.pods_dir = self.root / "pods"
        self.containers_dir = self.root / "containers"
        self.names_dir = self.root / "names"

    def ensure(self) -> None:
        with naming("mkdir", self.root, STATE_ROOT):
            for d in (self.root, self.pods_dir, self.containers_dir, self.names_dir):
                d.mkdir(mode=0o711, parents=True, exist_ok=True)

    # pods
    def pod_dir(self, pod_id: str) -> Path:
        return self.pods_dir / pod_id

    def pod_lock(self, pod_id: str) -> contextlib.AbstractContextManager:
        return locked(self.pod_dir(pod_id) / "lock")

    def pod_ids(self) -> list[str]:
        try:
            with naming("scandir", self.pods_dir, STATE_ROOT):
                return sorted(p.name for p in self.pods_dir.iterdir() if p.is_dir())
        except FileNotFoundError:
            return []

    def read_pod(self, pod_id: str) -> PodRecord:
        try:
            return _read_record(PodRecord, os.path.join(self.pods_dir, pod_id, "pod.json"))
        except FileNotFoundError:
            raise NotFound(f"pod {pod_id[:12]} not found") from None

    def read_pod_or_none(self, pod_id: str) -> PodRecord | None:
        """The pod's record; None while it has none (a creator just made its directory)."""
        try:
            return self.read_pod(pod_id)
        except NotFound:
            return None

    def write_pod(self, pod: PodRecord, *, sync: bool = False) -> None:
        write_json(self.pod_dir(pod.id) / "pod.json", encode(pod), sync=sync)

    def pods(self) -> list[PodRecord]:
        out = []
        for pid in self.pod_ids():
            try:
                out.append(self.read_pod(pid))
            except (NotFound, ValueError):
                continue  # a pod dir without a record yet (creating) or being removed
        return out

    def find_pod(self, ref: str) -> PodRecord:
        """Find a pod by name, namespace/name, full id or unique id prefix."""
        if "/" in ref:
            ns, name = ref.split("/", 1)
        else:
            ns, name = "default", ref
        target = self._name_target(ns, name)
        if target:
            with contextlib.suppress(NotFound):
                return self.read_pod(target)
        matches = [p for p in self.pod_ids() if p.startswith(ref)] if len(ref) >= 4 else []
        if len(matches) == 1:
            return self.read_pod(matches[0])
        if len(matches) > 1:
            raise NotFound(f"pod id prefix {ref!r} is ambiguous ({len(matches)} pods)")
        raise NotFound(f"pod {ref!r} not found")

    # names
    def _name_path(self, namespace: str, name: str) -> Path:
        """names/<namespace>_<name>; a key longer than a file name may be (a 253-character pod name in a
        long namespace) becomes sha256-<hex of the whole key>, still one file per name."""
        key = f"{namespace}_{name}"
        if len(key.encode()) > 255:
            import hashlib
            key = "sha256-" + hashlib.sha256(key.encode()).hexdigest()
        return self.names_dir / key

    def _name_target(self, namespace: str, name: str) -> str | None:
        try:
            return os.readlink(self._name_path(namespace, name))
        except (FileNotFoundError, OSError):
            return None

    def reserve_name(self, namespace: str, name: str, pod_id: str) -> None:
        """Reserve namespace/name for pod_id; AlreadyExists if another pod holds it."""
        try:
            os.symlink(pod_id, self._name_path(namespace, name))
        except FileExistsError:
            holder = self._name_target(namespace, name) or "?"
            raise AlreadyExists(f"pod {namespace}/{name} already exists (id {holder[:12]})") from None

    def release_name(self, namespace: str, name: str, pod_id: str) -> None:
        """Release the reservation if (and only if) pod_id holds it."""
        if self._name_target(namespace, name) == pod_id:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._name_path(namespace, name))

    def name_holder(self, namespace: str, name: str) -> str | None:
        return self._name_target(namespace, name)

    # containers
    def container_dir(self, cid: str) -> Path:
        return self.containers_dir / cid

    def read_container(self, cid: str) -> ContainerRecord:
        """The container record with the monitor's status (ContainerRecord.status)."""
        d = self.container_dir(cid)
        try:
            rec = _read_record(ContainerRecord, os.path.join(d, "container.json"))
        except FileNotFoundError:
            raise NotFound(f"container {cid[:12]} not found") from None
        return replace(rec, status=read_status(d))

    def write_container(self, rec: ContainerRecord, *, sync: bool = False) -> None:
        """container.json (the status is the monitor's: it is not written here)."""
        write_json(self.container_dir(rec.id) / "container.json", encode(rec), sync=sync)

    def forget_container(self, cid: str) -> None:
        """Remove container.json: the container reads NotFound from now on (its directory may stay a
        while: pyrun.runtime.reaper removes it, or gc does)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.container_dir(cid) / "container.json")

    def container_ids(self) -> list[str]:
        try:
            return sorted(p.name for p in self.containers_dir.iterdir() if p.is_dir())
        except FileNotFoundError:
            return []
