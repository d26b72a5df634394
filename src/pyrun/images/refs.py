"""The references db: refs.json maps a normalised `name:tag` to a manifest digest.

Writers hold an exclusive flock(2) on `<root>/lock` (the same lock guards the
whole store while it changes: import, unpack, remove, prune), and refs.json is
replaced atomically (temp + fsync + rename), so readers never need the lock
and never see a half-written file.
"""
from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path

from pyrun.errors import ImageError
from pyrun.images.blobs import atomic_write

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a pod create's start-up)
if TYPE_CHECKING:
    from typing import Iterator

FORMAT_VERSION = 1


class StoreLock:
    """A re-entrant (per object) exclusive flock on a lock file."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None
        self._depth = 0

    @contextmanager
    def held(self) -> Iterator[None]:
        if self._depth == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0 and self._fd is not None:
                os.close(self._fd)  # closing the last fd releases the flock
                self._fd = None


class RefsDb:
    """name:tag -> manifest digest, persisted in refs.json."""

    def __init__(self, path: Path, lock: StoreLock):
        self.path = path
        self.lock = lock

    def load(self) -> dict[str, str]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            doc = json.loads(raw)
            refs = doc["refs"]
            if not isinstance(refs, dict):
                raise TypeError("refs is not an object")
        except (ValueError, KeyError, TypeError) as e:
            raise ImageError(f"{self.path}: corrupt references db: {e}") from None
        return dict(refs)

    def _save(self, refs: dict[str, str]) -> None:
        doc = {"version": FORMAT_VERSION, "refs": dict(sorted(refs.items()))}
        atomic_write(self.path, (json.dumps(doc, indent=2) + "\n").encode())

    def set(self, name: str, manifest_digest: str) -> str | None:
        """Point `name` at `manifest_digest`; returns the digest it pointed at before."""
        with self.lock.held():
            refs = self.load()
            old = refs.get(name)
            refs[name] = manifest_digest
            self._save(refs)
            return old

    def delete(self, names: list[str]) -> None:
        with self.lock.held():
            refs = self.load()
            for n in names:
                refs.pop(n, None)
            self._save(refs)
