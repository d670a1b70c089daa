"""The face: commands, printing, and the mapping of errors to exit codes.

Only this module prints. Heavy modules (requests, SQLAlchemy, rich, pydantic)
are imported inside the commands so that ``--help`` starts fast.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import click

from putio_mirror import __version__
from putio_mirror.cli.context import Context, pass_context
from putio_mirror.cli.lazy import LazyCommand, LazyGroup
from putio_mirror.cli.output import dry_run_option, run_request
from putio_mirror.core.errors import ExitCode, MirrorError

if TYPE_CHECKING:
    from putio_mirror.app.run import Request

log = logging.getLogger("putio_mirror")
_GC_THRESHOLD = 50_000  # see entry()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "-c",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Config file (default: $PUTIO_MIRROR_CONFIG, then ~/.config/putio-mirror/mirror.yaml).",
)
@click.option("--verbose", "-v", count=True, help="More log output (-vv for debug).")
@click.option(
    "--quiet", "-q", is_flag=True, help="Print only problems (for cron: mail only when needed)."
)
@click.version_option(__version__, prog_name="putio-mirror")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, verbose: int, quiet: bool) -> None:
    """Keep a put.io account and this machine in step.

    `sync` does everything: blackhole torrents become transfers, seeding is
    cancelled, finished transfers are cleaned once mirrored, and files are
    downloaded, verified and placed, inside the download windows.
    """
    ctx.obj = Context(config, verbose, quiet)


def _request(command: str, kinds: Iterable[str], **options: Any) -> Request:
    from putio_mirror.app.run import ALL_KINDS, Request

    wanted = frozenset(kind for kind in ALL_KINDS if kind in kinds)
    return Request(command=command, kinds=wanted, **options)


force_option = click.option("--force", is_flag=True, help="Run a plan beyond the safety limits.")


@cli.command()
@dry_run_option
@force_option
@click.option(
    "--window",
    "-w",
    "windows",
    multiple=True,
    metavar="HH:MM-HH:MM",
    help="Download only inside this window (repeatable; replaces the config's windows).",
)
@pass_context
def sync(context: Context, dry_run: bool, force: bool, windows: tuple[str, ...]) -> int:
    """Bring put.io and the local folders into the desired state, once."""
    from putio_mirror.app.run import ALL_KINDS

    overrides: dict[str, object] = {"schedule.windows": list(windows)} if windows else {}
    request = _request("sync", ALL_KINDS, dry_run=dry_run, force=force)
    return run_request(context, request, overrides)


@cli.group()
def torrents() -> None:
    """Blackhole .torrent and .magnet files → put.io transfers."""


@torrents.command("add")
@dry_run_option
@pass_context
def torrents_add(context: Context, dry_run: bool) -> int:
    """Submit every .torrent and .magnet in the blackhole, once each."""
    from putio_mirror.app.run import BLACKHOLE_KINDS

    return run_request(context, _request("torrents add", BLACKHOLE_KINDS, dry_run=dry_run))


@torrents.command("watch")
@click.option(
    "--add-first/--no-add-first", default=True, help="Submit the files already there first."
)
@pass_context
def torrents_watch(context: Context, add_first: bool) -> int:
    """Watch the blackhole and submit each new file once it is completely written."""
    from putio_mirror.cli.watch import watch_blackhole

    settings = context.settings()
    code = watch_blackhole(
        settings, add_first=add_first, periodic_sync=False, reload=context.settings
    )
    return int(code)


@cli.command("watch")
@pass_context
def watch(context: Context) -> int:
    """Run in the foreground: submit blackhole files as they arrive, sync on a schedule.

    SIGHUP reads the config again; SIGTERM stops (exit 0), Ctrl-C too (exit 130).
    """
    from putio_mirror.cli.watch import watch_blackhole

    settings = context.settings()
    code = watch_blackhole(settings, add_first=True, periodic_sync=True, reload=context.settings)
    return int(code)


@cli.command("serve")
@pass_context
def serve(context: Context) -> int:
    """Run the watcher and a Transmission RPC endpoint for Sonarr, Radarr and others."""
    from putio_mirror.cli.serve import serve as serve_forever

    return int(serve_forever(context.settings()))


@cli.group()
def transfers() -> None:
    """Groom put.io's transfer list."""


