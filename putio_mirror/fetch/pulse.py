"""What the fetches of a run share to tell a node failing one file from put.io's download
nodes failing every file: which fetches are in flight and since when, which of them are
failing (a request failed since their last byte), and when a byte last arrived on any.

A file that gets no byte for ``max_outage`` seconds fails alone: it is journaled as a
failure and waits before its next try, so one broken file never stalls the rest. But when
every other fetch in flight is failing too and none got a byte for a while, either the
nodes are down for everyone, or the files in flight are all broken ones. Counting an
outage against each file would make every file wait (a pause that doubles with each
failure) once the nodes are back; stopping the run at broken files would stop every run
at them, and the files behind them would never come. So the fetches that give up first
are only *suspected* (``gave_up`` says SUSPECT): the run starts the next files, and
  - if one of those gives up silent too, the nodes are down for everyone (DOWN): the run
    stops, and nobody is counted as failing;
  - if bytes arrive after a suspect gave up (``got_bytes_after``), the suspect failed on
    its own, and its failure is counted then.

A lone fetch (``parallel_files: 1``) that gives up silent is a suspect too.

Where the run has a file not in doubt (one this run fetched whole, or one mirrored before),
a *witness* settles it at once (``witness.py``): before a fetch that gives up amid silence
is called a suspect, or proof of an outage, that file is asked for its first byte. A byte
is a byte like any other: the nodes work, the fetch failed alone (as did any suspect
before it); no byte is a second file silent, proof of an outage (DOWN) as the next
fetch's would be. So
broken files more than downloads at once, at the head of the queue or all a run has left,
neither stop every run nor go uncounted. One witness is asked at a time; a silence it met
after a fetch's own last byte answers for that fetch too.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

#: files fetched whole lately that the pulse keeps as witnesses, the newest first
_ANSWERED_KEPT = 4

#: what a fetch that gives up is: failing on its own, one of a silent lot, or proof of an
#: outage of every node
Verdict = Literal["alone", "suspect", "down"]


class Pulse:
    """Thread-safe: every fetch of a run tells it when its bytes arrive and when a request
    of it fails."""

    def __init__(self, witness: Callable[[Sequence[int]], bool | None] | None = None) -> None:
        self._lock = threading.Lock()
        # whether a node sends a byte of a file not in doubt (None: no file to ask), given
        # the files this run fetched whole lately (the freshest witnesses)
        self._witness = witness
        self._answered: deque[int] = deque(maxlen=_ANSWERED_KEPT)
        self._asking = threading.Lock()  # one witness asked at a time
        self._witness_silent_at = -math.inf  # a witness got no byte, at
        self._last_byte = -math.inf
        self._failing: dict[Hashable, bool] = {}  # the fetches in flight
        self._started: dict[Hashable, float] = {}  # ... and when each began
        self._suspected_at: float | None = None  # a fetch gave up amid silence, at
        self._down = False  # found since the last byte anywhere

    @contextmanager
    def tracking(self, fetch: Hashable, started: float) -> Iterator[None]:
        """Within this block, ``fetch`` (begun at ``started``) is in flight."""
        with self._lock:
            self._failing[fetch] = False
            self._started[fetch] = started
        try:
            yield
        finally:
            with self._lock:
                del self._failing[fetch], self._started[fetch]

    def beat(self, now: float, fetch: Hashable | None = None) -> None:
        """Bytes arrived at ``now``: of ``fetch``, or of a fetch not tracked (a small file
        fetched in one request). The nodes work: any suspicion is over."""
        with self._lock:
            self._last_byte = max(self._last_byte, now)
            if fetch in self._failing:
                self._failing[fetch] = False
            self._down = False
            self._suspected_at = None

    def answered(self, file_id: int) -> None:
        """Every byte of put.io file ``file_id`` came: a witness if another file is in doubt."""
        with self._lock:
            self._answered.appendleft(file_id)

    def failed(self, fetch: Hashable) -> None:
        """A request of ``fetch`` failed."""
        with self._lock:
            self._failing[fetch] = True

    def gave_up(self, fetch: Hashable, since: float, now: float) -> Verdict:
        """Given a fetch that gives up at ``now`` with no byte of its own after ``since``,
        say what it is: "alone" if bytes came elsewhere meanwhile, or a fetch in flight beside
        it was not failing; "suspect" if it was in flight when a fetch first gave up
        amid silence (that one included); "down" once a fetch begun after that gives up
        silent too. Before "suspect" or "down", the witness (if any) is asked."""
        if self._in_doubt(since):
            self._ask_witness(since, now)
        with self._lock:
            if self._last_byte > since:
                return "alone"
            if self._down or self._witness_silent_at > since:
                # a file not in doubt got no byte either: as good a proof as the next
                # fetch's silence, and the run need not spend a max_outage finding it
                self._down = True
                return "down"
            if self._suspected_at is None:
                if not all(self._failing.values()):
                    return "alone"
                self._suspected_at = now
                return "suspect"
            if self._started[fetch] <= self._suspected_at:
                return "suspect"
            self._down = True
            return "down"

    def _in_doubt(self, since: float) -> bool:
        """Whether a fetch silent since ``since`` would be a suspect or proof of an outage."""
        with self._lock:
            if self._last_byte > since:
                return False
            return self._down or self._suspected_at is not None or all(self._failing.values())

    def _ask_witness(self, since: float, now: float) -> None:
        """Ask the witness whether the nodes send a byte, unless it was asked during this
        silence already (or a byte came meanwhile); a byte beats as any other."""
        if self._witness is None:
            return
        with self._asking:
            with self._lock:
                if self._last_byte > since or self._witness_silent_at > since:
                    return
            with self._lock:
                answered = tuple(self._answered)
            answer = self._witness(answered)
            if answer:
                self.beat(now)
            elif answer is not None:
                with self._lock:
                    self._witness_silent_at = now

    def got_bytes_after(self, when: float) -> bool:
        """Whether a byte arrived anywhere after ``when`` (a suspect then failed alone)."""
        with self._lock:
            return self._last_byte > when
