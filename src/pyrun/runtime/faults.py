"""Failure injection for tests: PYRUN_FAULT="<step>:fail" or "<step>:sleep:<seconds>".

Create steps call `check(step)`; in production the variable is unset and this is
one dict lookup. Tests use it to prove that a failure at any step rolls back
everything, and to freeze a create at a known point before killing it.
"""
from __future__ import annotations

import os
import time

from pyrun.errors import PyrunError

ENV = "PYRUN_FAULT"


class InjectedFault(PyrunError):
    """A failure a test asked for."""


def check(step: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    for item in spec.split(","):
        parts = item.split(":")
        if parts[0] != step:
            continue
        if len(parts) > 1 and parts[1] == "sleep":
            time.sleep(float(parts[2]) if len(parts) > 2 else 60)
        else:
            raise InjectedFault(f"injected failure at step {step!r}")
