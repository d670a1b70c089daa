"""The SQL of what RPC clients asked for: add once by info-hash, change, remove, list.

Private to ``store.py``, whose ``add_desire``/``change_desire``/``remove_desire``/
``desires``/``desire_torrent`` are the entry points; each function here runs inside a
transaction the journal opened. A removed desire keeps its row (``removed_at``), so
its number is never given to another torrent and ``history`` can tell of it.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Connection,
    Integer,
    Row,
    Text,
    bindparam,
    func,
    select,
    text,
    update,
)

from putio_mirror.core.state import Desire
from putio_mirror.journal.engine import Database
from putio_mirror.journal.rows import (
    LABEL_SEPARATOR,
    FileProgress,
    desire_of,
    removed_of,
    rows_at_once,
    utc_text,
)
from putio_mirror.journal.schema import (
    NOT_PLACED,
    UtcDateTime,
    desires_table,
    downloads_table,
    insert_unless_there,
    submissions_table,
)

_COLUMNS = desires_table.c
_LISTED = select(
    _COLUMNS.info_hash,
    _COLUMNS.id,
    _COLUMNS.name,
    _COLUMNS.kind,
    _COLUMNS.added_at,
    _COLUMNS.magnet_uri,
    _COLUMNS.size,
    _COLUMNS.category,
    _COLUMNS.labels,
    _COLUMNS.paused,
    _COLUMNS.seed_ratio_limit,
    _COLUMNS.seed_idle_minutes,
    _COLUMNS.error,
    _COLUMNS.item_path,
    _COLUMNS.item_files,
).order_by(_COLUMNS.queue_position, _COLUMNS.id)


def add(conn: Connection, row: Mapping[str, Any]) -> tuple[int, bool]:
    """Given a new desire's row, store it unless its info-hash is known and not removed;
    return (its id, whether it was added now). A removed one comes back with the new row.
    Either goes to the end of the download order. A .torrent given for a live magnet
    takes the magnet's place (``_take_torrent``); the desire is not new for that."""
    last = conn.execute(select(func.max(_COLUMNS.queue_position))).scalar_one_or_none()
    row = dict(row) | {"queue_position": (last or 0) + 1}
    found = _found(conn, row["info_hash"])
    if found is None:
        inserted = insert_unless_there(conn, desires_table, row, "info_hash")
        if inserted is not None:
            return inserted, True
        # Another host sharing the journal added it since we looked (Sonarr adds one
        # torrent to each of its clients): a duplicate, not an error.
        found = _found(conn, row["info_hash"])
        assert found is not None
    if found.removed_at is None:
        if found.kind == "magnet" and row["torrent"] is not None:
            _take_torrent(conn, found.id, row)
        return int(found.id), False
    values = dict(row) | {
        "removed_at": None,
        "purge": False,
        "error": None,
        "revision": _COLUMNS.revision + 1,
    }
    conn.execute(update(desires_table).where(_COLUMNS.id == found.id).values(**values))
    return int(found.id), True


def _found(conn: Connection, info_hash: str) -> Row[Any, Any, Any] | None:
    query = select(_COLUMNS.id, _COLUMNS.removed_at, _COLUMNS.kind)
    return conn.execute(query.where(_COLUMNS.info_hash == info_hash)).first()


def _take_torrent(conn: Connection, desire_id: int, row: Mapping[str, Any]) -> None:
    """Given a live magnet desire's id and the row of its .torrent, keep the .torrent in
    the magnet's place: it carries what a magnet lacks (trackers, the metadata, the
    private flag), so it is what put.io is sent from now on (and in place of the magnet's
    transfer while put.io has not started it: ``core.desired``). Its name and size are
    the .torrent's; a refusal of the magnet is forgotten, the .torrent not refused yet.
    Its place in the download order, category, labels and pause stay the client's."""
    torrent = {key: row[key] for key in ("name", "kind", "size", "torrent", "magnet_uri")}
    values = torrent | {"error": None, "revision": _COLUMNS.revision + 1}
    conn.execute(update(desires_table).where(_COLUMNS.id == desire_id).values(**values))


