"""The node's network records, shared by every state root that uses the same bridge.

Address allocations and hostPort rules describe the bridge, not a state root: two
roots attaching pods to `pyrun0` in one network namespace must see each other's
addresses. So they live in one directory per (network namespace, bridge):

    <base>/<netns inode>-<bridge>/lock            flock(2): held across attach, detach, gc
                                  ipam.json       pyrun.netns.ipam (each record names its owner)
                                  hostports.json  pyrun.netns.nat  (each pod names its owner)

<base> is /run/pyrun-net (tmpfs, like the bridge it describes it dies with the
machine), or `network.state_dir` in the config, or $PYRUN_NET_STATE_DIR. The
namespace is named by the inode number of /proc/thread-self/ns/net, unique among
live namespaces; the kernel reuses the number once a namespace is gone, so records
found when pyrun has to create the bridge are from a former bridge and are dropped.

The directory lives exactly as long as the bridge: whoever removes the bridge
(nothing attached any more) removes the directory too, lock file included. A
process that waited on the lock of a removed directory notices (the path no
longer names the inode it locked) and starts over.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

from pyrun.errors import NetworkError
from pyrun.netns.settings import NetworkSettings

DEFAULT_BASE = Path("/run/pyrun-net")
ENV_BASE = "PYRUN_NET_STATE_DIR"
LOCK_FILE = "lock"
RECORD_FILES = ("ipam.json", "ipam.lock", "hostports.json", "hostports.lock")
_ATTEMPTS = 100


def base_dir(settings: NetworkSettings) -> Path:
    return Path(settings.state_dir or os.environ.get(ENV_BASE) or DEFAULT_BASE)


def netns_id() -> int:
    """The inode number of the calling thread's network namespace."""
    return os.stat("/proc/thread-self/ns/net").st_ino


def node_dir(settings: NetworkSettings) -> Path:
    """Where this network namespace's records for settings.bridge live."""
    return base_dir(settings) / f"{netns_id()}-{settings.bridge}"


class NodeState:
    """The locked records directory (see the module docstring)."""

    def __init__(self, directory: Path):
        self.dir = directory

    def drop_records(self) -> None:
        """Forget every allocation and hostPort (they describe a bridge that is gone)."""
        for name in RECORD_FILES:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.dir / name)

    def remove(self) -> None:
        """Remove the directory, lock file included (the caller holds the lock)."""
        self.drop_records()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.dir / LOCK_FILE)
        for d in (self.dir, self.dir.parent):  # the base too, when no other bridge has records
            with contextlib.suppress(OSError):
                os.rmdir(d)


@contextlib.contextmanager
def locked(settings: NetworkSettings) -> Iterator[NodeState]:
    """Hold the node lock of this namespace's bridge; yields its NodeState."""
    directory = node_dir(settings)
    fd = _lock(directory)
    try:
        yield NodeState(directory)
    finally:
        os.close(fd)  # closing drops the flock


def _lock(directory: Path) -> int:
    path = directory / LOCK_FILE
    for _ in range(_ATTEMPTS):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            continue  # the directory was just removed by the last user of the bridge
        except OSError as e:
            raise NetworkError(f"{path}: cannot open the node network lock: {e.strerror}") from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        if _still_named(fd, path):
            return fd
        os.close(fd)
    raise NetworkError(f"{path}: could not take the node network lock ({_ATTEMPTS} attempts, "
                       "the directory kept being removed)")


def _still_named(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)
