"""`pyrun metrics serve`: a Prometheus endpoint for the pods of this state root (prometheus_client is
imported only when this command runs)."""
from __future__ import annotations

import click


@click.group()
def metrics() -> None:
    """Serve Prometheus metrics of pods and containers (cAdvisor's container_* series)."""


@metrics.command("serve")
@click.option("--listen", default="127.0.0.1:9101", show_default=True, metavar="HOST:PORT",
              help="Address of the /metrics endpoint (port 0: any free port). No TLS: keep it on loopback.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True)
@click.pass_obj
def serve(cfg, listen: str, log_level: str) -> None:
    """Serve /metrics until SIGTERM/SIGINT: per pod and container CPU, memory, OOM kills, limits and
    processes, read from the cgroups at every scrape.

    The pyrun_* operation histograms exist only on `pyrun cri serve --metrics-listen`: CLI commands
    are separate processes this server does not see.
    """
    from pyrun.config import setup_logging
    from pyrun.metrics.server import serve as run_server
    setup_logging(log_level)
    run_server(cfg, listen)
