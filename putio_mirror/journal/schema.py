"""The SQL under the journal: tables, schema version, SQLite set-up, dialect-specific statements.

Private to the journal package: nothing outside it imports this module. A new journal gets
these tables through ``create_all``; an older one reaches them through the Alembic revisions
in ``migrations/`` (its docstring says how to change a table: here and in ``version.py``,
add a revision). The statements that SQLite and PostgreSQL spell differently (upserts, the
atomic claim) are built here too.
The tables are SQLAlchemy Core ``Table`` objects, never ORM classes: every timer-started run
imports this module, and ``sqlalchemy.orm`` alone would add tens of milliseconds to its start.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Dialect,
    Engine,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    case,
    event,
    func,
    select,
)
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.dml import ReturningInsert
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

from putio_mirror.journal.version import SCHEMA_VERSION as SCHEMA_VERSION

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

# The execution option that marks a connection as a writer (SQLite: BEGIN IMMEDIATE).
WRITE_OPTION = "putio_mirror_write"
# How long to wait between attempts to switch a SQLite journal to WAL (see _enter_wal).
_WAL_RETRY_MS = 10


#: SQLAlchemy's SQLite DATETIME text, fixed width (as ``UtcDateTime.bind_processor`` writes it)
_SQLITE_TEXT = (
    "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"
)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = value.astimezone(UTC)
        # SQLite has no time zones: store UTC wall time and re-attach UTC on reading.
        # SQLAlchemy writes it as fixed-width text, so comparing two of them compares instants.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], Any] | None:
        """SQLite's: the text SQLAlchemy would write (``process_bind_param``, then its
        DATETIME's format) in one C call, ``isoformat``, not a ``%`` of a seven-key dict
        after two calls (several a file, issue 14); any other dialect or format: as is."""
        impl = self.impl_instance.dialect_impl(dialect)
        if dialect.name != "sqlite" or getattr(impl, "_storage_format", None) != _SQLITE_TEXT:
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            return value.astimezone(UTC).isoformat(" ", "microseconds")[:-6]  # less "+00:00"

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

schema_info_table = Table(
    "schema_info",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
)

runs_table = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True),
    # Text, never String(n): PostgreSQL enforces a length, and a command names its host.
    Column("command", Text, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    Column("exit_code", Integer),
    Column("summary", Text),
    Column("dry_run", Boolean, nullable=False, default=False),
    Column("host", Text, nullable=False, default=""),
    # The claim owner of the run (schema 3): its actions carry it too.
    Column("owner", Text),
)

actions_table = Table(
    "actions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    # Keys hold put.io names (``reject:<a 255-byte name>``): Text, whatever their length.
    Column("key", Text, nullable=False, index=True),
    Column("target", Text, nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("attempts", Integer, nullable=False, default=1),
    Column("error", Text),
    Column("detail", Text),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    # Who ran it (schema 3): a starting host marks only actions no live claim covers.
    Column("owner", Text),
)

submissions_table = Table(
    "submissions",
    metadata,
    Column("info_hash", String(64), primary_key=True),
    Column("transfer_id", BigInteger),
    Column("name", Text, nullable=False),
    Column("submitted_at", UtcDateTime, nullable=False),
)

# One put.io file's lifecycle: fetching (bytes_done) → verified in staging (verified_at) →
# placed (placed_at, at placed_path in the download folder; which file it was there:
# placed_inode, placed_mtime_ns, schema 6, NULL for one placed before). Path and size stay
# NULL while only failures are known; the failure columns came in schema 3.
downloads_table = Table(
    "downloads",
    metadata,
    Column("file_id", BigInteger, primary_key=True, autoincrement=False),
    Column("relative_path", Text),
    Column("size", BigInteger),
    Column("crc32", String(8)),
    Column("bytes_done", BigInteger, nullable=False, default=0),
    Column("verified_at", UtcDateTime),
    Column("updated_at", UtcDateTime),
    Column("failures", Integer, nullable=False, default=0),
    Column("placed_at", UtcDateTime),
    Column("placed_path", Text),
    Column("last_failure_at", UtcDateTime),
    Column("last_error", Text),
    Column("placed_inode", BigInteger),
    Column("placed_mtime_ns", BigInteger),
    # a local file of put.io's size found to hold other bytes (schema 7): not read again
    # while it is the same file
    Column("stranger_inode", BigInteger),
    Column("stranger_mtime_ns", BigInteger),
)
#: a placement forgotten: where, when, and which file it was
NOT_PLACED = {"placed_at": None, "placed_path": None, "placed_inode": None, "placed_mtime_ns": None}

# Who works on an action key, until when (schema 2): hosts sharing a journal share work.
# A row whose ``expires_at`` has passed is free for the taking; ``claimed_at`` is when its
# current owner first took it (extending a lease keeps it).
claims_table = Table(
    "claims",
    metadata,
    Column("key", Text, primary_key=True),
    Column("owner", Text, nullable=False, index=True),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("claimed_at", UtcDateTime, nullable=False),
)

# What RPC clients (Sonarr, Radarr, transmission-remote) asked for, by info-hash; ``id`` is
# the number Transmission clients know it by (schema 4, revision ``0004``).
desires_table = Table(
    "desires",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("info_hash", String(64), nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("size", BigInteger, nullable=False, default=0),
    Column("torrent", LargeBinary),
    Column("magnet_uri", Text, nullable=False, default=""),
    Column("category", Text, nullable=False, default=""),
    Column("labels", Text, nullable=False, default=""),
    Column("paused", Boolean, nullable=False, default=False),
    Column("seed_ratio_limit", Float),
    Column("seed_idle_minutes", Integer),
    Column("error", Text),
    # Where its item is, once put.io's tree shows it: relative path, files as JSON.
    Column("item_id", BigInteger),
    Column("item_path", Text),
    Column("item_files", Text),
    Column("added_at", UtcDateTime, nullable=False),
    Column("removed_at", UtcDateTime),
    # Removed with ``delete-local-data``: its put.io files go too if the config says so.
    Column("purge", Boolean, nullable=False, default=False),
    # One more on every change: a poll that finds the same sums reuses what it read last.
    Column("revision", Integer, nullable=False, default=0),
    # The download order (schema 5, revision ``0005``): lower first, then by ``id``.
    Column("queue_position", Integer),
)


def database_now(conn: Connection) -> datetime:
    """Given a connection, return the database's clock as an aware UTC datetime.

    Leases are judged by this one clock, never a host's: hosts whose clocks disagree by hours
    would otherwise each see the others' leases as expired, or never expiring. (A SQLite
    journal's clock is the clock of the machine that runs the statement.) Read back as a
    value, it is bound like any other time, so it compares like with like in both databases.
    """
    if conn.dialect.name == "postgresql":
        # clock_timestamp(), not now(): now() is when the transaction began.
        moment: datetime = conn.execute(select(func.clock_timestamp())).scalar_one()
        return moment.astimezone(UTC)
    # SQLite runs in this process: its 'now' is this machine's clock, which Python reads
    # without a query per claim (kept to SQLite's millisecond precision).
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def upsert(
    conn: Connection,
    table: Table,
    row: Mapping[str, Any],
    changes: Mapping[str, Any],
    where: ColumnElement[bool] | None = None,
) -> None:
    """Insert ``row`` into ``table``, or, if its primary key exists, update it with ``changes``.

    With ``where``, an existing row is updated only if it matches (else left as it is).
    """
    keys = [column.name for column in table.primary_key]
    statement = _dialect_insert(conn.dialect.name, table).values(**row)
    updates = {column: value for column, value in changes.items() if column not in keys}
    conn.execute(statement.on_conflict_do_update(index_elements=keys, set_=updates, where=where))


def insert_unless_there(
    conn: Connection, table: Table, row: Mapping[str, Any], unique: str
) -> int | None:
    """Insert ``row`` into ``table`` unless a row with its value of the ``unique`` column is
    there (committed meanwhile by another host's transaction included: PostgreSQL waits
    for it, then skips); return the new row's id, None if none was inserted."""
    statement = _dialect_insert(conn.dialect.name, table).values(**row)
    skipping = statement.on_conflict_do_nothing(index_elements=[unique])
    inserted = conn.execute(skipping.returning(table.c.id)).first()
    return None if inserted is None else int(inserted[0])


