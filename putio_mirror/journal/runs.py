"""The SQL of runs and actions: what each run did, as records.

Private to ``store.py``, which re-exports ``RunRecord`` and ``ActionRecord``; each function
here runs inside a transaction the journal opened.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    CursorResult,
    Executable,
    Select,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)

from putio_mirror.core.attention import noted_key
from putio_mirror.journal.schema import actions_table, runs_table


@dataclass(frozen=True)
class RunRecord:
    id: int
    command: str
    started_at: datetime
    finished_at: datetime | None
    exit_code: int | None
    summary: str | None
    dry_run: bool
    host: str = ""
    #: the claim owner of the run (schema 3; None before)
    owner: str | None = None


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
    #: its run's claim owner (schema 3; None before)
    owner: str | None = None


#: the summary of a run found dead: its exit code stays unknown (NULL)
DIED = "ended without finishing: killed, crashed or the power went"

#: a dead run's last sign of life: its latest action's end or start, else its own start
_LAST_SIGN = func.coalesce(
    select(func.max(func.coalesce(actions_table.c.finished_at, actions_table.c.started_at)))
    .where(actions_table.c.run_id == runs_table.c.id)
    .scalar_subquery(),
    runs_table.c.started_at,
)


def end_dead_runs(conn: Connection, owner: str) -> int:
    """Given the owner of runs known dead, end those of its runs left unfinished at their
    last sign of life, their exit code unknown, their summary ``DIED``; return how many."""
    statement = (
        update(runs_table)
        .where(runs_table.c.owner == owner, runs_table.c.finished_at.is_(None))
        .values(finished_at=_LAST_SIGN, summary=DIED)
    )
    return conn.execute(statement).rowcount


def start_run(conn: Connection, row: Mapping[str, Any]) -> int:
    """Given a run's row, insert it; return its id."""
    return _new_id(conn.execute(insert(runs_table).values(**row)))


_EARLIER = (
    select(func.count()).select_from(actions_table).where(actions_table.c.key == bindparam("key"))
)
# One statement, not a count then an insert: ~0.1 ms of SQLAlchemy less for each small file.
_START = insert(actions_table).values(
    status="started",
    attempts=1 + _EARLIER.scalar_subquery(),
    owner=select(runs_table.c.owner)
    .where(runs_table.c.id == bindparam("run_id"))
    .scalar_subquery(),
    run_id=bindparam("run_id"),
    kind=bindparam("kind"),
    key=bindparam("key"),
    target=bindparam("target"),
    started_at=bindparam("started_at"),
)


_FINISH = (
    update(actions_table)
    .where(actions_table.c.id == bindparam("action_id"))
    .values(
        status=bindparam("status"),
        finished_at=bindparam("finished_at"),
        error=bindparam("error"),
        detail=bindparam("detail"),
    )
)


def finish_action(action_id: int, values: Mapping[str, Any]) -> tuple[Executable, dict[str, Any]]:
    """Given an action id and how it ended (status, finished_at, error, detail), return the
    write that records it and its values."""
    return _FINISH, dict(values) | {"action_id": action_id}


_WITHDRAW = delete(actions_table).where(
    actions_table.c.id == bindparam("action_id"), actions_table.c.status == "started"
)


def withdraw_action(action_id: int) -> tuple[Executable, dict[str, Any]]:
    """Given the id of an action journaled as started that never ran, return the write
    that deletes its row (only while it is still ``started``) and its values."""
    return _WITHDRAW, {"action_id": action_id}


def note_actions(
    conn: Connection, run_id: int, kind: str, notes: Sequence[tuple[str, str]], now: datetime
) -> None:
    """Given a run, a kind and (target, detail) pairs, record each as an action of the run
    that ended as it began (``skipped``): what the run noted, not what it did."""
    rows = [
        {
            "run_id": run_id,
            "kind": kind,
            "key": noted_key(kind, target),
            "target": target,
            "status": "skipped",
            "attempts": 1,
            "detail": detail,
            "started_at": now,
            "finished_at": now,
        }
        for target, detail in notes
    ]
    conn.execute(insert(actions_table), rows)


@dataclass(frozen=True, slots=True)
class LastAction:
    """The newest action of a key: how it ended (or ``started``), why, and when."""

    id: int
    status: str
    error: str | None
    detail: str | None


#: keys asked about in one statement (SQLite allows 32,766 variables; old builds 999)
_KEYS_AT_ONCE = 500


def last_actions(conn: Connection, keys: Sequence[str]) -> dict[str, LastAction]:
    """Given action keys, return the newest action of each that has one (by its id)."""
    action = actions_table.c
    found: dict[str, LastAction] = {}
    for start in range(0, len(keys), _KEYS_AT_ONCE):
        chunk = list(keys[start : start + _KEYS_AT_ONCE])
        newest = (
            select(func.max(action.id)).where(action.key.in_(chunk)).group_by(action.key)
        ).scalar_subquery()
        query = select(action.key, action.id, action.status, action.error, action.detail)
        for key, id_, status, error, detail in conn.execute(query.where(action.id.in_(newest))):
            found[str(key)] = LastAction(int(id_), str(status), error, detail)
    return found


def start_action(conn: Connection, row: Mapping[str, Any]) -> int:
    """Given a starting action's row (run_id, kind, key, target, started_at), insert it
    ``started``; return its id.

    Its ``attempts`` is one more than the number of earlier actions with its key; its
    ``owner`` is its run's. (Both statements are built once: see ``schema.upsert_row``.)
    """
    return _new_id(conn.execute(_START, dict(row)))


# Rows back name their key, not their place: asked for in the rows' order
# (``sort_by_parameter_order``), SQLAlchemy sends a SQLite INSERT a row at a time (no
# column of ``actions`` tells it the order), one statement a small file instead of one a
# batch.
_START_MANY = _START.returning(actions_table.c.key, actions_table.c.id)


def start_actions(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Given starting actions' rows (as ``start_action``'s), their keys distinct, insert
    them ``started`` in one statement; return their ids, in the rows' order."""
    if not rows:
        return []
    result = conn.execute(_START_MANY, [dict(row) for row in rows])
    ids = {str(key): int(id_) for key, id_ in result}
    return [ids[row["key"]] for row in rows]


def recent_runs(conn: Connection, limit: int) -> tuple[RunRecord, ...]:
    """Return the newest ``limit`` runs, newest first."""
    statement = _select_record(RunRecord, runs_table).order_by(runs_table.c.id.desc())
    return tuple(RunRecord(*row) for row in conn.execute(statement.limit(limit)))


def actions_of(conn: Connection, run_id: int) -> tuple[ActionRecord, ...]:
    """Given a run id, return its actions in the order they started."""
    action = actions_table.c
    statement = _select_record(ActionRecord, actions_table).where(action.run_id == run_id)
    return tuple(ActionRecord(*row) for row in conn.execute(statement.order_by(action.id)))


def _new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None  # an INSERT of one row always has it
    return int(key[0])


def _select_record(record: type[RunRecord | ActionRecord], table: Table) -> Select[Any]:
    """Given a record class and its table, select the columns of its fields in field order.

    So a row of the result builds the record positionally: ``record(*row)``.
    """
    return select(*(table.c[item.name] for item in fields(record)))


def runs_between(conn: Connection, first: int, last: int) -> tuple[RunRecord, ...]:
    """Given run ids, return the runs from ``first`` to ``last`` (inclusive), newest first."""
    run = runs_table.c
    statement = _select_record(RunRecord, runs_table).where(run.id >= first, run.id <= last)
    return tuple(RunRecord(*row) for row in conn.execute(statement.order_by(run.id.desc())))
