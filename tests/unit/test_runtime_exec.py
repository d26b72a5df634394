"""A synchronous exec (the CRI's ExecSync): output capped per stream, as containerd caps it (16 MiB),
the rest drained and dropped; a timeout kills the command. The command runs on the host here (a
Child made with subprocess stands in for the one the runtime forks into the container)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from pyrun.errors import DeadlineExceeded, SpecError
from pyrun.runtime.exec import MAX_EXEC_SYNC_OUTPUT, CappedBuffer, ExecHandle, require_command, truncation_note


def test_a_capped_buffer_keeps_the_first_bytes_and_counts_the_rest():
    buf = CappedBuffer(5)
    for chunk in (b"abc", b"defg", b"", b"hi"):
        buf.write(chunk)
    assert bytes(buf.data) == b"abcde" and buf.dropped == 4 and buf.truncated
    assert not CappedBuffer(5).truncated
    assert MAX_EXEC_SYNC_OUTPUT == 16 * 1024 * 1024


def test_the_truncation_note_names_each_cut_stream():
    out, err = CappedBuffer(3), CappedBuffer(3)
    out.write(b"xxxxx")
    note = truncation_note("main", out, err)
    assert note.startswith(b"\n[pyrun: ExecSync in container main: output truncated: stdout after 3 bytes")
    assert b"(2 more dropped)" in note and b"stderr" not in note
    assert truncation_note("main", err, err) == b""


def test_an_empty_command_is_refused_naming_the_field():
    with pytest.raises(SpecError, match="cmd"):
        require_command([])


class _HostChild:
    """What pyrun.runtime.spawn returns, for a host command."""

    def __init__(self, argv, stdio):
        self.proc = subprocess.Popen(argv, stdin=stdio[0], stdout=stdio[1], stderr=stdio[2], start_new_session=True)
        self.pid = self.proc.pid

    def wait(self, timeout=None):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError("still runs") from None

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.pid, signal.SIGKILL)


class _HostHandle(ExecHandle):
    def start(self, stdio, ctty=False, sock=None):
        return _HostChild(list(self.argv), stdio)  # reports nothing on sock: run_sync waits for its exit


def _handle(code: str) -> ExecHandle:
    return _HostHandle(cdir=None, container="main", argv=(sys.executable, "-c", code))


def test_a_command_that_prints_more_than_the_cap_finishes_and_is_cut():
    result = _handle("import sys; sys.stdout.buffer.write(b'x' * 3_000_000); sys.stderr.write('err')").run_sync(
        30, cap=1000)
    assert result.exit_code == 0 and result.stdout == b"x" * 1000
    assert result.stderr.startswith(b"err\n[pyrun: ExecSync in container main: output truncated: stdout after 1000")


def test_small_output_is_returned_whole():
    result = _handle("print('hello'); raise SystemExit(3)").run_sync(30)
    assert (result.stdout, result.stderr, result.exit_code) == (b"hello\n", b"", 3)


def test_a_command_that_runs_too_long_is_killed_and_reported():
    with pytest.raises(DeadlineExceeded, match="timed out after 0.5s"):
        _handle("import time; print('started', flush=True); time.sleep(30)").run_sync(0.5)
