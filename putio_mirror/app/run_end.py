"""A run's end, journaled even when the journal is what stopped it.

A run the journal stopped (its server gone past the wait, its file moved away, its disk
full) tries once more on its way out, on a fresh connection and within seconds, so that
``history`` and ``status`` tell its exit code and why rather than "died (killed, crashed or
the power went)". An end refused again is kept in a file beside the run lock, which the
next run holding the lock journals before it calls any run dead; until then ``history``
and ``status`` read it there (``with_kept_ends``), writing nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from putio_mirror.core.errors import ExitCode, JournalError, MirrorError
from putio_mirror.local.durable import write_durably

if TYPE_CHECKING:  # as app/run.py: a dry run over no journal imports no SQLAlchemy
    from putio_mirror.app.report import RunReport
    from putio_mirror.journal.store import Journal, RunRecord

log = logging.getLogger(__name__)


def journal_end(
    journal: Journal,
    where: tuple[Path, str],
    run_id: int,
    ended: datetime,
    code: int,
    report: RunReport,
    stopped: MirrorError | None,
) -> None:
    """Given a run's end (its exit code, what it did, the error that stopped it if one
    did), journal it. A run the journal stopped tries once more on its way out, within
    seconds (``Journal.finish_run_at_last``), so that ``history`` and ``status`` tell why
    rather than "died"; so does a run whose end the journal refuses, which then stops
    with that error. An end the journal refuses again is kept beside the run lock for
    the next run to journal (``journal_kept_end``). ``where``: the run lock held, and
    the run's owner."""
    if not isinstance(stopped, JournalError):
        try:
            journal.finish_run(run_id, ended, code, _summary(report, stopped))
            return
        except JournalError as refused:
            _journal_end_at_last(journal, where, run_id, ended, _summary(report, refused))
            raise
    _journal_end_at_last(journal, where, run_id, ended, _summary(report, stopped))


def _journal_end_at_last(
    journal: Journal, where: tuple[Path, str], run_id: int, ended: datetime, summary: str
) -> None:
    """Given a run the journal stopped, journal its end (exit 7, and why) once more; else
    keep it beside the run lock for the next run."""
    code = int(ExitCode.JOURNAL)
    trouble = journal.finish_run_at_last(run_id, ended, code, summary)
    if trouble is None:
        return
    log.warning("could not journal this run's end either: %s", trouble.message)
    lock, owner = where
    end = {"run": run_id, "owner": owner, "ended": ended.isoformat()}
    _keep_end(lock, end | {"exit_code": code, "summary": summary})


def _end_record(lock: Path) -> Path:
    """Given a run lock, return where the end its last run could not journal is kept."""
    return lock.with_name(lock.name + ".end")


def _keep_end(lock: Path, end: dict[str, object]) -> None:
    """Given a run lock and the end of the run holding it, which the journal refused,
    keep it beside the lock: written whole (a torn one would be told as nothing) and
    synced, file and folder (a power cut right after, a reboot, must not make the run
    read "died" after all)."""
    record = _end_record(lock)
    try:
        write_durably(record, json.dumps(end) + "\n")
    except OSError as error:
        log.warning("cannot keep %s (%s): the next run may call this one died", record, error)


def journal_kept_end(journal: Journal, lock: Path) -> None:
    """Given the journal and the run lock we hold, journal the end the lock's previous run
    kept beside it (``_keep_end``), before that run, found unfinished, is called dead:
    its exit code and why it stopped, not "killed, crashed or the power went". An end
    this journal knows no unfinished run for (a journal made anew since) is dropped."""
    record = _end_record(lock)
    try:
        end = _read_end(record)
    except FileNotFoundError:
        return
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning("cannot read %s (%s): the previous run is told as died", record, error)
    else:
        if journal.finish_run_late(end.run, end.owner, end.ended, end.exit_code, end.summary):
            log.warning("the previous run stopped: %s", end.summary)
    with suppress(OSError):  # told once is enough; a record left is dropped next time
        record.unlink(missing_ok=True)


def with_kept_ends(runs: Sequence[RunRecord], lock: Path) -> tuple[RunRecord, ...]:
    """Given runs read from the journal and its run lock, return them with the ends kept
    beside that lock (and the blackhole passes' lock) told, as the next writing run will
    journal them: between a run the journal stopped and the next one (a day later, for
    a daily timer) ``history`` and ``status`` tell its exit code and why, not "died".
    Reads the kept files only, never the journal; an end whose run is not found
    unfinished under its owner is left out, as the next run drops it."""
    if all(run.finished_at is not None for run in runs):
        return tuple(runs)
    ends = {end.run: end for end in _kept_ends(lock)}
    return tuple(_told(run, ends.get(run.id)) for run in runs)


def _told(run: RunRecord, end: KeptEnd | None) -> RunRecord:
    """Given a run and the end kept for a run of its id, return the run with that end if
    it is its own (same owner, the run unfinished)."""
    if end is None or run.finished_at is not None or run.owner != end.owner:
        return run
    return replace(run, finished_at=end.ended, exit_code=end.exit_code, summary=end.summary)


def _kept_ends(lock: Path) -> Iterator[KeptEnd]:
    """Given a journal's run lock, yield the ends kept beside it and the passes' lock; one
    that cannot be read is not told (the next run says why)."""
    for held in (lock, pass_lock(lock)):
        with suppress(OSError, ValueError, KeyError, TypeError):
            yield _read_end(_end_record(held))


def pass_lock(lock: Path) -> Path:
    """Given a journal's run lock, return the lock of the blackhole passes beside a
    running sync (the watcher's), which take one of their own."""
    return lock.with_name(f"{lock.stem}.blackhole{lock.suffix}")


@dataclass(frozen=True, slots=True)
class KeptEnd:
    """The end of a run the journal refused, as kept beside the run lock."""

    run: int
    owner: str
    ended: datetime
    exit_code: int
    summary: str


def _read_end(record: Path) -> KeptEnd:
    """Given a kept end's file, return the end; raise OSError (FileNotFoundError: none
    kept), ValueError, KeyError or TypeError if it cannot be read."""
    end = json.loads(record.read_text(encoding="utf-8"))
    return KeptEnd(
        int(end["run"]),
        str(end["owner"]),
        datetime.fromisoformat(str(end["ended"])),
        int(end["exit_code"]),
        str(end["summary"]),
    )


def _summary(report: RunReport, stopped: MirrorError | None) -> str:
    """Given what a run did and the error that stopped it (if one did), return the summary
    its row keeps: why it stopped too, for ``history`` and ``status`` to tell."""
    done = report.summary()
    return done if stopped is None else f"{done}; stopped: {stopped.message}"
