"""`pyrun pod ...`, `pyrun logs`, `pyrun exec`, `pyrun gc`."""
from __future__ import annotations

import sys

import click

from pyrun.cli import commands
from pyrun.cli.output import print_json


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
    commands.pod_create(ctx.obj, spec, strict, output, network)


@pod.command("ls")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def pod_ls(ctx: click.Context, output: str) -> None:
    """List pods."""
    commands.pod_ls(ctx.obj, output)


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
    ctx.exit(commands.pod_stop(ctx.obj, pod_refs, timeout))


@pod.command("rm")
@click.argument("pod_refs", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Stop (kill) running pods first.")
@click.pass_context
def pod_rm(ctx: click.Context, pod_refs: tuple[str, ...], force: bool) -> None:
    """Remove pods and everything they made."""
    ctx.exit(commands.pod_rm(ctx.obj, pod_refs, force))


@pod.command("check-network")
@click.argument("pod_ref")
@click.pass_context
def pod_check_network(ctx: click.Context, pod_ref: str) -> None:
    """Ask a --network cni pod's plugins whether its network is still as they made it (CNI CHECK)."""
    checked = _runtime(ctx).check_network(pod_ref)
    click.echo(f"ok: {', '.join(checked)}" if checked else "ok (the network's cniVersion has no CHECK)")


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
    commands.exec_cmd(ctx.obj, pod_ref, container, command, env, workdir)


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


