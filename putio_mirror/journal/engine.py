"""How the journal reaches its database: the URL, the engine, transactions, the run lock, errors.

Private to ``store.py``, like the other modules of this package (the only ones that import
SQLAlchemy). SQLite and PostgreSQL are supported; a SQLite file's folder is created and its
connections tuned (``journal_schema.tune_sqlite``). SQLAlchemy's errors become
``JournalError`` with a hint here.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Self

from sqlalchemy import Connection, Dialect, Engine, Executable, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    NoSuchModuleError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
)
from sqlalchemy.sql.compiler import SQLCompiler

from putio_mirror.core.attention import SEVERAL_HOSTS, shared_journal_hint
from putio_mirror.core.errors import JournalError
from putio_mirror.journal.connecting import (
    LAST_WORD_SECONDS,
    PATIENCE_SECONDS,
    PinnedFile,
    Reconnecting,
    open_only_as_it_is,
)
from putio_mirror.journal.schema import WRITE_OPTION, tune_sqlite
from putio_mirror.journal.where import connect_read_only, free_bytes_if_full, lock_beside
from putio_mirror.local.folders import default_journal, lock_folder
from putio_mirror.local.mounts import shared_filesystem, unmounted_mount_point
from putio_mirror.local.paths import why_unwritable

log = logging.getLogger(__name__)

_SUPPORTED = ("sqlite", "postgresql")
_CORRUPT_HINT = "move it aside; the next run rebuilds what it can from put.io and the disk"
_LOCKED_HINT = "another process holds it; wait for it to finish and run again"
#: what SQLite says when it may not write a journal's file or create its -wal and -shm
_CANNOT_WRITE = ("unable to open database file", "readonly database")
_UNWRITABLE_HINT = (
    "SQLite writes the journal and its -wal and -shm files beside it: remount that "
    "filesystem read-write, give this user write permission there, or set paths.journal "
    "to a folder it may write; `status`, `history` and `--dry-run` only read the journal "
    "and work as it is"
)
#: what psycopg says of a connection cut under it (a statement of a pipeline, such as
#: an ``executemany``, finds it broken as "busy": no lock of anyone's)
_CONNECTION_CUT = ("server closed the connection", "sending query failed", "consuming input")
#: what a server database's driver says when a connection cannot be made or was cut
_CONNECTION_LOST = ("connection failed", "terminating connection")
_LOST_HINT = (
    "check that the database server runs and is reachable from here (a run waits "
    f"{PATIENCE_SECONDS:.0f} s for one restarted under it), then run again: nothing is "
    "lost, the files fetched so far are on disk and the next run takes them over"
)
_FULL_HINT = (
    "free some space on the disk that holds it (or its database's); nothing was lost: "
    "what this run had not journaled yet is found again by the next run"
)
_DISK_FULL_HINT = (
    "free some space on it, then run again; nothing was lost: the files fetched so far are "
    "on disk and the next run takes them over; `status`, `history` and `--dry-run` read "
    "the journal meanwhile"
)
#: what SQLite says when its disk refuses it room: ENOSPC on a write (SQLITE_FULL), or a
#: ``-shm`` it could make but not give room (SQLITE_IOERR_SHMSIZE)
_NO_ROOM = ("database or disk is full", "disk i/o error")
#: what SQLite says when a share fails its WAL's shared memory (a FUSE daemon that cannot
#: map the -shm file), its locks, or the file itself (written by two hosts at once)
_SHARE_TROUBLE = ("disk i/o error", "locking protocol")
_CORRUPT = ("not a database", "malformed", "corrupt")


class Database:
    """One journal database: its engine, short transactions, and where its run lock lives."""

    def __init__(self, engine: Engine, url: URL, lock_dir: Path | None = None) -> None:
        """``lock_dir`` holds a server database's run lock (None: ``folders.lock_folder()``,
        asked only then)."""
        self._engine = engine
        self._url = url
        self._lock_dir = lock_dir
        self._batch = threading.local()  # the connection of this thread's open batch
        self._bound: dict[int, tuple[Executable, _BoundWrite | None]] = {}
        database = url.database or ""
        is_file = url.get_backend_name() == "sqlite" and is_file_database(database)
        self._sqlite_file = Path(database) if is_file else None
        self._pinned: PinnedFile | None = None  # a SQLite journal's file (``pin_file``)
        #: a server's connections are waited for through a restart; SQLite's are not
        self._server = url.get_backend_name() != "sqlite"
        self._connecting = Reconnecting(engine, patience=PATIENCE_SECONDS if self._server else 0.0)

    def pin_file(self) -> None:
        """Remember which file a SQLite journal is: every transaction after checks it is
        still there (``connecting.PinnedFile``), and SQLite opens it from then on without
        ever making it (``open_only_as_it_is``)."""
        if self._sqlite_file is not None:
            with suppress(OSError):  # not there to pin: SQLite says what is wrong at first use
                self._pinned = PinnedFile(self._sqlite_file, self.url)
                open_only_as_it_is(self._engine, self._sqlite_file)

    def _connect(self) -> Connection:
        """Return a connection to the journal, once a pinned file is found still in place."""
        return self._checked(self._connecting)

    def _checked(self, connecting: Reconnecting) -> Connection:
        """Given how to connect, return a connection once a pinned file is found still in
        place; a connection refused because it went meanwhile is said so."""
        if self._pinned is None:
            return connecting.connect()
        self._pinned.check()
        try:
            return connecting.connect()
        except OperationalError:
            self._pinned.check()  # moved away since the look: that is what to tell
            raise

    def keep_file_whole(self) -> None:
        """A SQLite journal: copy what its ``-wal`` holds into its file, as far as no reader
        holds it back (a passive checkpoint: it waits for nobody). A process that keeps its
        connections open (``serve``, for weeks) is otherwise the only keeper of its runs'
        rows until the ``-wal`` reaches 1,000 pages: a backup of the file alone, or the file
        moved away (which a run it stops allows), holds none of them. Called where a run
        starts and ends; a checkpoint that fails (a full disk) leaves the ``-wal`` whole,
        so it is only logged."""
        if self._sqlite_file is None:
            return
        with self._translated(), self._connect() as conn:
            # on the driver's connection: SQLAlchemy's would begin a transaction, and a
            # checkpoint inside one that has read is refused ("table is locked")
            raw = conn.connection.dbapi_connection
            try:
                if raw is not None:
                    raw.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as error:
                log.debug("the journal's checkpoint failed: %s", error)

    def close(self) -> None:
        self._engine.dispose()

    @property
    def url(self) -> str:
        """The URL with any password hidden, fit for logs and messages."""
        return self._url.render_as_string(hide_password=True)

    @property
    def on_server(self) -> bool:
        """Whether a database server holds the journal (not a SQLite file)."""
        return self._server

    @property
    def lock_path(self) -> Path:
        """Where the run lock lives: beside a SQLite file, else a hashed name in the lock dir."""
        database = self._url.database or ""
        if self._url.get_backend_name() == "sqlite" and is_file_database(database):
            return lock_beside(Path(database))
        # Hash the URL as shown (password masked): a changed password keeps the same lock.
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        folder = self._lock_dir if self._lock_dir is not None else lock_folder()
        return folder / f"putio-mirror-{digest}.lock"

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Fold every read and write this thread makes inside into one write transaction.

        Each write is otherwise its own transaction: a small file's start (claim, check,
        action row) and end (action row, release) were six commits and six waits for
        SQLite's write lock among eight download threads. Keep a batch short: it holds
        that lock. A batch inside a batch is part of it."""
        if getattr(self._batch, "conn", None) is not None:
            yield
            return
        with self.write() as conn:
            self._batch.conn = conn
            self._batch.deferred = None
            try:
                yield
            finally:
                self._batch.conn = None

    @contextmanager
    def deferring_batch(self) -> Iterator[None]:
        """A batch in which ``write_later``'s statements wait for its end, then go as one
        ``executemany`` per statement, in the order each was first deferred (a group of
        small files' ends: three statements, not three a file). Reads in it do not see
        them: only writes nobody in the batch reads back may be deferred."""
        if getattr(self._batch, "conn", None) is not None:
            yield
            return
        with self.write() as conn:
            self._batch.conn = conn
            deferred: dict[int, tuple[Executable, list[Mapping[str, Any]]]] = {}
            self._batch.deferred = deferred
            try:
                yield
                for statement, rows in deferred.values():
                    self._send(conn, statement, rows)
            finally:
                self._batch.conn = self._batch.deferred = None

    def write_later(self, statement: Executable, values: Mapping[str, Any]) -> None:
        """Given a write, run it now in its own transaction (or this thread's batch), or
        at the end of this thread's deferring batch."""
        deferred = getattr(self._batch, "deferred", None)
        if deferred is None:
            with self.write() as conn:
                conn.execute(statement, values)
            return
        deferred.setdefault(id(statement), (statement, []))[1].append(values)

    def _send(self, conn: Connection, statement: Executable, rows: list[Mapping[str, Any]]) -> None:
        """Given a deferred write and its rows, send them as one ``executemany``, bound by
        hand when the statement allows it (``_BoundWrite``)."""
        key = id(statement)
        if (known := self._bound.get(key)) is None:
            known = self._bound[key] = (statement, _BoundWrite.of(statement, conn.dialect))
        bound = known[1]
        if bound is None:
            conn.execute(statement, rows)
        else:
            conn.exec_driver_sql(bound.sql, bound.parameters(rows))

    @property
    def dialect_name(self) -> str:
        return self._engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """Yield a connection in a write transaction, committed on leaving (or this thread's
        batch's, committed when the batch ends)."""
        held: Connection | None = getattr(self._batch, "conn", None)
        if held is not None:
            yield held
            return
        with self._translated(), self._connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn

    @contextmanager
    def last_word(self) -> Iterator[Connection]:
        """Yield a connection in a write transaction, committed on leaving, for a run the
        journal stopped to journal its end once more on its way out: on a fresh connection
        (the pool's, which the trouble may have left broken, are thrown away), a server
        waited for ``LAST_WORD_SECONDS`` at most (not the run's patience, which it just
        spent), a statement on it cut after as long. Outside any batch of this thread's
        (the one the trouble broke). Raise JournalError as ``write`` does."""
        self._engine.dispose()
        patience = LAST_WORD_SECONDS if self._server else 0.0
        connecting = Reconnecting(self._engine, patience=patience, reached=True)
        with self._translated(), self._checked(connecting) as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                if conn.dialect.name == "postgresql":  # a lock the cut left must not hold it
                    timeout = int(LAST_WORD_SECONDS * 1000)
                    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {timeout}")
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Yield a connection in a read transaction (this thread's batch's, if one is open)."""
        held: Connection | None = getattr(self._batch, "conn", None)
        if held is not None:
            yield held
            return
        with self._translated(), self._connect() as conn, conn.begin():
            yield conn

    def first_column_or_none(self, sql: str) -> list[object] | None:
        """Given a query, return its rows' first column; None if the database refused it.

        For asking a table that may not exist yet (SQLite: OperationalError; PostgreSQL:
        ProgrammingError, which ends the transaction, so it is asked in one of its own).
        Failing to connect still raises JournalError.
        """
        with self._translated(), self._connect() as conn:
            try:
                with conn.begin():
                    return [row[0] for row in conn.execute(text(sql))]
            except (OperationalError, ProgrammingError):
                return None

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as error:
            raise translate_error(error, self.url, self._sqlite_file) from None


_REQUIRED = object()  # a parameter every row must give (a missing one raises KeyError)


class _BoundWrite:
    """A write compiled once for a dialect, its rows bound by hand: SQLAlchemy binds each
    row of an ``executemany`` anew (``construct_params``, a processor call per value, its
    events), which cost more than the statements themselves for a group of small files'
    ends (issue 14). The values are the ones SQLAlchemy would send: each parameter's own
    processor for the dialect (``UtcDateTime`` included), and a literal's value."""

    __slots__ = ("_fields", "_names", "sql")

    def __init__(self, compiled: SQLCompiler, dialect: Dialect) -> None:
        binds = {name: bind for bind, name in compiled.bind_names.items()}
        positions = compiled.positiontup if compiled.positional else None
        self.sql = compiled.string
        #: the parameters' names (a named paramstyle), None: positional
        self._names = None if positions is not None else list(binds)
        fields: list[tuple[str, Any, Callable[[Any], Any] | None]] = []
        for name in positions if positions is not None else binds:
            bind = binds[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            literal = _REQUIRED if bind.required else bind.effective_value
            fields.append((bind.key, literal, processor))
        self._fields = fields

    @classmethod
    def of(cls, statement: Executable, dialect: Dialect) -> _BoundWrite | None:
        """Given a statement, return it bound by hand; None if it is not a plain one (a
        parameter expanded to a list, or a name the dialect escapes)."""
        compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        if not isinstance(compiled, SQLCompiler) or compiled.escaped_bind_names:
            return None
        if any(bind.expanding for bind in compiled.binds.values()):
            return None
        return cls(compiled, dialect)

    def parameters(
        self, rows: list[Mapping[str, Any]]
    ) -> list[tuple[Any, ...]] | list[dict[str, Any]]:
        """Given rows (by parameter key), return them as the driver takes them."""
        fields = self._fields
        sent: list[tuple[Any, ...]] = []
        for row in rows:
            values = []
            for key, literal, processor in fields:
                value = row[key] if literal is _REQUIRED else row.get(key, literal)
                values.append(value if processor is None else processor(value))
            sent.append(tuple(values))
        if self._names is None:
            return sent
        return [dict(zip(self._names, values, strict=True)) for values in sent]


def parse_url(url: str) -> URL:
    """Given a journal URL, return it parsed; raise JournalError if it is not one we use."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise JournalError(
            "the journal URL is not a valid SQLAlchemy URL",
            "use a path, sqlite:///path/to/journal.sqlite3 or postgresql+psycopg://user@host/db",
        ) from None
    if parsed.get_backend_name() not in _SUPPORTED:
        raise JournalError(
            f"the journal database {parsed.get_backend_name()!r} is not supported",
            "use SQLite (a path or sqlite:///...) or PostgreSQL (postgresql+psycopg://...)",
        )
    return parsed


def create_journal_engine(
    url: URL, shown: str, busy_timeout: float, *, read_only: bool = False
) -> Engine:
    """Given a parsed URL, return an engine; for SQLite create the folder and set pragmas.

    ``read_only``: a SQLite file is only read, through connections that cannot write it
    (``where.connect_read_only``), so that a journal on a share mounted read-only reads."""
    is_sqlite = url.get_backend_name() == "sqlite"
    if is_sqlite and read_only and is_file_database(url.database or ""):
        database = Path(url.database or "")
        engine = create_engine(url, creator=lambda: connect_read_only(database, busy_timeout))
        tune_sqlite(engine, busy_timeout_ms=int(busy_timeout * 1000), wal=False)
        return engine
    if is_sqlite and is_file_database(url.database or ""):
        if (point := unmounted_mount_point(Path(url.database or "").absolute())) is not None:
            raise JournalError(
                f"the journal {shown} is on {point}, which /etc/fstab names but is not "
                "mounted: a journal made there now would be on the disk below, hidden once "
                "it is mounted",
                f"mount it (mount {point}), or check paths.journal",
            )
        try:
            Path(url.database or "").absolute().parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise JournalError(
                f"cannot create the folder of the journal {shown}: {error.strerror}",
                "check paths.journal and the permissions of its folder",
            ) from None
    try:
        engine = create_engine(url, pool_pre_ping=not is_sqlite, connect_args=_connect_args(url))
    except (ArgumentError, NoSuchModuleError, ImportError) as error:
        raise JournalError(
            f"cannot use the journal {shown}: {error}",
            "install the database driver (pip install 'putio-mirror[postgres]') or fix the URL",
        ) from None
    if is_sqlite:
        tune_sqlite(engine, busy_timeout_ms=int(busy_timeout * 1000))
    return engine


#: how long a PostgreSQL server may take to accept a connection: without it, libpq waits
#: for ever on a server that takes the connection and says nothing (a paused VM, another
#: program on that port), and so did doctor and every run
CONNECT_TIMEOUT_SECONDS = 10


def _connect_args(url: URL) -> dict[str, object]:
    """Given a parsed URL, return the driver's connection arguments: a PostgreSQL one
    gets a connect timeout, unless its URL names one (``?connect_timeout=30``)."""
    if url.get_backend_name() != "postgresql" or "connect_timeout" in url.query:
        return {}
    return {"connect_timeout": CONNECT_TIMEOUT_SECONDS}


def is_missing_file(url: URL) -> bool:
    """Given a parsed URL, say whether it names a SQLite file that does not exist yet."""
    database = url.database or ""
    is_file = url.get_backend_name() == "sqlite" and is_file_database(database)
    return is_file and not Path(database).exists()


def is_file_database(database: str) -> bool:
    """Given a SQLite URL's database part, say whether it names a file on disk."""
    return bool(database) and database != ":memory:" and not database.startswith("file:")


def translate_error(
    error: SQLAlchemyError, shown_url: str, database: Path | None = None
) -> JournalError:
    """Given a SQLAlchemy error (and the journal's SQLite file, if it is one), return a
    JournalError that says what to do about it."""
    original = str(error.orig) if isinstance(error, DBAPIError) else type(error).__name__
    lowered = original.lower()
    if (why := _why_not_written(database, lowered)) is not None:
        return JournalError(f"the journal {shown_url} cannot be written: {why}", _UNWRITABLE_HINT)
    if (full := _disk_full(database, lowered)) is not None:
        return full
    if (shared := _on_share(database, lowered, shown_url, original)) is not None:
        return shared
    if isinstance(error, OperationalError) and (lost := _connection_trouble(error, lowered)):
        first_line = original.splitlines()[0] if original else type(error).__name__
        return JournalError(f"the journal {shown_url} {lost} ({first_line})", _LOST_HINT)
    if any(words in lowered for words in _CORRUPT):
        return JournalError(f"the journal {shown_url} is corrupt ({original})", _CORRUPT_HINT)
    if "locked" in lowered or "busy" in lowered:
        return JournalError(f"the journal {shown_url} is locked ({original})", _LOCKED_HINT)
    if "disk is full" in lowered or "no space left" in lowered:
        return JournalError(f"the journal {shown_url} has no room ({original})", _FULL_HINT)
    return JournalError(
        f"the journal {shown_url} failed: {original}",
        "check that the database is reachable and writable; see the log for details",
    )


class DatabaseFace:
    """What the journal's faces (``Journal``, ``JournalReader``) share: one database,
    closed on leaving a ``with``, shown by its URL with any password hidden."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """The journal's URL with any password hidden, fit for logs and messages."""
        return self._db.url

    @property
    def lock_path(self) -> Path:
        """Where the run lock of this journal lives: beside a SQLite file, else a hashed
        name in the lock folder (nothing is made: a reader only looks beside it)."""
        return self._db.lock_path

    @property
    def on_server(self) -> bool:
        """Whether a database server holds the journal (PostgreSQL): hosts may share it."""
        return self._db.on_server


def _why_not_written(database: Path | None, said: str) -> str | None:
    """Given a SQLite journal's file and what SQLite said (lowercase), say why this
    process cannot write it or its ``-wal`` and ``-shm`` files beside it; None if SQLite
    said something else, or it could, as far as can be seen."""
    if database is None or not any(words in said for words in _CANNOT_WRITE):
        return None
    folder = database.absolute().parent
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"its folder {why_unwritable(folder)}"
    if database.exists() and not os.access(database, os.W_OK):
        return why_unwritable(database)
    return None


def _disk_full(database: Path | None, said: str) -> JournalError | None:
    """Given a SQLite journal's file and what SQLite said (lowercase), return the error
    to tell if its disk is full; None if SQLite said something else, or the disk has room
    (a "disk I/O error" is then the disk's own trouble)."""
    if database is None or not any(words in said for words in _NO_ROOM):
        return None
    free = free_bytes_if_full(database)
    if free is None:
        return None
    return JournalError(
        f"the disk holding the journal ({database}) is full ({free:,} bytes free)",
        _DISK_FULL_HINT,
    )


def _on_share(
    database: Path | None, said: str, shown_url: str, original: str
) -> JournalError | None:
    """Given a SQLite journal's file and what SQLite said (lowercase, and as said),
    return the error to tell if it is trouble a share gives SQLite and a network share or
    a FUSE filesystem holds the journal; None otherwise."""
    corrupt = any(words in said for words in _CORRUPT)
    if database is None or not (corrupt or any(words in said for words in _SHARE_TROUBLE)):
        return None
    mount = shared_filesystem(database.absolute().parent)
    if mount is None:
        return None
    keep_local = shared_journal_hint(str(default_journal()))
    if corrupt:
        return JournalError(
            f"the journal {shown_url} is corrupt ({original}); it is on {mount.describe()}, "
            "where SQLite's locks and WAL cannot keep it whole",
            f"{_CORRUPT_HINT}; and {keep_local}; {SEVERAL_HOSTS}",
        )
    return JournalError(
        f"the journal {shown_url} failed: {original}; it is on {mount.describe()}, whose "
        "shared memory (for the WAL's -shm file) or locks SQLite cannot use",
        f"if that filesystem is up, {keep_local}; {SEVERAL_HOSTS}",
    )


def _connection_trouble(error: OperationalError, said: str) -> str | None:
    """Given a database error and what it said (lowercase), say what happened if the
    connection to a server was cut or could not be made (the server restarted, is down,
    or cannot be reached); None if it is other trouble."""
    if error.connection_invalidated or any(words in said for words in _CONNECTION_CUT):
        return "lost its connection to the database"
    if any(words in said for words in _CONNECTION_LOST):
        return "cannot reach its database"
    return None
