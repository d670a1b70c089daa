"""The journal: what this tool did and how far each download got, in a SQL database.

The journal's only entry point: with its private helpers, ``schema.py`` (its tables and the
SQL that differs between databases), ``engine.py`` (reaching the database), ``runs.py``,
``files.py``, ``claims.py`` and ``migrations/`` (Alembic revisions, imported only when a journal
is not at their head), the only modules that import SQLAlchemy and Alembic. SQLite is the
default (WAL mode: ``status`` reads while a run writes); PostgreSQL works through the same
portable types. Writes are short transactions, so a crash loses at most the actions in flight;
a later run marks such actions ``interrupted`` once no live claim covers them. SQLAlchemy's
exceptions never leave this module: they become ``JournalError`` with a hint. Hosts sharing
a journal share the work through claims: leases on action keys that expire if their owner dies.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Engine,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.engine import URL

from putio_mirror.core.errors import JournalError
from putio_mirror.core.state import FileIdentity, JournalFacts, Submission
from putio_mirror.journal import (
    claims as journal_claims,
)
from putio_mirror.journal import (
    desires as journal_desires,
)
from putio_mirror.journal import (
    files as journal_files,
)
from putio_mirror.journal import (
    runs as journal_runs,
)
from putio_mirror.journal.connecting import JournalGoneError
from putio_mirror.journal.engine import (
    Database,
    create_journal_engine,
    is_missing_file,
    parse_url,
)
from putio_mirror.journal.grouped import GroupCommit
from putio_mirror.journal.migrations import HEAD
from putio_mirror.journal.migrations.fresh import create_if_new
from putio_mirror.journal.rows import facts_of
from putio_mirror.journal.runs import DIED, ActionRecord, LastAction, RunRecord
from putio_mirror.journal.schema import (
    SCHEMA_VERSION,
    database_now,
    downloads_table,
    runs_table,
    submissions_table,
    upsert,
)
from putio_mirror.journal.starting import StartingFace
from putio_mirror.journal.starting import aware as _aware
from putio_mirror.journal.starting import positive as _positive

__all__ = [
    "ACTION_STATUSES",
    "DIED",
    "SCHEMA_VERSION",
    "ActionRecord",
    "Journal",
    "JournalGoneError",
    "LastAction",
    "RunRecord",
    "downloads_table",  # the benchmarks fill a journal with it
]

T = TypeVar("T")

# Alembic's table: one row, the journal's revision (none before Alembic, nor in a new one).
_STORED_REVISION = "SELECT version_num FROM alembic_version"

ACTION_STATUSES = frozenset({"started", "done", "failed", "skipped", "paused", "interrupted"})


class Journal(StartingFace):
    """A handle on one journal database; open it with ``Journal.open(url)``."""

    def __init__(self, engine: Engine, url: URL, lock_dir: Path | None = None) -> None:
        super().__init__(Database(engine, url, lock_dir))
        self._desires = journal_desires.DesireBook(self._db)
        self._group = GroupCommit(self._db.deferring_batch)

    @classmethod
    def open(cls, url: str, *, busy_timeout: float = 5.0) -> Journal:
        """Given an SQLAlchemy URL, return the open journal, creating its schema if new.

        Raise JournalError if the URL is unusable, the database is corrupt or
        locked, or it was written by a newer putio-mirror. A server database's
        run lock is in ``folders.lock_folder()``; ``busy_timeout`` is how many
        seconds a SQLite writer waits for another.
        """
        parsed = parse_url(url)
        shown = parsed.render_as_string(hide_password=True)
        engine = create_journal_engine(parsed, shown, busy_timeout)
        journal = cls(engine, parsed)
        try:
            journal._prepare_schema()
            journal._db.pin_file()
            journal._db.keep_file_whole()  # a new journal's schema, an older one's upgrade
        except BaseException:
            journal.close()
            raise
        return journal

    @classmethod
    def open_existing(cls, url: str) -> Journal | None:
        """Given a URL, return the open journal, or None if it is a SQLite file not yet made.

        For a dry run and ``history``, which must create nothing (a missing journal knows
        nothing). Raise JournalError as ``open`` does.
        """
        return None if is_missing_file(parse_url(url)) else cls.open(url)

    # -- runs and actions -------------------------------------------------

    def batch(self) -> AbstractContextManager[None]:
        """Fold the calls made inside (by this thread) into one transaction; keep it short."""
        return self._db.batch()

    def together(self, work: Callable[[], T], first: Callable[[], None] | None = None) -> T:
        """Given work that calls this journal, run it in one transaction shared with the
        work other threads hand in meanwhile; return its result once that committed.

        ``first`` (if given) is done before that transaction, once per group for the same
        object. Work may be run twice (alone, after a group it was in failed; see
        ``grouped.py``): any side effect of its own must be safe to repeat."""
        return self._group.run(work, first)

    def start_run(
        self, command: str, now: datetime, dry_run: bool = False, owner: str | None = None
    ) -> int:
        """Given a command name and the time, record a new run and return its id.

        ``owner`` is the claim owner of the run (see ``claim``); its actions carry it.
        """
        row = {"command": command, "started_at": _aware(now), "dry_run": dry_run, "owner": owner}
        with self._db.write() as conn:
            run_id = journal_runs.start_run(conn, row | {"host": socket.gethostname()})
        self._db.keep_file_whole()
        return run_id

    def finish_run(self, run_id: int, now: datetime, exit_code: int, summary: str) -> None:
        values = {"finished_at": _aware(now), "exit_code": exit_code, "summary": summary}
        with self._db.write() as conn:
            conn.execute(update(runs_table).where(runs_table.c.id == run_id).values(**values))
        self._db.keep_file_whole()

    def finish_run_at_last(
        self, run_id: int, now: datetime, exit_code: int, summary: str
    ) -> JournalError | None:
        """Given a run the journal stopped (its connection cut, its server away past the
        patience, its disk full), journal its end once more, on a fresh connection and
        within seconds (``engine.Database.last_word``); return None once journaled, else
        the error that kept it out (never raised: the run's own error is the one to tell).
        """
        values = {"finished_at": _aware(now), "exit_code": exit_code, "summary": summary}
        try:
            with self._db.last_word() as conn:
                conn.execute(update(runs_table).where(runs_table.c.id == run_id).values(**values))
        except JournalError as error:
            return error
        return None

    def finish_run_late(
        self, run_id: int, owner: str, finished_at: datetime, exit_code: int, summary: str
    ) -> bool:
        """Given the end of a run of ``owner`` that its journal could not take when it
        ended, journal it if that run is here and still unfinished; say if it was (a
        journal made anew since knows no such run, nor one ended since)."""
        run = runs_table.c
        values = {"finished_at": _aware(finished_at), "exit_code": exit_code, "summary": summary}
        unfinished = (run.id == run_id, run.owner == owner, run.finished_at.is_(None))
        with self._db.write() as conn:
            done = conn.execute(update(runs_table).where(*unfinished).values(**values))
            return bool(done.rowcount)

    def note_actions(
        self, run_id: int, kind: str, notes: Sequence[tuple[str, str]], now: datetime
    ) -> None:
        """Given a run, a kind and (target, detail) pairs, record each as an action of the
        run that did nothing (``skipped``): what the run noted (``core.attention``)."""
        if not notes:
            return
        with self._db.write() as conn:
            journal_runs.note_actions(conn, run_id, kind, notes, _aware(now))

    def end_dead_runs(self, owner: str) -> int:
        """Given the claim owner of runs proven over (the run lock's previous holder), end
        its runs left unfinished (killed, crashed, the power gone) at their last sign of
        life, their exit code unknown, their summary ``journal.runs.DIED``; return how
        many."""
        with self._db.write() as conn:
            return journal_runs.end_dead_runs(conn, owner)

    def abandon_stale_actions(self, now: datetime) -> int:
        """Given the time, mark actions of dead runs, left ``started``, as ``interrupted``.

        Only actions whose owner holds no live claim on their key: another host's running
        actions stay as they are. Release a dead run's claims first to abandon its actions
        at once (else they wait for its leases to run out). Return how many were marked.
        """
        with self._db.write() as conn:
            return journal_claims.abandon_unclaimed(conn, _aware(now))

    def action_started(self, run_id: int, kind: str, key: str, target: str, now: datetime) -> int:
        """Given an action about to run, record it and return its id.

        Its ``attempts`` is one more than the number of earlier actions with the same key;
        its ``owner`` is its run's.
        """
        row = {"run_id": run_id, "kind": kind, "key": key, "target": target}
        with self._db.write() as conn:
            return journal_runs.start_action(conn, row | {"started_at": _aware(now)})

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
        self._db.write_later(*journal_runs.finish_action(action_id, values))

    def recent_runs(self, limit: int = 10) -> tuple[RunRecord, ...]:
        """Return the newest ``limit`` runs, newest first."""
        with self._db.read() as conn:
            return journal_runs.recent_runs(conn, limit)

    def last_actions(self, keys: Sequence[str]) -> dict[str, LastAction]:
        """Given action keys, return the newest action of each that has one."""
        if not keys:
            return {}
        with self._db.read() as conn:
            return journal_runs.last_actions(conn, keys)

    def actions_of(self, run_id: int) -> tuple[ActionRecord, ...]:
        """Given a run id, return its actions in the order they started."""
        with self._db.read() as conn:
            return journal_runs.actions_of(conn, run_id)

    # -- submissions and downloads ----------------------------------------

    def record_submission(
        self, info_hash: str, transfer_id: int | None, name: str, now: datetime
    ) -> None:
        """Remember that ``info_hash`` was submitted; again is harmless, a known id is kept."""
        row: dict[str, Any] = {"info_hash": info_hash, "transfer_id": transfer_id, "name": name}
        known_id = func.coalesce(literal(transfer_id, BigInteger), submissions_table.c.transfer_id)
        with self._db.write() as conn:
            upsert(
                conn,
                submissions_table,
                row | {"submitted_at": _aware(now)},
                row | {"transfer_id": known_id},
            )

    def forget_transfer(self, info_hash: str, transfer_id: int) -> None:
        """Given a submitted info-hash and the transfer the journal knows it as, forget that
        transfer (about to be cancelled for another submission of the torrent), so the
        submission reads as only attempted: the next run records the transfer put.io shows
        of it, or submits it again if put.io shows none. Another transfer known since stays."""
        submission = submissions_table.c
        statement = update(submissions_table).where(
            submission.info_hash == info_hash, submission.transfer_id == transfer_id
        )
        with self._db.write() as conn:
            conn.execute(statement.values(transfer_id=None))

    def record_progress(
        self,
        file_id: int,
        relative_path: str,
        size: int,
        crc32: str | None,
        bytes_done: int,
        now: datetime,
    ) -> None:
        """Remember how many bytes of a file are safely in its staging file.

        A verified file is left as it is: a host that lost its claim must not undo another's
        verification. To fetch a verified file again, ``reset_download`` it first.
        """
        row = journal_files.download_row(file_id, relative_path, size, crc32, bytes_done, now)
        with self._db.write() as conn:
            journal_files.progress(conn, row | {"updated_at": _aware(now)})

    def mark_verified(
        self,
        file_id: int,
        relative_path: str,
        size: int,
        crc32: str | None,
        now: datetime,
        *,
        placed: bool = False,
        identity: FileIdentity | None = None,
    ) -> None:
        """Remember that a file matched put.io's size and CRC32; its failures start over.

        Its failure count goes to 0 and its last error is cleared. It is placed (at
        ``relative_path``; ``identity``: which file is there, None if not known) only if
        ``placed`` says so, in the same transaction: a file that went straight to the
        download folder costs one write, not two; else ``mark_placed`` says when it is
        in the download folder.
        """
        row = journal_files.download_row(file_id, relative_path, size, crc32, size, _aware(now))
        if placed:
            row |= {"placed_at": row["updated_at"], "placed_path": relative_path}
            row |= journal_files.identity_columns(identity)
        self._db.write_later(*journal_files.verified(self._db.dialect_name, row))

    def mark_placed(
        self,
        placements: Mapping[int, str],
        now: datetime,
        identities: Mapping[int, FileIdentity] = MappingProxyType({}),
    ) -> None:
        """Given file id -> relative path in the download folder, remember each is placed
        there; and, by file id, which file it is (``FileIdentity``; an id left out: not
        known).

        One transaction for all (an item's files are placed together); ids the journal does
        not know are ignored.
        """
        with self._db.write() as conn:
            journal_files.placed(conn, placements, _aware(now), identities)

    def placed_identities(self, file_ids: Collection[int]) -> dict[int, FileIdentity]:
        """Given file ids, return which file each placed one was (``FileIdentity``), where
        the journal knows it."""
        with self._db.read() as conn:
            return journal_files.placed_identities(conn, file_ids)

    def forget_placement(self, file_ids: Collection[int]) -> None:
        """Given file ids whose verified bytes are (back) in staging, mark them not placed."""
        if file_ids:
            with self._db.write() as conn:
                journal_files.unplaced(conn, file_ids)

    def record_failure(self, file_id: int, now: datetime, error: str) -> int:
        """Given a file id, when and why it failed, count one more failure; return the count."""
        with self._db.write() as conn:
            return journal_files.failed(conn, file_id, _aware(now), error)

    def judged_stranger(self, file_id: int) -> FileIdentity | None:
        """Given a file id, return which local file at its path was found to hold other
        bytes than put.io's (``judge_stranger``), if one was."""
        with self._db.read() as conn:
            return journal_files.judged_stranger(conn, file_id)

    def judge_stranger(self, file_id: int, identity: FileIdentity) -> None:
        """Given a file id and the local file at its path, of put.io's size, found to hold
        other bytes, keep which file it is: it is not read again while it is the same."""
        with self._db.write() as conn:
            journal_files.judge_stranger(conn, file_id, identity)

    def reset_download(self, file_id: int) -> None:
        """Given a file id, forget its progress, verification and placement (failures stay)."""
        with self._db.write() as conn:
            journal_files.reset(conn, file_id)

    def is_verified(self, file_id: int) -> bool:
        """Given a file id, say whether any host has verified it (checked after a claim)."""
        with self._db.read() as conn:
            return journal_files.is_verified(conn, file_id)

    def transfer_of(self, info_hash: str) -> int | None:
        """Given an info-hash, return the id of the transfer put.io made of it when any host
        submitted it, None if none is known (checked after a claim)."""
        submission = submissions_table.c
        query = select(submission.transfer_id).where(submission.info_hash == info_hash)
        with self._db.read() as conn:
            found: int | None = conn.execute(query).scalar_one_or_none()
        return found

    def facts(self) -> JournalFacts:
        """Return what the journal knows, keyed the way the reconciler pairs things."""
        submission = submissions_table.c
        submissions_query = select(
            submission.info_hash, submission.transfer_id, submission.name, submission.submitted_at
        )
        with self._db.read() as conn:
            submissions = {row[0]: Submission(*row) for row in conn.execute(submissions_query)}
            downloads = journal_files.records(conn)
            desires = journal_desires.listing(conn)
            removed = journal_desires.removed(conn)
        return replace(facts_of(submissions, downloads, desires, removed), shared=self.on_server)

    @property
    def desires(self) -> journal_desires.DesireBook:
        """What RPC clients asked for (see ``desires.DesireBook``)."""
        return self._desires

    # -- claims: hosts sharing one journal share the work ------------------

    def claim(self, key: str, owner: str, lease: timedelta) -> bool:
        """Given an action key, who asks and for how long, say whether ``owner`` now holds it.

        True if the key was free, its lease had expired, or ``owner`` held it already (the
        lease then runs ``lease`` from now); False while another owner's lease runs. "Now"
        is the database's clock, the one every host sharing the journal agrees on. Atomic
        across processes and hosts. Raise ValueError if ``lease`` is not positive.
        """
        with self._db.write() as conn:
            return journal_claims.take(conn, key, owner, _positive(lease))

    def renew(self, key: str, owner: str, lease: timedelta) -> bool:
        """Given a key ``owner`` claimed, extend its lease to ``lease`` from now; say if it could.

        False if the claim was lost: released, or expired and taken by another owner. A
        lease that expired but that nobody took is still the owner's, and is extended.
        Raise ValueError if ``lease`` is not positive.
        """
        return key in self.renew_all([key], owner, lease)

    def renew_all(self, keys: Collection[str], owner: str, lease: timedelta) -> frozenset[str]:
        """Given keys ``owner`` claimed, extend each as ``renew`` does; return those it holds.

        One transaction for all: a claim keeper renews every claim of its run at once.
        Raise ValueError if ``lease`` is not positive.
        """
        with self._db.write() as conn:
            return journal_claims.extend(conn, keys, owner, _positive(lease))

    def release(self, key: str, owner: str) -> None:
        """Given a key, free it if ``owner`` holds it; else (another's, or free) do nothing."""
        self._db.write_later(*journal_claims.free(key, owner))

    def release_all(self, owner: str) -> int:
        """Given an owner, free every key it holds (a dead run's); return how many."""
        with self._db.write() as conn:
            return journal_claims.free_all(conn, owner)

    def take_over(
        self, dead: Collection[str], owner: str, lease: timedelta, wanted: Collection[str]
    ) -> frozenset[str]:
        """Given the claim owners of runs proven over, who succeeds them, a lease and the
        keys the successor's plan needs, make the dead owners' claims on those keys
        ``owner``'s (leased ``lease`` from now) and free the others, in one transaction;
        return the keys taken over. Raise ValueError if ``lease`` is not positive."""
        with self._db.write() as conn:
            return journal_claims.take_over(conn, dead, owner, _positive(lease), wanted)

    def release_many(self, keys: Collection[str], owner: str) -> None:
        """Given keys, free those ``owner`` holds, in one transaction."""
        if not keys:
            return
        with self._db.write() as conn:
            journal_claims.free_many(conn, keys, owner)

    def place_into(
        self, mark: str, host: str, name: str, lease: timedelta
    ) -> list[tuple[str, str, str]]:
        """Given the mark of the download folder this host places into, the host's id and
        name, and how long that holds, say so in the journal (until the lease runs out, or
        the host says another); return every live (mark, host id, host name) said, in one
        transaction."""
        with self._db.write() as conn:
            journal_claims.place_into(conn, mark, host, name, _positive(lease))
            return journal_claims.folders_placed_into(conn)

    def claims(self) -> dict[str, tuple[str, datetime]]:
        """Return every claim as key -> (owner, expires_at), expired ones included."""
        with self._db.read() as conn:
            return journal_claims.listing(conn)

    def database_now(self) -> datetime:
        """Return the database's clock, the one leases are judged by, as aware UTC."""
        with self._db.read() as conn:
            return database_now(conn)

    # -- plumbing ---------------------------------------------------------

    def _prepare_schema(self) -> None:
        """Create a new journal's tables, upgrade an older one; raise JournalError if newer."""
        # One cheap query settles the usual case, a journal at HEAD; only the others import
        # Alembic (tens of ms of every timer-started run's start otherwise).
        if self._db.first_column_or_none(_STORED_REVISION) == [HEAD]:
            return
        with self._db.write() as conn:  # a new one is created without Alembic (~0.3 s)
            if create_if_new(conn):
                return
        from putio_mirror.journal.migrations.runner import bring_to_head

        with self._db.write() as conn:
            bring_to_head(conn, self.url)
