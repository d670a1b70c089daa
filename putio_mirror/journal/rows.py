"""The journal's rows made into the core's values, without SQLAlchemy.

Shared by the SQLAlchemy reads (``files``, ``desires``, ``store``) and by ``peek``, which
reads a SQLite journal through ``sqlite3`` alone for a dry run: both make the same values
from the same columns.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple

from putio_mirror.core.building import fast_constructor
from putio_mirror.core.state import Desire, DownloadRecord, JournalFacts, Submission

#: labels are few short words; one text column keeps the table simple
LABEL_SEPARATOR = "\n"

_download_record = fast_constructor(DownloadRecord)


def utc_text(text: str | None) -> datetime | None:
    """Given SQLite's text of a UTC time (``YYYY-MM-DD HH:MM:SS.ffffff``), return it aware;
    raise ValueError if it is not text of that shape (a date alone), TypeError if not text."""
    if text is None:
        return None
    when = datetime.fromisoformat(text + "+00:00")
    if when.tzinfo is None:  # a date alone: its offset is not read
        raise ValueError(f"not a time: {text!r}")
    return when


def download_records(rows: Iterable[Sequence[Any]]) -> dict[int, DownloadRecord]:
    """Given SQLite's rows of every download, its columns in DownloadRecord's order (path
    and size coalesced to "" and 0) and its times as text, return the records by file id.

    Each record is made by ``fast_constructor`` and its times by ``utc_text`` (one C
    call, where SQLAlchemy's UtcDateTime costs ~3 µs): this runs for every file the
    journal knows on every run. Raise as ``utc_text`` does.
    """
    utc, record = utc_text, _download_record
    downloads = {}
    for row in rows:
        (file_id, path, size, crc32, done, verified, placed_path, placed, failures, failed,
         error, inode, mtime_ns) = row  # fmt: skip
        downloads[file_id] = record(
            file_id, path, size, crc32, done, utc(verified), placed_path, utc(placed),
            failures, utc(failed), error, inode, mtime_ns,
        )  # fmt: skip
    return downloads


def rows_at_once(
    driver: sqlite3.Connection, sql: str, parameters: Mapping[str, Any] | None = None
) -> list[list[Any]]:
    """Given a sqlite3 connection and a query (its columns of text, numbers and nulls) with
    its named ``parameters``, return its rows (as lists, in no set order), read in one step
    of SQLite's.

    sqlite3 lets go of the GIL for every row it steps to, and gets it back only once
    another thread gives it up: beside a thread building values in Python (put.io's
    listings, parsed while the journal is read) each row waited out a switch interval
    (5 ms), and 100,000 rows took minutes, not 0.3 s. Here SQLite makes every row into one
    JSON text while the GIL is free, and ``json.loads`` reads it back in one call. Falls
    back to stepping row by row where SQLite cannot (no JSON functions, a BLOB value)."""
    given = parameters or {}
    # the query is our own, never built from input; its columns counted, no row stepped to
    width = len(driver.execute(f"SELECT * FROM ({sql}) LIMIT 0", given).description)  # noqa: S608
    names = ", ".join(f"c{n}" for n in range(width))
    at_once = f"WITH r({names}) AS ({sql}) SELECT json_group_array(json_array({names})) FROM r"  # noqa: S608
    try:
        ((text,),) = driver.execute(at_once, given).fetchall()
    except sqlite3.OperationalError:
        return [list(row) for row in driver.execute(sql, given).fetchall()]
    rows: list[list[Any]] = json.loads(text)
    return rows


def desire_of(row: Sequence[Any], place: int) -> Desire:
    """Given a live desire's row (``desires.listing``'s columns) and its place in the
    download order, return the Desire."""
    # Unpacked once: attribute access on 1,000 rows is a poll's biggest cost after SQL.
    (info_hash, rpc_id, name, kind, added_at, magnet_uri, size, category, labels, paused,
     ratio, idle, error, item_path, item_files) = row  # fmt: skip
    return Desire(
        info_hash,
        rpc_id,
        name,
        kind,
        added_at,
        magnet_uri or "",
        size or 0,
        category or "",
        tuple(label for label in labels.split(LABEL_SEPARATOR) if label) if labels else (),
        bool(paused),
        ratio,
        idle,
        error,
        item_path or "",
        files_of(item_files),
        place,
    )


def files_of(text: str | None) -> tuple[tuple[int, str, int], ...]:
    """Given a desire's ``item_files`` (JSON), return (file id, path, size) of each."""
    if not text:
        return ()
    return tuple((int(file_id), str(path), int(size)) for file_id, path, size in json.loads(text))


def removed_of(
    rows: Sequence[Sequence[Any]],
) -> tuple[frozenset[str], frozenset[int], frozenset[int]]:
    """Given the removed desires' (info_hash, purge, item_id, item_files), return their
    info-hashes, the put.io item ids of those removed with their data, and the put.io ids
    of every removed one's item and files (as far as they were located)."""
    purged = frozenset(int(item) for _, purge, item, _ in rows if purge and item is not None)
    ids = {int(item) for _, _, item, _ in rows if item is not None}
    ids.update(file_id for *_, files in rows for file_id, _, _ in files_of(files))
    return frozenset(info_hash for info_hash, *_ in rows), purged, frozenset(ids)


def facts_of(
    submissions: dict[str, Submission],
    downloads: dict[int, DownloadRecord],
    desires: dict[str, Desire],
    removed: tuple[frozenset[str], frozenset[int], frozenset[int]],
) -> JournalFacts:
    """Given what the journal's tables hold, return its facts, keyed the way the
    reconciler pairs things."""
    own = frozenset(s.transfer_id for s in submissions.values() if s.transfer_id is not None)
    removed_desires, purged, removed_ids = removed
    return JournalFacts(
        submissions=MappingProxyType(submissions),
        downloads=MappingProxyType(downloads),
        own_transfer_ids=own,
        desires=MappingProxyType(desires),
        removed_desires=removed_desires,
        purged_items=purged,
        removed_ids=removed_ids,
    )


class FileProgress(NamedTuple):
    """How far one file of an RPC item got, and why it did not get further, as the
    journal says (its ``downloads`` row)."""

    bytes_done: int
    verified: bool
    placed_path: str | None
    #: failed tries in a row (a verified file's start over), the last one's time and why
    failures: int = 0
    last_failure_at: datetime | None = None
    last_error: str | None = None
