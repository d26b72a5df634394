"""Execute the labs in docs/labs/*.md and compare their stated output.

The lab format (see docs/labs/README.md):

* ```console blocks are executed. A line starting with `# ` is a command (a root
  prompt); a command continues on the next line when it ends with a backslash, or
  until the end marker of a here-document it opens (`<<'EOF'` ... `EOF`). Every
  other line is expected output. `...` on a line of its own matches any number of
  lines (also none); `[..]` inside a line matches any text. A last line
  `[exit: N]` expects exit status N; otherwise a command must exit 0.
* ```text, ```sh, ```yaml (any other fence) blocks are shown, never executed.
* `<!-- setup:` ... `-->` and `<!-- teardown:` ... `-->` are hidden scripts. The
  setup runs before the first block, in the lab's session. The teardown always runs
  at the end, also after a failure, in a fresh bash session with the same
  namespaces, environment and working directory: so it must not depend on shell
  variables the lab set, only on files and names.

All of a lab runs in ONE bash session (variables and the working directory carry
over) inside a throwaway network + mount namespace, held by a `sleep` process, so
bridges, veths, nft rules and mounts a lab makes never reach the host's namespaces.
"""
from __future__ import annotations

import os
import re
import secrets
import select
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PROMPT = "# "
CONTINUATION = "> "
ANY_LINES = "..."
ANY_TEXT = "[..]"
_EXIT_RE = re.compile(r"^\[exit: (\d+)\]$")
_HEREDOC_RE = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")
_HIDDEN_RE = re.compile(r"<!--\s*(setup|teardown):[ \t]*\n(.*?)-->", re.S)


@dataclass
class Command:
    text: str
    expected: list[str]
    line: int  # 1-based line of the command in the lab file
    exit_code: int = 0


@dataclass
class Lab:
    path: Path
    setup: str = ""
    teardown: str = ""
    commands: list[Command] = field(default_factory=list)
    shown_blocks: int = 0  # fenced blocks that are not executed


class LabFormatError(ValueError):
    pass


# --- parsing (pure) -------------------------------------------------------------------------

def parse_lab(text: str, path: Path = Path("<lab>")) -> Lab:
    lab = Lab(path=path)
    for m in _HIDDEN_RE.finditer(text):
        kind, body = m.group(1), m.group(2)
        if getattr(lab, kind):
            raise LabFormatError(f"{path}: more than one <!-- {kind}: --> block")
        setattr(lab, kind, body)
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        fence = lines[i].strip()
        if fence.startswith("```"):
            lang = fence[3:].strip()
            start = i + 1
            j = start
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            if j == len(lines):
                raise LabFormatError(f"{path}:{i + 1}: fenced block is not closed")
            if lang == "console":
                lab.commands.extend(parse_console_block(lines[start:j], start + 1, path))
            else:
                lab.shown_blocks += 1
            i = j + 1
        else:
            i += 1
    return lab


def _heredoc_ends(line: str) -> list[str]:
    return [m.group(2) for m in _HEREDOC_RE.finditer(line)]


def parse_console_block(lines: list[str], first_line: int, path: Path = Path("<lab>")) -> list[Command]:
    """Commands and their expected output from the lines inside a ```console fence."""
    commands: list[Command] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith(PROMPT):
            if commands:
                commands[-1].expected.append(line)
            elif line.strip():
                raise LabFormatError(f"{path}:{first_line + i}: output before the first command: {line!r}")
            i += 1
            continue
        cmd_lines = [line[len(PROMPT):]]
        lineno = first_line + i
        i += 1
        pending: list[str] = _heredoc_ends(cmd_lines[0])
        while i < len(lines):
            if pending:  # inside a here-document: raw lines up to its end marker
                cmd_lines.append(lines[i])
                if lines[i] == pending[0]:
                    pending.pop(0)
                i += 1
            elif cmd_lines[-1].endswith("\\"):
                cmd_lines.append(lines[i])
                pending = _heredoc_ends(lines[i])
                i += 1
            elif lines[i].startswith(CONTINUATION):
                cmd_lines.append(lines[i][len(CONTINUATION):])
                pending = _heredoc_ends(cmd_lines[-1])
                i += 1
            else:
                break
        if pending:
            raise LabFormatError(f"{path}:{lineno}: here-document {pending[0]} is not closed")
        commands.append(Command("\n".join(cmd_lines), [], lineno))
    for c in commands:
        while c.expected and not c.expected[-1].strip():
            c.expected.pop()
        if c.expected and (m := _EXIT_RE.match(c.expected[-1].strip())):
            c.exit_code = int(m.group(1))
            c.expected.pop()
    return commands


# --- matching (pure) ------------------------------------------------------------------------

def _line_regex(pattern: str) -> re.Pattern:
    parts = pattern.rstrip().split(ANY_TEXT)
    return re.compile(".*".join(re.escape(p) for p in parts) + r"\Z", re.S)


