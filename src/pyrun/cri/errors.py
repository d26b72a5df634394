"""The one place where errors become gRPC status codes (the server's wrapper calls `status_for`).

  SpecError      -> INVALID_ARGUMENT   (the message names the field)
  NotFound       -> NOT_FOUND
  AlreadyExists  -> ALREADY_EXISTS
  InvalidState   -> FAILED_PRECONDITION
  Unimplemented  -> UNIMPLEMENTED      (Python gRPC turns a raised NotImplementedError into UNKNOWN)
  DeadlineExceeded -> DEADLINE_EXCEEDED (ExecSync timeouts: the kubelet's exec probes look for it)
  other PyrunError / OSError -> INTERNAL with the message
  anything else  -> INTERNAL "internal error: <type>: <message>" (the server logs the traceback)
"""
from __future__ import annotations

import grpc

from pyrun.errors import AlreadyExists, DeadlineExceeded, InvalidState, NotFound, PyrunError, SpecError


class Unimplemented(PyrunError):
    """An RPC (or an option of one) pyrun does not implement."""


__all__ = ["DeadlineExceeded", "Unimplemented", "status_for", "is_expected"]

_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (SpecError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (InvalidState, grpc.StatusCode.FAILED_PRECONDITION),
    (Unimplemented, grpc.StatusCode.UNIMPLEMENTED),
    (DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (PyrunError, grpc.StatusCode.INTERNAL),
    (OSError, grpc.StatusCode.INTERNAL),
)


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """(code, details) for an exception raised by an RPC implementation."""
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return code, str(exc) or type(exc).__name__
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"


def is_expected(exc: BaseException) -> bool:
    """False for programming errors (worth a traceback in the log)."""
    return isinstance(exc, (PyrunError, OSError))
