"""Fetch one put.io file over several connections at once, each filling its own byte range.

put.io caps the speed of each connection, so a big file goes faster as a few
contiguous segments fetched in parallel: each segment thread has its own session,
starts with the node URL the fetch opened with and asks for a fresh one on every
restart, requests ``Range: bytes=a-b`` and writes with ``os.pwrite`` into the
part file, which is first stretched (sparse) to the full size. A segment that
finishes early takes over the second half of the largest segment still running.
Small files, and the part left by ``download.Downloader`` when little is left, go
to a ``download.Downloader``: the contract is the same, so the executor can use
either downloader.

What it promises (as ``stream.py`` does, see ``partfile.py``): the final CRC32,
combined from the segments' running CRCs, proves the bytes on disk. Progress lives
beside the part in a sidecar (``segments.py``) that claims only bytes a completed
sync covered, so a stop, a crash, ``kill -9`` or a power cut resumes every segment
from its own offset (a kill costs the bytes written since the last background sync,
``sync_every``). On resume each segment's claimed bytes are read back and checked
against its CRC32; new bytes are CRC'd from the buffer they were written from and
count only once a sync covered them; a failed sync fails the file.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

from putio_mirror.core.retry import Backoff
from putio_mirror.fetch.crc import crc32
from putio_mirror.fetch.nodehttp import (
    DEFAULT_BACKOFF,
    Fetched,
    FileToFetch,
    Patience,
    Retry,
    Stopped,
    body_reader,
    body_start,
    fresh_url,
    node_get,
)
from putio_mirror.fetch.partfile import (
    SYNC_EVERY,
    SyncFunction,
    WriteBehind,
    check_whole,
    measure,
    no_space_is_item_error,
    open_nofollow,
    prepare,
    pwrite_all,
    size_of,
    sync_data,
)
from putio_mirror.fetch.segments import (
    Segment,
    SegmentTable,
    discard,
    fresh_table,
    load_table,
    sidecar_path,
)
from putio_mirror.fetch.stream import Downloader
from putio_mirror.fetch.throttle import RateLimiter

logger = logging.getLogger(__name__)

_NAP_SECONDS = 0.25  # backoff sleeps in slices, so a stopped fetch does not linger
_METER_PIECE = 64 * 1024  # the limiter is asked in pieces, so a stop is noticed quickly


class _Run:
    """One fetch in flight, shared by its segment threads: the part's file descriptor,
    the stop signal, the first error, when the last byte arrived, and the caller's
    callbacks (called one at a time, so they need not be thread-safe)."""

    def __init__(
        self,
        table: SegmentTable,
        fd: int,
        behind: WriteBehind,
        callbacks: tuple[Callable[[], bool], Callable[[int], None]],
        now: float,
    ) -> None:
        self.table = table
        self.fd = fd
        self.behind = behind
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.opening_url: str | None = None  # shared by the segments' first requests
        self.last_byte = now
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


class SegmentedDownloader:
    """Given a way to get a fresh node URL for a file id, fetch files into ``.part``
    files over up to ``connections`` parallel connections each.

    ``on_progress`` and ``may_continue`` are called from the segment threads, one
    call at a time: they need not be thread-safe, but must not assume the thread.
    ``url_for`` is also called one call at a time. A limiter, if given, is shared by
    every connection (and may be shared with other downloaders). ``sync`` puts a
    part's bytes on disk (every ``sync_every`` bytes, and at the end); a test passes
    one that fails, or one that records what the disk holds.
    """

    def __init__(
        self,
        url_for: Callable[[int], str],
        *,
        connections: int = 4,
        min_segment_size: int = 16 * 1024 * 1024,
        chunk_size: int = 256 * 1024,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_outage: float = 300.0,
        backoff: Backoff = DEFAULT_BACKOFF,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
        limiter: RateLimiter | None = None,
        sync: SyncFunction = sync_data,
        sync_every: int = SYNC_EVERY,
    ) -> None:
        self._url_for = url_for
        self._sync, self._sync_every = sync, sync_every
        self._connections = max(1, connections)
        self._min_segment = max(1, min_segment_size)
        self._chunk_size = chunk_size
        self._timeout = (connect_timeout, read_timeout)
        self._patience = Patience(backoff, max_outage, jitter)
        self._sleep = sleep
        self._monotonic = monotonic
        self._limiter = limiter
        self._url_lock = threading.Lock()
        self._single = Downloader(
            url_for,
            chunk_size=chunk_size,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_outage=max_outage,
            backoff=backoff,
            sleep=sleep,
            monotonic=monotonic,
            jitter=jitter,
            limiter=limiter,
            sync=sync,
            sync_every=sync_every,
        )

    def close(self) -> None:
        self._single.close()

    def discard(self, part: Path) -> None:
        """Given a part that failed verification, remove it and its sidecar."""
        discard(part)

    def fetch(
        self,
        item: FileToFetch,
        *,
        may_continue: Callable[[], bool] = lambda: True,
        on_progress: Callable[[int], None] = lambda n: None,
    ) -> Fetched:
        """Given a file to fetch, fill its part file up to ``item.size`` and verify it;
        return ``Fetched(False, n)`` if ``may_continue`` said no; raise TransientError
        after ``max_outage`` seconds without a byte on any connection, ChecksumMismatchError
        if the bytes are wrong, NoSpaceError if the disk is full, ItemError if it failed
        to store them, UnsafePathError if the part or its sidecar is a symlink."""
        with no_space_is_item_error(item.part_path):
            prepare(item)
        table = load_table(item, self._connections)
        if table is None:
            have = size_of(item.part_path) or 0
            pieces = min(self._connections, (item.size - have) // self._min_segment)
            if pieces < 2:
                return self._single.fetch(item, may_continue=may_continue, on_progress=on_progress)
            # A sequential part from the single-stream downloader becomes the first segment.
            have, have_crc = measure(item.part_path)
            table = fresh_table(item, have, have_crc, pieces, self._connections)
        if table.left() > 0:
            if not may_continue():
                return Fetched(False, table.done())
            self._run(item, table, may_continue, on_progress)
            if table.left() > 0:
                return Fetched(False, table.done())
        check_whole(item, size_of(item.part_path) or 0, table.crc32())
        sidecar_path(item.part_path).unlink(missing_ok=True)
        return Fetched(True, item.size)

    def _run(
        self,
        item: FileToFetch,
        table: SegmentTable,
        may_continue: Callable[[], bool],
        on_progress: Callable[[int], None],
    ) -> None:
        """Given a table with bytes left, fill them with segment threads; raise the first
        error any thread met, after all of them stopped and the sidecar was saved."""
        table.save()  # before the part grows: a part is never longer without a sidecar
        with no_space_is_item_error(item.part_path):
            fd = open_nofollow(item.part_path, os.O_RDWR | os.O_CREAT)
        behind = WriteBehind(
            fd, item.part_path, every=self._sync_every, sync=self._sync, on_sync=table.mark
        )
        run = _Run(table, fd, behind, (may_continue, on_progress), self._monotonic())
        try:
            if table.done():  # bytes found in the part: claimed once surely on disk
                run.behind.finish()
            with no_space_is_item_error(item.part_path):
                os.ftruncate(fd, item.size)
            self._crew(item, run)
            with no_space_is_item_error(item.part_path):
                run.behind.finish()
        finally:
            run.behind.join()
            os.close(fd)
            try:
                table.save()
            finally:
                table.close()
        if run.error is not None:
            raise run.error

    def _crew(self, item: FileToFetch, run: _Run) -> None:
        """Run the segment threads; return once all have ended (stopping them first if
        this thread is interrupted)."""
        started: list[threading.Thread] = []
        try:
            for number in range(self._connections):
                name = f"segment-{item.file_id}-{number}"
                thread = threading.Thread(
                    target=self._work, args=(item, run), name=name, daemon=True
                )
                thread.start()
                started.append(thread)
            for thread in started:
                thread.join()  # each thread checkpoints its own segments
        finally:
            run.stop.set()
            for thread in started:
                thread.join()

    def _work(self, item: FileToFetch, run: _Run) -> None:
        """One segment thread: fill segments until none is left to claim or take over."""
        try:
            with requests.Session() as session:
                opening = True
                while not run.stop.is_set():
                    segment = run.table.claim(self._min_segment)
                    if segment is None:
                        break
                    self._fill(item, run, segment, session, opening)
                    opening = False
        except Stopped:
            pass
        except BaseException as error:
            run.fail(error)

    def _fill(
        self,
        item: FileToFetch,
        run: _Run,
        segment: Segment,
        session: requests.Session,
        opening: bool,
    ) -> None:
        """Given a segment (``opening``: this thread's first), request and write its
        bytes until it is done; back off between failed requests; raise
        TransientError after a long silence."""
        failures = 0
        while segment.left > 0:
            run.check()
            before = segment.done
            try:
                self._request(item, run, segment, session, opening)
            except Retry as trouble:
                failures = 0 if segment.done != before else failures
                self._pause(item, run, trouble, failures)
                failures += 1
            opening = False

    def _pause(self, item: FileToFetch, run: _Run, trouble: Retry, failures: int) -> None:
        silent = self._monotonic() - run.last_byte
        delay = self._patience.delay(
            item, trouble, silent=silent, failures=failures, where=" on any connection"
        )
        logger.debug("file %d: %s; retrying in %.1f s", item.file_id, trouble.reason, delay)
        while delay > 0 and not run.stop.is_set():
            self._sleep(min(delay, _NAP_SECONDS))
            delay -= _NAP_SECONDS

    def _request(
        self,
        item: FileToFetch,
        run: _Run,
        segment: Segment,
        session: requests.Session,
        opening: bool,
    ) -> None:
        """Given a segment, make one request for the rest of it and write what arrives;
        raise Retry for anything a fresh request may cure."""
        url = self._node_url(item, run, opening)
        with run.table.lock:
            first, last = segment.position, segment.end - 1
        with node_get(session, url, f"{first}-{last}", self._timeout) as response:
            if body_start(response, first, item) != first:
                raise Retry(f"the node ignored the range bytes {first}- (HTTP 200)")
            self._write_body(item, run, segment, response)
        if segment.left > 0:
            raise Retry(f"the node sent a short body for bytes {first}-{last}")

    def _node_url(self, item: FileToFetch, run: _Run, opening: bool) -> str:
        """Return a node URL for the next request; raise Retry if put.io has none now.

        The opening requests of a fetch share one URL, so put.io is asked once per
        fetch, not once per connection, and the connections start together instead
        of one API round trip apart. Every later request (after a failure, or for a
        segment taken over) asks for a fresh one, as put.io's URLs may expire.
        """
        with self._url_lock:
            if opening and run.opening_url is not None:
                return run.opening_url
            url = fresh_url(self._url_for, item.file_id)
            if opening:
                run.opening_url = url
            return url

    def _write_body(
        self, item: FileToFetch, run: _Run, segment: Segment, response: requests.Response
    ) -> None:
        # One buffer per request, refilled in place: no new bytes object per chunk.
        buffer = memoryview(bytearray(self._chunk_size))
        read = body_reader(response)
        while count := read(buffer):
            if not self._write_chunk(item, run, segment, buffer[:count]):
                return
            run.check()

    def _write_chunk(
        self, item: FileToFetch, run: _Run, segment: Segment, chunk: memoryview
    ) -> bool:
        """Given a chunk at the segment's position, write what belongs to the segment;
        return True if the segment wants more."""
        with run.table.lock:
            offset = segment.position
            size = segment.flight = min(len(chunk), segment.left)
        if size > 0:
            self._meter(run, size)
            pwrite_all(item.part_path, run.fd, chunk[:size], offset)
            run.behind.wrote(size)
        crc = crc32(chunk[:size], segment.crc)  # only this thread writes it
        with run.table.lock:
            segment.done += size
            segment.crc = crc
            segment.flight = 0
        # No sidecar write here: the next sync records this progress once it is on disk.
        run.wrote(size, self._monotonic())
        return segment.left > 0

    def _meter(self, run: _Run, size: int) -> None:
        if self._limiter is None:
            return
        for start in range(0, size, _METER_PIECE):
            if run.stop.is_set():
                return  # the bytes are here anyway; writing them costs no bandwidth
            self._limiter.consume(min(_METER_PIECE, size - start))
