"""The journal: what this tool did and how far each download got, in a SQL database.

The journal's only entry point: with ``journal_schema.py`` (its tables and the SQL that
differs between databases) and ``journal_engine.py`` (reaching the database), both private
to it, the only module that imports SQLAlchemy. SQLite is
the default (WAL mode, so a ``status`` command can read while a run writes); PostgreSQL works
through the same portable types. Every write is its own short transaction, committed at once,
so a crash loses at most the action in flight; the next run marks such actions
``interrupted``. SQLAlchemy's exceptions never leave this module: they become
``JournalError`` with a hint. Hosts that share one journal share the work through claims:
leases on action keys that expire if their owner dies.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    CursorResult,
    Engine,
    Select,
    Table,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from putio_mirror.errors import JournalError
from putio_mirror.journal_engine import (
    create_journal_engine,
    is_file_database,
    lock_dir,
    parse_url,
    translate_error,
)
from putio_mirror.journal_schema import (
    SCHEMA_VERSION,
    WRITE_OPTION,
    actions_table,
    claim_statement,
    claims_table,
    downloads_table,
    prepare,
    runs_table,
    submissions_table,
    upsert,
)
from putio_mirror.state import DownloadRecord, JournalFacts, Submission

__all__ = [
    "ACTION_STATUSES",
    "SCHEMA_VERSION",
    "ActionRecord",
    "Journal",
    "RunRecord",
    "downloads_table",  # the benchmarks fill a journal with it
]

ACTION_STATUSES = frozenset({"started", "done", "failed", "skipped", "paused", "interrupted"})


@dataclass(frozen=True)
class RunRecord:
    id: int
    command: str
    started_at: datetime
    finished_at: datetime | None
    exit_code: int | None
    summary: str | None
    dry_run: bool


@dataclass(frozen=True)
class ActionRecord:
    id: int
    run_id: int
    kind: str
    key: str
    target: str
    status: str
    attempts: int
    error: str | None
    started_at: datetime
    finished_at: datetime | None
    detail: str | None = None


class Journal:
    """A handle on one journal database; open it with ``Journal.open(url)``."""

    def __init__(self, engine: Engine, url: URL, lock_dir: Path) -> None:
        self._engine = engine
        self._url = url
        self._lock_dir = lock_dir

    @classmethod
    def open(
        cls, url: str, *, env: Mapping[str, str] | None = None, busy_timeout: float = 5.0
    ) -> Journal:
        """Given an SQLAlchemy URL, return the open journal, creating its schema if new.

        Raise JournalError if the URL is unusable, the database is corrupt or
        locked, or it was written by a newer putio-mirror. ``env`` (default
        ``os.environ``) locates the lock of a server database; ``busy_timeout``
        is how many seconds a SQLite writer waits for another.
        """
        parsed = parse_url(url)
        shown = parsed.render_as_string(hide_password=True)
        engine = create_journal_engine(parsed, shown, busy_timeout)
        journal = cls(engine, parsed, lock_dir(env if env is not None else os.environ))
        try:
            journal._prepare_schema()
        except BaseException:
            journal.close()
            raise
        return journal

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """The journal's URL with any password hidden, fit for logs and messages."""
        return self._url.render_as_string(hide_password=True)

    @property
    def lock_path(self) -> Path:
        """Where the run lock of this journal lives: beside a SQLite file, else a hashed name."""
        database = self._url.database or ""
        if self._url.get_backend_name() == "sqlite" and is_file_database(database):
            return Path(database).absolute().with_name(Path(database).name + ".lock")
        # Hash the URL as shown (password masked): a changed password keeps the same lock.
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        return self._lock_dir / f"putio-mirror-{digest}.lock"

    # -- runs and actions -------------------------------------------------

    def start_run(self, command: str, now: datetime, dry_run: bool = False) -> int:
        """Given a command name and the time, record a new run and return its id."""
        row = {"command": command, "started_at": _aware(now), "dry_run": dry_run}
        with self._write() as conn:
            return _new_id(
                conn.execute(insert(runs_table).values(host=socket.gethostname(), **row))
            )

    def finish_run(self, run_id: int, now: datetime, exit_code: int, summary: str) -> None:
        values = {"finished_at": _aware(now), "exit_code": exit_code, "summary": summary}
        with self._write() as conn:
            conn.execute(update(runs_table).where(runs_table.c.id == run_id).values(**values))

    def abandon_stale_actions(self, now: datetime) -> int:
        """Given the time, mark actions a crashed run left ``started`` as ``interrupted``.

        Call it only while holding the run lock: then no live run owns them.
        Return how many were marked.
        """
        statement = (
            update(actions_table)
            .where(actions_table.c.status == "started")
            .values(
                status="interrupted",
                finished_at=_aware(now),
                error="the run stopped before this action finished",
            )
        )
        with self._write() as conn:
            return conn.execute(statement).rowcount

    def action_started(self, run_id: int, kind: str, key: str, target: str, now: datetime) -> int:
        """Given an action about to run, record it and return its id.

        Its ``attempts`` is one more than the number of earlier actions with the same key.
        """
        action = actions_table.c
        earlier = select(func.count()).select_from(actions_table).where(action.key == key)
        with self._write() as conn:
            attempts = 1 + (conn.execute(earlier).scalar_one())
            values = {"run_id": run_id, "kind": kind, "key": key, "target": target}
            statement = insert(actions_table).values(
                status="started", attempts=attempts, started_at=_aware(now), **values
            )
            return _new_id(conn.execute(statement))

    def action_finished(
        self,
        action_id: int,
        status: str,
        now: datetime,
        error: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Given an action id and its outcome, record how it ended.

        Raise ValueError if ``status`` is not one an action can end in.
        """
        if status not in ACTION_STATUSES - {"started"}:
            raise ValueError(f"{status!r} is not a final action status")
        values = {"status": status, "finished_at": _aware(now), "error": error, "detail": detail}
        with self._write() as conn:
            conn.execute(
                update(actions_table).where(actions_table.c.id == action_id).values(**values)
            )

    def recent_runs(self, limit: int = 10) -> tuple[RunRecord, ...]:
        """Return the newest ``limit`` runs, newest first."""
        statement = _select_record(RunRecord, runs_table).order_by(runs_table.c.id.desc())
        with self._read() as conn:
            return tuple(RunRecord(*row) for row in conn.execute(statement.limit(limit)))

    def actions_of(self, run_id: int) -> tuple[ActionRecord, ...]:
        """Given a run id, return its actions in the order they started."""
        action = actions_table.c
        statement = _select_record(ActionRecord, actions_table).where(action.run_id == run_id)
        with self._read() as conn:
            rows = conn.execute(statement.order_by(action.id))
            return tuple(ActionRecord(*row) for row in rows)

    # -- submissions and downloads ----------------------------------------

    def record_submission(
        self, info_hash: str, transfer_id: int | None, name: str, now: datetime
    ) -> None:
        """Remember that ``info_hash`` was submitted; again is harmless, a known id is kept."""
        row: dict[str, Any] = {"info_hash": info_hash, "transfer_id": transfer_id, "name": name}
        known_id = func.coalesce(literal(transfer_id, BigInteger), submissions_table.c.transfer_id)
        with self._write() as conn:
            upsert(
                conn,
                submissions_table,
                row | {"submitted_at": _aware(now)},
                row | {"transfer_id": known_id},
            )

    def record_progress(
        self,
        file_id: int,
        relative_path: str,
        size: int,
        crc32: str | None,
        bytes_done: int,
        now: datetime,
    ) -> None:
        """Remember how many bytes of a file are safely in its staging file."""
        row = _download_row(file_id, relative_path, size, crc32, bytes_done, now)
        with self._write() as conn:
            upsert(conn, downloads_table, row, row | {"verified_at": None})

    def mark_verified(
        self, file_id: int, relative_path: str, size: int, crc32: str | None, now: datetime
    ) -> None:
        """Remember that a file is in place and matched put.io's size and CRC32."""
        row = _download_row(file_id, relative_path, size, crc32, size, now)
        row |= {"verified_at": row["updated_at"], "failures": 0}
        with self._write() as conn:
            upsert(conn, downloads_table, row, row)

    def record_failure(self, file_id: int) -> int:
        """Given a file id, count one more failed download of it and return the count."""
        row = {"file_id": file_id, "failures": 1}
        download = downloads_table.c
        with self._write() as conn:
            upsert(conn, downloads_table, row, {"failures": download.failures + 1})
            count = select(download.failures).where(download.file_id == file_id)
            return int(conn.execute(count).scalar_one())

    def reset_download(self, file_id: int) -> None:
        """Given a file id, forget its progress and verification (its failure count stays)."""
        statement = update(downloads_table).where(downloads_table.c.file_id == file_id)
        with self._write() as conn:
            conn.execute(statement.values(bytes_done=0, verified_at=None))

    def is_verified(self, file_id: int) -> bool:
        """Given a file id, say whether any host has verified it (checked after a claim)."""
        download = downloads_table.c
        query = select(download.verified_at).where(download.file_id == file_id)
        with self._read() as conn:
            return conn.execute(query).scalar_one_or_none() is not None

    def facts(self) -> JournalFacts:
        """Return what the journal knows, keyed the way the reconciler pairs things."""
        submission = submissions_table.c
        submissions_query = select(
            submission.info_hash, submission.transfer_id, submission.name, submission.submitted_at
        )
        download = downloads_table.c
        downloads_query = select(
            download.file_id,
            download.relative_path,
            download.size,
            download.crc32,
            download.bytes_done,
            download.verified_at,
        ).where(download.relative_path.is_not(None))
        with self._read() as conn:
            submissions = {row[0]: Submission(*row) for row in conn.execute(submissions_query)}
            # The query skips failure-only rows, whose path and size are NULL.
            downloads = {
                row.file_id: DownloadRecord(
                    row.file_id, row.relative_path or "", row.size or 0, *row[3:]
                )
                for row in conn.execute(downloads_query)
            }
        own = frozenset(s.transfer_id for s in submissions.values() if s.transfer_id is not None)
        return JournalFacts(
            submissions=MappingProxyType(submissions),
            downloads=MappingProxyType(downloads),
            own_transfer_ids=own,
        )

    # -- claims: hosts sharing one journal share the work ------------------

    def claim(self, key: str, owner: str, now: datetime, lease: timedelta) -> bool:
        """Given an action key, who asks and for how long, say whether ``owner`` now holds it.

        True if the key was free, its lease had expired, or ``owner`` held it already (the
        lease then runs until ``now + lease``); False while another owner's lease runs.
        Atomic across processes and hosts. Raise ValueError if ``lease`` is not positive.
        """
        expires_at = _aware(now) + _positive(lease)
        statement = claim_statement(self._engine.dialect.name, key, owner, now, expires_at)
        with self._write() as conn:
            # See claim_statement for why one statement is enough, and atomic.
            return conn.execute(statement).first() is not None

    def renew(self, key: str, owner: str, now: datetime, lease: timedelta) -> bool:
        """Given a key ``owner`` claimed, extend its lease to ``now + lease``; say if it could.

        False if the claim was lost: released, or expired and taken by another owner. A
        lease that expired but that nobody took is still the owner's, and is extended.
        Raise ValueError if ``lease`` is not positive.
        """
        expires_at = _aware(now) + _positive(lease)
        claim = claims_table.c
        statement = (
            update(claims_table)
            .where(claim.key == key, claim.owner == owner)
            .values(expires_at=expires_at)
        )
        with self._write() as conn:
            return conn.execute(statement).rowcount == 1

    def release(self, key: str, owner: str) -> None:
        """Given a key, free it if ``owner`` holds it; else (another's, or free) do nothing."""
        claim = claims_table.c
        statement = delete(claims_table).where(claim.key == key, claim.owner == owner)
        with self._write() as conn:
            conn.execute(statement)

    def release_all(self, owner: str) -> int:
        """Given an owner, free every key it holds (at the end of its run); return how many."""
        with self._write() as conn:
            statement = delete(claims_table).where(claims_table.c.owner == owner)
            return conn.execute(statement).rowcount

    def claims(self) -> dict[str, tuple[str, datetime]]:
        """Return every claim as key -> (owner, expires_at), expired ones included."""
        claim = claims_table.c
        statement = select(claim.key, claim.owner, claim.expires_at)
        with self._read() as conn:
            return {key: (owner, expires_at) for key, owner, expires_at in conn.execute(statement)}

    # -- plumbing ---------------------------------------------------------

    def _prepare_schema(self) -> None:
        """Create missing tables, upgrade an older schema in place; raise JournalError if newer."""
        with self._write() as conn:
            version = prepare(conn)
        if version is not None and version > SCHEMA_VERSION:
            raise JournalError(
                f"the journal {self.url} was written by a newer putio-mirror "
                f"(schema {version}; this one knows {SCHEMA_VERSION})",
                "upgrade putio-mirror, or point paths.journal at another database",
            )

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """Yield a connection in a write transaction, committed on leaving."""
        with self._translated(), self._engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._translated(), self._engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as error:
            raise translate_error(error, self.url) from None


def _new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None  # an INSERT of one row always has it
    return int(key[0])


def _select_record(record: type[RunRecord | ActionRecord], table: Table) -> Select[Any]:
    """Given a record class and its table, select the columns of its fields in field order.

    So a row of the result builds the record positionally: ``record(*row)``.
    """
    return select(*(table.c[item.name] for item in fields(record)))


def _download_row(
    file_id: int, relative_path: str, size: int, crc32: str | None, done: int, now: datetime
) -> dict[str, Any]:
    return {
        "file_id": file_id,
        "relative_path": relative_path,
        "size": size,
        "crc32": crc32,
        "bytes_done": done,
        "updated_at": _aware(now),
    }


def _aware(moment: datetime) -> datetime:
    """Given a datetime, return it; raise ValueError if it is naive (a bug in the caller)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"the journal needs aware datetimes, got naive {moment.isoformat()}")
    return moment


def _positive(lease: timedelta) -> timedelta:
    """Given a lease, return it; raise ValueError if it is zero or negative (a caller's bug)."""
    if lease <= timedelta(0):
        raise ValueError(f"a lease must be positive, got {lease}")
    return lease
