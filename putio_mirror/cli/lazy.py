"""Commands whose modules are imported only when they run, or when their own help is asked.

``putio-mirror --help`` (and every timer run) would otherwise import every command's module
and what it needs: ``status``, ``doctor``, ``history`` and ``login`` cost ~35 ms of
``--help`` (python -X importtime). The group lists them with the one-line help written
here; a test keeps these lines equal to the commands' own.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import click

from putio_mirror.cli.anywhere import hoisted


@dataclass(frozen=True)
class LazyCommand:
    """Where a command lives (``module:attribute``) and its one-line help."""

    where: str
    short_help: str

    def load(self) -> click.Command:
        module, _, attribute = self.where.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command), self.where
        return command


class LazyGroup(click.Group):
    """A click group that also holds commands imported on first use."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, LazyCommand] = {}

    def with_lazy(self, commands: dict[str, LazyCommand]) -> LazyGroup:
        self.lazy = dict(commands)
        return self

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.parent is None:  # the program's group: its options may follow the command
            args = hoisted(args, frozenset(self.list_commands(ctx)))
        return super().parse_args(ctx, args)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy and name not in self.commands:
            self.add_command(self.lazy[name].load(), name)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names), default=0)
        rows = [(name, help) for name in names if (help := self._short_help(ctx, name, limit))]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def _short_help(self, ctx: click.Context, name: str, limit: int) -> str | None:
        if name in self.lazy and name not in self.commands:
            # shortened as click shortens a command's own help
            return click.Command(name, help=self.lazy[name].short_help).get_short_help_str(limit)
        command = super().get_command(ctx, name)
        return None if command is None or command.hidden else command.get_short_help_str(limit)
