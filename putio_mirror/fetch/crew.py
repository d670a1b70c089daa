"""The workers that fill a part file's segments, and what one fetch's workers share.

A worker claims a segment (``SegmentTable.claim``: one nobody works on, else the
second half of the largest one still running), asks the node for its bytes and
writes each chunk at its place with ``os.pwrite``, CRC'd from the buffer it was
written from. After anything a fresh request may cure it asks again, with a fresh
node URL, after a wait that ``Patience`` sets; it gives up (TransientError) after
``max_outage`` seconds without a byte on any of the fetch's connections.

``may_continue`` is asked after every chunk and every quarter of a second of a wait, so
a stop or a closing window ends the fetch at a chunk boundary, and within a nap of a
pause between requests (a lone worker's too), never after it. A
node that ignores ``Range`` and sends the whole file restarts a segment from byte 0
with it (a sequential part is emptied first); any other segment reads past the bytes
before its own and writes from there: slow, but a node (or a proxy before it) that never
honours a range must not fail every big file forever.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from putio_mirror.core.errors import NodesDownError, NodesSilentError, TransientError
from putio_mirror.fetch.crc import crc32
from putio_mirror.fetch.leanget import streamed_get
from putio_mirror.fetch.nodehttp import (
    Patience,
    Retry,
    Stopped,
    body_start,
    byte_range,
    fresh_url,
)
from putio_mirror.fetch.partfile import WriteBehind, no_space_is_item_error, pwrite_all
from putio_mirror.fetch.pulse import Pulse
from putio_mirror.fetch.segments import Segment, SegmentTable
from putio_mirror.fetch.throttle import RateLimiter
from putio_mirror.fetch.values import FileToFetch
from putio_mirror.net.cutting import Cutter
from putio_mirror.net.sessions import sibling_of

logger = logging.getLogger(__name__)

# Waits are taken in naps, asking between them whether to go on: a window that closes, a
# SIGTERM or another worker's error mid-pause (up to 30 s) ends the fetch within a nap.
_NAP_SECONDS = 0.25
_METER_PIECE = 64 * 1024  # the limiter is asked in pieces, so a stop is noticed quickly


class Run:
    """One fetch in flight, shared by its ``workers``: the part's file descriptor, the
    stop signal, the first error, when the last byte arrived, and the caller's
    callbacks (called one at a time, so they need not be thread-safe)."""

    def __init__(
        self,
        item: FileToFetch,
        table: SegmentTable,
        fd: int,
        behind: WriteBehind,
        callbacks: tuple[Callable[[], bool], Callable[[int], None]],
        now: float,
        workers: int,
        trouble: Retry | None = None,
    ) -> None:
        self.item = item
        self.table = table
        self.fd = fd
        self.behind = behind
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.opening_url: str | None = None  # shared by the workers' first requests
        self.last_byte = now
        self.trouble = trouble  # met before this run began: the first worker waits on it
        # False once the node ignored a range: half a segment taken over would be read
        # past from byte 0 again, not fetched
        self.takeovers = True
        self.where = " on any connection" if workers > 1 else ""
        self._may_continue, self._on_progress = callbacks
        self._lock = threading.Lock()
        self._callbacks = threading.Lock()

    def check(self) -> None:
        """Raise Stopped if the fetch is stopping or ``may_continue`` says no."""
        if self.stop.is_set():
            raise Stopped
        with self._callbacks:
            going_on = self._may_continue()
        if not going_on:
            self.stop.set()
            raise Stopped

    def stopping(self) -> bool:
        """Say whether the fetch is stopping, asking ``may_continue`` as ``check`` does,
        without raising: for a wait within a chunk, whose bytes are written all the same."""
        try:
            self.check()
        except Stopped:
            return True
        return False

    def wrote(self, nbytes: int, now: float) -> None:
        with self._lock:
            self.last_byte = max(self.last_byte, now)
        with self._callbacks:
            self._on_progress(nbytes)

    def fail(self, error: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = error
        self.stop.set()

    def heard(self, now: float) -> None:
        """A byte came that is not written (one before a segment's own): the node lives."""
        with self._lock:
            self.last_byte = max(self.last_byte, now)

    def restart(self, segment: Segment, first: int) -> int:
        """Given a segment whose request from byte ``first`` got the whole file (HTTP 200),
        return how many of its bytes to read past: none for a segment starting at byte 0,
        started over (a sequential part emptied, its length being its progress); ``first``
        for any other, which goes on from where it was."""
        self.takeovers = False
        if segment.start != 0:
            logger.info(
                "put.io file %d: the node ignored the range bytes %d- (HTTP 200); "
                "reading past the %d bytes before it",
                self.item.file_id,
                first,
                first,
            )
            return first
        if not self.table.keeps_sidecar:
            with no_space_is_item_error(self.item.part_path):
                os.ftruncate(self.fd, 0)
        with self.table.lock:
            segment.done = segment.crc = 0
        return 0


@dataclass(frozen=True)
class Crew:
    """How every worker of a fetcher fetches: where node URLs come from, how patient
    it is, its chunk size, timeouts and smallest segment, the limiter shared by every
    connection, and the clock."""

    url_for: Callable[[int], str]
    patience: Patience
    chunk_size: int
    timeout: tuple[float, float]
    min_segment: int
    limiter: RateLimiter | None
    sleep: Callable[[float], None]
    monotonic: Callable[[], float]
    #: shared with the run's other fetchers (else this fetcher's alone: it has no others)
    pulse: Pulse = field(default_factory=Pulse, compare=False)
    url_lock: threading.Lock = field(default_factory=threading.Lock, compare=False)
    #: each thread's chunk buffer, refilled from request to request: a new one is a chunk
    #: of zeroed memory (memset, page faults) for every file
    buffers: threading.local = field(default_factory=threading.local, compare=False)
    #: cuts the reads in flight short at a stop or a window's end (``net/cutting``)
    cutter: Cutter | None = field(default=None, compare=False)

    def work_in_thread(self, run: Run, session: requests.Session) -> None:
        """One worker on a thread of its own, with a session of its own (over the pool of
        ``session``, the fetcher's)."""
        with sibling_of(session) as own:
            self.work(run, own)

    def work(self, run: Run, session: requests.Session) -> None:
        """One worker: fill segments until none is left to claim or take over; any error
        stops the run, which keeps it for the fetch (``Run.fail``)."""
        try:
            opening = True
            while not run.stop.is_set():
                segment = run.table.claim(self.min_segment if run.takeovers else run.item.size)
                if segment is None:
                    break
                self._fill(run, segment, session, opening)
                opening = False
        except Stopped:
            pass
        except BaseException as error:
            run.fail(error)

    def _fill(self, run: Run, segment: Segment, session: requests.Session, opening: bool) -> None:
        """Given a segment (``opening``: this worker's first), request and write its bytes
        until it is done; wait between failed requests."""
        failures = 0
        if opening and run.trouble is not None:  # the first failure, met by fetch_whole
            trouble, run.trouble = run.trouble, None
            self._pause(run, trouble, failures)
            failures, opening = 1, False  # its URL was used: ask for a fresh one
        while segment.left > 0:
            before = segment.done
            try:
                self._request(run, segment, session, opening)
            except Retry as trouble:
                failures = 0 if segment.done != before else failures
                self._pause(run, trouble, failures)
                failures += 1
            opening = False

    def _pause(self, run: Run, trouble: Retry, failures: int) -> None:
        """Given a failed request, wait before the next one; raise Stopped if the fetch
        may not go on, before or after the wait, TransientError after a long outage."""
        run.check()
        self.pulse.failed(run)
        silent = self.monotonic() - run.last_byte
        try:
            delay = self.patience.delay(
                run.item, trouble, silent=silent, failures=failures, where=run.where
            )
        except TransientError:
            # (An API that hands out no URL is put.io unreachable, told as such.)
            if not trouble.from_api:
                self._give_up(run, trouble, silent)
            raise
        # -v shows every retry: a person watching an outage sees why nothing moves
        logger.info(
            "put.io file %d: %s; retrying in %.1f s (no data for %.0f s; gives up after %.0f s)",
            run.item.file_id,
            trouble.reason,
            delay,
            silent,
            self.patience.max_outage,
        )
        self._wait(run, delay)
        run.check()

    def _wait(self, run: Run, delay: float) -> None:
        """Given a fetch and seconds to wait, sleep them in naps; return early once the fetch
        is stopping (``may_continue`` is asked after each nap, as between chunks)."""
        while delay > 0 and not run.stopping():
            nap = min(delay, _NAP_SECONDS)
            self.sleep(nap)
            delay -= nap

    def _give_up(self, run: Run, trouble: Retry, silent: float) -> None:
        """Given a fetch that gets no byte for ``max_outage``, raise NodesDownError or
        NodesSilentError if the others got none either (``pulse.py``); else return."""
        # Half the silence: in an outage the others' last bytes came about when this
        # file's did, not to the second; beside a file failing alone they keep coming.
        now = self.monotonic()
        verdict = self.pulse.gave_up(run, run.last_byte + silent / 2, now)
        if verdict == "down":
            raise nodes_down(silent, trouble) from trouble
        if verdict == "suspect":
            proven = functools.partial(self.pulse.got_bytes_after, now)
            raise NodesSilentError(
                f"no data from its node for {silent:.0f} s, nor to any other download: "
                f"{trouble.reason}",
                "if put.io's download nodes are down, the run stops once the next file "
                "fails too, and no file is counted as failing; else this file's node is "
                "broken, and the file waits before its next try",
                proven=proven,
            ) from trouble

    def _request(
        self, run: Run, segment: Segment, session: requests.Session, opening: bool
    ) -> None:
        """Given a segment, make one request for the rest of it and write what arrives;
        raise Retry for anything a fresh request may cure."""
        url = self._node_url(run, opening)
        with run.table.lock:
            first, last = segment.position, segment.end - 1
        asked = byte_range(first, last, run.item.size)
        with streamed_get(session, url, asked, self.timeout, self.cutter) as (response, read):
            skip = 0
            if body_start(response, first, run.item) != first:
                skip = run.restart(segment, first)
            elif asked is not None and response.status_code == 200:
                run.takeovers = False  # the whole file for a range from byte 0: see restart
            self._write_body(run, segment, read, skip)
        if segment.left > 0:
            raise Retry(f"the node sent a short body for bytes {first}-{last}")

    def _node_url(self, run: Run, opening: bool) -> str:
        """Return a node URL for the next request; raise Retry if put.io has none now.

        The opening requests of a fetch share one URL, so put.io is asked once per
        fetch, not once per connection, and the connections start together instead
        of one API round trip apart. Every later request (after a failure, or for a
        segment taken over) asks for a fresh one, as put.io's URLs may expire.
        """
        with self.url_lock:
            if opening and run.opening_url is not None:
                return run.opening_url
            url = fresh_url(self.url_for, run.item.file_id)
            if opening:
                run.opening_url = url
            return url

    def _write_body(
        self, run: Run, segment: Segment, read: Callable[[memoryview], int], skip: int
    ) -> None:
        """Given a node's body (``read``), write it after its first ``skip`` bytes."""
        # One buffer per thread, refilled in place: no new bytes object per chunk.
        buffer: memoryview | None = getattr(self.buffers, "chunk", None)
        if buffer is None:
            buffer = self.buffers.chunk = memoryview(bytearray(self.chunk_size))
        while count := read(buffer):
            chunk = buffer[:count]
            if skip:
                passed = min(skip, count)
                skip -= passed
                chunk = chunk[passed:]
                self._meter(run, passed)  # the bandwidth was spent all the same
                now = self.monotonic()
                run.heard(now)
                self.pulse.beat(now, run)
            if chunk and not self._write_chunk(run, segment, chunk):
                return
            run.check()

    def _write_chunk(self, run: Run, segment: Segment, chunk: memoryview) -> bool:
        """Given a chunk at the segment's position, write what belongs to the segment;
        return True if the segment wants more."""
        with run.table.lock:
            offset = segment.position
            size = segment.flight = min(len(chunk), segment.left)
        if size > 0:
            self._meter(run, size)
            pwrite_all(run.item.part_path, run.fd, chunk[:size], offset)
            run.behind.wrote(size)
        crc = crc32(chunk[:size], segment.crc)  # only this worker writes it
        with run.table.lock:
            segment.done += size
            segment.crc = crc
            segment.flight = 0
        # No sidecar write here: the next sync records this progress once it is on disk.
        now = self.monotonic()
        run.wrote(size, now)
        self.pulse.beat(now, run)
        return segment.left > 0

    def _meter(self, run: Run, size: int) -> None:
        """Given bytes read, wait until the limiter lets them through, unless the fetch
        stops meanwhile (a closed window does not wait for a low limit: ``run.stopping``)."""
        if self.limiter is None:
            return
        for start in range(0, size, _METER_PIECE):
            if run.stop.is_set():
                return  # the bytes are here anyway; writing them costs no bandwidth
            # (``may_continue`` asked only where the limiter makes it wait: not per piece)
            self.limiter.consume(min(_METER_PIECE, size - start), run.stopping)


def nodes_down(silent: float, trouble: Retry) -> NodesDownError:
    return NodesDownError(
        f"put.io's download nodes sent no data to any download for {silent:.0f} s: "
        f"{trouble.reason}",
        "put.io's storage or the network to it is down; no file is counted as failing, "
        "and the next run resumes every file from the bytes already fetched",
    )
