"""`pyrun cri serve`: the Kubernetes CRI over gRPC (grpc is imported only when this command runs)."""
from __future__ import annotations

import click


@click.group()
def cri() -> None:
    """Serve the Kubernetes Container Runtime Interface (for crictl and the kubelet)."""


@cri.command("serve")
@click.option("--listen", default="unix:///run/pyrun/cri.sock", show_default=True,
              help="Unix socket to serve on (created with mode 0600).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True, help="One line per RPC at info.")
@click.option("--workers", type=click.IntRange(1, 256), default=16, show_default=True,
              help="RPCs handled at the same time.")
@click.option("--stream-address", default="127.0.0.1:0", show_default=True, metavar="HOST:PORT",
              help="Streaming server for Exec/Attach/PortForward (WebSocket; port 0: ephemeral). "
                   "No TLS: keep it on loopback.")
@click.option("--data-root", type=click.Path(file_okay=False), default=None,
              help="Images and writable layers; overrides the global --data-root (which applies too).")
@click.option("--network", type=click.Choice(["bridge", "none", "cni"]), default=None,
              help="Pod network (overrides the global --network; cni: see --cni-conf-dir, --cni-bin-dir).")
@click.option("--metrics-listen", default=None, metavar="HOST:PORT",
              help="Also serve Prometheus metrics (container_* and pyrun_* operation series) on "
                   "http://HOST:PORT/metrics, e.g. 127.0.0.1:9101. No TLS: keep it on loopback.")
@click.pass_context
def serve(ctx: click.Context, listen: str, log_level: str, workers: int, stream_address: str,
          data_root: str | None, network: str | None, metrics_listen: str | None) -> None:
    """Serve runtime.v1 and runtime.v1alpha2 until SIGTERM/SIGINT.

    Global options apply: --root (state shared with `pyrun pod`), --data-root (images and
    writable layers, shared with `pyrun` commands of the same --root), --network (with
    --cni-conf-dir and --cni-bin-dir for `--network cni`), and
    --cgroup-parent (must contain the kubelet's cgroup_parent paths, e.g. kubepods).
    """
    import dataclasses
    import os

    from pyrun.runtime.api import helpers
    cfg = ctx.obj
    if data_root:
        cfg = dataclasses.replace(cfg, data_root=os.path.abspath(data_root))
    if network:
        cfg = dataclasses.replace(cfg, network_mode=network)
    with helpers():  # the zygote, forked before grpc is imported: its 17 MiB stay out of the zygote
        from pyrun.cri.server import serve as run_server
        run_server(cfg, listen, log_level, workers, stream_address, metrics_listen)


if __name__ == "__main__":  # `python -m pyrun.cli.cri [global options] cri serve ...` until the lead registers it
    from pyrun.cli.main import cli, main
    if "cri" not in cli.commands:
        cli.add_command(cri)
    main()
