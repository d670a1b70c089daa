"""What ``history`` shows, given the journal's runs and actions: lines for people, and JSON.

Pure: ``cli/history.py`` reads the journal and hands the records here, times in local time.
A run is named by its number, command, result, duration and bytes; an action by its kind and
the name of what it acted on (never the internal key); runs of the watcher that found
nothing to do are folded into one line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from putio_mirror.core.errors import ExitCode
from putio_mirror.core.units import human_bytes

_WHEN = "%Y-%m-%d %H:%M:%S"
#: the exit codes of a run with nothing to do that can be folded away
_QUIET_CODES = frozenset({ExitCode.OK, ExitCode.NEEDS_ATTENTION})


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One run as the journal has it. ``exit_code`` None: still running (``finished_at``
    None; ``alive`` says whether its process lives, None where that cannot be told), or
    died (``finished_at`` its last sign of life)."""

    id: int
    command: str
    host: str
    started_at: datetime
    finished_at: datetime | None
    exit_code: int | None
    summary: str | None
    alive: bool | None = None

    @property
    def died(self) -> bool:
        """Whether the run ended without finishing (killed, crashed, the power gone)."""
        if self.exit_code is not None:
            return False
        return self.finished_at is not None or self.alive is False


@dataclass(frozen=True, slots=True)
class ActionStory:
    """One action of a run: what kind, on what (its name), how it ended, and why."""

    kind: str
    key: str
    target: str
    status: str
    attempts: int
    started_at: datetime
    finished_at: datetime | None
    error: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class RunStory:
    """A run with how many actions it took, how many failed, and the bytes it fetched."""

    run: RunSummary
    actions: int
    failed: int
    bytes_fetched: int

    @property
    def empty(self) -> bool:
        """Nothing to do and nothing went wrong: the watcher's passes, mostly, and the timer's
        hourly runs that only repeat what needs a person (exit 11; ``status`` says what)."""
        return self.actions == 0 and self.run.exit_code in _QUIET_CODES


@dataclass(frozen=True, slots=True)
class Folded:
    """Consecutive empty runs, newest first, shown as one line."""

    runs: tuple[RunStory, ...]


def fold(stories: Iterable[RunStory], limit: int) -> list[RunStory | Folded]:
    """Given runs newest first, return at most ``limit`` entries, two or more consecutive
    empty runs folded into one."""
    entries: list[RunStory | Folded] = []
    pending: list[RunStory] = []

    def flush() -> None:
        if len(pending) >= 2:
            entries.append(Folded(tuple(pending)))
        else:
            entries.extend(pending)
        pending.clear()

    for story in stories:
        if story.empty:
            pending.append(story)
            continue
        flush()
        entries.append(story)
    flush()
    return entries[:limit]


def when(moment: datetime | None) -> str:
    return moment.strftime(_WHEN) if moment else "—"


def duration(seconds: float) -> str:
    """Given seconds, return ``45s``, ``3m 12s`` or ``2h 05m``."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


def run_line(story: RunStory) -> str:
    """Given a run, return ``#id when command [exit n] duration, bytes: summary``."""
    run = story.run
    code = _ending(run)
    took = (
        f" {duration((run.finished_at - run.started_at).total_seconds())}"
        if run.finished_at
        else ""
    )
    fetched = f", {human_bytes(story.bytes_fetched)} fetched" if story.bytes_fetched else ""
    summary = f": {run.summary}" if run.summary else ""
    return f"#{run.id} {when(run.started_at)} {run.command} [{code}]{took}{fetched}{summary}"


def _ending(run: RunSummary) -> str:
    if run.exit_code is not None:
        return f"exit {run.exit_code}"
    return "died" if run.died else "running"


def folded_line(folded: Folded) -> str:
    newest, oldest = folded.runs[0].run, folded.runs[-1].run
    needing = sum(1 for story in folded.runs if story.run.exit_code == ExitCode.NEEDS_ATTENTION)
    tail = f" ({needing} found something that needs you: see `putio-mirror status`)"
    return (
        f"#{oldest.id}–#{newest.id} {len(folded.runs)} runs with nothing to do, "
        f"{when(oldest.started_at)} to {when(newest.started_at)}{tail if needing else ''}"
    )


def entry_lines(entries: Iterable[RunStory | Folded]) -> Iterator[str]:
    for entry in entries:
        yield folded_line(entry) if isinstance(entry, Folded) else run_line(entry)


def action_line(action: ActionStory) -> str:
    """Given an action, return ``when status kind name (attempt n) — error or note``."""
    note = action.error or action.detail
    tail = f" — {note}" if note else ""
    attempt = f" (attempt {action.attempts})" if action.attempts > 1 else ""
    head = f"{when(action.started_at)} {action.status:<11} {action.kind:<8}"
    return f"{head} {action.target}{attempt}{tail}"


def run_document(story: RunStory) -> dict[str, Any]:
    run = story.run
    took = (run.finished_at - run.started_at).total_seconds() if run.finished_at else None
    return {
        "id": run.id,
        "command": run.command,
        "host": run.host,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "duration_seconds": took,
        "exit_code": run.exit_code,
        "summary": run.summary,
        "actions": story.actions,
        "failed": story.failed,
        "bytes_fetched": story.bytes_fetched,
    }


def action_document(action: ActionStory) -> dict[str, Any]:
    return {
        "kind": action.kind,
        "key": action.key,
        "target": action.target,
        "status": action.status,
        "attempts": action.attempts,
        "started_at": action.started_at.isoformat(),
        "finished_at": action.finished_at.isoformat() if action.finished_at else None,
        "error": action.error,
        "detail": action.detail,
    }
