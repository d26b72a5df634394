"""`pyrun exec` without Python in the container: the exec profile and the C helper (pyrun/bin/nsexec).

When a container starts, its monitor writes containers/<id>/exec.json, everything an exec must
apply, resolved once as the container's init resolved it (pyrun.runtime.finalize): the user, group
and supplementary groups, the capability sets (bounding = effective = permitted; ambient and
inheritable for a non-root user's added capabilities), no_new_privs, the rlimits, the seccomp filter
as BPF (containers/<id>/seccomp.bpf, libseccomp's export of the plan the init loaded), the cgroups
to join, the environment (with HOME) and the working directory. An exec gets what the container's
config says, not what its pid 1 may have become since.

`pyrun exec` then reads the profile, checks that the container runs, and execs csrc/nsexec.c with it
as arguments (`helper_argv`, pure) and the command's environment as its own: the helper joins the
cgroups and namespaces, forks, becomes the container's process and execs the command, as runc's
nsenter does. A container started before exec profiles existed has none: `exec_helper` returns and
pyrun.runtime.nsexec does the exec in Python, as it also does with --explain and for the CRI.
A profile that is there but damaged is an error (RecordError naming the file and field): never
an exec with less confinement.

Imports stay light: this runs on the way of every `pyrun exec`.
"""
from __future__ import annotations

