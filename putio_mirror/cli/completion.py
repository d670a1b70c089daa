"""``putio-mirror completion SHELL``: print click's completion script for bash, zsh or fish."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

PROG_NAME = "putio-mirror"
#: the variable click's scripts set when they ask the program for completions
COMPLETE_VAR = "_PUTIO_MIRROR_COMPLETE"
SHELLS = ("bash", "zsh", "fish")


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> int:
    """Print the shell completion script for SHELL.

    \b
    bash: putio-mirror completion bash > ~/.local/share/bash-completion/completions/putio-mirror
    zsh:  putio-mirror completion zsh > "${fpath[1]}/_putio-mirror"
    fish: putio-mirror completion fish > ~/.config/fish/completions/putio-mirror.fish
    """
    script_class = get_completion_class(shell)
    if script_class is None:  # click knows all three; a newer click might drop one
        raise click.UsageError(f"this version of click has no completion for {shell}")
    root = ctx.find_root().command
    script = script_class(root, {}, PROG_NAME, COMPLETE_VAR).source()
    click.echo(script)
    return 0
