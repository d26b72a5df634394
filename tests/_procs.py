"""Test helper shared by tests/integration and tests/kube (tests/ is on sys.path through tests/conftest.py)."""
from __future__ import annotations

import os
from pathlib import Path


def processes_mentioning(needle: str) -> list[str]:
    """"pid: command line" of every process whose command line contains needle (pytest itself left out):
    what a test left running."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if needle.encode() in cmd and b"pytest" not in cmd:
            out.append(pid + ": " + cmd.replace(b"\0", b" ").decode(errors="replace"))
    return out