import os
from pathlib import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (`pyrun exec`'s start-up)
if TYPE_CHECKING:
    from typing import Any, Mapping, Sequence

    from pyrun.runtime.records import InitConfig

PROFILE_FILE = "exec.json"
BPF_FILE = "seccomp.bpf"
VERSION = 1
HELPER = Path(__file__).resolve().parent.parent / "bin" / "nsexec"


def merge_env(env: Sequence[str], extra: Sequence[str]) -> list[str]:
    """KEY=VALUE lists: `extra` wins over `env` for the same key, order otherwise kept (pure)."""
    out: dict[str, str] = {}
    for entry in [*env, *extra]:
        key, _, value = entry.partition("=")
        out[key] = value
    return [f"{k}={v}" for k, v in out.items()]


def container_env(env: Sequence[str], home: str) -> list[str]:
    """The process's environment with HOME (the user's home) unless it sets one (pure)."""
    return [*env] if any(e.startswith("HOME=") for e in env) else [*env, f"HOME={home}"]


# --- at start: the profile ------------------------------------------------------------------------
def build(config: InitConfig, uid: int, gid: int, groups: Sequence[int], home: str,
          seccomp_bpf: str | None) -> dict:
    """The exec profile of a container whose init became uid/gid/groups with `home` (pure).
    seccomp_bpf: the filter's BPF file; needed exactly when the container has a seccomp plan."""
    import resource

    from pyrun.linux.caps import cap_number
    from pyrun.runtime import security
    sec = security.from_config(config)  # refuses a config without its security settings
    if bool(sec.seccomp.plan) != bool(seccomp_bpf):
        raise ValueError("the exec profile needs the seccomp filter's BPF exactly when there is a plan")
    ambient = sec.ambient_capabilities if uid != 0 else ()
    return {
        "version": VERSION, "name": config.name, "uid": uid, "gid": gid, "groups": sorted(groups),
        "caps": _mask(cap_number(c) for c in sec.capabilities), "ambient": _mask(cap_number(c) for c in ambient),
        "no_new_privs": bool(sec.no_new_privs), "seccomp_bpf": seccomp_bpf,
        "rlimits": [[getattr(resource, "RLIMIT_" + name), soft, hard] for name, (soft, hard) in sec.rlimits.items()],
        "cgroup_procs": list(config.cgroup_procs), "env": container_env(config.process.env, home),
        "cwd": config.process.cwd or "/",
    }


def _mask(numbers) -> int:
    mask = 0
    for n in numbers:
        mask |= 1 << n
    return mask


def write_seccomp_bpf(cdir: Path, plan: Mapping[str, Any]) -> str:
    """cdir/seccomp.bpf: the BPF program of `plan` (made once; the C monitor's exec probes and hooks and
    the exec helper load it with prctl(PR_SET_SECCOMP))."""
    path = cdir / BPF_FILE
    if not path.exists():
        from pyrun.runtime import seccomp
        tmp = cdir / f".{BPF_FILE}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            seccomp.export_bpf(dict(plan), fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    return str(path)


def write(cdir: Path, config: InitConfig, uid: int, gid: int, groups: Sequence[int], home: str) -> None:
    """Write the container's exec profile (and its seccomp.bpf), before its workload starts."""
    from pyrun.runtime import security
    from pyrun.runtime.state import write_json
    plan = security.from_config(config).seccomp.plan
    bpf = write_seccomp_bpf(cdir, plan) if plan else None
    write_json(cdir / PROFILE_FILE, build(config, uid, gid, groups, home, bpf))


# --- at exec: the helper's arguments ---------------------------------------------------------------
def helper_argv(profile: Any, source: str, pid: int, start_time: int, argv: Sequence[str],
                extra_env: Sequence[str] = (), cwd: str | None = None) -> tuple[list[str], list[str]]:
    """(the helper's argv, the command's environment) for running `argv` in the container whose
    workload is pid/start_time (pure). A profile that is not exactly as `build` makes it raises
    RecordError naming `source` and the field: the exec must not run with less than it says."""
    p = _Checked(profile, source)
    if p.get("version", int) != VERSION:
        p.bad("version", f"version {VERSION}")
    name = p.get("name", str)
    caps, ambient = p.get("caps", int), p.get("ambient", int)
    if caps >= 1 << 64:
        p.bad("caps", "a 64-bit capability mask")
    if ambient & ~caps:
        p.bad("ambient", "a capability mask within caps")
    out = [str(HELPER), "--container", name, "--pid", str(pid), "--start-time", str(start_time),
           "--uid", str(p.get("uid", int)), "--gid", str(p.get("gid", int)),
           "--caps", f"{caps:x}", "--ambient", f"{ambient:x}", "--nnp", "1" if p.get("no_new_privs", bool) else "0"]
    groups = p.get("groups", list)
    if not all(type(g) is int and 0 <= g < 1 << 32 for g in groups):
        p.bad("groups", "a list of group ids")
    if groups:
        out += ["--groups", ",".join(map(str, groups))]
    bpf = p.get("seccomp_bpf", (str, type(None)))
    if bpf is not None:
        out += ["--seccomp-bpf", p.path("seccomp_bpf", bpf)]
    for entry in p.get("rlimits", list):
        if not (isinstance(entry, list) and len(entry) == 3 and all(type(v) is int for v in entry)
                and 0 <= entry[0] < 64 and all(v >= -1 for v in entry[1:])):
            p.bad("rlimits", "[resource, soft, hard] lists")
        out += ["--rlimit", ":".join(map(str, entry))]
    for procs in p.get("cgroup_procs", list):
        out += ["--cgroup-procs", p.path("cgroup_procs", procs)]
    env = p.get("env", list)
    if not all(isinstance(e, str) and "\0" not in e for e in env):
        p.bad("env", "a list of KEY=VALUE strings")
    from pyrun import explain
    env = [e for e in merge_env(env, extra_env) if not e.startswith(explain.ENV + "=")]
    out += ["--cwd", cwd or p.path("cwd", p.get("cwd", str)), "--", *argv]
    return out, env


class _Checked:
    """Typed reads of a profile's fields; RecordError naming the file and the field."""

    def __init__(self, doc: Any, source: str) -> None:
        self.source = source
        if not isinstance(doc, dict):
            self.bad("", "an object")
        self.doc = doc

    def bad(self, field: str, want: str):
        from pyrun.errors import RecordError
        where = f"field {field!r}" if field else "the document"
        raise RecordError(f"exec profile {self.source}: {where} must be {want}; not running the command "
                          f"(re-create the container to renew its profile)")

    def get(self, field: str, kind):
        value = self.doc.get(field)
        if field not in self.doc or not isinstance(value, kind) or (kind is int and isinstance(value, bool)) or (
                isinstance(value, int) and not isinstance(value, bool) and value < 0):
            self.bad(field, getattr(kind, "__name__", "of the right type"))
        return value

    def path(self, field: str, value: Any) -> str:
        if not (isinstance(value, str) and value.startswith("/") and "\0" not in value):
            self.bad(field, "an absolute path")
        return value


def exec_helper(cdir: Path, container: str, argv: Sequence[str], extra_env: Sequence[str] = (),
                cwd: str | None = None) -> None:
    """Become the exec helper for `argv` in the running container of `cdir` (never returns), or return
    without doing anything when the container has no exec profile or --explain is on (the caller
    then runs pyrun.runtime.nsexec, which prints the primitives; so it does without a built helper).
    InvalidState if it does not run."""
    from pyrun import explain
    if explain.active() or not os.access(HELPER, os.X_OK):
        return
    source = str(cdir / PROFILE_FILE)
    try:
        with open(source, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return
    import json
    try:
        profile = json.loads(data)
    except ValueError as e:
        from pyrun.errors import RecordError
        raise RecordError(f"exec profile {source}: not JSON ({e}); not running the command") from None
    from pyrun.errors import InvalidState
    from pyrun.runtime.state import read_status
    from pyrun.runtime.status import require_running
    status = read_status(cdir)
    require_running(container, status)
    ref = status.workload
    if ref is None or not ref.alive():
        raise InvalidState(f"container {container} exited")
    args, env = helper_argv(profile, source, ref.pid, ref.start_time, argv, extra_env, cwd)
    import sys
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(args[0], args, dict(e.split("=", 1) for e in env))
