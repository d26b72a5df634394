"""Explain mode: every Linux primitive pyrun performs, shown as the shell command a person would type.

The side-effect layers (pyrun.linux.syscalls, the cgroup writers, pyrun.netns)
call `emit()` just before they act. Nothing else prints explain lines.

The sink is a file descriptor: the CLI's stderr when `pyrun --explain` is given.
Child processes (the container monitor and init) inherit it through the
PYRUN_EXPLAIN_FD environment variable, so lines from inside a container's init
reach the user too, in the order they happen.
"""
from __future__ import annotations

import os
import shlex

ENV = "PYRUN_EXPLAIN_FD"

_fd: int | None = None
_prefix = ""
_recorder: list[str] | None = None


def enable(fd: int, prefix: str = "") -> None:
    """Send explain lines to `fd` (and to child processes via the environment)."""
    global _fd, _prefix
    _fd = fd
    _prefix = prefix
    os.environ[ENV] = str(fd)


def disable_fd() -> None:
    """Close the inherited explain descriptor, so a long-lived process does not hold the CLI's stderr open."""
    global _fd
    if _fd is not None:
        try:
            os.close(_fd)
        except OSError:
            pass
    _fd = None
    os.environ.pop(ENV, None)


def from_environment(prefix: str = "") -> None:
    """Pick up the sink a parent process passed down (used by monitor and init)."""
    global _fd, _prefix
    value = os.environ.get(ENV)
    if value and value.isdigit():
        _fd = int(value)
        _prefix = prefix


def record() -> list[str]:
    """Collect lines in a list (for tests); returns the list that fills up."""
    global _recorder
    _recorder = []
    return _recorder


def stop_recording() -> None:
    global _recorder
    _recorder = None


def active() -> bool:
    """Whether emit() goes anywhere (skip building an expensive line when it does not)."""
    return _recorder is not None or _fd is not None


def emit(command: str) -> None:
    """Report one primitive as a shell command line."""
    if _recorder is not None:
        _recorder.append(command)
    if _fd is None:
        return
    line = f"{_prefix}$ {command}\n".encode()
    try:
        os.write(_fd, line)
    except OSError:
        pass  # a closed terminal must not break the runtime


def argv(*words: object) -> str:
    """Quote words the way a shell needs them: argv("mount", "-t", "overlay") -> 'mount -t overlay'."""
    return " ".join(shlex.quote(str(w)) for w in words)
