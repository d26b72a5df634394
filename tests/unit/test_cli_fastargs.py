"""pyrun.cli.fastargs reads the hot commands' argv as click does, or hands it to click (issue #14)."""
from __future__ import annotations

import inspect

import pytest

from pyrun.cli import _fasttable, commands, fastargs, main, root

CLEAN_ENV = ("PYRUN_ROOT", "PYRUN_DATA_ROOT", "PYRUN_NETWORK", "PYRUN_CNI_CONF_DIR", "PYRUN_CNI_BIN_DIR",
             "PYRUN_CGROUP_PARENT", "_PYRUN_COMPLETE")


def test_the_table_is_what_click_defines():
    """pyrun.cli._fasttable is current: regenerate it with pyrun.cli.root.render_fast_table() when an
    option or argument of the root group or of a hot command changes."""
    assert _fasttable.TABLE == root.fast_table()
    with open(_fasttable.__file__) as f:
        assert f.read() == root.render_fast_table()


def test_every_fast_command_has_a_runner():
    assert set(main.FAST_RUNNERS) == set(root.FAST_COMMANDS)
    assert all(callable(getattr(commands, name)) for name in main.FAST_RUNNERS.values())


@pytest.fixture
def calls(monkeypatch):
    """What the command functions were called with, through click or through fastargs (nothing runs)."""
    for name in CLEAN_ENV:
        monkeypatch.delenv(name, raising=False)
    seen: list = []

    def make_config(*args):
        seen.append(("config", args))
        return "cfg"
    monkeypatch.setattr(commands, "make_config", make_config)
    for name in set(main.FAST_RUNNERS.values()):
        sig = inspect.signature(getattr(commands, name))
        monkeypatch.setattr(commands, name, lambda *a, _n=name, _s=sig, **kw: seen.append(
            (_n, dict(_s.bind(*a, **kw).arguments))) or 0)
    return seen


def _via_click(argv, calls) -> list:
    calls.clear()
    assert main._click_main(list(argv)) == 0
    return list(calls)


def _via_fastargs(argv, calls) -> list:
    calls.clear()
    call = main.fast_call(list(argv))
    assert call is not None, argv
    assert call() == 0
    return list(calls)


@pytest.mark.parametrize("argv", [
    ["pod", "ls"],
    ["pod", "ls", "-o", "json"],
    ["pod", "ls", "--output=json"],
    ["--root", "ROOT", "--data-root=DATA", "--network", "none", "--cgroup-parent", "p", "pod", "ls"],
    ["--explain", "--cni-conf-dir", "conf", "--cni-bin-dir", "a:b", "pod", "ls"],
    ["pod", "create", "SPEC"],
    ["pod", "create", "-", "-o", "json", "--network", "cni", "--strict"],
    ["pod", "create", "--network=bridge", "SPEC"],
    ["pod", "rm", "a"],
    ["pod", "rm", "-f", "a", "b"],
    ["pod", "rm", "a", "--force", "b"],
    ["exec", "p", "c", "--", "true"],
    ["exec", "p", "c", "true"],
    ["exec", "-e", "A=1", "--env", "B=2", "-w", "/tmp", "p", "c", "--", "sh", "-c", "echo -n; exit 3"],
    ["exec", "p", "c", "-w", "/", "--", "ls", "-l", "--", "x"],
])
def test_fastargs_reads_argv_as_click_does(argv, calls, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [str(tmp_path / a) if a in ("ROOT", "DATA", "SPEC") else a for a in argv]
    assert _via_fastargs(argv, calls) == _via_click(argv, calls)


def test_environment_variables_count_as_in_click(calls, tmp_path, monkeypatch):
    monkeypatch.setenv("PYRUN_ROOT", str(tmp_path / "r"))
    monkeypatch.setenv("PYRUN_NETWORK", "none")
    monkeypatch.setenv("PYRUN_CGROUP_PARENT", "")  # empty: not set, for click
    monkeypatch.setenv("PYRUN_CNI_BIN_DIR", "/x")
    argv = ["pod", "rm", "-f", "a"]
    assert _via_fastargs(argv, calls) == _via_click(argv, calls)


@pytest.mark.parametrize("argv", [
    [], ["pod"], ["--help"], ["pod", "ls", "--help"], ["pod", "ls", "-h"], ["--version", "pod", "ls"],
    ["pod", "ls", "-ojson"], ["pod", "ls", "-o=json"], ["pod", "ls", "-o", "yaml"], ["pod", "ls", "-o"],
    ["pod", "ls", "extra"], ["pod", "inspect", "a"], ["image", "ls"], ["pod", "rm"], ["pod", "rm", "-fx", "a"],
    ["pod", "--root", "r", "ls"], ["pod", "ls", "--root", "r"], ["--network", "wifi", "pod", "ls"],
    ["--explain=1", "pod", "ls"],
    ["exec", "p", "c"], ["exec", "p", "c", "ls", "-l"], ["exec", "p"], ["exec", "-w", "--", "p", "c", "true"],
    ["pod", "create", "DIR"], ["pod", "create"], ["--root", "FILE", "pod", "ls"],
])
def test_anything_else_is_left_to_click(argv, tmp_path):
    (tmp_path / "file").write_text("")
    argv = [str(tmp_path) if a == "DIR" else str(tmp_path / "file") if a == "FILE" else a for a in argv]
    assert fastargs.parse(argv, {}) is None


def test_a_bad_environment_value_is_left_to_click():
    assert fastargs.parse(["pod", "ls"], {"PYRUN_NETWORK": "wifi"}) is None
    assert fastargs.parse(["pod", "ls"], {"PYRUN_NETWORK": "none"}) is not None
    assert main.fast_call(["pod", "ls"], {"_PYRUN_COMPLETE": "bash_complete"}) is None
    assert main.fast_call(["--network", "cni", "--cni-bin-dir", ":", "pod", "ls"], {}) is None  # click's error
