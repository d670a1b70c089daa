"""The workers of a run's downloads let in a few at a time, as many as its ``Crowd`` allows.

A run starts as many download workers as the files' sizes allow at most, and lets in as
many as put.io's distance calls for (``core/pacing.Crowd``); the others wait here, asleep,
costing nothing. Each turn (one file) is timed, with the waits for answers to begin made
on its thread (``net/waits``), and told to the crowd when it ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
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


class Gate:
    """Lets at most ``crowd.allowed`` workers take a turn at once; thread-safe."""

    def __init__(self, crowd: Crowd, clock: Callable[[], float] = time.monotonic) -> None:
        self.crowd = crowd
        self._clock = clock
        self._inside = 0
        self._turns = threading.Condition()

    @contextmanager
    def turn(self) -> Iterator[Turn]:
        """Wait for a place, then yield the turn; when it ends, tell the crowd how it went
        (if it counts) and let the next worker in."""
        with self._turns:
            while self._inside >= self.crowd.allowed:
                self._turns.wait()
            self._inside += 1
        turn, began, waited = Turn(), self._clock(), waits.waited()
        try:
            yield turn
        finally:
            took = self._clock() - began
            with self._turns:
                self._inside -= 1
                if turn.counted:
                    before = self.crowd.allowed
                    self.crowd.ended(waits.waited() - waited, took)
                    if self.crowd.allowed != before:
                        log.debug("files at once: %d (were %d)", self.crowd.allowed, before)
                # as many woken as there are places free (no more: each wakes a thread)
                self._turns.notify(self.crowd.allowed - self._inside)
