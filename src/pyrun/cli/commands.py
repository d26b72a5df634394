"""The bodies of the hot commands (`pod create`, `pod ls`, `pod rm`, `exec`) and of the root
group's set-up, without click.

pyrun.cli.root and pyrun.cli.pod's click commands call these, and so does pyrun.cli.main when
pyrun.cli.fastargs has read argv without click: one implementation either way. Each returns
the command's exit code.
"""
from __future__ import annotations


import os
import sys

from pyrun.cli.output import age, echo, print_json, table
from pyrun.config import Config
from pyrun.frozen import replace


def cni_dirs(conf_dir: str, bin_dir: str) -> dict:
    """Config.cni: absolute dirs (pyrun may run plugins from another working directory)."""
    return {"conf_dir": os.path.abspath(conf_dir), "bin_dirs": [os.path.abspath(d) for d in bin_dir.split(":") if d]}


def make_config(root: str | None, data_root: str | None, explain: bool, network: str, cni: dict,
                cgroup_parent: str | None, pod_cidr: str | None = None) -> Config:
    """The root group's Config (its global options); --explain starts printing primitives."""
    cfg = Config.from_env(root, data_root, cgroup_parent=cgroup_parent, explain=explain, network_mode=network,
                          cni=cni, network={"cidr": pod_cidr} if pod_cidr else {})
    if explain:
        from pyrun import explain as ex
        ex.enable(os.dup(2))
    return cfg


def _runtime(cfg: Config):
    from pyrun.runtime.api import Runtime
    return Runtime(cfg)


def pod_create(cfg: Config, spec: str, strict: bool, output: str, network: str | None) -> int:
    from pyrun.errors import SpecError
    if network:
        cfg = replace(cfg, network_mode=network)
    from pyrun.spec import load_pod_file
    loaded = load_pod_file(spec)
    for w in loaded.warnings:
        echo(f"pyrun: warning: {w}", err=True)
    if strict and loaded.warnings:
        raise SpecError([("", "warnings are errors with --strict")], source=spec)
    created = _runtime(cfg).create(loaded)
    if output == "json":
        print_json(created.to_dict())
    else:
        echo(created.id)
    return 0


def pod_ls(cfg: Config, output: str) -> int:
    rt = _runtime(cfg)
    summaries = [_summary(rt, p) for p in rt.list_pods()]
    if output == "json":
        print_json(summaries)
        return 0
    rows = [[s["name"], s["namespace"], s["id"][:12], s["status"], s["ip"] or "-", s.get("qos") or "-", s["ready"],
             str(s["restarts"]), age(s["created_at"])] for s in summaries]
    echo(table(["NAME", "NAMESPACE", "ID", "STATUS", "IP", "QOS", "READY", "RESTARTS", "AGE"], rows))
    return 0


def _summary(rt, p) -> dict:
    """One pod as `pod ls` shows it: STATUS, READY and IP from pyrun.runtime.status (shared with the CRI)."""
    containers, status = rt.observe(p)
    return {"id": p.id, "name": p.name, "namespace": p.namespace, "state": p.state,
            "status": status.status, "ready": f"{status.ready}/{status.total}", "ip": status.ip,
            "qos": p.qos, "created_at": p.created_at,
            "restarts": sum(c.status.restart_count or 0 for c in containers),
            "containers": [{"name": c.name, "id": c.id, "state": c.status.state,
                            "exit_code": c.status.exit_code, "reason": c.status.reason,
                            "restart_count": c.status.restart_count or 0,
                            "ready": c.status.state == "running" and c.status.ready is not False}
                           for c in containers]}


def pod_stop(cfg: Config, pod_refs: tuple[str, ...], timeout: float | None) -> int:
    rt = _runtime(cfg)
    return each(pod_refs, lambda ref: echo(rt.stop(ref, timeout).id))


def pod_rm(cfg: Config, pod_refs: tuple[str, ...], force: bool) -> int:
    rt = _runtime(cfg)

    def remove(ref: str) -> None:
        pod_id = rt.get(ref).id
        rt.remove(ref, force=force)
        echo(pod_id)
    return each(pod_refs, remove)


def each(refs: tuple[str, ...], action) -> int:
    """Apply `action` to every ref (like kubectl delete a b): report each failure, go on,
    and return the first failure's exit code once all were tried (0 if none failed)."""
    from pyrun.errors import PyrunError
    if len(refs) == 1:
        action(refs[0])
        return 0
    first: PyrunError | None = None
    for ref in refs:
        try:
            action(ref)
        except PyrunError as e:
            echo(f"pyrun: error: {e}", err=True)
            first = first or e
    return first.exit_code if first is not None else 0


def exec_cmd(cfg: Config, pod_ref: str, container: str, command: tuple[str, ...], env: tuple[str, ...],
             workdir: str | None) -> int:
    sys.stdout.flush()
    # in this process, no new interpreter: it joins the container's namespaces and cgroups, forks the
    # command and waits; having joined them, it must not go on with anything but exiting
    code = _runtime(cfg).exec_here(pod_ref, container, list(command), list(env), workdir)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the exit code of the command becomes ours
