"""What the fetches of a run share to tell a node failing one file from put.io's download
nodes failing every file: which fetches are in flight, which of them are failing (a request
failed since their last byte), and when a byte last arrived on any of them.

A file that gets no byte for ``max_outage`` seconds fails alone: it is journaled as a
failure and waits before its next try, so one broken file never stalls the rest. But when
every other fetch in flight is failing too and none got a byte for a while, the nodes are
down for everyone. Counting that against each file would make every file wait (a pause
that doubles with each failure) once the nodes are back, and trying each file in turn
would keep the run going for hours: ``max_outage`` a file, thousands of files.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager


class Pulse:
    """Thread-safe: every fetch of a run tells it when its bytes arrive and when a request
    of it fails."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_byte = -math.inf
        self._failing: dict[Hashable, bool] = {}  # the fetches in flight
        self._down = False  # said of a fetch since the last byte anywhere

    @contextmanager
    def tracking(self, fetch: Hashable) -> Iterator[None]:
        """Within this block, ``fetch`` is in flight."""
        with self._lock:
            self._failing[fetch] = False
        try:
            yield
        finally:
            with self._lock:
                del self._failing[fetch]

    def beat(self, now: float, fetch: Hashable | None = None) -> None:
        """Bytes arrived at ``now``: of ``fetch``, or of a fetch not tracked (a small file
        fetched in one request)."""
        with self._lock:
            self._last_byte = max(self._last_byte, now)
            if fetch in self._failing:
                self._failing[fetch] = False
            self._down = False

    def failed(self, fetch: Hashable) -> None:
        """A request of ``fetch`` failed."""
        with self._lock:
            self._failing[fetch] = True

    def everyone_silent(self, since: float) -> bool:
        """Whether no fetch got a byte after ``since`` and every fetch in flight is failing,
        with another beside the asker's (or the nodes were already found down: the last
        fetch to give up may be alone by then)."""
        with self._lock:
            failing = all(self._failing.values())
            beside = len(self._failing) > 1 or self._down
            silent = failing and beside and self._last_byte <= since
            self._down = self._down or silent
            return silent
