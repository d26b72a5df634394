"""`pyrun`: the entry point, and the one place errors become exit codes.

The click group (global options, lazily imported subcommands) is pyrun.cli.root. Importing
click costs more than starting Python, so a plain `pyrun --help` is answered from the text
cached in pyrun.cli._roothelp (a unit test keeps it equal to click's rendering) when the
terminal is as wide as the cached text; everything else goes through click.
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


def main(argv: list[str] | None = None) -> None:
    """Entry point: the only place PyrunErrors become messages and exit codes."""
    text = cached_help(sys.argv[1:] if argv is None else list(argv))
    if text is not None:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            _reader_gone()
        sys.exit(0)
    import click
    from pyrun.cli.root import cli
    try:
        rv = cli.main(args=argv, prog_name="pyrun", standalone_mode=False)
        sys.stdout.flush()  # here, so a reader that went away is handled below, not at interpreter exit
    except BrokenPipeError:
        _reader_gone()
    except click.exceptions.Abort:
        sys.stderr.write("Aborted.\n")
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except PyrunError as e:
        sys.stderr.write(f"pyrun: error: {e}\n")
        sys.exit(e.exit_code)
    except OSError as e:
        sys.stderr.write(f"pyrun: error: {e}\n")
        sys.exit(10)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)


def _reader_gone() -> None:
    """stdout's reader went away (`pyrun pod inspect X | grep -q ...`): end quietly, as a
    program killed by SIGPIPE would, instead of a traceback when Python flushes stdout at exit."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(141)  # 128 + SIGPIPE


if __name__ == "__main__":
    main()
