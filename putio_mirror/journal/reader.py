"""A read-only look at the journal, for ``doctor``, ``status`` and ``history``.

Unlike ``store.Journal.open`` it never creates, upgrades or locks anything: it may read
while a run writes (SQLite's WAL lets it) and it tells an old or new schema apart instead
of refusing it. Its statements are reads only; the run's lock is not taken.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from sqlalchemy import func, inspect, select

from putio_mirror.core.state import DownloadRecord
from putio_mirror.journal import claims as journal_claims
from putio_mirror.journal import files as journal_files
from putio_mirror.journal import runs as journal_runs
from putio_mirror.journal.engine import (
    Database,
    DatabaseFace,
    create_journal_engine,
    is_missing_file,
    parse_url,
)
from putio_mirror.journal.runs import ActionRecord, RunRecord
from putio_mirror.journal.schema import (
    actions_table,
    claims_table,
    database_now,
    runs_table,
    schema_info_table,
    submissions_table,
)

#: Alembic's table of the journal's revision (``migrations/``), and how it is read
_ALEMBIC_TABLE = "alembic_version"
_REVISIONS = "SELECT version_num FROM alembic_version"


@dataclass(frozen=True)
class InFlight:
    """An action some run is doing right now (its owner's claim on its key is live)."""

    kind: str
    key: str
    target: str
    host: str
    started_at: datetime
    run_id: int
    owner: str | None  # the claim owner of its run (``host:pid:random``)


class JournalReader(DatabaseFace):
    """Given a journal URL, read it without changing it; open it with ``JournalReader.open``."""

    @classmethod
    def open(cls, url: str, *, busy_timeout: float = 5.0) -> JournalReader | None:
        """Given a URL, return a reader, or None if it names a SQLite file not made yet.

        Raise JournalError if the URL is unusable.
        """
        parsed = parse_url(url)
        if is_missing_file(parsed):
            return None
        shown = parsed.render_as_string(hide_password=True)
        engine = create_journal_engine(parsed, shown, busy_timeout, read_only=True)
        return cls(Database(engine, parsed))

    def schema_version(self) -> int | None:
        """Return the journal's schema version; None if it has none (empty or not ours).

        The newer of ``schema_info``'s and the Alembic revision's (``000N`` is schema N): a
        journal at a revision this release does not know is refused by every run, so
        ``doctor`` must not call it reachable from ``schema_info`` alone. Raise
        JournalError if the database cannot be read.
        """
        with self._db.read() as conn:
            tables = set(inspect(conn).get_table_names())
            found: int | None = None
            if schema_info_table.name in tables:
                newest = select(func.max(schema_info_table.c.version))
                found = conn.execute(newest).scalar_one_or_none()
            if _ALEMBIC_TABLE in tables:
                stored = conn.exec_driver_sql(_REVISIONS)
                revisions = [int(row[0]) for row in stored if str(row[0]).isdigit()]
                found = max([*revisions, *([] if found is None else [found])], default=found)
            return found

    def folders_placed_into(self) -> list[tuple[str, str, str]]:
        """Return the (mark, host id, host name) of every download folder a host sharing
        the journal said it places into, as long as that holds (``Journal.place_into``)."""
        with self._db.read() as conn:
            return journal_claims.folders_placed_into(conn)

    def recent_runs(self, limit: int) -> tuple[RunRecord, ...]:
        """Return the newest ``limit`` runs, newest first."""
        with self._db.read() as conn:
            return journal_runs.recent_runs(conn, limit)

    def run(self, run_id: int) -> RunRecord | None:
        """Given a run id, return that run, or None if the journal has no such run."""
        with self._db.read() as conn:
            runs = journal_runs.runs_between(conn, run_id, run_id)
        return runs[0] if runs else None

    def actions_of(self, run_ids: Iterable[int]) -> Mapping[int, tuple[ActionRecord, ...]]:
        """Given run ids, return each one's actions in the order they started."""
        with self._db.read() as conn:
            return {run_id: journal_runs.actions_of(conn, run_id) for run_id in run_ids}

    def action_outlines(self, run_ids: Iterable[int]) -> tuple[tuple[int, str, str, str], ...]:
        """Given run ids, return (run id, kind, key, status) of each of their actions."""
        action = actions_table.c
        wanted = list(run_ids)
        query = select(action.run_id, action.kind, action.key, action.status).where(
            action.run_id.in_(wanted)
        )
        with self._db.read() as conn:
            return tuple((row[0], row[1], row[2], row[3]) for row in conn.execute(query))

    def last_notes(self, kind: str) -> tuple[RunRecord | None, tuple[tuple[str, str], ...]]:
        """Given a kind of noted action (``Journal.note_actions``), return the newest run
        that carried out a plan (one with a claim owner: not an early end, a removal) and
        its notes of that kind as (target, detail) pairs; (None, ()) if no run did."""
        run, action = runs_table.c, actions_table.c
        with self._db.read() as conn:
            newest = conn.execute(select(func.max(run.id)).where(run.owner.is_not(None)))
            newest_id = newest.scalar()
            if newest_id is None:
                return None, ()
            (found,) = journal_runs.runs_between(conn, newest_id, newest_id)
            query = (
                select(action.target, action.detail)
                .where(action.run_id == found.id, action.kind == kind)
                .order_by(action.id)
            )
            return found, tuple((row[0], row[1] or "") for row in conn.execute(query))

    def submitted(self) -> tuple[frozenset[str], frozenset[int]]:
        """Return the info-hashes putio-mirror submitted and the transfers they became."""
        submission = submissions_table.c
        with self._db.read() as conn:
            rows = conn.execute(select(submission.info_hash, submission.transfer_id)).all()
        return (
            frozenset(row[0] for row in rows),
            frozenset(row[1] for row in rows if row[1] is not None),
        )

    def downloads(self) -> Mapping[int, DownloadRecord]:
        """Return every file's download record by file id. A journal no run has upgraded
        yet (a mount, ``status``, read it first) knows no placed file's identity."""
        with self._db.read() as conn:
            identities = journal_files.has_identities(conn)
            return MappingProxyType(journal_files.records(conn, identities=identities))

    def in_flight(self) -> tuple[InFlight, ...]:
        """Return the actions being done now: started, under a live claim of their owner."""
        action, run, claim = actions_table.c, runs_table.c, claims_table.c
        with self._db.read() as conn:
            query = (
                select(
                    action.kind,
                    action.key,
                    action.target,
                    run.host,
                    action.started_at,
                    run.id,
                    action.owner,
                )
                .join(runs_table, run.id == action.run_id)
                .join(claims_table, (claim.key == action.key) & (claim.owner == action.owner))
                .where(action.status == "started", claim.expires_at > database_now(conn))
                .order_by(action.id)
            )
            return tuple(InFlight(*row) for row in conn.execute(query))
