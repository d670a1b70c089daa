"""``putio-mirror history``: the journal's story of recent runs, or of one run's actions.

Read-only, and it needs no token: it reads only the journal (``JournalReader``), never
creating or upgrading it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from putio_mirror.app.owners import run_summary
from putio_mirror.app.run_end import with_kept_ends
from putio_mirror.cli.context import Context, pass_context
from putio_mirror.core.attention import NEEDS_YOU
from putio_mirror.core.history import (
    ActionStory,
    Folded,
    RunStory,
    action_document,
    action_line,
    entry_lines,
    fold,
    run_document,
    run_line,
    when,
)

if TYPE_CHECKING:
    from putio_mirror.config.settings import Settings
    from putio_mirror.core.state import DownloadRecord
    from putio_mirror.journal.reader import JournalReader
    from putio_mirror.journal.store import ActionRecord, RunRecord

#: how many runs are read to fill ``--limit`` lines once empty runs are folded
_RUNS_PER_LINE = 20
NO_RUNS = "No runs recorded yet."


@click.command("history")
@click.option("--limit", default=10, show_default=True, help="How many recent runs to show.")
@click.option("--run", "run_id", type=int, help="Show every action of this run.")
@click.option("--failed", is_flag=True, help="Only what failed, and the files that keep failing.")
@click.option("--json", "as_json", is_flag=True, help="Print it as one JSON document.")
@pass_context
def history(context: Context, limit: int, run_id: int | None, failed: bool, as_json: bool) -> int:
    """Show recent runs and what they did, from the journal."""
    settings = context.settings(writes=False, needs_token=False)
    story = read_history(settings, limit=limit, run_id=run_id, failed=failed)
    if run_id is not None and story.run is None:
        newest = f" (the newest is #{story.newest})" if story.newest else ""
        raise click.ClickException(f"the journal has no run #{run_id}{newest}")
    if as_json:
        click.echo(json.dumps(story.document(), indent=2, ensure_ascii=False))
    else:
        for line in story.lines():
            click.echo(line)
    return 0


def history_lines(
    settings: Settings, *, limit: int, run_id: int | None, failed: bool = False
) -> Iterator[str]:
    """Given settings, yield a line per recent run, or per action of one run."""
    yield from read_history(settings, limit=limit, run_id=run_id, failed=failed).lines()


@dataclass(frozen=True)
class History:
    """What ``history`` found: recent runs (folded), or one run and its actions."""

    exists: bool
    entries: tuple[RunStory | Folded, ...] = ()
    run: RunStory | None = None
    actions: tuple[tuple[int, ActionStory], ...] = ()
    failing: tuple[DownloadRecord, ...] = ()
    newest: int | None = None
    failed_only: bool = False
    one_run: bool = False

    def lines(self) -> Iterator[str]:
        if not self.exists or (not self.entries and self.run is None and not self.one_run):
            yield NO_RUNS
            return
        if self.one_run:
            if self.run is not None:
                yield run_line(self.run)
            if not self.actions:
                yield "  (no failed actions)" if self.failed_only else "  (no actions)"
        elif not self.failed_only:
            yield from entry_lines(self.entries)
        elif not self.actions:
            yield "No failed actions in the recent runs."
        for run_id, action in self.actions:
            prefix = "" if self.one_run else f"#{run_id} "
            yield f"  {prefix}{action_line(action)}"
        yield from _failing_lines(self.failing)

    def document(self) -> dict[str, Any]:
        actions = [action_document(action) | {"run_id": run} for run, action in self.actions]
        failing = [_failing_document(record) for record in self.failing]
        if self.one_run:
            run = run_document(self.run) if self.run else None
            return {"run": run, "actions": actions}
        runs = [
            {"folded": [story.run.id for story in entry.runs]}
            if isinstance(entry, Folded)
            else run_document(entry)
            for entry in self.entries
        ]
        key = "failed_actions" if self.failed_only else "runs"
        return {key: actions if self.failed_only else runs, "failing_files": failing}


def read_history(settings: Settings, *, limit: int, run_id: int | None, failed: bool) -> History:
    """Given settings, read the journal (changing nothing) into a History."""
    from putio_mirror.journal.reader import JournalReader

    reader = JournalReader.open(settings.journal_url)
    if reader is None:  # reading the story must not create a journal
        return History(exists=False, one_run=run_id is not None)
    with reader:
        if reader.schema_version() is None:
            return History(exists=False, one_run=run_id is not None)
        downloads = reader.downloads()
        newest = reader.recent_runs(1)
        newest_id = newest[0].id if newest else None
        failing = tuple(
            sorted(
                (record for record in downloads.values() if record.failures > 0),
                key=lambda record: record.last_failure_at or datetime.min.astimezone(),
            )
        )
        if run_id is not None:
            return _one_run(reader, run_id, downloads, failed, newest_id, failing)
        runs = reader.recent_runs(limit * (1 if failed else _RUNS_PER_LINE))
        runs = with_kept_ends(runs, reader.lock_path)
        stories = _stories(reader, runs, downloads)
        actions: tuple[tuple[int, ActionStory], ...] = ()
        if failed:
            actions = _failed_actions(reader, [run.id for run in runs])
        entries = tuple(fold(stories, limit))
        return History(True, entries, None, actions, failing, newest_id, failed)


def _one_run(
    reader: JournalReader,
    run_id: int,
    downloads: Mapping[int, DownloadRecord],
    failed: bool,
    newest: int | None,
    failing: tuple[DownloadRecord, ...],
) -> History:
    run = reader.run(run_id)
    if run is None:
        return History(True, newest=newest, one_run=True)
    (run,) = with_kept_ends([run], reader.lock_path)
    (story,) = _stories(reader, [run], downloads)
    actions = reader.actions_of([run_id])[run_id]
    chosen = tuple(
        (run_id, _action_story(action))
        for action in actions
        if not failed or action.status == "failed"
    )
    shown_failing = failing if failed else ()
    return History(True, (), story, chosen, shown_failing, newest, failed, one_run=True)


def _stories(
    reader: JournalReader, runs: Sequence[RunRecord], downloads: Mapping[int, DownloadRecord]
) -> list[RunStory]:
    counts: dict[int, list[int]] = {run.id: [0, 0, 0] for run in runs}
    for run_id, kind, key, status in reader.action_outlines(counts):
        if kind == NEEDS_YOU:
            continue  # noted, not done: a run that only repeats it still folds away
        tally = counts[run_id]
        tally[0] += 1
        tally[1] += status == "failed"
        if kind == "download" and status == "done":
            record = downloads.get(_file_id(key))
            tally[2] += record.size if record is not None else 0
    return [RunStory(run_summary(run), *counts[run.id]) for run in runs]


def _failed_actions(
    reader: JournalReader, run_ids: list[int]
) -> tuple[tuple[int, ActionStory], ...]:
    found: list[tuple[int, ActionStory]] = []
    for run_id, actions in reader.actions_of(run_ids).items():
        found.extend((run_id, _action_story(a)) for a in actions if a.status == "failed")
    return tuple(found)


def _action_story(action: ActionRecord) -> ActionStory:
    finished = action.finished_at.astimezone() if action.finished_at else None
    return ActionStory(
        action.kind,
        action.key,
        action.target,
        action.status,
        action.attempts,
        action.started_at.astimezone(),
        finished,
        action.error,
        action.detail,
    )


def _file_id(key: str) -> int:
    _, _, rest = key.partition(":")
    return int(rest) if rest.isdigit() else -1


def _failing_lines(failing: Sequence[DownloadRecord]) -> Iterator[str]:
    """Files whose downloads keep failing: each waits longer before its next try."""
    if failing:
        yield "Files that failed (each waits longer before its next try):"
    for record in failing:
        name = record.relative_path or f"put.io file {record.file_id}"
        last = record.last_failure_at.astimezone() if record.last_failure_at else None
        yield (
            f"  {name}: {record.failures} failure(s), last {when(last)}"
            f" — {record.last_error or '?'}"
        )


def _failing_document(record: DownloadRecord) -> dict[str, Any]:
    return {
        "file_id": record.file_id,
        "name": record.relative_path or None,
        "failures": record.failures,
        "last_failure_at": record.last_failure_at.isoformat() if record.last_failure_at else None,
        "last_error": record.last_error,
    }
