"""`pyrun`: the root command, global options, and the one place errors become exit codes."""
from __future__ import annotations

import os
import sys

import click

from pyrun.config import Config
from pyrun.errors import PyrunError


# Subcommands are imported only when used: `pod create` must not pay for the image store,
# the cgroup stats code or grpc (every pyrun command is a fresh Python process).
LAZY_COMMANDS = {
    "pod": ("pyrun.cli.pod", "pod"),
    "logs": ("pyrun.cli.pod", "logs"),
    "exec": ("pyrun.cli.pod", "exec_cmd"),
    "gc": ("pyrun.cli.pod", "gc_cmd"),
    "image": ("pyrun.cli.image", "image"),
    "stats": ("pyrun.cli.stats", "stats"),
    "cri": ("pyrun.cli.cri", "cri"),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(LAZY_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in LAZY_COMMANDS:
            return None
        module, attr = LAZY_COMMANDS[name]
        import importlib
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", envvar="PYRUN_ROOT", type=click.Path(file_okay=False), default=None,
              help="State root (default /run/pyrun; env PYRUN_ROOT).")
@click.option("--data-root", envvar="PYRUN_DATA_ROOT", type=click.Path(file_okay=False), default=None,
              help="Images and writable layers (default /var/lib/pyrun; with another --root: ROOT/data; "
                   "env PYRUN_DATA_ROOT).")
@click.option("--explain", is_flag=True, help="Print every Linux primitive as the equivalent shell command.")
@click.option("--network", type=click.Choice(["bridge", "none"]), envvar="PYRUN_NETWORK", default="bridge",
              show_default=True, help="Pod network: a bridge + veth per pod, or only loopback.")
@click.option("--cgroup-parent", envvar="PYRUN_CGROUP_PARENT", default=None,
              help="Parent cgroup for pods (default pyrun).")
@click.version_option(package_name="pyrun")
@click.pass_context
def cli(ctx: click.Context, root: str | None, data_root: str | None, explain: bool, network: str,
        cgroup_parent: str | None) -> None:
    """pyrun: Kubernetes Pods built from Linux primitives."""
    cfg = Config.from_env(root, data_root, cgroup_parent=cgroup_parent, explain=explain,
                          extra={"network_mode": network})
    if explain:
        from pyrun import explain as ex
        ex.enable(os.dup(2))
    ctx.obj = cfg


def main(argv: list[str] | None = None) -> None:
    """Entry point: the only place PyrunErrors become messages and exit codes."""
    try:
        rv = cli.main(args=argv, prog_name="pyrun", standalone_mode=False)
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


if __name__ == "__main__":
    main()