def _transfers_command(name: str, kinds: list[str], doc: str) -> None:
    @transfers.command(name, help=doc)
    @dry_run_option
    @force_option
    @pass_context
    def command(context: Context, dry_run: bool, force: bool) -> int:
        return run_request(
            context, _request(f"transfers {name}", kinds, dry_run=dry_run, force=force)
        )


_transfers_command("cancel-seeding", ["cancel"], "Cancel transfers that are seeding.")
_transfers_command("clean", ["clean"], "Clean finished transfers whose files are mirrored.")
_transfers_command("groom", ["cancel", "clean"], "Cancel seeding, then clean finished transfers.")


@transfers.command("retry")
@click.argument("ids", nargs=-1, type=int)
@pass_context
def transfers_retry(context: Context, ids: tuple[int, ...]) -> int:
    """Have put.io try transfers in ERROR again (the ids `status` shows; none: all of them)."""
    return _errored(context, "retry", ids)


@transfers.command("dismiss")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "every", is_flag=True, help="Every transfer in ERROR.")
@pass_context
def transfers_dismiss(context: Context, ids: tuple[int, ...], every: bool) -> int:
    """Remove transfers in ERROR from put.io's list (their files, if any, stay)."""
    if bool(ids) == every:
        raise click.UsageError("name the transfers in ERROR to dismiss by id, or give --all")
    return _errored(context, "dismiss", ids)


def _errored(context: Context, verb: Literal["retry", "dismiss"], ids: tuple[int, ...]) -> int:
    from putio_mirror.app.errored import handle_errored
    from putio_mirror.app.run import local_now
    from putio_mirror.cli.crash import redact

    errored = handle_errored(context.settings(writes=False), verb, ids, local_now)
    if not errored.handled:
        click.echo("No put.io transfer is in ERROR.")
    for outcome in errored.handled:
        said = "retried" if verb == "retry" else "dismissed"
        was = outcome.transfer.error_message or "no reason given"
        if outcome.done:
            click.echo(f"{said} #{outcome.transfer.id} {outcome.transfer.name} (was: {was})")
        else:
            click.echo(f"failed #{outcome.transfer.id} {outcome.transfer.name}: {outcome.error}")
    for item in errored.attention:  # as a run says them (cli/output.show_outcome)
        click.echo(redact(f"needs you: {item.message}"), err=True)
        click.echo(f"  hint: {item.hint}", err=True)
    if any(not outcome.done for outcome in errored.handled):
        return int(ExitCode.ITEMS_FAILED)
    return int(ExitCode.NEEDS_ATTENTION if errored.attention else ExitCode.OK)


@cli.group()
def files() -> None:
    """The remote files: list them, download them."""


@files.command("list")
@pass_context
def files_list(context: Context) -> int:
    """Print the remote files as JSON, recursively, with their paths."""
    from putio_mirror.app.listing import list_remote_files

    listing = list_remote_files(context.settings(writes=False))
    click.echo(json.dumps(listing, indent=2, ensure_ascii=False))
    return 0


@files.command("download")
@click.option("--limit", type=click.IntRange(min=1), help="Download at most N files this run.")
@click.option(
    "--chunk-size",
    type=click.IntRange(min=4, max=1024 * 1024),
    metavar="KB",
    help="Chunk size in KiB (default 256).",
)
@dry_run_option
@pass_context
def files_download(
    context: Context, limit: int | None, chunk_size: int | None, dry_run: bool
) -> int:
    """Download, verify and place the remote files not yet mirrored."""
    from putio_mirror.app.run import DOWNLOAD_KINDS

    overrides: dict[str, object] = {"download.chunk_size_kb": chunk_size} if chunk_size else {}
    request = _request("files download", DOWNLOAD_KINDS, dry_run=dry_run, limit_downloads=limit)
    return run_request(context, request, overrides)


@cli.command()
# Not readable=True: a dead mount there must reach check_mount_point, which names it.
@click.argument("mount_point", type=click.Path(path_type=Path, readable=False))
@click.option(
    "--foreground", "-f", is_flag=True, help="Stay in the foreground; Ctrl-C or SIGTERM unmounts."
)
@pass_context
def mount(context: Context, mount_point: Path, foreground: bool) -> int:
    """Mount the put.io account read-only at MOUNT_POINT, named as the mirror names it."""
    from putio_mirror.cli.mount import run_mount

    settings = context.settings(writes=False)
    return run_mount(
        settings,
        mount_point,
        foreground=foreground,
        config=context.config,
        verbose=context.verbose,
        echo=click.echo,
    )


