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
from typing import TYPE_CHECKING, Any, NoReturn

import click

from putio_mirror import __version__
from putio_mirror.cli.context import Context, pass_context
from putio_mirror.cli.doctor import doctor
from putio_mirror.cli.history import history
from putio_mirror.cli.login import login, logout
from putio_mirror.cli.status import status
from putio_mirror.core.errors import ExitCode, MirrorError

if TYPE_CHECKING:
    from putio_mirror.app.run import Outcome, Request
    from putio_mirror.config.settings import Settings

log = logging.getLogger("putio_mirror")
_GC_THRESHOLD = 50_000  # see entry()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


def _run(context: Context, request: Request, overrides: dict[str, object] | None = None) -> int:
    if any(_shown_options().values()) and not request.dry_run:
        raise click.UsageError("--json and --all change how --dry-run shows the plan; add -n.")
    from putio_mirror.app.run import Runtime, run_once
    from putio_mirror.cli.progress import progress_for
    from putio_mirror.cli.signals import StopFlag

    settings = context.settings(overrides=overrides)
    say = _Say(context.quiet)
    with StopFlag() as stop, progress_for(sys.stderr) as progress:
        runtime = Runtime(settings, stop_requested=stop.is_set, progress=progress, on_plan=say.plan)
        outcome = run_once(runtime, request)
    _show(outcome, request, settings, say)
    return int(outcome.exit_code)