def upsert_row(
    conn: Connection,
    table: Table,
    row: Mapping[str, Any],
    where: ColumnElement[bool] | None = None,
) -> None:
    """Insert ``row`` into ``table``, or, if its primary key exists, overwrite it with the
    row's values (only if it matches ``where``, a module-level constant, when given).

    The statement is built once per shape and reused with bound values: building it anew
    cost ~50 µs of SQLAlchemy's Python for each small file's every write."""
    statement = row_upsert(conn.dialect.name, table, tuple(row), where)
    conn.execute(statement, dict(row))


@functools.cache
def row_upsert(
    dialect_name: str,
    table: Table,
    columns: tuple[str, ...],
    where: ColumnElement[bool] | None = None,
) -> Executable:
    """Given a dialect, a table and a row's columns, return ``upsert_row``'s statement
    (built once per shape), to execute with the row's values."""
    keys = {column.name for column in table.primary_key}
    statement = _dialect_insert(dialect_name, table).values(
        {column: bindparam(column) for column in columns}
    )
    updates = {column: statement.excluded[column] for column in columns if column not in keys}
    return statement.on_conflict_do_update(index_elements=list(keys), set_=updates, where=where)


@functools.cache
def claim_statement(dialect_name: str) -> ReturningInsert[tuple[str]]:
    """Given a claim, return the statement that takes it; a row back means ``owner`` holds it.

    It takes a free key, an expired one (a lease ending at ``now`` is expired), or one that
    ``owner`` holds already (extending it); a key under another owner's lease stays theirs.
    """
    # One INSERT ... ON CONFLICT DO UPDATE ... WHERE ... RETURNING, never a SELECT then a
    # write: the database decides in one statement. PostgreSQL locks the conflicting row and
    # re-checks the WHERE against its newest version (a racing INSERT of a new key waits for
    # the first to commit, then conflicts); SQLite runs one writer at a time. So two hosts
    # never both see "free". SQLite (3.35+) and PostgreSQL share the text; SELECT ... FOR
    # UPDATE SKIP LOCKED would be PostgreSQL-only and cannot lock a key that has no row yet.
    # Built once per dialect (see upsert_row); executed with key, owner, expires_at and now.
    return _claim_upsert(dialect_name, "now", lambda proposed: bindparam("now"))