def line_matches(pattern: str, actual: str) -> bool:
    return _line_regex(pattern).match(actual.rstrip()) is not None


def output_matches(expected: list[str], actual: list[str]) -> bool:
    """crun/cargo-style: `...` alone matches any lines, `[..]` any text within a line."""
    memo: dict[tuple[int, int], bool] = {}

    def go(e: int, a: int) -> bool:
        key = (e, a)
        if key in memo:
            return memo[key]
        if e == len(expected):
            result = a == len(actual)
        elif expected[e].strip() == ANY_LINES:
            result = any(go(e + 1, k) for k in range(a, len(actual) + 1))
        else:
            result = a < len(actual) and line_matches(expected[e], actual[a]) and go(e + 1, a + 1)
        memo[key] = result
        return result

    return go(0, 0)


def output_lines(output: str) -> list[str]:
    lines = output.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip() for line in lines]


# --- the node namespace and the bash session (side effects) ---------------------------------

class NodeNamespace:
    """A throwaway network + mount namespace with lo up, held by a sleep process we started."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            ["unshare", "--net", "--mount", "--propagation", "private", "--",
             "sh", "-c", "ip link set lo up && echo ready && exec sleep 100000"],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        ready = self.proc.stdout.readline().strip()
        if ready != "ready":
            self.close()
            raise RuntimeError("could not create the lab's node namespace")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def enter_argv(self, *argv: str) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "--net", "--mount", "--", *argv]

    def run(self, script: str, env: dict, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(self.enter_argv("bash", "--noprofile", "--norc", "-c", script), env=env,
                              cwd=cwd, capture_output=True, text=True, timeout=timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


class CommandTimeout(Exception):
    pass


class BashSession:
    """One long-lived bash in the node namespace; run() sends a command and reads its output."""

    def __init__(self, node: NodeNamespace, env: dict, cwd: Path):
        self.marker = f"__LAB_DONE_{secrets.token_hex(6)}__"
        self.proc = subprocess.Popen(node.enter_argv("bash", "--noprofile", "--norc"), env=env, cwd=cwd,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self._buf = b""

    def run(self, command: str, timeout: float = 60) -> tuple[str, int]:
        script = f"{{ {command}\n}} </dev/null 2>&1; printf '\\n%s %s\\n' {self.marker} \"$?\"\n"
        self.proc.stdin.write(script.encode())
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        pattern = re.compile(rb"\n" + self.marker.encode() + rb" (\d+)\n")
        fd = self.proc.stdout.fileno()
        while not (m := pattern.search(self._buf)):
            left = deadline - time.monotonic()
            if left <= 0:
                raise CommandTimeout(self._buf.decode(errors="replace"))
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise CommandTimeout("bash exited: " + self._buf.decode(errors="replace"))
                self._buf += chunk
        out, self._buf = self._buf[:m.start()], self._buf[m.end():]
        return out.decode(errors="replace"), int(m.group(1))

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc.stdout.close()


@dataclass
class Failure:
    lab: Path
    command: Command
    actual: str
    exit_code: int | None
    note: str = ""

    def __str__(self) -> str:
        exp = "\n".join(self.command.expected) or "(no output)"
        if self.command.exit_code:
            exp += f"\n[exit: {self.command.exit_code}]"
        return (f"lab {self.lab.name}, line {self.command.line}{': ' + self.note if self.note else ''}\n"
                f"--- command:\n{self.command.text}\n--- expected:\n{exp}\n"
                f"--- actual (exit {self.exit_code}):\n{self.actual.rstrip() or '(no output)'}\n")


def run_lab(lab: Lab, node: NodeNamespace, env: dict, cwd: Path, timeout: float = 60) -> tuple[Failure | None, str]:
    """Run setup, the commands and the teardown. Returns (first failure or None, teardown output)."""
    failure: Failure | None = None
    session = BashSession(node, env, cwd)
    try:
        if lab.setup:
            setup = Command(lab.setup, [], 0)
            out, rc = session.run(lab.setup, timeout)
            if rc != 0:
                failure = Failure(lab.path, setup, out, rc, "the setup failed")
        for cmd in lab.commands if failure is None else []:
            try:
                out, rc = session.run(cmd.text, timeout)
            except CommandTimeout as e:
                failure = Failure(lab.path, cmd, str(e), None, f"timed out after {timeout:.0f}s")
                break
            if rc != cmd.exit_code or not output_matches(cmd.expected, output_lines(out)):
                failure = Failure(lab.path, cmd, out, rc)
                break
    finally:
        session.close()
        teardown_output = ""
        if lab.teardown:
            p = node.run(lab.teardown, env, cwd, timeout)
            teardown_output = p.stdout + p.stderr
    return failure, teardown_output
