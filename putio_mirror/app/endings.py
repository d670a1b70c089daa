"""Journaling how actions ended, several at once: one transaction for a worker's last few
verified files (issue 14), each claim freed in the transaction that says what its action did.

A verified file's bytes are durable before its ending is handed in (``Verified``: the part
synced, its move into ``verified/`` or to its final path made durable by the ending's
``first``, run before the transaction), so an ending journaled a few files later promises
nothing early: a crash in between leaves the file in staging, or in place, where the next
run finds it whole and journals it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from putio_mirror.core.errors import JournalError
from putio_mirror.core.plan import Action
from putio_mirror.journal.keeper import ClaimKeeper
from putio_mirror.journal.store import Journal

log = logging.getLogger(__name__)


#: verified downloads whose ends are journaled in one go (``EndingsDue``; 16, not 8: half
#: the transactions, whose BEGIN, commit and handoffs between threads cost more than the
#: writes) ...
ENDS_AT_ONCE = 16
#: ... unless the next download has more than this left to fetch: they are journaled first
ENDS_WAIT_FOR_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Ending:
    """An action that ended, for the executor to journal: its id, itself, its status, the
    journal write of what it did with what must be done before that write, and its
    outcome."""

    action_id: int
    action: Action
    status: str
    record: tuple[Callable[[], None], Callable[[], None] | None] | None = None
    detail: str | None = None
    error: str | None = None

    @property
    def first(self) -> Callable[[], None] | None:
        return self.record[1] if self.record is not None else None


class EndingsDue:
    """Endings of verified downloads not journaled yet, shared by the workers of a batch:
    whichever worker hands in the ``at_once``-th journals them all, and each worker journals
    what is left when it runs out of files. So a worker held up by one file for minutes (a
    stalled node, a long outage) holds up no ending of the files it verified before it."""

    def __init__(self, at_once: int = ENDS_AT_ONCE) -> None:
        self._at_once = at_once
        self._due: list[Ending] = []
        self._lock = threading.Lock()

    def add(self, endings: list[Ending]) -> list[Ending]:
        """Given new endings (emptied), return the endings to journal now (maybe none)."""
        with self._lock:
            self._due.extend(endings)
            endings.clear()
            if len(self._due) < self._at_once:
                return []
            taken, self._due = self._due, []
        return taken

    def take(self) -> list[Ending]:
        """Return every ending due, to journal now."""
        with self._lock:
            taken, self._due = self._due, []
        return taken


def journal_endings(
    journal: Journal, claims: ClaimKeeper, endings: list[Ending], now: Callable[[], datetime]
) -> None:
    """Given actions that ended, journal what each did and how it ended and free their
    claims, in one transaction (shared with other workers' journal work): a claim is never
    free before the journal says its file is verified. Each distinct ``first`` is done
    before it; raise what the journal or a ``first`` raised."""
    firsts = list(dict.fromkeys(each for ending in endings if (each := ending.first)))

    def first() -> None:  # one object for one distinct first: the group runs it once
        for each in firsts:
            each()

    def close() -> None:
        for ending in endings:
            if ending.record is not None:
                ending.record[0]()
            journal.action_finished(
                ending.action_id, ending.status, now(), ending.error, ending.detail
            )
            claims.release(ending.action.key)

    try:
        journal.together(close, first if len(firsts) > 1 else next(iter(firsts), None))
    finally:
        for ending in endings:
            claims.forget(ending.action.key)  # never kept alive again, whatever happened


def withdraw_claimed(
    journal: Journal, claims: ClaimKeeper, claimed: Sequence[tuple[Action, int]]
) -> None:
    """Given actions claimed and journaled as started that never started (with their ids),
    delete their action rows and free their claims, in one transaction. If the journal
    fails, say so: their leases then run out, and the next run reads them interrupted."""

    def withdraw() -> None:
        for action, action_id in claimed:
            journal.action_withdrawn(action_id)
            claims.release(action.key)

    try:
        journal.together(withdraw)
    except JournalError as error:
        log.warning("could not withdraw %d claimed downloads: %s", len(claimed), error)
    finally:
        for action, _ in claimed:
            claims.forget(action.key)  # never kept alive again, whatever happened