@functools.cache
def claim_many_statement(dialect_name: str) -> ReturningInsert[tuple[str]]:
    """Given a dialect, return ``claim_statement``'s twin for many keys in one statement (an
    ``executemany`` SQLAlchemy sends as one multi-row INSERT): the time of the claim is a
    value of each row (``claimed_at``), so the WHERE needs no parameter of its own. Each row
    is decided alone, as ``claim_statement`` decides it; rows back name the keys taken."""
    return _claim_upsert(dialect_name, "claimed_at", lambda proposed: proposed.claimed_at)


def _claim_upsert(
    dialect_name: str, claimed_at: str, now: Callable[[Any], Any]
) -> ReturningInsert[tuple[str]]:
    """The claim's INSERT ... ON CONFLICT DO UPDATE ... WHERE ... RETURNING: ``claimed_at``
    names the parameter of the claim's time, ``now`` gives the time the WHERE compares a
    lease with, from the proposed row (``excluded``)."""
    statement = _dialect_insert(dialect_name, claims_table).values(
        key=bindparam("key"),
        owner=bindparam("owner"),
        expires_at=bindparam("expires_at"),
        claimed_at=bindparam(claimed_at),
    )
    proposed = statement.excluded
    claim = claims_table.c
    mine = claim.owner == proposed.owner
    changes = {
        "owner": proposed.owner,
        "expires_at": proposed.expires_at,
        # Extending keeps when the owner first took the key; taking it over starts anew.
        "claimed_at": case((mine, claim.claimed_at), else_=proposed.claimed_at),
    }
    where = mine | (claim.expires_at <= now(proposed))
    taking = statement.on_conflict_do_update(index_elements=["key"], set_=changes, where=where)
    return taking.returning(claim.key)


def _dialect_insert(dialect_name: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    """Given a dialect, return its INSERT into ``table``, the one that knows ON CONFLICT."""
    # Imported here: the PostgreSQL dialect alone costs ~30 ms of every SQLite run's start.
    if dialect_name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


def tune_sqlite(engine: Engine, busy_timeout_ms: int, *, wal: bool = True) -> None:
    """Set WAL (unless not ``wal``: a reader switches nothing), a busy timeout and foreign
    keys on every connection; own the transactions.

    pysqlite starts transactions lazily and as DEFERRED; a write transaction
    that first reads can then fail with "database is locked" at once instead
    of waiting. So we switch its own BEGIN off and issue ours: IMMEDIATE for
    writes (connections with WRITE_OPTION; they queue on busy_timeout), plain
    BEGIN for reads.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: object) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms:d}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if wal:
                _enter_wal(cursor, busy_timeout_ms)
            # In WAL mode NORMAL never corrupts and survives a killed process; a power cut
            # may lose the last commits, which the next run re-derives from put.io and the
            # disk (a verified file found in place is adopted, a submitted hash is on put.io).
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _enter_wal(cursor: Any, busy_timeout_ms: int) -> None:
    """Given a DB-API cursor, switch its database to WAL, waiting out another doing the
    same, for the busy timeout in all; raise sqlite3.OperationalError ("locked") after it.

    SQLite takes the exclusive lock this needs without calling its busy handler, so two
    processes opening one new journal at once would get "database is locked" at once; it
    is tried again every few ms. Each try may itself wait out the busy timeout (for the
    shared lock, under a writer in rollback mode: a sqlite3 shell's BEGIN EXCLUSIVE), so
    the busy timeout is what is left of the wait: a hundred tries of 5 s each were 40
    minutes of a command that seemed to hang.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    try:
        while True:
            try:
                cursor.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as error:
                left_ms = int((deadline - time.monotonic()) * 1000)
                if "locked" not in str(error) or left_ms <= 0:
                    raise
                time.sleep(min(_WAL_RETRY_MS, left_ms) / 1000)
                cursor.execute(f"PRAGMA busy_timeout = {max(1, left_ms):d}")
    finally:
        cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms:d}")
