"""The claim keeper: a run's claims stay alive however long each step takes.

Hosts sharing a journal claim an action's key before doing it; the claim is a lease that
another host may take once it runs out. A step can be long without passing through any
point where it could renew: a chunk under a low bandwidth limit, the CRC32 of a 50 GB file
being adopted, a placement moving files one by one. So renewal does not ride on the steps:
a background thread renews every claim the run holds every third of the lease, and flags
the ones it found taken by another owner. The executor's ``may_continue`` asks ``holds``.

A lease is ours only as long as its last renewal lasts: a host cut off from the database
(or paused, or suspended) cannot renew, and once its lease runs out another host takes the
file and writes it too. So ``holds`` also says no once a claim's last renewal is older than
``IN_DOUBT`` of a lease, on this host's boot clock (it runs on through a suspend): the
lease began after the renewal was sent, so it still has a quarter of its time left then,
and the host stops before the database lets anyone else start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import timedelta

from putio_mirror.core.errors import JournalError
from putio_mirror.journal.store import Journal

log = logging.getLogger(__name__)

#: the part of a lease after its last renewal past which a claim is in doubt (not held)
IN_DOUBT = 0.75
#: renewals a lease: one that failed is tried again this many times as often
RETRIES = 4


def boot_clock() -> float:
    """Return seconds on a clock that never goes back and runs on while the machine sleeps
    (a suspended laptop's lease runs out all the same)."""
    if hasattr(time, "CLOCK_BOOTTIME"):
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    return time.monotonic()


class ClaimKeeper:
    """Takes, keeps and releases one owner's claims; thread-safe. Close it when done."""

    def __init__(self, journal: Journal, owner: str, lease: timedelta) -> None:
        self._journal = journal
        self._owner = owner
        self._lease = lease
        self._held: set[str] = set()
        self._lost: set[str] = set()
        #: claims taken over from a dead run of this host, for actions not claimed yet
        self._inherited: set[str] = set()
        #: each held key's last renewal (or claim): when it was sent, on ``boot_clock``
        self._renewed: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def owner(self) -> str:
        return self._owner

    @property
    def lease(self) -> timedelta:
        return self._lease

    def claim(self, key: str) -> bool:
        """Given an action key, claim it and keep it alive; return False if another holds it."""
        asked = boot_clock()
        if not self._journal.claim(key, self._owner, self._lease):
            return False
        self.keep([key], asked)
        return True

    def keep(self, keys: Iterable[str], asked: float) -> None:
        """Given keys this owner just claimed (``Journal.start_claimed``) and when the claim
        was sent (``boot_clock``), keep them alive."""
        self._hold(keys, asked, inherited=False)

    def inherit(self, keys: Iterable[str], asked: float) -> None:
        """Given claims taken over from a dead run (``Journal.take_over``) for actions
        still to come, and when that was sent (``boot_clock``), keep them alive until
        their actions claim them, or until ``release_inherited``."""
        self._hold(keys, asked, inherited=True)

    def _hold(self, keys: Iterable[str], asked: float, *, inherited: bool) -> None:
        with self._lock:
            for key in keys:
                self._held.add(key)
                if inherited:
                    self._inherited.add(key)
                else:  # an action's own now: freed when it ends
                    self._inherited.discard(key)
                self._lost.discard(key)
                self._renewed[key] = asked
            if self._thread is None:  # started on the first claim: most runs claim nothing
                self._thread = threading.Thread(target=self._keep, name="claim-keeper", daemon=True)
                self._thread.start()

    def release_inherited(self) -> None:
        """Free, in one transaction, the claims taken over that no action claimed since
        (the run ended before it came to them); an action's own claim is its own to free."""
        with self._lock:
            unused, self._inherited = self._inherited, set()
            self._held -= unused
            self._lost -= unused
            for key in unused:
                self._renewed.pop(key, None)
        self._journal.release_many(unused, self._owner)

    def holds(self, key: str) -> bool:
        """Given a key, say whether this owner still holds it: False once it was taken, or
        once its last renewal is so old that its lease may have run out (``IN_DOUBT``)."""
        doubted = boot_clock() - self._lease.total_seconds() * IN_DOUBT
        with self._lock:
            if key not in self._held or key in self._lost:
                return False
            return self._renewed.get(key, doubted) > doubted

    def release(self, key: str) -> None:
        """Given a key, stop keeping it and free it in the journal (if it is still ours)."""
        self.forget(key)
        self._journal.release(key, self._owner)

    def forget(self, key: str) -> None:
        """Given a key, stop keeping it alive (its lease then runs out on its own)."""
        with self._lock:
            self._inherited.discard(key)
            self._held.discard(key)
            self._lost.discard(key)
            self._renewed.pop(key, None)

    def renew(self) -> bool:
        """Renew every held claim now; flag those another owner took. Return False if the
        journal failed (their leases run on from their last renewal)."""
        with self._lock:
            keys = self._held - self._lost
        if not keys:
            return True
        asked = boot_clock()
        try:
            still = self._journal.renew_all(keys, self._owner, self._lease)
        except JournalError as error:
            # The database may be back before the leases run out; an expired lease that
            # nobody took is still ours on the next renewal, so keep trying.
            log.warning("could not renew claims (%s); trying again", error.message)
            return False
        with self._lock:
            # A key released while we were renewing is not lost, just gone.
            taken = (keys - still) & self._held
            self._lost |= taken
            for key in still & self._held:
                self._renewed[key] = asked
        for key in sorted(taken):
            log.warning("%s: another host took this over", key)
        return True

    def close(self) -> None:
        """Stop renewing (the claims themselves are released one by one, or run out)."""
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join()

    def _keep(self) -> None:
        # every third of a lease; a failed renewal is tried again sooner, so a short outage
        # of the database puts no claim in doubt
        interval = self._lease.total_seconds() / 3
        wait = interval
        while not self._stop.wait(wait):
            wait = interval if self.renew() else interval / RETRIES
