"""The SQL of each put.io file's lifecycle: fetching, verified in staging, placed; and failures.

Private to ``store.py``, whose ``record_progress``/``mark_verified``/``mark_placed``/
``record_failure``/``reset_download`` are the entry points; each function here runs inside
a transaction the journal opened. One row per file id in ``downloads``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping
from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Executable,
    Select,
    bindparam,
    func,
    inspect,
    null,
    select,
    update,
)

from putio_mirror.core.state import DownloadRecord, FileIdentity
from putio_mirror.journal.rows import download_records, rows_at_once
from putio_mirror.journal.schema import (
    NOT_PLACED,
    downloads_table,
    row_upsert,
    upsert,
    upsert_row,
)

_NOT_NULL = {"relative_path": "", "size": 0}
#: which file each was placed as: the columns schema 6 added
_IDENTITY = frozenset(("placed_inode", "placed_mtime_ns"))


def _select_records(identities: bool) -> Select[Any]:
    """Every download row, failure-only ones included (their NULL path and size read as ""
    and 0), its columns in DownloadRecord's order: a row becomes a record by position,
    which matters at 100,000 rows (observe reads them all each run). Without
    ``identities``, those columns read as NULL (a journal a run has not upgraded yet)."""
    columns: list[Any] = []
    for item in fields(DownloadRecord):
        if item.name in _NOT_NULL:
            coalesced = func.coalesce(downloads_table.c[item.name], _NOT_NULL[item.name])
            columns.append(coalesced.label(item.name))
        elif item.name in _IDENTITY and not identities:
            columns.append(null().label(item.name))
        else:
            columns.append(downloads_table.c[item.name])
    return select(*columns)


_RECORDS = _select_records(identities=True)
_RECORDS_BEFORE_IDENTITIES = _select_records(identities=False)


_UNVERIFIED = downloads_table.c.verified_at.is_(None)


def progress(conn: Connection, row: Mapping[str, Any]) -> None:
    """Given a download row, write it unless the file is verified already.

    A host that lost its claim must not undo another host's verification.
    """
    upsert_row(conn, downloads_table, row, where=_UNVERIFIED)


def verified(dialect_name: str, row: Mapping[str, Any]) -> tuple[Executable, dict[str, Any]]:
    """Given a download row (all bytes done), return the write that marks it verified (its
    failures start over) and its values."""
    done = dict(row) | {"verified_at": row["updated_at"], "failures": 0, "last_error": None}
    return row_upsert(dialect_name, downloads_table, tuple(done)), done


def placed(
    conn: Connection,
    placements: Mapping[int, str],
    now: datetime,
    identities: Mapping[int, FileIdentity],
) -> None:
    """Given file id -> relative path and file id -> which file was placed there (an id
    missing: not known), mark each placed there at ``now``; skip unknown ids."""
    if not placements:
        return
    download = downloads_table.c
    statement = update(downloads_table).where(download.file_id == bindparam("placed_id"))
    rows = [
        {"placed_id": file_id, "placed_path": path} | identity_columns(identities.get(file_id))
        for file_id, path in placements.items()
    ]
    conn.execute(statement.values(placed_at=now), rows)


def identity_columns(identity: FileIdentity | None) -> dict[str, int | None]:
    """Given which file was placed (None: not known), return its columns' values."""
    if identity is None:
        return {"placed_inode": None, "placed_mtime_ns": None}
    return {"placed_inode": identity.inode, "placed_mtime_ns": identity.mtime_ns}


def unplaced(conn: Connection, file_ids: Collection[int]) -> None:
    """Given file ids whose verified bytes are back in staging, forget their placement."""
    download = downloads_table.c
    statement = update(downloads_table).where(download.file_id.in_(list(file_ids)))
    conn.execute(statement.values(NOT_PLACED))


def failed(conn: Connection, file_id: int, now: datetime, error: str) -> int:
    """Given a file that failed, when and why, count one more failure; return the count."""
    failure = {"last_failure_at": now, "last_error": error}
    download = downloads_table.c
    upsert(
        conn,
        downloads_table,
        {"file_id": file_id, "failures": 1} | failure,
        {"failures": download.failures + 1} | failure,
    )
    count = select(download.failures).where(download.file_id == file_id)
    return int(conn.execute(count).scalar_one())


