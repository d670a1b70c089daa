"""The claim keeper: a run's claims stay alive however long each step takes.

Hosts sharing a journal claim an action's key before doing it; the claim is a lease that
another host may take once it runs out. A step can be long without passing through any
point where it could renew: a chunk under a low bandwidth limit, the CRC32 of a 50 GB file
being adopted, a placement moving files one by one. So renewal does not ride on the steps:
a background thread renews every claim the run holds every third of the lease, and flags
the ones it found taken by another owner. The executor's ``may_continue`` asks ``holds``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import timedelta

from putio_mirror.core.errors import JournalError
from putio_mirror.journal.store import Journal

log = logging.getLogger(__name__)


class ClaimKeeper:
    """Takes, keeps and releases one owner's claims; thread-safe. Close it when done."""

    def __init__(self, journal: Journal, owner: str, lease: timedelta) -> None:
        self._journal = journal
        self._owner = owner
        self._lease = lease
        self._held: set[str] = set()
        self._lost: set[str] = set()
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
        if not self._journal.claim(key, self._owner, self._lease):
            return False
        self.keep([key])
        return True

    def keep(self, keys: Iterable[str]) -> None:
        """Given keys this owner just claimed (``Journal.start_claimed``), keep them alive."""
        with self._lock:
            for key in keys:
                self._held.add(key)
                self._lost.discard(key)
            if self._thread is None:  # started on the first claim: most runs claim nothing
                self._thread = threading.Thread(target=self._keep, name="claim-keeper", daemon=True)
                self._thread.start()

    def holds(self, key: str) -> bool:
        """Given a key, say whether this owner still holds it (False once it was taken)."""
        with self._lock:
            return key in self._held and key not in self._lost

    def release(self, key: str) -> None:
        """Given a key, stop keeping it and free it in the journal (if it is still ours)."""
        self.forget(key)
        self._journal.release(key, self._owner)

    def forget(self, key: str) -> None:
        """Given a key, stop keeping it alive (its lease then runs out on its own)."""
        with self._lock:
            self._held.discard(key)
            self._lost.discard(key)

    def renew(self) -> None:
        """Renew every held claim now; flag those another owner took."""
        with self._lock:
            keys = self._held - self._lost
        if not keys:
            return
        try:
            still = self._journal.renew_all(keys, self._owner, self._lease)
        except JournalError as error:
            # The database may be back before the leases run out; an expired lease that
            # nobody took is still ours on the next renewal, so keep trying.
            log.warning("could not renew claims (%s); trying again", error.message)
            return
        with self._lock:
            # A key released while we were renewing is not lost, just gone.
            taken = (keys - still) & self._held
            self._lost |= taken
        for key in sorted(taken):
            log.warning("%s: another host took this over", key)

    def close(self) -> None:
        """Stop renewing (the claims themselves are released one by one, or run out)."""
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join()

    def _keep(self) -> None:
        interval = self._lease.total_seconds() / 3
        while not self._stop.wait(interval):
            self.renew()
