"""The journal's start of downloads side by side: the claims, the checks and the action rows
of a few files in one transaction of three statements, not three statements a file (issue 14).

``Journal`` is this face and more; ``app/claimahead.py`` is its caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from putio_mirror.journal import claims as journal_claims
from putio_mirror.journal import files as journal_files
from putio_mirror.journal import runs as journal_runs
from putio_mirror.journal.engine import DatabaseFace


@dataclass(frozen=True, slots=True)
class Start:
    """An action about to start: its kind, key and target, and the file whose verification
    by any host means it need not run (None: nothing to check)."""

    kind: str
    key: str
    target: str
    unless_verified: int | None = None


class StartingFace(DatabaseFace):
    """Starting many actions at once, and withdrawing those that then never ran."""

    def start_claimed(
        self,
        run_id: int,
        starts: Sequence[Start],
        owner: str,
        lease: timedelta,
        now: datetime,
    ) -> list[int | None]:
        """Given actions about to start in a run, claim each for ``owner`` (as ``claim``
        does), free again those whose ``unless_verified`` file a host verified meanwhile, and
        journal the start of the others (as ``action_started`` does), in one transaction (or
        this thread's batch); return each one's action id, None where another owner holds it
        or its file is verified. Raise ValueError if ``lease`` is not positive or ``now``
        naive."""
        moment = aware(now)
        with self._db.write() as conn:
            keys = [start.key for start in starts]
            held = journal_claims.take_many(conn, keys, owner, positive(lease))
            checked = [s.unless_verified for s in starts if s.key in held]
            verified = journal_files.verified_among(conn, [i for i in checked if i is not None])
            going: list[Start] = []
            for start in starts:
                if start.key not in held:
                    continue
                if start.unless_verified in verified:  # done elsewhere
                    conn.execute(*journal_claims.free(start.key, owner))
                else:
                    going.append(start)
            rows = [
                {"run_id": run_id, "kind": s.kind, "key": s.key, "target": s.target}
                | {"started_at": moment}
                for s in going
            ]
            started = journal_runs.start_actions(conn, rows)
            ids = {start.key: id_ for start, id_ in zip(going, started, strict=True)}
        return [ids.get(start.key) for start in starts]

    def action_withdrawn(self, action_id: int) -> None:
        """Given a started action that never ran (claimed ahead), delete its row."""
        self._db.write_later(*journal_runs.withdraw_action(action_id))


def aware(moment: datetime) -> datetime:
    """Given a datetime, return it; raise ValueError if it is naive (a bug in the caller)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"the journal needs aware datetimes, got naive {moment.isoformat()}")
    return moment


def positive(lease: timedelta) -> timedelta:
    """Given a lease, return it; raise ValueError if it is zero or negative (a caller's bug)."""
    if lease <= timedelta(0):
        raise ValueError(f"a lease must be positive, got {lease}")
    return lease