@cli.command()
@click.option("--keep", is_flag=True, help="Keep the demo's temporary folder.")
def demo(keep: bool) -> int:
    """Run every job against a local imitation of put.io with sample data."""
    from putio_mirror.cli.demo import run_demo

    return run_demo(keep=keep, echo=click.echo)


#: Commands imported only when run (``cli/lazy.py``); tests/test_entry.py keeps each line
#: equal to the command's own help.
LAZY_COMMANDS = {
    "login": LazyCommand(
        "putio_mirror.cli.login:login",
        "Link this machine to your put.io account (device code) and store the token.",
    ),
    "logout": LazyCommand(
        "putio_mirror.cli.login:logout",
        "Revoke the stored put.io token where put.io allows, and remove the token file.",
    ),
    "doctor": LazyCommand(
        "putio_mirror.cli.doctor:doctor",
        "Check the setup and say what is wrong, with a hint for each problem (exit 0 or 2).",
    ),
    "status": LazyCommand(
        "putio_mirror.cli.status:status",
        "Show put.io's transfers, what is downloading now, failures, the last run, the windows.",
    ),
    "history": LazyCommand(
        "putio_mirror.cli.history:history", "Show recent runs and what they did, from the journal."
    ),
    "config": LazyCommand(
        "putio_mirror.cli.configfile:config",
        "The config file: write the documented example to start from.",
    ),
    "completion": LazyCommand(
        "putio_mirror.cli.completion:completion", "Print the shell completion script for SHELL."
    ),
}
assert isinstance(cli, LazyGroup)
cli.with_lazy(LAZY_COMMANDS)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (our errors → message + hint, bugs → crash report)."""
    try:
        result = cli.main(args=argv, prog_name="putio-mirror", standalone_mode=False)
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.ClickException as error:
        error.show()
        return int(ExitCode.USAGE)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("Interrupted.", err=True)
        return int(ExitCode.INTERRUPTED)
    except MirrorError as error:
        _explain(error)
        return int(error.exit_code)
    except Exception as error:  # a bug: say where the report is, never a bare traceback
        from putio_mirror.cli.crash import redact, write_crash_report

        report = write_crash_report(error)
        click.echo(redact(f"putio-mirror hit a bug: {type(error).__name__}: {error}"), err=True)
        click.echo(
            f"A crash report was written to {report}; please attach it to an issue.", err=True
        )
        return int(ExitCode.BUG)
    return int(result or 0)


def entry() -> NoReturn:
    """The ``putio-mirror`` command: run ``main`` and exit with its code, with less of
    the interpreter's housekeeping at start and none at exit.

    Both tricks are kept because ``bench/startup.py --tricks`` shows each buys more
    than 20 ms of an idle ``files download`` (two runs of 20 alternating rounds on a
    busy 2-core VM, medians: 0.655 / 0.572 s as is; 0.746 / 0.604 s with the default GC
    threshold; 0.799 / 0.745 s with the teardown), and ``tests/test_entry.py`` fails if
    either stops taking effect.

    Importing SQLAlchemy, pydantic and requests builds a few hundred thousand objects
    and almost no garbage, yet at the default threshold (700) the cyclic collector
    walks them again and again (~150 collections in an idle run): collecting every
    50,000 allocations instead saves 30–90 ms and changes nothing else (this tool keeps
    few cycles). The teardown at exit frees every object of every module one at a
    time: 140–170 ms with SQLAlchemy loaded, paid by every run a timer starts. By then
    each command has closed what it opened (journal, sessions, threads, progress
    display); only the log handlers and the standard streams may hold buffered output.
    """
    gc.set_threshold(_GC_THRESHOLD)
    code = main()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe or stream
            stream.flush()
    os._exit(code)


def _explain(error: MirrorError) -> None:
    from putio_mirror.cli.crash import redact

    click.echo(redact(f"Error: {error.message}"), err=True)
    for problem in getattr(error, "problems", ()):
        click.echo(redact(f"  - {problem}"), err=True)
    if error.hint:
        click.echo(f"Hint: {error.hint}", err=True)
