"""``putio-mirror history``: the journal's story of recent runs, as lines of text."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from putio_mirror.config.settings import Settings
from putio_mirror.journal.store import Journal


def _when(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "—"


def history_lines(settings: Settings, *, limit: int, run_id: int | None) -> Iterator[str]:
    """Given settings, yield a line per recent run, or per action of one run."""
    journal = Journal.open_existing(settings.journal_url)
    if journal is None:  # reading the story must not create a journal
        yield "No runs recorded yet."
        return
    try:
        if run_id is not None:
            yield from _actions(journal, run_id)
            return
        runs = journal.recent_runs(limit)
        if not runs:
            yield "No runs recorded yet."
        for run in runs:
            code = "running" if run.exit_code is None else f"exit {run.exit_code}"
            yield f"#{run.id} {_when(run.started_at)} {run.command} [{code}] {run.summary or ''}"
        yield from _failing(journal)
    finally:
        journal.close()


def _failing(journal: Journal) -> Iterator[str]:
    """Files whose downloads keep failing: each waits longer before its next try."""
    failing = sorted(
        (record for record in journal.facts().downloads.values() if record.failures > 0),
        key=lambda record: record.last_failure_at or datetime.min.astimezone(),
    )
    if failing:
        yield "Files that failed (each waits longer before its next try):"
    for record in failing:
        name = record.relative_path or f"put.io file {record.file_id}"
        yield (
            f"  {name}: {record.failures} failure(s), last {_when(record.last_failure_at)}"
            f" — {record.last_error or '?'}"
        )


def _actions(journal: Journal, run_id: int) -> Iterator[str]:
    actions = journal.actions_of(run_id)
    if not actions:
        yield f"Run #{run_id} recorded no actions."
    for action in actions:
        error = f" — {action.error}" if action.error else ""
        attempt = f" (attempt {action.attempts})" if action.attempts > 1 else ""
        yield f"{_when(action.started_at)} {action.status:<11} {action.key}{attempt}{error}"
