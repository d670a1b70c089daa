"""What ``status`` shows, given what it found: as lines for people and as a JSON document.

Pure: ``cli/status.py`` reads put.io, the journal and the clock and hands the facts here,
its times already in local time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from putio_mirror.core.attention import Attention
from putio_mirror.core.history import RunSummary
from putio_mirror.core.state import Transfer
from putio_mirror.core.units import human_bytes, human_rate

_WHEN = "%Y-%m-%d %H:%M"
# Statuses whose percentage says nothing: finished, or given up.
_NO_PROGRESS = frozenset({"COMPLETED", "SEEDING", "ERROR"})


@dataclass(frozen=True, slots=True)
class LocalDownload:
    """A file some run is downloading now, and how far it got (journaled bytes)."""

    target: str
    host: str
    bytes_done: int
    size: int | None
    started_at: datetime


@dataclass(frozen=True, slots=True)
class FailingFile:
    """A file whose downloads failed, and when the next run may try it again."""

    name: str
    failures: int
    last_error: str | None
    next_try: datetime | None


@dataclass(frozen=True, slots=True)
class StatusView:
    """Everything ``status`` shows. ``transfers`` is None when put.io was not asked or
    could not be, and ``putio_problem`` then says why."""

    transfers: tuple[Transfer, ...] | None
    putio_problem: str | None
    in_flight: tuple[LocalDownload, ...]
    staged_bytes: int
    failing: tuple[FailingFile, ...]
    last_run: RunSummary | None
    windows: str
    #: what the newest run that carried out a plan found only a person can solve; that run
    needs_you: tuple[Attention, ...] = ()
    needs_you_run: RunSummary | None = None
    #: the transfers putio-mirror did not add, which it leaves as they are (none when
    #: ``transfers.manage_foreign`` is on): else one seeding looks like a broken promise
    left_alone: frozenset[int] = frozenset()


def _when(moment: datetime | None) -> str:
    return moment.strftime(_WHEN) if moment else "—"


def transfer_line(transfer: Transfer) -> str:
    """Given a transfer, return one line: name, status, progress, size, speed or error."""
    parts = [f"{transfer.name} [{transfer.status}]"]
    if transfer.percent_done is not None and transfer.status not in _NO_PROGRESS:
        parts.append(f"{transfer.percent_done}%")
    if transfer.size:
        parts.append(human_bytes(transfer.size))
    if transfer.down_speed:
        parts.append(human_rate(transfer.down_speed))
    if transfer.status == "ERROR":
        parts.append(f"— {transfer.error_message or 'no reason given'} (id {transfer.id})")
    return " ".join(parts)


def run_line(run: RunSummary) -> str:
    """Given a run, return ``#id command, started …: result`` (the command names its host)."""
    if run.exit_code is None:
        result = _unfinished(run)
    else:
        result = f"exit {run.exit_code}" + (f", {run.summary}" if run.summary else "")
    return f"#{run.id} {run.command}, started {_when(run.started_at)}: {result}"


def _unfinished(run: RunSummary) -> str:
    """What became of a run with no exit code: it runs, it died, or (another host's) either."""
    if run.finished_at is not None:
        return f"died: {run.summary}" if run.summary else "died"
    if run.alive is False:
        return (
            "died: its process is gone (killed, crashed or the power went); "
            "the next run takes over what it left"
        )
    return "running" if run.alive else "running (or it died)"


def status_lines(view: StatusView) -> Iterator[str]:
    """Given the view, yield the lines ``status`` prints: what needs a person first."""
    if view.needs_you and view.needs_you_run:
        found_by = view.needs_you_run
        yield f"Needs you (found by run #{found_by.id}, {found_by.command}):"
        for needed in view.needs_you:
            yield f"  {needed.message}"
            yield f"    hint: {needed.hint}"
    yield from _transfer_lines(view)
    yield "Downloading here now:" if view.in_flight else "Downloading here now: nothing"
    for item in view.in_flight:
        total = f" of {human_bytes(item.size)}" if item.size else ""
        yield f"  {item.target}: {human_bytes(item.bytes_done)}{total} (on {item.host})"
    yield f"Staged (downloaded, not yet placed): {human_bytes(view.staged_bytes)}"
    if view.failing:
        yield "Files that failed:"
    for failing in view.failing:
        error = f" — {failing.last_error}" if failing.last_error else ""
        yield (
            f"  {failing.name}: {failing.failures} failure(s), "
            f"next try after {_when(failing.next_try)}{error}"
        )
    yield f"Last run: {run_line(view.last_run)}" if view.last_run else "Last run: none yet"
    yield f"Windows: {view.windows}"


def _transfer_lines(view: StatusView) -> Iterator[str]:
    if view.transfers is None:
        yield f"put.io transfers: unknown ({view.putio_problem})"
        return
    errors = [t for t in view.transfers if t.status == "ERROR"]
    left = sum(1 for t in view.transfers if t.id in view.left_alone)
    yield (
        f"put.io transfers: {len(view.transfers)}"
        + (
            f" ({left} not added by putio-mirror, left as {'it is' if left == 1 else 'they are'}"
            f": transfers.manage_foreign: true grooms {'it' if left == 1 else 'them'} too)"
            if left
            else ""
        )
        + (
            f", {len(errors)} in ERROR (they need you: `putio-mirror transfers retry ID` or "
            "`transfers dismiss ID`)"
            if errors
            else ""
        )
    )
    for transfer in view.transfers:
        theirs = " (not added by putio-mirror)" if transfer.id in view.left_alone else ""
        yield f"  {transfer_line(transfer)}{theirs}"


def status_document(view: StatusView) -> dict[str, Any]:
    """Given the view, return it as a JSON-ready document (times in ISO 8601)."""
    transfers = None
    if view.transfers is not None:
        transfers = [
            {
                "id": t.id,
                "name": t.name,
                "status": t.status,
                "percent_done": t.percent_done,
                "size": t.size,
                "down_speed": t.down_speed,
                "error_message": t.error_message,
                "added_by_putio_mirror": t.id not in view.left_alone,
            }
            for t in view.transfers
        ]
    return {
        "transfers": transfers,
        "putio_problem": view.putio_problem,
        "in_flight": [
            {
                "target": item.target,
                "host": item.host,
                "bytes_done": item.bytes_done,
                "size": item.size,
                "started_at": _iso(item.started_at),
            }
            for item in view.in_flight
        ],
        "staged_bytes": view.staged_bytes,
        "failing": [
            {
                "name": item.name,
                "failures": item.failures,
                "last_error": item.last_error,
                "next_try": _iso(item.next_try),
            }
            for item in view.failing
        ],
        "needs_you": [{"message": item.message, "hint": item.hint} for item in view.needs_you],
        "last_run": _run_document(view.last_run),
        "windows": view.windows,
    }


def _run_document(run: RunSummary | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "id": run.id,
        "command": run.command,
        "host": run.host,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "exit_code": run.exit_code,
        "summary": run.summary,
        "alive": run.alive,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