def reset(conn: Connection, file_id: int) -> None:
    """Given a file id, forget its progress, verification and placement; keep its failures."""
    statement = update(downloads_table).where(downloads_table.c.file_id == file_id)
    conn.execute(statement.values({"bytes_done": 0, "verified_at": None} | NOT_PLACED))


_VERIFIED_AT = select(downloads_table.c.verified_at).where(
    downloads_table.c.file_id == bindparam("file_id")
)


def is_verified(conn: Connection, file_id: int) -> bool:
    """Given a file id, say whether any host has verified it."""
    return conn.execute(_VERIFIED_AT, {"file_id": file_id}).scalar_one_or_none() is not None


_VERIFIED_AMONG = select(downloads_table.c.file_id).where(
    downloads_table.c.file_id.in_(bindparam("file_ids", expanding=True)),
    downloads_table.c.verified_at.isnot(None),
)


def verified_among(conn: Connection, file_ids: Collection[int]) -> frozenset[int]:
    """Given file ids, return those any host has verified (one statement built once: each
    batch of starts asks)."""
    if not file_ids:
        return frozenset()
    return frozenset(conn.execute(_VERIFIED_AMONG, {"file_ids": list(file_ids)}).scalars())


_PLACED_IDENTITIES = select(
    downloads_table.c.file_id, downloads_table.c.placed_inode, downloads_table.c.placed_mtime_ns
).where(
    downloads_table.c.file_id.in_(bindparam("file_ids", expanding=True)),
    downloads_table.c.placed_at.isnot(None),
    downloads_table.c.placed_inode.isnot(None),
    downloads_table.c.placed_mtime_ns.isnot(None),
)


def judged_stranger(conn: Connection, file_id: int) -> FileIdentity | None:
    """Given a file id, return which local file at its path was found to hold other bytes
    than put.io's, if one was."""
    column = downloads_table.c
    found = conn.execute(
        select(column.stranger_inode, column.stranger_mtime_ns).where(column.file_id == file_id)
    ).first()
    if found is None or found[0] is None or found[1] is None:
        return None
    return FileIdentity(found[0], found[1])


def judge_stranger(conn: Connection, file_id: int, identity: FileIdentity) -> None:
    """Given a file id and the local file at its path found to hold other bytes, keep it."""
    judged = {"stranger_inode": identity.inode, "stranger_mtime_ns": identity.mtime_ns}
    upsert(conn, downloads_table, {"file_id": file_id} | judged, judged)


def placed_identities(conn: Connection, file_ids: Collection[int]) -> dict[int, FileIdentity]:
    """Given file ids, return which file each placed one was, where that is known."""
    if not file_ids:
        return {}
    rows = conn.execute(_PLACED_IDENTITIES, {"file_ids": list(file_ids)})
    return {row[0]: FileIdentity(row[1], row[2]) for row in rows}


def records(conn: Connection, *, identities: bool = True) -> dict[int, DownloadRecord]:
    """Return every file's record by id; a failure-only one has path "" and size 0.
    ``identities`` False: the journal has no column of which file was placed (a reader's
    look at one from before schema 6): none is known."""
    query = _RECORDS if identities else _RECORDS_BEFORE_IDENTITIES
    if conn.dialect.name == "sqlite":
        with contextlib.suppress(ValueError, TypeError):  # a time the fast path cannot read
            return _sqlite_records(conn, query)
    return {row[0]: DownloadRecord(*row) for row in conn.execute(query).all()}


def has_identities(conn: Connection) -> bool:
    """Whether the journal keeps which file each was placed as (schema 6 and later)."""
    columns = {column["name"] for column in inspect(conn).get_columns("downloads")}
    return _IDENTITY.issubset(columns)


def _sqlite_records(conn: Connection, query: Select[Any]) -> dict[int, DownloadRecord]:
    """``records`` of a SQLite journal, its times read as the text SQLite keeps, from
    sqlite3's own rows (``rows.download_records``). Raise ValueError or TypeError if a
    time is not text of that shape, so the caller can read them the typed way."""
    sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    driver = conn.connection.driver_connection
    return download_records(rows_at_once(driver, sql))  # type: ignore[arg-type]


def download_row(
    file_id: int, relative_path: str, size: int, crc32: str | None, done: int, now: datetime
) -> dict[str, Any]:
    """Given what a download row holds, return it as the columns' values."""
    return {
        "file_id": file_id,
        "relative_path": relative_path,
        "size": size,
        "crc32": crc32,
        "bytes_done": done,
        "updated_at": now,
    }
