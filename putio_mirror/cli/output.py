"""What a run prints: its plan (a table, every row, or JSON), then what it did, honestly
counted, and when a closed window opens; under --quiet only what needs a person."""

from __future__ import annotations

import json
import logging
import sys
from typing import TYPE_CHECKING, Any

import click

from putio_mirror.cli.context import Context

if TYPE_CHECKING:
    from putio_mirror.app.report import Failure
    from putio_mirror.app.run import Outcome, Request
    from putio_mirror.config.settings import Settings
    from putio_mirror.core.plan import Plan

log = logging.getLogger("putio_mirror")


def run_request(
    context: Context, request: Request, overrides: dict[str, object] | None = None
) -> int:
    if any(shown_options().values()) and not request.dry_run:
        raise click.UsageError("--json and --all change how --dry-run shows the plan; add -n.")
    from putio_mirror.app.run import Runtime, run_once
    from putio_mirror.cli.progress import progress_for
    from putio_mirror.cli.signals import StopFlag

    # a dry run writes nothing, so a journal it can only read (a share mounted read-only)
    # is no reason to refuse it
    settings = context.settings(overrides=overrides, writes=not request.dry_run)
    say = Say(context.quiet)
    with StopFlag() as stop, progress_for(sys.stderr) as progress:
        runtime = Runtime(settings, stop_requested=stop.is_set, progress=progress, on_plan=say.plan)
        outcome = run_once(runtime, request)
    show_outcome(outcome, request, settings, say)
    return int(outcome.exit_code)


class Say:
    """What a run prints on stdout; with --quiet only when something needs a person."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.plan_shown = False

    def plan(self, plan: Plan) -> None:
        from putio_mirror.core.render import plan_summary

        self.plan_shown = True
        tell_notes(plan, self)  # what the plan says of itself comes before its summary
        if not self.quiet:
            click.echo(plan_summary(plan))  # before the work: a long run says what it does

    def line(self, text: str, *, needs_person: bool = False) -> None:
        if needs_person or not self.quiet:
            click.echo(text)


def tell_notes(plan: Plan, say: Say) -> None:
    """Given a plan, tell its notes: a reminder only to a person running by hand, the
    rest to the log (what needs a person is told with the run's other such lines)."""
    for note in plan.notes:
        if note.level == "reminder":
            say.line(note.message)
        elif note.level != "needs_you":
            (log.warning if note.level == "warning" else log.info)("%s", note.message)


def show_outcome(outcome: Outcome, request: Request, settings: Settings, say: Say) -> None:
    from putio_mirror.core.render import done_lines, plan_summary

    if not say.plan_shown:
        tell_notes(outcome.plan, say)
    if request.dry_run:
        print_plan(outcome)
    for violation in outcome.violations:
        click.echo(f"Refused without --force: {violation}", err=True)
    from putio_mirror.cli.crash import redact

    for item in outcome.attention:  # what only a person can solve: never just a log line
        click.echo(redact(f"needs you: {item.message}"), err=True)
        click.echo(f"  hint: {item.hint}", err=True)
    report = outcome.report
    if report is None:
        return
    for hint, kept_out in _by_hint(report.in_the_way):
        for failure in kept_out:
            click.echo(redact(f"needs you: {failure.message}"), err=True)
        click.echo(f"  hint: {hint}", err=True)
    for hint, failures in _by_hint(report.failed):
        for failure in failures:
            click.echo(redact(f"failed: {failure.target}: {failure.message}"), err=True)
        if hint:
            click.echo(f"  hint: {hint}", err=True)
    if report.no_room:
        click.echo(redact(no_room_line(report.no_room)), err=True)
        click.echo(f"  hint: {report.no_room[-1].hint}", err=True)
    for stopped in (report.silenced, report.disk_refused):
        if stopped:
            click.echo(redact(silenced_line(stopped)), err=True)
            # the first is the download that found it (suspects join at the end)
            click.echo(f"  hint: {stopped[0].hint}", err=True)
    needs_person = bool(
        report.failed
        or report.in_the_way
        or report.no_room
        or report.aborted
        or report.downloads_stopped
    )
    if not say.plan_shown:
        say.line(plan_summary(outcome.plan))
    say.line(f"Result: {report.summary()}.", needs_person=needs_person)
    for line in done_lines(report.done_actions):
        say.line(line)
    for line in byte_lines(report, settings):
        say.line(line)


def _by_hint(failures: list[Failure]) -> list[tuple[str, list[Failure]]]:
    """Given failures, group those of one hint (a damaged season pack, a linked folder):
    the hint is said once, after the last of them."""
    by_hint: dict[str, list[Failure]] = {}
    for failure in failures:
        by_hint.setdefault(failure.hint, []).append(failure)
    return list(by_hint.items())


#: how many of the files waiting for room the line names
NAMED_WAITING = 3


def no_room_line(waiting: list[Any]) -> str:
    """Given the downloads refused for room, say so in one line: how many, which (the
    first few by path), and what the disk said to the first of them."""
    waiting = sorted(waiting, key=lambda failure: failure.target)
    files = "file waits" if len(waiting) == 1 else "files wait"
    names = ", ".join(failure.target for failure in waiting[:NAMED_WAITING])
    if len(waiting) > NAMED_WAITING:
        names += f" and {len(waiting) - NAMED_WAITING} more"
    first = waiting[0]
    return (
        f"failed: {len(waiting)} {files} for room on the disk ({names}); "
        f"{first.target}: {first.message}"
    )


def silenced_line(silenced: list[Any]) -> str:
    """Given the downloads that gave up in an outage of put.io's nodes, or that a
    read-only disk refused (the first found it), say so in one line."""
    files = "download" if len(silenced) == 1 else "downloads"
    return (
        f"failed: downloads stopped: {silenced[0].message} "
        f"({len(silenced)} {files} gave up in it; none is counted as failing)"
    )


def byte_lines(report: Any, settings: Settings) -> list[str]:
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
    if report.waiting_files:
        files = "file waits" if report.waiting_files == 1 else "files wait"
        lines.append(
            f"{report.waiting_files} verified {files} in staging for a local file in the way "
            "to be moved."
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


def print_plan(outcome: Outcome) -> None:
    from rich.console import Console
    from rich.table import Table

    from putio_mirror.core.render import ROWS_PER_KIND, plan_json, plan_rows, plan_summary

    shown = shown_options()
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


def shown_options() -> dict[str, bool]:
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
