"""`pyrun pod ...`, `pyrun logs`, `pyrun exec`, `pyrun gc`."""
from __future__ import annotations

import os
import sys

import click

from pyrun.cli.output import age, print_json, table


def _runtime(ctx: click.Context):
    from pyrun.runtime.api import Runtime
    return Runtime(ctx.obj)


@click.group()
def pod() -> None:
    """Create, list, inspect, stop and remove pods."""


@pod.command("create")
@click.argument("spec", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--strict", is_flag=True, help="Treat warnings (unsupported fields) as errors.")
@click.option("-o", "--output", type=click.Choice(["id", "json"]), default="id", show_default=True)
@click.option("--network", type=click.Choice(["bridge", "none", "cni"]), default=None,
              help="This pod's network (overrides the global --network).")
@click.pass_context
def pod_create(ctx: click.Context, spec: str, strict: bool, output: str, network: str | None) -> None:
    """Create a pod from a Kubernetes Pod manifest (JSON or YAML) and start its containers."""
    from pyrun.errors import SpecError
    if network:
        import dataclasses
        ctx.obj = dataclasses.replace(ctx.obj, network_mode=network)
    from pyrun.spec import load_pod_file
    loaded = load_pod_file(spec)
    for w in loaded.warnings:
        click.echo(f"pyrun: warning: {w}", err=True)
    if strict and loaded.warnings:
        raise SpecError([("", "warnings are errors with --strict")], source=spec)
    created = _runtime(ctx).create(loaded)
    if output == "json":
        print_json(created.to_dict())
    else:
        click.echo(created.id)


@pod.command("ls")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def pod_ls(ctx: click.Context, output: str) -> None:
    """List pods."""
    rt = _runtime(ctx)
    summaries = [_summary(rt, p) for p in rt.list_pods()]
    if output == "json":
        print_json(summaries)
        return
    rows = [[s["name"], s["namespace"], s["id"][:12], s["status"], s["ip"] or "-", s.get("qos") or "-", s["ready"],
             str(s["restarts"]), age(s["created_at"])] for s in summaries]
    click.echo(table(["NAME", "NAMESPACE", "ID", "STATUS", "IP", "QOS", "READY", "RESTARTS", "AGE"], rows))


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


@pod.command("inspect")
@click.argument("pod_ref")
@click.pass_context
def pod_inspect(ctx: click.Context, pod_ref: str) -> None:
    """Show everything about a pod as JSON: namespaces, pids, mounts, cgroups, containers."""
    rt = _runtime(ctx)
    print_json(rt.inspect(rt.get(pod_ref)))


@pod.command("stop")
@click.argument("pod_refs", nargs=-1, required=True)
@click.option("-t", "--timeout", type=click.FloatRange(min=0), default=None,
              help="Grace period in seconds (default: the pod's terminationGracePeriodSeconds).")
@click.pass_context
def pod_stop(ctx: click.Context, pod_refs: tuple[str, ...], timeout: float | None) -> None:
    """Stop pods: SIGTERM, the grace period, then SIGKILL."""
    rt = _runtime(ctx)
    _each(pod_refs, lambda ref: click.echo(rt.stop(ref, timeout).id))


@pod.command("rm")
@click.argument("pod_refs", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Stop (kill) running pods first.")
@click.pass_context
def pod_rm(ctx: click.Context, pod_refs: tuple[str, ...], force: bool) -> None:
    """Remove pods and everything they made."""
    rt = _runtime(ctx)

    def remove(ref: str) -> None:
        pod_id = rt.get(ref).id
        rt.remove(ref, force=force)
        click.echo(pod_id)
    _each(pod_refs, remove)


@pod.command("check-network")
@click.argument("pod_ref")
@click.pass_context
def pod_check_network(ctx: click.Context, pod_ref: str) -> None:
    """Ask a --network cni pod's plugins whether its network is still as they made it (CNI CHECK)."""
    checked = _runtime(ctx).check_network(pod_ref)
    click.echo(f"ok: {', '.join(checked)}" if checked else "ok (the network's cniVersion has no CHECK)")


def _each(refs: tuple[str, ...], action) -> None:
    """Apply `action` to every ref (like kubectl delete a b): report each failure, go on,
    and exit with the first failure's code once all were tried."""
    from pyrun.errors import PyrunError
    if len(refs) == 1:
        action(refs[0])
        return
    first: PyrunError | None = None
    for ref in refs:
        try:
            action(ref)
        except PyrunError as e:
            click.echo(f"pyrun: error: {e}", err=True)
            first = first or e
    if first is not None:
        click.get_current_context().exit(first.exit_code)


@click.command("logs")
@click.argument("pod_ref")
@click.argument("container", required=False)
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the container exits.")
@click.option("--timestamps", is_flag=True, help="Show each line's timestamp.")
@click.option("-p", "--previous", is_flag=True, help="The output of the previous instance of a restarted container.")
@click.pass_context
def logs(ctx: click.Context, pod_ref: str, container: str | None, follow: bool, timestamps: bool,
         previous: bool) -> None:
    """Print a container's output (stdout and stderr, from its CRI-format log file)."""
    out = sys.stdout.buffer
    for data in _runtime(ctx).logs(pod_ref, container, follow=follow and not previous, timestamps=timestamps,
                                   previous=previous):
        out.write(data)
        out.flush()


@click.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("pod_ref")
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("-e", "--env", multiple=True, help="Extra environment variable NAME=VALUE.")
@click.option("-w", "--workdir", default=None, help="Working directory inside the container.")
@click.pass_context
def exec_cmd(ctx: click.Context, pod_ref: str, container: str, command: tuple[str, ...], env: tuple[str, ...],
             workdir: str | None) -> None:
    """Run COMMAND in a running container: pyrun exec POD CONTAINER -- CMD [ARGS...]."""
    sys.stdout.flush()
    # in this process, no new interpreter: it joins the container's namespaces and cgroups, forks the
    # command and waits; having joined them, it must not go on with anything but exiting
    code = _runtime(ctx).exec_here(pod_ref, container, list(command), list(env), workdir)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the exit code of the command becomes ours


@click.command("gc")
@click.pass_context
def gc_cmd(ctx: click.Context) -> None:
    """Remove what crashed pyrun commands left behind (pods, containers, names, veths, rules,
    addresses), and the pod bridge once no pod is left."""
    report = _runtime(ctx).gc()
    net = report.get("network") or {}
    lines = [f"removed pod {p[:12]}" for p in report.get("pods", [])]
    lines += [f"removed container {c[:12]}" for c in report.get("containers", [])]
    lines += [f"removed the writable layer of container {c[:12]}" for c in report.get("layers", [])]
    lines += [f"removed name {n}" for n in report.get("names", [])]
    lines += [f"removed veth {v}" for v in net.get("veths", [])]
    lines += [f"removed the rules of pod {p[:12]}" for p in net.get("rules", [])]
    lines += [f"released the address of pod {p[:12]}" for p in net.get("addresses", [])]
    lines += [f"removed bridge {b} (no pod uses it)" for b in net.get("bridge", [])]
    lines += [f"ran CNI DEL for {e} (its pod is gone)" for e in net.get("cni", [])]
    click.echo("\n".join(lines) if lines else "nothing to clean up")


