"""The one error hierarchy of pyrun.

Every error a user can meet is a PyrunError. The CLI turns them into exit codes
in exactly one place (pyrun.cli.main), and the CRI shim into gRPC status codes
in exactly one place (pyrun.cri.errors).
"""
from __future__ import annotations

import contextlib as _contextlib
import errno as _errno
import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a CLI command's start-up)
if TYPE_CHECKING:
    from typing import Iterator as _Iterator


class PyrunError(Exception):
    """Base of every error pyrun reports to a person."""

    exit_code = 1


class SpecError(PyrunError):
    """A manifest (or a CLI argument standing for one) is invalid.

    `problems` holds every (field path, message) found, so the user sees all of
    them at once.
    """

    exit_code = 2

    def __init__(self, problems: list[tuple[str, str]] | str, source: str | None = None):
        if isinstance(problems, str):
            problems = [("", problems)]
        self.problems = list(problems)
        self.source = source
        lines = [f"{path}: {msg}" if path else msg for path, msg in self.problems]
        head = f"{source}: " if source else ""
        if len(lines) == 1:
            super().__init__(head + lines[0])
        else:
            super().__init__(head + f"{len(lines)} problems:\n  " + "\n  ".join(lines))


class UsageError(PyrunError):
    """A CLI argument is wrong (other than a manifest)."""

    exit_code = 2


class NotFound(PyrunError):
    """A pod, container, image or blob does not exist."""

    exit_code = 3


class AlreadyExists(PyrunError):
    """A pod or container with that name exists already."""

    exit_code = 4


class InvalidState(PyrunError):
    """The object exists but is in the wrong state for the request (e.g. rm of a running pod)."""

    exit_code = 5


class RecordError(PyrunError):
    """A state record (pod.json, container.json, ...) is damaged, or from a newer pyrun (its version)."""

    exit_code = 12  # 11: DeadlineExceeded (the facade's timeouts)


class ImageError(PyrunError):
    """An image, archive, layer or registry reply is bad (digest mismatch, unsafe tar member, ...)."""

    exit_code = 6


class CgroupError(PyrunError):
    """A cgroup controller is missing, not delegated, or refused a value."""

    exit_code = 7


class NetworkError(PyrunError):
    """Pod networking could not be set up or torn down."""

    exit_code = 8


class DeadlineExceeded(PyrunError):
    """An operation with a timeout (an exec with one: the CRI's ExecSync) ran out of time."""

    exit_code = 11


class ContainerStartError(PyrunError):
    """A container's init failed at a named step; the workload never ran."""

    exit_code = 9

    def __init__(self, container: str, step: str, message: str):
        self.container = container
        self.step = step
        super().__init__(f"container {container!r}: {step} failed: {message}")


class SyscallError(OSError, PyrunError):
    """A failed system call. An OSError that keeps errno and the path(s).

    SyscallError(errno, "mount", "/run/pyrun/x") is a subclass of OSError, and
    `SyscallError.from_errno` returns the matching built-in subclass mixin (so
    `except PermissionError` still works).
    """

    exit_code = 10

    def __init__(self, err: int, call: str, path: str | None = None, path2: str | None = None, hint: str = ""):
        msg = f"{call}: {os.strerror(err)}"
        if hint:
            msg += f" ({hint})"
        OSError.__init__(self, err, msg, path, None, path2)
        self.call = call
        self.hint = hint

    def __str__(self) -> str:
        s = self.strerror or ""
        if self.filename:
            s += f": {self.filename}"
        if self.filename2:
            s += f" -> {self.filename2}"
        return s

    @classmethod
    def from_errno(cls, err: int, call: str, path: str | None = None, path2: str | None = None,
                   hint: str = "") -> "SyscallError":
        sub = _ERRNO_CLASSES.get(err)
        if sub is None:
            return cls(err, call, path, path2, hint)
        return sub(err, call, path, path2, hint)


def _subclass(base: type[OSError]) -> type[SyscallError]:
    return type(f"Syscall{base.__name__}", (SyscallError, base), {})


_ERRNO_CLASSES: dict[int, type[SyscallError]] = {
    _errno.EPERM: _subclass(PermissionError),
    _errno.EACCES: _subclass(PermissionError),
    _errno.ENOENT: _subclass(FileNotFoundError),
    _errno.EEXIST: _subclass(FileExistsError),
    _errno.ENOTDIR: _subclass(NotADirectoryError),
    _errno.EISDIR: _subclass(IsADirectoryError),
    _errno.ESRCH: _subclass(ProcessLookupError),
}


@_contextlib.contextmanager
def naming(call: str, path: "str | os.PathLike[str]", what: str) -> "_Iterator[None]":
    """Start-up steps: an OSError inside leaves as a SyscallError naming what was tried (`path`, and
    `what` it is, e.g. "the state root (--root)") and why; a SyscallError passes unchanged."""
    try:
        yield
    except SyscallError:
        raise
    except OSError as e:
        raise SyscallError.from_errno(e.errno or _errno.EIO, call, str(path), hint=what) from None
