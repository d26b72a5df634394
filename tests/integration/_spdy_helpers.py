"""Run the `spdyclient` test tool (tests/tools/spdyclient): a Go peer that speaks the SPDY/3.1
flavour of the Kubernetes exec/attach/port-forward protocols exactly like client-go does.

    path = spdyclient_path()                       # built once per session, cached
    p = run_spdyclient(["exec", "-stdout", "-stderr", url])
    p.returncode, p.stdout, p.stderr               # bytes; stderr also has "protocol: ..." lines
    p = run_spdyclient([...], split_diag=True)     # stderr = remote stderr only, p.diag = client lines
    status, headers, body = parse_raw_upgrade(run_spdyclient(["raw-upgrade", "-protocols", "x", url]).stdout)
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

BUILD_SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "spdyclient" / "build.sh"
DEFAULT_BINARY = Path(__file__).resolve().parents[2] / ".cache" / "spdyclient"

# Exit codes of spdyclient (see main.go).
EXIT_OK, EXIT_USAGE, EXIT_REMOTE, EXIT_UPGRADE, EXIT_TIMEOUT, EXIT_PING_LOST = 0, 1, 2, 3, 4, 5

_built: str | None = None


def spdyclient_path() -> str:
    """Build the tool once per test session and return the binary's path (<repo>/.cache/spdyclient).

    Skips when not root (like the other integration tests); fails the test with the build's
    output when the build fails as root. In the cgroup v2 test VM (PYRUN_VM set), which has no Go,
    the binary the host built before booting it (tests/vm/run-tests.sh) is used as it is."""
    global _built
    if _built is not None:
        return _built
    if os.geteuid() != 0:
        pytest.skip("needs root, like the other integration tests")
    if os.environ.get("PYRUN_VM"):
        if not DEFAULT_BINARY.is_file():
            pytest.fail(f"{DEFAULT_BINARY} is missing: tests/vm/run-tests.sh builds it on the host", pytrace=False)
        _built = str(DEFAULT_BINARY)
        return _built
    p = subprocess.run([str(BUILD_SCRIPT), str(DEFAULT_BINARY)], capture_output=True, text=True, timeout=600)
    if p.returncode != 0 or not DEFAULT_BINARY.is_file():
        pytest.fail(f"building spdyclient failed (exit {p.returncode}):\n{p.stdout}{p.stderr}", pytrace=False)
    _built = str(DEFAULT_BINARY)
    return _built


def run_spdyclient(args: list[str], stdin: bytes = b"", timeout: float = 60,
                   split_diag: bool = False) -> subprocess.CompletedProcess:
    """Run `spdyclient ARGS...` with `stdin` as its standard input; bytes output.

    The client's own `-timeout` is set a little below `timeout` unless ARGS set one, so a hang
    shows up as exit code 4 rather than a TimeoutExpired. With split_diag=True, the client's
    diagnostics go to a side file and come back as `result.diag` (str); stderr is then only
    what the remote side wrote on its stderr stream."""
    args = list(args)
    if args and args[0] in ("exec", "attach", "portforward") and not any(a.startswith("-timeout") for a in args):
        args[1:1] = ["-timeout", f"{max(1.0, timeout - 5):.0f}s"]
    env = dict(os.environ)
    diag_file = None
    if split_diag:
        fd, diag_file = tempfile.mkstemp(prefix="spdyclient-diag-")
        os.close(fd)
        env["SPDYCLIENT_DIAG"] = diag_file
    try:
        p = subprocess.run([spdyclient_path(), *args], input=stdin, capture_output=True, timeout=timeout, env=env)
        if diag_file is not None:
            p.diag = Path(diag_file).read_text()
        return p
    finally:
        if diag_file is not None:
            os.unlink(diag_file)


def parse_raw_upgrade(stdout: bytes) -> tuple[int, dict[str, list[str]], bytes]:
    """Split `spdyclient raw-upgrade` output into (status, {Header-Name: [values]}, body)."""
    head, _, body = stdout.partition(b"\n\n")
    lines = head.decode().splitlines()
    assert lines and lines[0].startswith("status: "), stdout
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(": ")
        headers.setdefault(name, []).append(value)
    return int(lines[0].removeprefix("status: ")), headers, body
