"""Which hosts wrote a SQLite journal, and when last: read through ``sqlite3`` alone, before
a run opens the journal (and writes it), to tell whether hosts take turns on one SQLite
file over a share (``app/opening.journal_place``).

Read-only, like ``peek``: nothing created, upgraded or switched to WAL; a journal that
cannot be read so (not made yet, corrupt, a share that fails it) has no known writers,
and opening it says what is wrong.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from putio_mirror.journal.rows import utc_text
from putio_mirror.journal.where import connect_read_only

# The runs table's columns, spelled for SQLite (journal/schema.py's runs_table); the
# text of two UTC times compares as the times do (fixed width, ``UtcDateTime``).
_WRITERS = (
    "SELECT host, max(id), max(max(started_at, coalesce(finished_at, started_at))) FROM runs"
    " WHERE host <> '' AND NOT dry_run GROUP BY host"
)


@dataclass(frozen=True, slots=True)
class Writer:
    """A host that wrote the journal: its latest run (ids grow in the order runs began,
    whatever the hosts' clocks say) and when it was last seen by its own clock."""

    host: str
    last_run: int
    last_seen: datetime


def writers(database: Path) -> list[Writer]:
    """Given a SQLite journal's file, return the hosts whose runs it holds; none if it
    cannot be read (a missing file included)."""
    if not database.is_file():
        return []
    try:
        with closing(connect_read_only(database)) as conn:
            rows = conn.execute(_WRITERS).fetchall()
        return [Writer(host, last_run, _when(seen)) for host, last_run, seen in rows]
    except (sqlite3.Error, ValueError, TypeError):
        return []


def _when(text: str) -> datetime:
    when = utc_text(text)
    if when is None:
        raise TypeError("a run with no start")
    return when
