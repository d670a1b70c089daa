"""The SQL of claims: leases on action keys, so hosts sharing a journal never do one action twice.

Private to ``store.py``, whose ``Journal.claim``/``renew``/``release`` are the entry points;
each function here runs inside a transaction the journal opened. Every lease is measured on
the database's clock (``journal_schema.database_now``), never a host's: two hosts whose clocks
disagree still agree on whose lease has run out.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Executable, bindparam, delete, insert, or_, select, update

from putio_mirror.journal.schema import (
    actions_table,
    claim_many_statement,
    claim_statement,
    claims_table,
    database_now,
)


def take(conn: Connection, key: str, owner: str, lease: timedelta) -> bool:
    """Given a key, its would-be owner and a lease, take it if free, expired or the owner's.

    Return whether ``owner`` holds it now (its lease then runs ``lease`` from now).
    """
    now = database_now(conn)
    values = {"key": key, "owner": owner, "now": now, "expires_at": now + lease}
    # See claim_statement for why one statement is enough, and atomic.
    return conn.execute(claim_statement(conn.dialect.name), values).first() is not None


def take_many(
    conn: Connection, keys: Collection[str], owner: str, lease: timedelta
) -> frozenset[str]:
    """Given keys, take each as ``take`` does, in one statement; return those ``owner`` holds.

    The rows go in key order: two hosts taking overlapping keys lock them in one order
    (PostgreSQL), so neither waits for the other in a circle."""
    if not keys:
        return frozenset()
    now = database_now(conn)
    expires_at = now + lease
    rows = [
        {"key": key, "owner": owner, "claimed_at": now, "expires_at": expires_at}
        for key in sorted(keys)
    ]
    taken = conn.execute(claim_many_statement(conn.dialect.name), rows)
    return frozenset(str(row[0]) for row in taken)


def extend(conn: Connection, keys: Collection[str], owner: str, lease: timedelta) -> frozenset[str]:
    """Given keys ``owner`` claimed, extend the leases it still holds; return those keys."""
    if not keys:
        return frozenset()
    claim = claims_table.c
    statement = (
        update(claims_table)
        .where(claim.owner == owner, claim.key.in_(list(keys)))
        .values(expires_at=database_now(conn) + lease)
        .returning(claim.key)
    )
    return frozenset(conn.execute(statement).scalars())


_FREE = delete(claims_table).where(
    claims_table.c.key == bindparam("key"), claims_table.c.owner == bindparam("owner")
)


def free(key: str, owner: str) -> tuple[Executable, dict[str, Any]]:
    """Given a key, return the write that deletes its claim if ``owner`` holds it, and its
    values."""
    return _FREE, {"key": key, "owner": owner}


def free_many(conn: Connection, keys: Collection[str], owner: str) -> None:
    """Given keys, delete their claims that ``owner`` holds."""
    claim = claims_table.c
    conn.execute(delete(claims_table).where(claim.owner == owner, claim.key.in_(sorted(keys))))


def free_all(conn: Connection, owner: str) -> int:
    """Given an owner, delete every claim it holds; return how many."""
    return conn.execute(delete(claims_table).where(claims_table.c.owner == owner)).rowcount


def take_over(
    conn: Connection,
    dead: Collection[str],
    owner: str,
    lease: timedelta,
    wanted: Collection[str],
) -> frozenset[str]:
    """Given owners proven dead, the owner that succeeds them, a lease and the keys it
    wants, make their claims on those keys ``owner``'s (each lease running ``lease`` from
    now) and delete the others; return the keys taken over.

    A dead run's claims are few (those in flight and claimed ahead) and a plan's keys many:
    the claims are read and matched here, so only those taken over are named to the
    database. They are read locked, in key order, as ``take_many`` locks keys: another
    host claiming some of them meanwhile waits, never in a circle."""
    if not dead:
        return frozenset()
    claim = claims_table.c
    theirs = claim.owner.in_(sorted(dead))
    locked = select(claim.key).where(theirs).order_by(claim.key).with_for_update()
    keys = list(conn.execute(locked).scalars())
    kept = [key for key in keys if key in wanted]
    # freed first: ``owner`` may be among the dead (this process's previous run's claims)
    conn.execute(delete(claims_table).where(theirs, claim.key.not_in(kept)))
    if kept:
        expires_at = database_now(conn) + lease
        values = {"owner": owner, "expires_at": expires_at}
        conn.execute(update(claims_table).where(theirs, claim.key.in_(kept)).values(values))
    return frozenset(kept)


#: the keys of the leases that say which download folder each host places files into
#: (``folder:<the folder's mark>:<the host's id>``, held by the host's name, never by a
#: run's owner: no take-over frees them): no action has such a key, so no action's claim
#: is ever one of them, and they run out as claims do, by the database's clock
FOLDER_PREFIX = "folder:"


def place_into(conn: Connection, mark: str, host: str, name: str, lease: timedelta) -> None:
    """Given the mark of the download folder a host places files into, the host's id and
    name, and for how long that holds, lease it, in place of the host's earlier ones (its
    folder changed, or only the lease)."""
    earlier = [key for key, (_, each, _) in _folder_leases(conn, live_only=False) if each == host]
    key, claim = f"{FOLDER_PREFIX}{mark}:{host}", claims_table.c
    conn.execute(delete(claims_table).where(claim.key.in_([*earlier, key])))
    now = database_now(conn)
    values = {"key": key, "owner": name, "claimed_at": now, "expires_at": now + lease}
    conn.execute(insert(claims_table).values(values))


def folders_placed_into(conn: Connection) -> list[tuple[str, str, str]]:
    """Return the (mark, host id, host name) of every live lease on a download folder
    (``place_into``)."""
    return [found for _, found in _folder_leases(conn, live_only=True)]


def _folder_leases(conn: Connection, *, live_only: bool) -> list[tuple[str, tuple[str, str, str]]]:
    """Return the folder leases' keys, each with its (mark, host id, host name)."""
    claim = claims_table.c
    query = select(claim.key, claim.owner).where(
        claim.key.startswith(FOLDER_PREFIX, autoescape=True)
    )
    if live_only:
        query = query.where(claim.expires_at > database_now(conn))
    found = []
    for key, name in conn.execute(query):
        mark, _, host = key.removeprefix(FOLDER_PREFIX).partition(":")
        found.append((key, (mark, host, name)))
    return found


def listing(conn: Connection) -> dict[str, tuple[str, datetime]]:
    """Return every claim as key -> (owner, expires_at), expired ones included."""
    claim = claims_table.c
    rows = conn.execute(select(claim.key, claim.owner, claim.expires_at))
    return {key: (owner, expires_at) for key, owner, expires_at in rows}


def abandon_unclaimed(conn: Connection, finished_at: datetime) -> int:
    """Mark ``started`` actions that no live claim covers ``interrupted``; return how many.

    An action runs under its owner's claim on its key, renewed while it runs and released
    only after it ends: an action still ``started`` whose claim is gone or has run out (by
    the database's clock) belongs to a run that died. One whose owner still holds a live
    claim is running on some host, and stays as it is. Actions of runs before schema 3 have
    no owner: any live claim on their key counts.
    """
    action, claim = actions_table.c, claims_table.c
    live = (
        select(claim.key)
        .where(
            claim.key == action.key,
            claim.expires_at > database_now(conn),
            or_(action.owner.is_(None), claim.owner == action.owner),
        )
        .exists()
    )
    statement = (
        update(actions_table)
        .where(action.status == "started", ~live)
        .values(
            status="interrupted",
            finished_at=finished_at,
            error="the run stopped before this action finished",
        )
    )
    return conn.execute(statement).rowcount
