"""`pyrun`: the entry point, and the one place errors become exit codes.

The click group (global options, lazily imported subcommands) is pyrun.cli.root. Importing
click costs more than starting Python, so
  * a plain `pyrun --help` is answered from the text cached in pyrun.cli._roothelp (a unit test
    keeps it equal to click's rendering) when the terminal is as wide as the cached text;
  * the hot commands (`pod create`, `pod ls`, `pod rm`, `exec`) in their plain forms are read by
    pyrun.cli.fastargs from a table generated from their click definitions and run by the same
    functions (pyrun.cli.commands) click calls;
everything else (--help of a command, an error, an unusual form) goes through click.
"""
from __future__ import annotations

import os
import sys

from pyrun.errors import PyrunError

HELP_ARGS = (["--help"], ["-h"])


def __getattr__(name: str):
    """`from pyrun.cli.main import cli` (and LAZY_COMMANDS) keep working: they live in pyrun.cli.root."""
    if name in ("cli", "LAZY_COMMANDS", "LazyGroup"):
        from pyrun.cli import root
        return getattr(root, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def help_width() -> int:
    """The width click formats help at (click.formatting.HelpFormatter: terminal columns as
    shutil.get_terminal_size reports them, at most 80, minus 2, at least 50), without
    importing shutil (it imports the compression modules)."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    if columns <= 0:
        columns = 80
    return max(min(columns, 80) - 2, 50)


def cached_help(argv: list[str]) -> str | None:
    """The root --help text without click, when argv asks for exactly that and the cache fits."""
    if argv not in HELP_ARGS:
        return None
    from pyrun.cli import _roothelp
    return _roothelp.TEXT if help_width() == _roothelp.WIDTH else None


def fast_call(argv: list[str], environ=os.environ):
    """The hot command argv asks for, as a call that needs no click (pyrun.cli.fastargs), or None."""
    if environ.get("_PYRUN_COMPLETE"):
        return None  # click's shell completion
    from pyrun.cli import fastargs
    parsed = fastargs.parse(argv, environ)
    if parsed is None:
        return None
    command, g, values = parsed
    from pyrun.cli import commands
    cni = commands.cni_dirs(g["cni_conf_dir"], g["cni_bin_dir"])
    if not cni["bin_dirs"] and g["network"] == "cni":
        return None  # click's error for --cni-bin-dir
    run = getattr(commands, FAST_RUNNERS[command])

    def call() -> int:
        cfg = commands.make_config(g["root"], g["data_root"], g["explain"], g["network"], cni, g["cgroup_parent"],
                                   g["pod_cidr"])
        return run(cfg, **values)
    return call


# pyrun.cli.root.FAST_COMMANDS -> the function of pyrun.cli.commands that runs it
FAST_RUNNERS = {"pod create": "pod_create", "pod ls": "pod_ls", "pod rm": "pod_rm", "exec": "exec_cmd"}


def main(argv: list[str] | None = None) -> None:
    """Entry point: the only place PyrunErrors become messages and exit codes."""
    args = sys.argv[1:] if argv is None else list(argv)
    text = cached_help(args)
    if text is not None:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            _reader_gone()
        sys.exit(0)
    call = fast_call(args)
    if call is None:
        sys.exit(_guarded(lambda: _click_main(argv)))
    _exit_now(_guarded(_as_click_would(call)))


def _exit_now(code: int) -> None:
    """End a hot command without the interpreter's teardown (freeing every module it imported costs more
    than some commands' own work). Its output is flushed here; its files were closed by their `with`
    blocks and its locks go with the process. (exec ends so already: pyrun.cli.commands.exec_cmd.)"""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        _reader_gone()
    os._exit(code)


def _click_main(argv: list[str] | None) -> int:
    import click
    from pyrun.cli.root import cli
    try:
        rv = cli.main(args=argv, prog_name="pyrun", standalone_mode=False)
    except click.exceptions.Abort:
        sys.stderr.write("Aborted.\n")
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    return rv if isinstance(rv, int) else 0


def _as_click_would(call):
    """`call` with what click's main does around a command: ^C and EOF end as "Aborted." (130); a
    reader that went away while the command wrote ends it quietly with 1."""
    def run() -> int:
        try:
            return call()
        except (EOFError, KeyboardInterrupt):
            sys.stderr.write("\nAborted.\n")
            return 130
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
    return run


def _guarded(run) -> int:
    """run()'s exit code; PyrunErrors and OSErrors become messages."""
    try:
        code = run()
        sys.stdout.flush()  # here, so a reader that went away is handled below, not at interpreter exit
    except BrokenPipeError:
        _reader_gone()
    except PyrunError as e:
        sys.stderr.write(f"pyrun: error: {e}\n")
        return e.exit_code
    except OSError as e:
        sys.stderr.write(f"pyrun: error: {e}\n")
        return 10
    except KeyboardInterrupt:
        return 130
    return code


def _reader_gone() -> None:
    """stdout's reader went away (`pyrun pod inspect X | grep -q ...`): end quietly, as a
    program killed by SIGPIPE would, instead of a traceback when Python flushes stdout at exit."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(141)  # 128 + SIGPIPE


if __name__ == "__main__":
    main()
