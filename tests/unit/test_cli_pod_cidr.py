"""The global --pod-cidr option: validated up front, carried into Config.network."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from pyrun.cli.root import cli


def _config(*args: str):
    ctx = cli.make_context("pyrun", ["--root", "/nonexistent/pyrun-test", *args, "pod"])
    with ctx:
        ctx.invoke(cli.callback, **ctx.params)
        return ctx.obj


def test_pod_cidr_goes_into_the_network_settings():
    assert dict(_config("--pod-cidr", "10.89.1.0/24").network) == {"cidr": "10.89.1.0/24"}
    assert dict(_config().network) == {}


def test_pod_cidr_from_the_environment(monkeypatch):
    monkeypatch.setenv("PYRUN_POD_CIDR", "10.90.0.0/16")
    assert dict(_config().network) == {"cidr": "10.90.0.0/16"}


@pytest.mark.parametrize("value, message", [
    ("10.1.2.3/24", "has host bits set"), ("10.1.2.0/31", "too small"), ("fd00::/64", "fd00::/64"),
    ("nonsense", "nonsense"),
])
def test_bad_pod_cidr_is_refused_naming_the_option(value, message):
    r = CliRunner().invoke(cli, ["--root", "/nonexistent/pyrun-test", "--pod-cidr", value, "pod", "ls"])
    assert r.exit_code == 2
    assert "--pod-cidr" in r.output and message in r.output