def take_torrent(conn: Connection, info_hash: str, row: Mapping[str, Any]) -> bool:
    """Given an info-hash and the row of a .torrent of it that came by another door (the
    blackhole), keep it in place of the live magnet desire's magnet (``_take_torrent``);
    return whether a live desire of that hash holds a .torrent now (a client may have
    given it its own since, or removed it)."""
    found = conn.execute(
        select(_COLUMNS.id, _COLUMNS.kind, _COLUMNS.torrent.is_not(None)).where(
            _COLUMNS.info_hash == info_hash, _COLUMNS.removed_at.is_(None)
        )
    ).first()
    if found is None:
        return False
    if found.kind == "magnet":
        _take_torrent(conn, found.id, row)
        return True
    return bool(found[2])


def change(conn: Connection, info_hashes: list[str], values: Mapping[str, Any]) -> None:
    """Given info-hashes and column values, set them on those desires (unknown ones: none)."""
    if info_hashes and values:
        statement = update(desires_table).where(
            _COLUMNS.info_hash.in_(info_hashes), _COLUMNS.removed_at.is_(None)
        )
        conn.execute(statement.values(**values, revision=_COLUMNS.revision + 1))


def reorder(conn: Connection, info_hashes: list[str]) -> None:
    """Given every live desire's info-hash in the download order wanted, number them so."""
    current = dict(conn.execute(select(_COLUMNS.info_hash, _COLUMNS.queue_position)).all())
    for position, info_hash in enumerate(info_hashes):
        if current.get(info_hash, position) != position:
            change(conn, [info_hash], {"queue_position": position})


def remove(conn: Connection, info_hashes: list[str], now: datetime, purge: bool) -> None:
    change(conn, info_hashes, {"removed_at": now, "purge": purge})


def removed_one(conn: Connection, info_hash: str) -> tuple[Desire, bool] | None:
    """Given an info-hash, return its removed desire and whether it went with its data
    (None if no desire of that hash is removed)."""
    found = conn.execute(
        _LISTED.add_columns(_COLUMNS.purge).where(
            _COLUMNS.info_hash == info_hash, _COLUMNS.removed_at.is_not(None)
        )
    ).first()
    if found is None:
        return None
    return desire_of(found[:-1], 0), bool(found[-1])


def bring_back(conn: Connection, info_hash: str, refetch: Collection[int], resubmit: bool) -> None:
    """Given a desire added again after its removal, the ids of its files to fetch again
    (placed once, gone from the disk since) and whether put.io has nothing of it any more:
    forget those files' progress; with ``resubmit``, forget where its item was and the
    transfer it was submitted as, so it is submitted again and located anew."""
    if resubmit:
        change(conn, [info_hash], {"item_id": None, "item_path": None, "item_files": None})
        submission = submissions_table.c
        forget = update(submissions_table).where(submission.info_hash == info_hash)
        conn.execute(forget.values(transfer_id=None))
    if refetch:
        download = downloads_table.c
        statement = update(downloads_table).where(download.file_id.in_(list(refetch)))
        conn.execute(statement.values({"bytes_done": 0, "verified_at": None} | NOT_PLACED))


def fingerprint(conn: Connection, *, removed: bool = False) -> tuple[int, int, int]:
    """Return what changes whenever a desire is added, changed or removed (a cheap query);
    ``removed``: of the removed desires instead of the live ones (a removal changes the
    revision, and a removed desire changes no more until it is added again)."""
    which = _COLUMNS.removed_at.is_not(None) if removed else _COLUMNS.removed_at.is_(None)
    summed = select(
        func.count(), func.coalesce(func.sum(_COLUMNS.revision), 0),
        func.coalesce(func.sum(_COLUMNS.id), 0),
    ).where(which)  # fmt: skip
    count, revisions, ids = conn.execute(summed).one()
    return int(count), int(revisions), int(ids)


def listing(conn: Connection) -> dict[str, Desire]:
    """Return every desire not removed, by info-hash."""
    rows = conn.execute(_LISTED.where(_COLUMNS.removed_at.is_(None)))
    # queue_position is the item's place among those listed: 0, 1, 2 ... as Transmission's
    return {row.info_hash: desire_of(row, place) for place, row in enumerate(rows)}


