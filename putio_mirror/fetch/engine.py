"""Fetch one put.io file into a ``.part`` file: in segments, resumable, CRC32-verified.

put.io caps the speed of each connection, so a big file goes faster as a few
contiguous segments fetched in parallel: one worker thread per connection, each with
its own session, writing with ``os.pwrite`` into the part, which is first stretched
(sparse) to the full size (``crew.py``). A file too small to split is one segment from
byte 0, fetched in the caller's thread on the fetcher's own session (kept alive from
file to file) and written in order, with no sidecar: many small files cost no thread
and no sidecar each. Either way one path resumes, retries, stops and verifies.

What it promises (see ``partfile.py``): the final CRC32, combined from the segments'
running CRCs, proves the bytes on disk. A segmented part's progress lives beside it in
a sidecar (``segments.py``) that claims only bytes a completed sync covered, so a stop,
a crash, ``kill -9`` or a power cut resumes every segment from its own offset; on
resume each segment's claimed bytes are read back and checked against its CRC32. A
part without a sidecar (a sequential one, also as earlier versions' single-stream
engine left it) is read back in full and counted as it is now. New bytes are CRC'd
from the buffer they were written from and count only once a sync covered them; a
failed sync fails the file.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

from putio_mirror.core.retry import Backoff
from putio_mirror.fetch.crew import Crew, Run
from putio_mirror.fetch.nodehttp import DEFAULT_BACKOFF, Patience, Retry
from putio_mirror.fetch.partfile import (
    SYNC_EVERY,
    PartFolders,
    SyncFunction,
    WriteBehind,
    check_whole,
    measure,
    no_space_is_item_error,
    open_nofollow,
    prepare,
    sync_data,
)
from putio_mirror.fetch.pulse import Pulse
from putio_mirror.fetch.segments import (
    SegmentTable,
    discard,
    fresh_table,
    load_table,
    sidecar_path,
)
from putio_mirror.fetch.throttle import RateLimiter
from putio_mirror.fetch.values import Fetched, FileToFetch
from putio_mirror.fetch.whole import WHOLE_AT_MOST, WHOLE_CHUNKS, Pace, fetch_whole
from putio_mirror.net.cutting import Cutter
from putio_mirror.net.sessions import Session


class Fetcher:
    """Given a way to get a fresh node URL for a file id, fetch files into ``.part``
    files over up to ``connections`` parallel connections each, in segments of at least
    ``min_segment_size`` bytes.

    ``on_progress`` and ``may_continue`` may be called from worker threads, one call
    at a time: they need not be thread-safe, but must not assume the thread.
    ``url_for`` is also called one call at a time. A limiter, if given, is charged for
    every chunk before it is written, and is shared by every connection (and may be
    shared with other fetchers). ``sync`` puts a part's bytes on disk (every
    ``sync_every`` bytes, and at the end); a test passes one that fails, or one that
    records what the disk holds. ``session`` (else one of its own) serves the fetches
    that take one connection. ``pulse``, shared by the fetchers of a run, tells put.io's
    nodes down for everyone from one file's failing (``pulse.py``). ``cutter``, shared
    by the fetchers of a run, ends their reads at once when the run stops (a node silent
    would hold each for its read timeout).
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
        session: requests.Session | None = None,
        limiter: RateLimiter | None = None,
        sync: SyncFunction = sync_data,
        sync_every: int = SYNC_EVERY,
        pulse: Pulse | None = None,
        cutter: Cutter | None = None,
    ) -> None:
        self._crew = Crew(
            url_for,
            Patience(backoff, max_outage, jitter),
            chunk_size,
            (connect_timeout, read_timeout),
            max(1, min_segment_size),
            limiter,
            sleep,
            monotonic,
            pulse or Pulse(),
            cutter=cutter,
        )
        self._connections = max(1, connections)
        self._sync, self._sync_every = sync, sync_every
        self._owns_session = session is None
        self._session = session if session is not None else Session()
        self._folders = PartFolders()

    def close(self) -> None:
        self._folders.close()
        if self._owns_session:
            self._session.close()

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
        trouble, started = None, self._crew.monotonic()
        if self._whole(item) and may_continue():
            # fetch_whole makes the part (and its folder) only where none is: no need to
            # look for it first
            with self._crew.pulse.tracking(item, started):  # in flight, not failing
                handed = fetch_whole(
                    item,
                    self._folders,
                    self._crew.url_for,
                    self._session,
                    self._crew.timeout,
                    self._sync,
                    on_progress,
                    self._crew.cutter,
                    Pace(self._crew.chunk_size, may_continue),
                )
            if isinstance(handed, Fetched):
                self._crew.pulse.beat(self._crew.monotonic())  # the nodes answer
                self._crew.pulse.answered(item.file_id)
                return handed
            trouble = handed
        fd = self._folders.new_part(item.part_path) if self._sequential(item) else None
        # a new part, written in order: no part to look for, nor a sidecar (one left
        # alone is tidied by a run: ``local/staging.list_staging``; one never counts
        # unproven: ``segments._prove``)
        if fd is not None:
            table = fresh_table(item, 0, 0, 1, self._connections)
        else:
            with no_space_is_item_error(item.part_path):
                part_exists = prepare(item)  # the usual path's look, whatever is there
            table = self._table(item, part_exists)
        left = table.left()
        if left and not may_continue():
            if fd is not None:
                os.close(fd)  # the new part stays, empty: the next fetch resumes it
            return Fetched(False, table.done())
        if left or item.size == 0:  # the part of an empty file is made here
            self._run(item, table, may_continue, on_progress, (trouble, started), fd)
            if table.left():
                return Fetched(False, table.done())
        check_whole(item, table.done(), table.crc32())
        if table.keeps_sidecar:
            sidecar_path(item.part_path).unlink(missing_ok=True)
        self._crew.pulse.answered(item.file_id)
        return Fetched(True, item.size)

    def _whole(self, item: FileToFetch) -> bool:
        """Whether a file may be fetched in one request (``whole.py``): it spans at most
        ``WHOLE_CHUNKS`` chunks (and ``WHOLE_AT_MOST``), and no limiter needs to meter
        its bytes."""
        most = min(WHOLE_CHUNKS * self._crew.chunk_size, WHOLE_AT_MOST)
        small = 0 < item.size <= most
        return small and self._crew.limiter is None

    def _sequential(self, item: FileToFetch) -> bool:
        """Whether a file with no part yet is fetched as one sequential segment: too small
        to split in two segments of ``min_segment_size`` (or one connection)."""
        return min(self._connections, item.size // self._crew.min_segment) < 2

    def _table(self, item: FileToFetch, part_exists: bool) -> SegmentTable:
        """Return the segments to fill: the sidecar's; else the part's bytes (read back,
        if ``prepare`` found a part) as done and the rest in as many segments as there
        are connections with ``min_segment_size`` bytes each (fewer than two: one
        sequential segment)."""
        table = load_table(item, self._connections)
        if table is not None:
            return table
        have, have_crc = measure(item.part_path) if part_exists else (0, 0)
        pieces = min(self._connections, (item.size - have) // self._crew.min_segment)
        return fresh_table(item, have, have_crc, pieces, self._connections)

    def _run(
        self,
        item: FileToFetch,
        table: SegmentTable,
        may_continue: Callable[[], bool],
        on_progress: Callable[[int], None],
        since: tuple[Retry | None, float],
        fd: int | None = None,
    ) -> None:
        """Given a table, fill what is left with its workers; raise the first error any
        of them met, after all of them stopped, the part was synced and the sidecar
        saved. ``since``: the trouble a one-request fetch met (waited on first, as the
        first failure) and when that fetch began (the outage clock runs from then).
        ``fd``: the part, opened already (closed here), else it is opened here."""
        if fd is None:
            table.save()  # before the part grows: a part is never longer without a sidecar
            with no_space_is_item_error(item.part_path):
                fd = open_nofollow(item.part_path, os.O_RDWR | os.O_CREAT)
        behind = WriteBehind(
            fd, item.part_path, every=self._sync_every, sync=self._sync, on_sync=table.mark
        )
        # A sequential part must stay in order: one worker, who cannot take over a half.
        workers = self._connections if table.keeps_sidecar else 1
        callbacks = (may_continue, on_progress)
        trouble, started = since
        run = Run(item, table, fd, behind, callbacks, started, workers, trouble)
        try:
            with no_space_is_item_error(item.part_path), self._crew.pulse.tracking(run, started):
                if table.keeps_sidecar:
                    _stretch(run)
                self._work(run, workers)
                behind.finish()
        finally:
            behind.join()
            os.close(fd)
            try:
                table.save()
            finally:
                table.close()
        if run.error is not None:
            raise run.error

    def _work(self, run: Run, workers: int) -> None:
        """Run the workers: a lone one in this thread, on the fetcher's session; several
        on threads of their own, returning once all have ended (stopping them first if
        this thread is interrupted)."""
        if workers == 1:
            self._crew.work(run, self._session)
            return
        started: list[threading.Thread] = []
        try:
            for number in range(workers):
                name = f"segment-{run.item.file_id}-{number}"
                thread = threading.Thread(
                    target=self._crew.work_in_thread,
                    args=(run, self._session),
                    name=name,
                    daemon=True,
                )
                thread.start()
                started.append(thread)
            for thread in started:
                thread.join()  # each thread checkpoints its own segments
        finally:
            run.stop.set()
            for thread in started:
                thread.join()


def _stretch(run: Run) -> None:
    """Given a segmented run, make the bytes found in the part durable (then the sidecar
    claims them), and stretch the part, sparse, to the file's size."""
    if run.table.done():
        run.behind.finish()
    os.ftruncate(run.fd, run.item.size)
