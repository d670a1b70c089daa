"""A dry run's look at a SQLite journal of an older schema, which leaves it as it is.

Opening a journal of an older schema upgrades it (and switches SQLite to WAL). A dry run
changes nothing: a person who tries a new release with ``sync --dry-run`` and goes back to
the release they had would find it refusing the journal ("written by a newer
putio-mirror"). So a dry run reads the facts of a copy, made with SQLite's own backup (one
consistent snapshot, its WAL included) and upgraded in a temporary folder.

A server database (PostgreSQL) cannot be copied so: a dry run upgrades it, as a run would.
"""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
from pathlib import Path

from putio_mirror.core.state import JournalFacts
from putio_mirror.journal.store import Journal
from putio_mirror.journal.version import HEAD, SCHEMA_VERSION
from putio_mirror.journal.where import connect_read_only, plain_sqlite_file


def older_journal_facts(url: str) -> JournalFacts | None:
    """Given a journal URL, return the facts of a SQLite journal of an older schema as
    they read once upgraded, the journal itself untouched; None if it is no such journal
    (or cannot be read so: it is then opened as ever, which says what is wrong)."""
    database = plain_sqlite_file(url)
    if database is None or not database.is_file():
        return None
    try:
        with contextlib.closing(connect_read_only(database)) as source:
            if not _is_older(source):
                return None
            with tempfile.TemporaryDirectory(prefix="putio-mirror-dry-run-") as folder:
                copy = Path(folder) / "journal.sqlite3"
                with contextlib.closing(sqlite3.connect(copy)) as target:
                    source.backup(target)
                with Journal.open(f"sqlite:///{copy}") as journal:
                    return journal.facts()
    except sqlite3.Error:
        return None


def _is_older(conn: sqlite3.Connection) -> bool:
    """Whether the journal's revision (or, from before Alembic, its schema version) is
    older than this release's."""
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    if "alembic_version" in tables:
        revisions = [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]
        return len(revisions) == 1 and str(revisions[0]).isdigit() and str(revisions[0]) < HEAD
    if "schema_info" in tables:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_info")]
        return len(versions) == 1 and isinstance(versions[0], int) and versions[0] < SCHEMA_VERSION
    return False
