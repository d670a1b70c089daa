"""Where a journal is, told without SQLAlchemy where that is plain to see.

A dry run creates nothing, so with no journal yet it reads none; importing SQLAlchemy to
learn that costs ~0.2 s, a quarter of a dry run over 10,000 new files. A run takes its
lock beside a SQLite file before that import too, so that put.io is listed meanwhile.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path
from urllib.parse import quote

_PREFIX = "sqlite:///"


def plain_sqlite_file(url: str) -> Path | None:
    """Given a journal URL, return the SQLite file it plainly names (``sqlite:///`` and a
    path, without a query, an escape or a URI); None whenever in doubt, so that
    SQLAlchemy's reading of the URL decides."""
    if not url.startswith(_PREFIX) or any(mark in url for mark in "?#%"):
        return None
    database = url.removeprefix(_PREFIX)
    if not database or database.startswith(("file:", ":memory:")):
        return None
    return Path(database)


def surely_missing_file(url: str) -> bool:
    """Given a journal URL, say whether it is plainly a SQLite file that does not exist
    yet. False whenever in doubt (``Journal.open_existing`` decides)."""
    database = plain_sqlite_file(url)
    return database is not None and not database.exists()


def lock_beside(database: Path) -> Path:
    """Given a SQLite file, return where its run lock lives: beside it."""
    return database.absolute().with_name(database.name + ".lock")


def plain_lock_path(url: str) -> Path | None:
    """Given a journal URL, return the run lock of the SQLite file it plainly names; None
    in doubt (``Journal.lock_path`` tells, once the journal is open)."""
    database = plain_sqlite_file(url)
    return None if database is None else lock_beside(database)


def connect_read_only(database: Path, timeout: float = 5.0) -> sqlite3.Connection:
    """Given a SQLite file (and how many seconds to wait for a writer's lock), return a
    connection that can only read it (nothing created, upgraded or switched to WAL), in
    autocommit: the reader says where a read begins.

    A journal in WAL mode is read beside its ``-shm`` file, which SQLite cannot create in
    a folder it may not write (a share mounted read-only): such a journal is read as
    immutable, which nobody can be changing from here; its ``-wal``, if it has one, is then
    unread: that takes a folder one can write in. On a full disk SQLite can make the
    ``-shm`` file but not give it room (a "disk I/O error"): the journal is then read with
    its wal-index kept in this process's memory (``readonly_shm``), its ``-wal`` read too."""
    uri = f"file:{quote(str(database.absolute()))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
    try:
        conn.execute("PRAGMA schema_version")  # SQLite opens the file (and -shm) lazily
    except sqlite3.OperationalError as error:
        folder = database.absolute().parent
        if error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_IOERR:
            conn.close()
            return _read_without_room(database, uri, timeout)
        if error.sqlite_errorcode != sqlite3.SQLITE_CANTOPEN or os.access(folder, _WRITE):
            return conn  # its first read says what is wrong
        conn.close()
        return sqlite3.connect(
            f"{uri}&immutable=1", uri=True, timeout=timeout, isolation_level=None
        )
    return conn


def _read_without_room(database: Path, uri: str, timeout: float) -> sqlite3.Connection:
    """Given a SQLite file whose ``-shm`` could not be given room (its ``uri`` to read it),
    return a connection that reads it with the wal-index in memory; one that reads it as
    immutable if that cannot be (no ``-shm`` could be made at all) and nothing waits in
    its ``-wal``, which would then be unread; else the first, whose first read says what
    is wrong."""
    conn = sqlite3.connect(f"{uri}&readonly_shm=1", uri=True, timeout=timeout, isolation_level=None)
    try:
        conn.execute("PRAGMA schema_version")
    except sqlite3.OperationalError:
        wal = database.with_name(database.name + "-wal")
        if not wal.exists() or wal.stat().st_size == 0:
            conn.close()
            return sqlite3.connect(
                f"{uri}&immutable=1", uri=True, timeout=timeout, isolation_level=None
            )
    return conn


_WRITE = os.W_OK | os.X_OK

#: below this many free bytes, a "disk I/O error" of SQLite's on a journal is its disk
#: full: a WAL journal needs room for its 32 KiB ``-shm`` and a page or more of ``-wal``
FULL_BELOW = 1024 * 1024


def free_bytes_if_full(database: Path) -> int | None:
    """Given a SQLite journal's file, return the free bytes of the disk holding it if that
    disk is full (fewer than ``FULL_BELOW``); None if it has room, or cannot be asked."""
    try:
        free = shutil.disk_usage(database.absolute().parent).free
    except OSError:
        return None
    return free if free < FULL_BELOW else None
