"""ExecSync output is capped per stream, as containerd caps it (16 MiB); the rest is drained and dropped."""
from __future__ import annotations

import subprocess
import sys

import pytest

from pyrun.cri.capped import MAX_EXEC_SYNC_OUTPUT, CappedBuffer, communicate_capped, truncation_note


def test_a_capped_buffer_keeps_the_first_bytes_and_counts_the_rest():
    buf = CappedBuffer(5)
    for chunk in (b"abc", b"defg", b"", b"hi"):
        buf.write(chunk)
    assert bytes(buf.data) == b"abcde" and buf.dropped == 4 and buf.truncated
    assert not CappedBuffer(5).truncated
    assert MAX_EXEC_SYNC_OUTPUT == 16 * 1024 * 1024


def _popen(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def test_a_command_that_prints_more_than_the_cap_finishes_and_is_cut():
    proc = _popen("import sys; sys.stdout.buffer.write(b'x' * 3_000_000); sys.stderr.write('err')")
    out, err = communicate_capped(proc, timeout=30, cap=1000)
    assert proc.returncode == 0
    assert bytes(out.data) == b"x" * 1000 and out.dropped == 3_000_000 - 1000
    assert bytes(err.data) == b"err" and not err.truncated
    note = truncation_note("main", out, err)
    assert note.startswith(b"\n[pyrun: ExecSync in container main: output truncated: stdout after 1000 bytes")
    assert truncation_note("main", err, err) == b""


def test_small_output_is_returned_whole():
    proc = _popen("print('hello'); raise SystemExit(3)")
    out, err = communicate_capped(proc, timeout=30)
    assert (bytes(out.data), bytes(err.data), proc.returncode) == (b"hello\n", b"", 3)


def test_a_command_that_runs_too_long_times_out():
    proc = _popen("import time; print('started', flush=True); time.sleep(30)")
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            communicate_capped(proc, timeout=0.5)
    finally:
        proc.kill()
        proc.wait()