def removed(conn: Connection) -> tuple[frozenset[str], frozenset[int], frozenset[int]]:
    """Return the info-hashes of the desires removed (and not added again since), the
    put.io item ids of those removed with their data, and the put.io ids of every removed
    one's item and files (as far as they were located)."""
    query = select(_COLUMNS.info_hash, _COLUMNS.purge, _COLUMNS.item_id, _COLUMNS.item_files).where(
        _COLUMNS.removed_at.is_not(None)
    )
    return removed_of(conn.execute(query).all())


def torrent(conn: Connection, info_hash: str) -> bytes | None:
    found = conn.execute(select(_COLUMNS.torrent).where(_COLUMNS.info_hash == info_hash))
    data = found.scalar_one_or_none()
    return None if data is None else bytes(data)


class DesireBook:
    """The journal's desires, for the RPC door: every write its own short transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db
        # Polls read every desire every few seconds; most find nothing changed.
        self._lock = threading.Lock()
        self._cached: tuple[tuple[int, int, int], dict[str, Desire]] | None = None

    def add(self, desire: Desire, torrent_data: bytes | None) -> tuple[int, bool]:
        """Given a desire (its ``rpc_id`` is ignored) and its .torrent bytes (None for a
        magnet), store it once by info-hash; return (its number, whether it is new)."""
        row = {
            "info_hash": desire.info_hash,
            "name": desire.name,
            "kind": desire.kind,
            "size": desire.size,
            "torrent": torrent_data,
            "magnet_uri": desire.magnet_uri,
            "category": desire.category,
            "labels": LABEL_SEPARATOR.join(desire.labels),
            "paused": desire.paused,
            "seed_ratio_limit": desire.seed_ratio_limit,
            "seed_idle_minutes": desire.seed_idle_minutes,
            "added_at": _aware(desire.added_at),
        }
        with self._db.write() as conn:
            return add(conn, row)

    def take_torrent(self, info_hash: str, name: str, size: int, torrent_data: bytes) -> bool:
        """Given an info-hash and a .torrent of it (its name, size and bytes) dropped in
        the blackhole, keep it as that live magnet desire's torrent, as when a client adds
        it; return whether a live desire of that hash holds a .torrent now."""
        row = {
            "name": name,
            "kind": "torrent",
            "size": size,
            "torrent": torrent_data,
            "magnet_uri": "",
        }
        with self._db.write() as conn:
            return take_torrent(conn, info_hash, row)

    def change(self, info_hashes: list[str], **values: Any) -> None:
        """Given info-hashes, set ``paused``, ``labels`` (a tuple), seed limits or ``error``."""
        if "labels" in values:
            values["labels"] = LABEL_SEPARATOR.join(values["labels"])
        with self._db.write() as conn:
            change(conn, info_hashes, values)

    def locate(
        self,
        info_hash: str,
        item_id: int,
        item_path: str,
        files: tuple[tuple[int, str, int], ...],
    ) -> None:
        """Given a desire's info-hash, remember its put.io item, where it is locally and
        which files it has."""
        values = {"item_id": item_id, "item_path": item_path, "item_files": json.dumps(files)}
        self.change([info_hash], **values)

    def reorder(self, info_hashes: list[str]) -> None:
        """Given the info-hashes of the desires in the download order wanted, keep it."""
        with self._db.write() as conn:
            reorder(conn, info_hashes)

    def remove(self, info_hashes: list[str], now: datetime, *, purge: bool = False) -> None:
        """Given info-hashes, mark those desires removed (``purge``: with their data)."""
        with self._db.write() as conn:
            remove(conn, info_hashes, _aware(now), purge)

    def removed_one(self, info_hash: str) -> tuple[Desire, bool] | None:
        """Given an info-hash, return its removed desire and whether it was removed with its
        data; None if it is not a removed one."""
        with self._db.read() as conn:
            return removed_one(conn, info_hash)

    def bring_back(
        self, info_hash: str, refetch: Collection[int], *, resubmit: bool = False
    ) -> None:
        """Given a desire added again after its removal, the files of it to fetch again and
        whether to submit it again (see ``bring_back``): one transaction."""
        with self._db.write() as conn:
            bring_back(conn, info_hash, refetch, resubmit)

    def removed_mark(self) -> tuple[int, int, int]:
        """Return what changes whenever a desire is removed or added again (a cheap query:
        the removed files' set is costly to read again)."""
        with self._db.read() as conn:
            return fingerprint(conn, removed=True)

    def removed_files(self) -> frozenset[int]:
        """Return the put.io ids of every removed desire's item and files (as far as they
        were located)."""
        with self._db.read() as conn:
            return removed(conn)[2]

    def listing(self) -> dict[str, Desire]:
        """Return every desire not removed, by info-hash (read again only if one changed)."""
        with self._db.read() as conn:
            key = fingerprint(conn)
            with self._lock:
                if self._cached is not None and self._cached[0] == key:
                    return dict(self._cached[1])
            found = listing(conn)
        with self._lock:
            self._cached = (key, found)
        return dict(found)

    def progress_of(self, file_ids: list[int]) -> dict[int, FileProgress]:
        return progress_of(self._db, file_ids) if file_ids else {}

    def torrent(self, info_hash: str) -> bytes | None:
        """Given an info-hash, return the .torrent bytes a client sent for it (None: none)."""
        with self._db.read() as conn:
            return torrent(conn, info_hash)


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"the journal needs aware datetimes, got naive {moment.isoformat()}")
    return moment


