"""The `pyrun` click group: global options and the lazily imported subcommands.

pyrun.cli.main is the entry point; it imports this module (and click) for every command but a
plain `pyrun --help`, which it answers from pyrun.cli._roothelp without importing click.
"""
from __future__ import annotations

import click

from pyrun.cli import commands


# Subcommands are imported only when used: `pod create` must not pay for the image store,
# the cgroup stats code or grpc (every pyrun command is a fresh Python process). `pyrun --help`
# imports none of them: it lists the short help kept here (a unit test keeps it equal to the
# commands' own docstrings).
LAZY_COMMANDS = {
    "pod": ("pyrun.cli.pod", "pod", "Create, list, inspect, stop and remove pods."),
    "logs": ("pyrun.cli.pod", "logs",
             "Print a container's output (stdout and stderr, from its CRI-format log file)."),
    "exec": ("pyrun.cli.pod", "exec_cmd",
             "Run COMMAND in a running container: pyrun exec POD CONTAINER -- CMD [ARGS...]."),
    "gc": ("pyrun.cli.pod", "gc_cmd",
           "Remove what crashed pyrun commands left behind (pods, containers, names, veths, rules, "
           "addresses), and the pod bridge once no pod is left."),
    "image": ("pyrun.cli.image", "image",
              "Manage images: pull from registries, import OCI layouts and archives, list, inspect, remove, prune."),
    "stats": ("pyrun.cli.stats", "stats",
              "Show cpu, memory, pids and hugetlb usage of each pod and its containers (of every pod without POD)."),
    "metrics": ("pyrun.cli.metrics", "metrics",
                "Serve Prometheus metrics of pods and containers (cAdvisor's container_* series)."),
    "cri": ("pyrun.cli.cri", "cri",
            "Serve the Kubernetes Container Runtime Interface (for crictl and the kubelet)."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(LAZY_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in LAZY_COMMANDS:
            return None
        module, attr, _ = LAZY_COMMANDS[name]
        import importlib
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of `--help` from LAZY_COMMANDS, without importing any subcommand."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        # shortened as click shortens a command's own help (click.utils.make_default_short_help is deprecated)
        rows = [(name, click.Command(name, help=LAZY_COMMANDS[name][2]).get_short_help_str(limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _check_cidr(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--pod-cidr: an IPv4 network (host bits zero) with room for the gateway and a pod."""
    if value is None:
        return None
    import ipaddress
    try:
        net = ipaddress.IPv4Network(value, strict=True)
    except ValueError as e:
        raise click.BadParameter(f"{value!r}: {e}") from None
    if net.num_addresses < 4:
        raise click.BadParameter(f"{value!r}: too small (needs room for a gateway and a pod)")
    return str(net)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", envvar="PYRUN_ROOT", type=click.Path(file_okay=False), default=None,
              help="State root (default /run/pyrun; env PYRUN_ROOT).")
@click.option("--data-root", envvar="PYRUN_DATA_ROOT", type=click.Path(file_okay=False), default=None,
              help="Images and writable layers (default /var/lib/pyrun; with another --root: ROOT/data; "
                   "env PYRUN_DATA_ROOT).")
@click.option("--explain", is_flag=True, help="Print every Linux primitive as the equivalent shell command.")
@click.option("--network", type=click.Choice(["bridge", "none", "cni"]), envvar="PYRUN_NETWORK", default="bridge",
              show_default=True, help="Pod network: a bridge + veth per pod, only loopback, or the CNI plugins "
                                      "of the first valid config in --cni-conf-dir.")
@click.option("--cni-conf-dir", envvar="PYRUN_CNI_CONF_DIR", default="/etc/cni/net.d", show_default=True,
              help="CNI network configs (.conflist, .conf, .json; the first valid one in lexical order).")
@click.option("--cni-bin-dir", envvar="PYRUN_CNI_BIN_DIR", default="/opt/cni/bin:/usr/lib/cni", show_default=True,
              help="Where CNI plugin binaries are searched, ':'-separated, in order.")
@click.option("--cgroup-parent", envvar="PYRUN_CGROUP_PARENT", default=None,
              help="Parent cgroup for pods (default pyrun).")
@click.option("--pod-cidr", envvar="PYRUN_POD_CIDR", default=None, metavar="CIDR", callback=_check_cidr,
              help="Pod addresses for --network bridge (default 10.88.0.0/16; the bridge takes the first). "
                   "Each node of a multi-node cluster needs its own.")
@click.version_option(package_name="pyrun")
@click.pass_context
def cli(ctx: click.Context, root: str | None, data_root: str | None, explain: bool, network: str,
        cni_conf_dir: str, cni_bin_dir: str, cgroup_parent: str | None, pod_cidr: str | None) -> None:
    """pyrun: Kubernetes Pods built from Linux primitives."""
    ctx.obj = commands.make_config(root, data_root, explain, network, cni_options(network, cni_conf_dir, cni_bin_dir),
                                   cgroup_parent, pod_cidr)


def cni_options(network: str, conf_dir: str, bin_dir: str) -> dict:
    """Config.cni from --cni-conf-dir and --cni-bin-dir."""
    cni = commands.cni_dirs(conf_dir, bin_dir)
    if not cni["bin_dirs"] and network == "cni":
        raise click.BadParameter("needs at least one directory", param_hint="--cni-bin-dir")
    return cni


def render_help(width: int = 78) -> str:
    """The root command's --help text at a formatter width (what pyrun.cli._roothelp caches)."""
    ctx = click.Context(cli, info_name="pyrun", terminal_width=width, **cli.context_settings)
    with ctx:
        return cli.get_help(ctx) + "\n"


# The commands pyrun.cli.main runs without click (pyrun.cli.fastargs reads their argv from pyrun.cli._fasttable).
FAST_COMMANDS = ("pod create", "pod ls", "pod rm", "exec")


def fast_table() -> dict:
    """The parameters of the root group and of FAST_COMMANDS as click defines them (what
    pyrun.cli._fasttable caches for pyrun.cli.fastargs)."""
    ctx = click.Context(cli, info_name="pyrun")
    table: dict = {"": _fast_params(cli, ctx)}
    for path in FAST_COMMANDS:
        words = path.split()
        cmd: click.Command | None = cli
        for word in words:
            assert isinstance(cmd, click.Group)
            cmd = cmd.get_command(ctx, word)
        assert cmd is not None
        if len(words) == 2:
            group = cli.get_command(ctx, words[0])
            assert group is not None
            # fastargs goes through a group only when it has no parameters of its own
            table[words[0]] = "group" if not group.params else None
        table[path] = _fast_params(cmd, ctx)
    return {k: v for k, v in table.items() if v is not None}


def _fast_params(cmd: click.Command, ctx: click.Context) -> dict:
    options, arguments = [], []
    for p in cmd.params:
        param: dict = {"dest": p.name, "type": _fast_type(p, ctx)}
        if isinstance(p.type, click.Choice):
            param["choices"] = list(p.type.choices)
        if isinstance(p.type, click.Path):
            param.update(file_okay=p.type.file_okay, dir_okay=p.type.dir_okay, allow_dash=p.type.allow_dash)
        if isinstance(p, click.Option):
            kind = "flag" if p.is_flag else "multiple" if p.multiple else "value"
            default = p.get_default(ctx)
            param.update(names=list(p.opts + p.secondary_opts), kind=kind, envvar=p.envvar,
                         default=default if isinstance(default, (str, bool, int, float)) else None)
            options.append(param)
        else:
            param.update(nargs=p.nargs, required=p.required)
            arguments.append(param)
    return {"options": options, "arguments": arguments}


def _fast_type(p: click.Parameter, ctx: click.Context) -> str:
    """How fastargs checks a value (see there); "click" for what only click may handle."""
    plain = (p.callback is None and not p.is_eager and p.nargs in (1, -1) and not getattr(p, "count", False)
             and not getattr(p, "secondary_opts", []) and not getattr(p, "prompt", None))
    if not plain:
        return "click"
    if isinstance(p, click.Option) and p.is_flag:  # a plain on/off flag: False unless given
        return "str" if isinstance(p.type, click.types.BoolParamType) and p.get_default(ctx) is False else "click"
    if isinstance(p.type, click.Choice) and p.type.case_sensitive and all(isinstance(c, str) for c in p.type.choices):
        return "choice"
    if isinstance(p.type, click.Path) and p.type.readable and p.type.type in (None, str) and not (
            p.type.exists or p.type.writable or p.type.executable or p.type.resolve_path):
        return "path"
    if p.type in (click.STRING, click.UNPROCESSED):
        return "str"
    return "click"


def render_fast_table() -> str:
    """The source of pyrun.cli._fasttable."""
    import pprint
    return ('"""The parameters of the commands pyrun.cli.fastargs parses without click.\n\n'
            "Generated by pyrun.cli.root.render_fast_table(); tests/unit/test_cli_fastargs.py checks it is current\n"
            '(regenerate: python -c "from pyrun.cli import root; print(root.render_fast_table(), end=\'\')" '
            '> src/pyrun/cli/_fasttable.py).\n"""\n'
            f"TABLE = {pprint.pformat(fast_table(), width=110, sort_dicts=True)}\n")
