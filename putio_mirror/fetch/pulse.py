"""What the fetches of a run share to tell a node failing one file from put.io's download
nodes failing every file: when a byte last arrived on any of them, and how many are in
flight.

A file that gets no byte for ``max_outage`` seconds fails alone: it is journaled as a
failure and waits before its next try, so one broken file never stalls the rest. But when
other fetches were in flight and none of them got a byte either, the nodes are down for
everyone. Counting that against each file would make every file wait (a pause that
doubles with each failure) once the nodes are back, and trying each file in turn would
keep the run going for hours: ``max_outage`` a file, thousands of files.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Pulse:
    """Thread-safe: every fetch of a run beats it with the time its bytes arrived."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_byte = -math.inf
        self._in_flight = 0
        self._down = False  # said of a fetch since the last byte anywhere

    def beat(self, now: float) -> None:
        with self._lock:
            self._last_byte = max(self._last_byte, now)
            self._down = False

    @contextmanager
    def in_flight(self) -> Iterator[None]:
        """Within this block, one fetch more is in flight."""
        with self._lock:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    def everyone_silent(self, since: float) -> bool:
        """Whether no fetch got a byte after ``since`` while another is in flight, or
        while the nodes were already found down (the last to give up is alone by then)."""
        with self._lock:
            silent = (self._in_flight > 1 or self._down) and self._last_byte <= since
            self._down = self._down or silent
            return silent
