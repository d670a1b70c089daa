"""The workers of a run's downloads let in a few at a time, as many as its ``Crowd`` allows.

A run starts as many download workers as the files' sizes allow at most, and lets in as
many as put.io's distance calls for (``core/pacing.Crowd``); the others wait here, asleep,
costing nothing. Each worker has a seat: once let in, it keeps its place from one file to
the next (journaling the last one's end in between) until it leaves or the crowd shrinks
below the places held, so the same few threads go on while the others sleep. Handing the
place to a sleeping worker after every file woke a thread a file and sent the run's work
around every worker's cache: 0.2 ms of CPU a file of 1 MiB (issue 14).

Each turn (one file) is timed, with the waits for answers to begin made on its thread
(``net/waits``), and told to the crowd when it ends. A place whose turn (or whose time
between turns) has gone on for ``STUCK_AFTER`` is not counted: a node that hangs on a file
(until the read timeout, then its retries) holds up its own worker only, not the others.
"""

from __future__ import annotations

import contextlib
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


#: seconds after which a place no longer counts: far longer than a small file takes even
#: from far away; a larger file's turn that lasts longer lets in the files at once the sizes
#: allow, as before there was a crowd (waiting workers look again this often)
STUCK_AFTER = 1.0


class Gate:
    """Lets at most ``crowd.allowed`` workers hold a place at once, places stuck for
    ``STUCK_AFTER`` not counted; thread-safe."""

    def __init__(self, crowd: Crowd) -> None:
        self.crowd = crowd
        self._held: dict[int, float] = {}  # the places held, by seat: since when it is busy
        self._numbers = itertools.count()
        self._turns = threading.Condition()

    @contextmanager
    def seat(self) -> Iterator[Seat]:
        """Yield a worker's seat, for its whole life; when it ends, its place (if held)
        goes to a waiting worker."""
        seat = Seat(self, next(self._numbers))
        try:
            yield seat
        finally:
            with self._turns:
                if self._held.pop(seat.number, None) is not None:
                    self._wake()

    @contextmanager
    def turn_for(self, number: int) -> Iterator[Turn]:
        """Given a seat's number, keep its place or wait for one, then yield the turn; when
        it ends, tell the crowd how it went (if it counts) and keep the place."""
        with self._turns:
            if number in self._held and len(self._held) > self.crowd.allowed:
                del self._held[number]  # the crowd shrank: one fewer at once
            while number not in self._held and self._full():
                self._turns.wait(STUCK_AFTER)
            began = self._held[number] = time.monotonic()
        turn, waited = Turn(), waits.waited()
        try:
            yield turn
        finally:
            ended = time.monotonic()
            with self._turns:
                self._held[number] = ended  # busy still: journaling the file's end
                if turn.counted:
                    before = self.crowd.allowed
                    self.crowd.ended(waits.waited() - waited, ended - began)
                    if self.crowd.allowed != before:
                        log.debug("files at once: %d (were %d)", self.crowd.allowed, before)
                        self._wake()

    def _wake(self) -> None:
        """Wake as many waiting workers as there are places free, no more: each wakes a
        thread (lock held)."""
        self._turns.notify(max(0, self.crowd.allowed - len(self._held)))

    def _full(self) -> bool:
        """Whether the places held, those stuck left out, take every place (lock held)."""
        if len(self._held) < self.crowd.allowed:
            return False
        stuck_before = time.monotonic() - STUCK_AFTER
        going = sum(since > stuck_before for since in self._held.values())
        return going >= self.crowd.allowed


class Seat:
    """One worker's seat at the gate (``Gate.seat``): its turns, one a file."""

    __slots__ = ("_gate", "number")

    def __init__(self, gate: Gate, number: int) -> None:
        self._gate, self.number = gate, number

    def turn(self) -> contextlib.AbstractContextManager[Turn]:
        """Keep this seat's place or wait for one; the turn's context (see ``Gate``)."""
        return self._gate.turn_for(self.number)
