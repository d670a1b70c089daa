"""The workers of a run's downloads let in a few at a time, as many as its ``Crowd`` allows.

A run starts as many download workers as the files' sizes allow at most, and lets in as
many as put.io's distance calls for (``core/pacing.Crowd``); the others wait here, asleep,
costing nothing. Each turn (one file) is timed, with the waits for answers to begin made
on its thread (``net/waits``), and told to the crowd when it ends. A turn that has gone on
for ``STUCK_AFTER`` no longer holds a place: a node that hangs on a file (until the read
timeout, then its retries) holds up its own worker only, not the others.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from putio_mirror.core.pacing import Crowd
from putio_mirror.net import waits

log = logging.getLogger(__name__)


class Turn:
    """One worker's turn: counted by the crowd only if it performed a file (``counts``)."""

    __slots__ = ("counted",)

    def __init__(self) -> None:
        self.counted = False

    def counts(self) -> None:
        self.counted = True


#: seconds after which a turn no longer holds a place: far longer than a small file takes
#: even from far away; a larger file's turn that lasts longer lets in the files at once the
#: sizes allow, as before there was a crowd (waiting workers look again this often)
STUCK_AFTER = 1.0


class Gate:
    """Lets at most ``crowd.allowed`` workers take a turn at once, turns stuck for
    ``STUCK_AFTER`` not counted; thread-safe."""

    def __init__(self, crowd: Crowd) -> None:
        self.crowd = crowd
        self._began: dict[int, float] = {}  # the turns inside, by number: when each began
        self._numbers = itertools.count()
        self._turns = threading.Condition()

    @contextmanager
    def turn(self) -> Iterator[Turn]:
        """Wait for a place, then yield the turn; when it ends, tell the crowd how it went
        (if it counts) and let the next worker in."""
        with self._turns:
            while self._full():
                self._turns.wait(STUCK_AFTER)
            number, began = next(self._numbers), time.monotonic()
            self._began[number] = began
        turn, waited = Turn(), waits.waited()
        try:
            yield turn
        finally:
            took = time.monotonic() - began
            with self._turns:
                del self._began[number]
                if turn.counted:
                    before = self.crowd.allowed
                    self.crowd.ended(waits.waited() - waited, took)
                    if self.crowd.allowed != before:
                        log.debug("files at once: %d (were %d)", self.crowd.allowed, before)
                # as many woken as there are places free (no more: each wakes a thread)
                self._turns.notify(max(0, self.crowd.allowed - len(self._began)))

    def _full(self) -> bool:
        """Whether the turns inside, those stuck left out, take every place (lock held)."""
        if len(self._began) < self.crowd.allowed:
            return False
        stuck_before = time.monotonic() - STUCK_AFTER
        going = sum(began > stuck_before for began in self._began.values())
        return going >= self.crowd.allowed
