"""Printing helpers shared by CLI commands (pure)."""
from __future__ import annotations

import json
import sys
import time


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [headers] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


def age(created_ns: int, now_ns: int | None = None) -> str:
    secs = max(0, ((now_ns or time.time_ns()) - created_ns) // 1_000_000_000)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def print_json(data: object) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def echo(message: str, err: bool = False) -> None:
    """A line to stdout (stderr with err) as click.echo writes it: flushed, and without ANSI escape
    sequences unless the stream is a terminal."""
    stream = sys.stderr if err else sys.stdout
    out = message + "\n"
    if "\x1b" in out and not stream.isatty():
        import re
        out = re.sub(r"\033\[[0-?]*[ -/]*[@-~]", "", out)  # click._compat._ansi_re
    stream.write(out)
    stream.flush()