def progress_of(db: Database, file_ids: list[int]) -> dict[int, FileProgress]:
    """Given file ids, return file id -> its progress and failures for those the journal
    knows: what the RPC door reports as local progress, and why an item is stuck."""
    with db.read() as conn:
        query, ids = _PROGRESS[conn.dialect.name], _id_list(conn.dialect.name, file_ids)
        if conn.dialect.name == "sqlite":
            with contextlib.suppress(ValueError, TypeError):  # a time read the typed way
                return _sqlite_progress(conn, ids)
        return {
            row[0]: FileProgress(row[1] or 0, bool(row[2]), *row[3:])
            for row in conn.execute(query, {"ids": ids})
        }


def _sqlite_progress(conn: Connection, ids: object) -> dict[int, FileProgress]:
    """``progress_of`` a SQLite journal, read in one step (``rows.rows_at_once``): the RPC
    door asks it at every poll, while a sync's threads beside it hold the GIL. Raise
    ValueError or TypeError if a time is not text of SQLite's shape."""
    driver = conn.connection.driver_connection
    rows = rows_at_once(driver, _SQLITE_PROGRESS, {"ids": ids})  # type: ignore[arg-type]
    return {
        file_id: FileProgress(done or 0, bool(verified), path, failures, utc_text(failed), error)
        for file_id, done, verified, path, failures, failed, error in rows
    }


# The ids go as one parameter, not one each: a poll of 1,000 items names 2,000 files or
# more, and expanding them cost 9 ms a poll where this costs 3 (bench/rpc_view.py). The
# failures come in the same query: a stuck item's reason costs no query of its own.
_TYPES = {
    "file_id": BigInteger,
    "bytes_done": BigInteger,
    "verified": Boolean,
    "placed_path": Text,
    "failures": Integer,
    "last_failure_at": UtcDateTime,
    "last_error": Text,
}
_SQLITE_PROGRESS = (
    "SELECT file_id, bytes_done, verified_at IS NOT NULL AS verified, placed_path, "
    "failures, last_failure_at, last_error FROM downloads "
    "WHERE file_id IN (SELECT value FROM json_each(:ids))"
)
_PROGRESS = {
    "sqlite": text(_SQLITE_PROGRESS).columns(**_TYPES),
    "postgresql": text(
        "SELECT file_id, bytes_done, verified_at IS NOT NULL AS verified, placed_path, "
        "failures, last_failure_at, last_error FROM downloads WHERE file_id = ANY(:ids)"
    )
    .bindparams(bindparam("ids", type_=ARRAY(BigInteger)))
    .columns(**_TYPES),
}


def _id_list(dialect_name: str, file_ids: list[int]) -> object:
    return json.dumps(file_ids) if dialect_name == "sqlite" else file_ids
