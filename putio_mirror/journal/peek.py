"""A dry run's look at a SQLite journal through ``sqlite3`` alone: its facts, nothing else.

A dry run only reads the journal's facts, yet opening it as ``Journal`` imports
SQLAlchemy (~0.45 s of CPU, a sixth of a dry run over a 100,000-file account, all
mirrored). ``peek_facts`` reads the same rows read-only, when the journal is plainly a
SQLite file at ``HEAD``; anything else (another database, an older or newer schema, a
time in another shape, a file that cannot be read so) answers None, and the dry run
opens the journal as before, which then says what is wrong or reads it the typed way.
It never creates, upgrades, locks or switches to WAL anything: a dry run changes nothing.
"""

from __future__ import annotations

import contextlib
import sqlite3

from putio_mirror.core.state import JournalFacts, Submission
from putio_mirror.journal.rows import (
    desire_of,
    download_records,
    facts_of,
    removed_of,
    rows_at_once,
    utc_text,
)
from putio_mirror.journal.version import HEAD
from putio_mirror.journal.where import connect_read_only, plain_sqlite_file

# The columns of files._RECORDS, desires._LISTED and desires.removed, spelled for SQLite;
# tests/test_journal.py checks that they read what Journal.facts reads.
_REVISION = "SELECT version_num FROM alembic_version"
_SUBMISSIONS = "SELECT info_hash, transfer_id, name, submitted_at FROM submissions"
_DOWNLOADS = (
    "SELECT file_id, coalesce(relative_path, ''), coalesce(size, 0), crc32, bytes_done,"
    " verified_at, placed_path, placed_at, failures, last_failure_at, last_error,"
    " placed_inode, placed_mtime_ns FROM downloads"
)
_DESIRES = (
    "SELECT info_hash, id, name, kind, added_at, magnet_uri, size, category, labels, paused,"
    " seed_ratio_limit, seed_idle_minutes, error, item_path, item_files"
    " FROM desires WHERE removed_at IS NULL ORDER BY queue_position, id"
)
_REMOVED = "SELECT info_hash, purge, item_id, item_files FROM desires WHERE removed_at IS NOT NULL"


def peek_facts(url: str) -> JournalFacts | None:
    """Given a journal URL, return its facts as ``Journal.facts`` would, read through
    sqlite3 in one read-only transaction; None if it is not a SQLite file at ``HEAD`` that
    reads so (a missing file included: ``Journal.open_existing`` tells of it)."""
    database = plain_sqlite_file(url)
    if database is None or not database.is_file():
        return None
    try:
        with contextlib.closing(connect_read_only(database)) as conn:
            conn.execute("BEGIN")  # one snapshot for every table, as Journal.facts reads
            if [row[0] for row in conn.execute(_REVISION)] != [HEAD]:
                return None
            return _facts(conn)
    except (sqlite3.Error, ValueError, TypeError):
        return None


def _facts(conn: sqlite3.Connection) -> JournalFacts:
    utc = utc_text
    submissions = {
        info_hash: Submission(info_hash, transfer_id, name, utc(submitted_at))  # type: ignore[arg-type]
        for info_hash, transfer_id, name, submitted_at in conn.execute(_SUBMISSIONS)
    }
    downloads = download_records(rows_at_once(conn, _DOWNLOADS))
    desires = {
        row[0]: desire_of((*row[:4], utc(row[4]), *row[5:]), place)
        for place, row in enumerate(conn.execute(_DESIRES))
    }
    removed = removed_of(conn.execute(_REMOVED).fetchall())
    return facts_of(submissions, downloads, desires, removed)
