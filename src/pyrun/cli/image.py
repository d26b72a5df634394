"""`pyrun image ...`: pull, import, ls, inspect, rm, prune. Parse -> call the store -> print."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from pyrun.images import reference
from pyrun.images.store import Image, ImageStore


def _store(ctx: click.Context) -> ImageStore:
    from pyrun.runtime.api import Runtime
    return Runtime(ctx.obj).open_images()


def images_in_use(cfg) -> set[str]:
    """Ids of the images some container uses (rm refuses them without -f, prune keeps them)."""
    from pyrun.runtime.api import Runtime
    return Runtime(cfg).images_in_use()


def human_size(n: int) -> str:
    """Docker-style sizes: 1.9MB, 732kB, 12B (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n}{unit}" if unit == "B" else f"{n:.3g}{unit}"
        n /= 1000
    return f"{n}B"  # unreachable


def image_row(image: Image) -> dict:
    ref = reference.parse(image.name)
    return {"repository": ref.repository, "tag": ref.tag or "<none>", "id": image.id,
            "name": image.name, "manifest_digest": image.manifest_digest, "size": image.size}


def render_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


@click.group("image")
def image() -> None:
    """Manage images: pull from registries, import OCI layouts and archives, list, inspect, remove, prune."""


@image.command("pull")
@click.argument("ref")
@click.option("--platform", default="linux/amd64", show_default=True, help="os/arch[/variant] to pick from an index.")
@click.option("--creds", metavar="USER:PASS", help="Credentials for the image's registry.")
@click.option("--authfile", type=click.Path(dir_okay=False), envvar="REGISTRY_AUTH_FILE",
              help="docker-style config.json with 'auths' (default ~/.docker/config.json; env REGISTRY_AUTH_FILE).")
@click.option("--registries-conf", type=click.Path(dir_okay=False), envvar="PYRUN_REGISTRIES_CONF",
              help="Registries config: mirrors, insecure registries (default /etc/pyrun/registries.toml).")
@click.option("--insecure", "insecure", multiple=True, metavar="HOST[:PORT]",
              help="Use plain HTTP for this registry host (repeatable). Loopback hosts use HTTP anyway.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@click.pass_context
def pull(ctx: click.Context, ref: str, platform: str, creds: str | None, authfile: str | None,
         registries_conf: str | None, insecure: tuple[str, ...], quiet: bool) -> None:
    """Pull REF (e.g. busybox, localhost:5000/app:1, repo@sha256:...) from its registry."""
    from pyrun.images import auth as authmod
    from pyrun.images.pull import BarProgress, LineProgress, pull_image
    explicit = authmod.parse_creds(creds) if creds else None
    progress = None
    if not quiet:
        write = lambda text: (sys.stderr.write(text), sys.stderr.flush())  # noqa: E731
        progress = BarProgress(write) if sys.stderr.isatty() else LineProgress(write)
    img = pull_image(_store(ctx), ref, explicit, platform=platform, config=registries_conf, progress=progress,
                     authfile=authfile, insecure_hosts=frozenset(insecure))
    click.echo(f"{img.name} {img.id}")


@image.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.argument("name", required=False)
@click.pass_context
def import_(ctx: click.Context, path: Path, name: str | None) -> None:
    """Import an OCI image layout directory, an OCI archive or a `docker save` tar as NAME[:TAG]."""
    img = _store(ctx).import_path(path, name)
    click.echo(f"{img.name} {img.id}")


@image.command("ls")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def ls(ctx: click.Context, output: str) -> None:
    """List tagged images."""
    rows = [image_row(i) for i in _store(ctx).list()]
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    table = [["REPOSITORY", "TAG", "IMAGE ID", "SIZE"]]
    table += [[r["repository"], r["tag"], r["id"].split(":", 1)[1][:12], human_size(r["size"])] for r in rows]
    click.echo(render_table(table))


@image.command("inspect")
@click.argument("ref")
@click.pass_context
def inspect(ctx: click.Context, ref: str) -> None:
    """Show an image's config, history and layers as JSON."""
    store = _store(ctx)
    img = store.resolve(ref)
    doc = {
        "id": img.id,
        "names": store.names_of(img.id),
        "manifest_digest": img.manifest_digest,
        "size": img.size,
        "config": img.config,
        "history": img.config.get("history", []),
        "layers": [{"digest": d.digest, "diff_id": diff, "media_type": d.media_type, "size": d.size}
                   for d, diff in zip(img.layers, img.layer_diff_ids)],
    }
    click.echo(json.dumps(doc, indent=2))


@image.command("rm")
@click.option("-f", "--force", is_flag=True, help="Remove even if containers use it or it has several names.")
@click.argument("refs", nargs=-1, required=True)
@click.pass_context
def rm(ctx: click.Context, refs: tuple[str, ...], force: bool) -> None:
    """Untag images (their data goes with `pyrun image prune`)."""
    store = _store(ctx)
    in_use = images_in_use(ctx.obj)
    for ref in refs:
        for name in store.remove(ref, in_use, force):
            click.echo(f"Untagged: {name}")


@image.command("prune")
@click.pass_context
def prune(ctx: click.Context) -> None:
    """Delete blobs and unpacked layers no tagged or running image needs."""
    freed = _store(ctx).prune(images_in_use(ctx.obj))
    click.echo(f"Reclaimed {human_size(freed)}")
