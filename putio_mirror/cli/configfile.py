"""``putio-mirror config init``: write the documented example config where it will be read."""

from __future__ import annotations

import os
from pathlib import Path

import click

from putio_mirror.cli.context import Context, pass_context


@click.group("config")
def config() -> None:
    """The config file: write the documented example to start from."""


@config.command("init")
@click.option(
    "--path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write it (default: --config, then $PUTIO_MIRROR_CONFIG, "
    "then ~/.config/putio-mirror/mirror.yaml).",
)
@click.option("--force", is_flag=True, help="Replace a file that is there already.")
@pass_context
def config_init(context: Context, path: Path | None, force: bool) -> int:
    """Write the documented example config (every option at its default), mode 600."""
    from putio_mirror.config.example import write_example
    from putio_mirror.config.settings import config_file_path

    target = config_file_path(path or context.config, os.environ)
    write_example(target, force=force)
    click.echo(f"Wrote the documented example config to {target} (mode 600).")
    click.echo("Edit paths: (and schedule: for download windows), then run `putio-mirror login`.")
    return 0