class _Say:
    """What a run prints on stdout; with --quiet only when something needs a person."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.plan_shown = False

    def plan(self, plan: Any) -> None:
        from putio_mirror.core.render import plan_summary

        self.plan_shown = True
        if not self.quiet:
            click.echo(plan_summary(plan))  # before the work: a long run says what it does

    def line(self, text: str, *, needs_person: bool = False) -> None:
        if needs_person or not self.quiet:
            click.echo(text)


def _show(outcome: Outcome, request: Request, settings: Settings, say: _Say) -> None:
    from putio_mirror.core.render import plan_summary

    for note in outcome.plan.notes:
        (log.warning if note.level == "warning" else log.info)("%s", note.message)
    if request.dry_run:
        _print_plan(outcome)
    for violation in outcome.violations:
        click.echo(f"Refused without --force: {violation}", err=True)
    from putio_mirror.cli.crash import redact

    for item in outcome.attention:  # what only a person can solve: never just a log line
        click.echo(redact(f"needs you: {item.message}"), err=True)
        click.echo(f"  hint: {item.hint}", err=True)
    report = outcome.report
    if report is None:
        return
    for failure in report.failed:
        click.echo(redact(f"failed: {failure.target}: {failure.message}"), err=True)
        if failure.hint:
            click.echo(f"  hint: {failure.hint}", err=True)
    needs_person = bool(report.failed or report.aborted)
    if not say.plan_shown:
        say.line(plan_summary(outcome.plan))
    say.line(f"Result: {report.summary()}.", needs_person=needs_person)
    for line in _byte_lines(report, settings):
        say.line(line)


def _byte_lines(report: Any, settings: Settings) -> list[str]:
    """Given a run's report, say what reached the download folder, what waits in staging
    (never counted as downloaded), and when a closed window opens again."""
    from putio_mirror.app.run import local_now
    from putio_mirror.core.units import human_bytes

    lines = []
    if report.verified_files:
        files = "file" if report.verified_files == 1 else "files"
        lines.append(
            f"Downloaded and verified {report.verified_files} {files} "
            f"({human_bytes(report.verified_bytes)}) into {settings.download_dir}."
        )
    if report.bytes_in_staging:
        lines.append(
            f"{human_bytes(report.bytes_in_staging)} more is in staging, not yet complete; "
            "the next run resumes from there."
        )
    if report.window_closed:
        opening = settings.schedule.next_opening(local_now())
        lines.append(f"The download window is closed; it opens next {opening:%a %d %b %H:%M}.")
    return lines


def _print_plan(outcome: Outcome) -> None:
    from rich.console import Console
    from rich.table import Table

    from putio_mirror.core.render import ROWS_PER_KIND, plan_json, plan_rows, plan_summary

    shown = _shown_options()
    if shown.get("json"):
        click.echo(json.dumps(plan_json(outcome.plan), indent=2, ensure_ascii=False))
        return
    # Piped or redirected, rows are not cut to 80 columns: whoever reads them has no terminal.
    width = None if sys.stdout.isatty() else 10_000
    console = Console(highlight=False, soft_wrap=False, width=width)
    if outcome.plan.actions:
        per_kind = None if shown.get("all") else ROWS_PER_KIND
        table = Table("action", "target", "size", "why", title="Dry run: nothing is changed")
        for row in plan_rows(outcome.plan, per_kind):
            table.add_row(*row)
        console.print(table)
    console.print(plan_summary(outcome.plan), markup=False)


def _shown_options() -> dict[str, bool]:
    context = click.get_current_context(silent=True)
    return context.meta.get("putio_mirror.plan_display", {}) if context else {}


def _remember_display(context: click.Context, param: click.Parameter, value: bool) -> bool:
    context.meta.setdefault("putio_mirror.plan_display", {})[param.name] = value
    return value


def dry_run_option(command: Any) -> Any:
    """``--dry-run`` with the two ways of showing the plan (kept off the commands'
    signatures: only the printing reads them)."""
    for option in (
        click.option(
            "--json",
            "json",
            is_flag=True,
            expose_value=False,
            callback=_remember_display,
            help="With --dry-run: print the plan as JSON (every action).",
        ),
        click.option(
            "--all",
            "all",
            is_flag=True,
            expose_value=False,
            callback=_remember_display,
            help="With --dry-run: list every action, not only the first of each kind.",
        ),
        click.option(
            "--dry-run",
            "-n",
            is_flag=True,
            help="Print the plan as a table and change nothing anywhere.",
        ),
    ):
        command = option(command)
    return command


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
    return _run(context, request, overrides)


@cli.group()
def torrents() -> None:
    """Blackhole .torrent and .magnet files → put.io transfers."""


@torrents.command("add")
@dry_run_option
@pass_context
def torrents_add(context: Context, dry_run: bool) -> int:
    """Submit every .torrent and .magnet in the blackhole, once each."""
    return _run(context, _request("torrents add", ["submit", "reject", "archive"], dry_run=dry_run))


@torrents.command("watch")
@click.option(
    "--add-first/--no-add-first", default=True, help="Submit the files already there first."
)
@pass_context
def torrents_watch(context: Context, add_first: bool) -> int:
    """Watch the blackhole and submit each new file once it is completely written."""
    from putio_mirror.cli.watch import watch_blackhole

    settings = context.settings()
    return int(watch_blackhole(settings, add_first=add_first, periodic_sync=False))


@cli.command("watch")
@pass_context
def watch(context: Context) -> int:
    """Run in the foreground: submit blackhole files as they arrive, sync on a schedule."""
    from putio_mirror.cli.watch import watch_blackhole

    settings = context.settings()
    return int(watch_blackhole(settings, add_first=True, periodic_sync=True))


@cli.group()
def transfers() -> None:
    """Groom put.io's transfer list."""


def _transfers_command(name: str, kinds: list[str], doc: str) -> None:
    @transfers.command(name, help=doc)
    @dry_run_option
    @force_option
    @pass_context
    def command(context: Context, dry_run: bool, force: bool) -> int:
        return _run(context, _request(f"transfers {name}", kinds, dry_run=dry_run, force=force))


_transfers_command("cancel-seeding", ["cancel"], "Cancel transfers that are seeding.")
_transfers_command("clean", ["clean"], "Clean finished transfers whose files are mirrored.")
_transfers_command("groom", ["cancel", "clean"], "Cancel seeding, then clean finished transfers.")


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
    return _run(context, request, overrides)


@cli.command()
@click.argument("mount_point", type=click.Path(path_type=Path))
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


for command in (login, logout, doctor, status, history):
    cli.add_command(command)


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
