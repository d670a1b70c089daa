"""Fetch one put.io file into a ``.part`` file: resumable, stall-proof, CRC32-verified.

The node URL comes from ``url_for`` (put.io's ``files/{id}/url``) and is
fetched afresh on every (re)start, because node URLs expire and nodes stall.
Bytes already on disk are never thrown away except when the node ignores our
``Range`` and sends the whole file again. The caller renames the finished part
into place; this module only fills and verifies it.

What it promises (as ``engine.py`` does, see ``partfile.py``): the final CRC32
proves the bytes on disk. A resumed part is read back in full (``measure``) before
the first request, so bytes a power cut lost or mangled are counted as they are now;
new bytes are CRC'd from the buffer they were written from, and the file is complete
only once ``sync`` covered them without error (a failed sync fails the file).
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
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
    sync_data,
)
from putio_mirror.fetch.throttle import RateLimiter

# FileToFetch and Fetched are the fetchers' contract; callers know them from here.
__all__ = ["DEFAULT_BACKOFF", "Downloader", "Fetched", "FileToFetch"]

logger = logging.getLogger(__name__)


class _Part:
    """The open ``.part`` file, its length and the running CRC32 of its bytes.

    Writes are unbuffered: chunks are large anyway, and without a buffer the
    length and CRC always describe exactly the bytes the OS accepted, even when
    the disk fills up in the middle of a chunk.
    """

    def __init__(self, path: Path, chunk_size: int, sync: SyncFunction, sync_every: int) -> None:
        self.path = path
        self.offset, self.crc = measure(path, chunk_size)
        with no_space_is_item_error(path):
            fd = open_nofollow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        self._file = os.fdopen(fd, "ab", buffering=0)
        self._behind = WriteBehind(fd, path, every=sync_every, sync=sync)

    def write(self, view: memoryview) -> None:
        while view:
            with no_space_is_item_error(self.path):
                written = self._file.write(view) or 0
            self.crc = crc32(view[:written], self.crc)
            self.offset += written
            view = view[written:]
            self._behind.wrote(written)

    def restart(self) -> None:
        """Throw away every byte: the node sent the whole file instead of the range asked."""
        with no_space_is_item_error(self.path):
            self._file.truncate(0)
        self.offset, self.crc = 0, 0

    def close(self) -> None:
        try:
            with no_space_is_item_error(self.path):
                self._behind.finish()
        finally:
            self._file.close()


class Downloader:
    """Given a way to get a fresh node URL for a file id, fetch files into ``.part`` files.

    A limiter, if given, is charged for every chunk before it is written (and may be
    shared with other downloaders). ``sync`` puts a part's bytes on disk (every
    ``sync_every`` bytes, and at the end); a test passes one that fails.
    """

    def __init__(
        self,
        url_for: Callable[[int], str],
        *,
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
    ) -> None:
        self._url_for = url_for
        self._sync = sync
        self._sync_every = sync_every
        self._chunk_size = chunk_size
        self._timeout = (connect_timeout, read_timeout)
        self._patience = Patience(backoff, max_outage, jitter)
        self._sleep = sleep
        self._monotonic = monotonic
        self._limiter = limiter
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def discard(self, part: Path) -> None:
        """Given a part that failed verification, remove it: the next fetch starts at zero."""
        part.unlink(missing_ok=True)

    def fetch(
        self,
        item: FileToFetch,
        *,
        may_continue: Callable[[], bool] = lambda: True,
        on_progress: Callable[[int], None] = lambda n: None,
    ) -> Fetched:
        """Given a file to fetch, fill its part file up to ``item.size`` and verify it;
        return ``Fetched(False, n)`` if ``may_continue`` said no; raise TransientError
        after ``max_outage`` seconds without a byte, ChecksumMismatchError if the bytes
        are wrong, NoSpaceError if the disk is full, ItemError if it failed to store
        them, UnsafePathError if the part is a symlink."""
        with no_space_is_item_error(item.part_path):
            prepare(item)
        part = _Part(item.part_path, self._chunk_size, self._sync, self._sync_every)
        try:
            if part.offset < item.size:
                if not may_continue():
                    return Fetched(False, part.offset)
                self._fill(item, part, may_continue, on_progress)
        except Stopped:
            return Fetched(False, part.offset)
        finally:
            part.close()
        _verify(item, part)
        return Fetched(True, part.offset)

    def _fill(
        self,
        item: FileToFetch,
        part: _Part,
        may_continue: Callable[[], bool],
        on_progress: Callable[[int], None],
    ) -> None:
        """Given an open part, request and write bytes until it holds ``item.size``;
        back off between failed requests; raise TransientError after a long outage."""
        progress = _Watch(self._monotonic(), part.offset)
        while part.offset < item.size:
            try:
                self._request(item, part, may_continue, on_progress)
            except Retry as trouble:
                progress.note(self._monotonic(), part.offset)
                self._pause(item, progress, trouble, may_continue)

    def _pause(
        self,
        item: FileToFetch,
        progress: _Watch,
        trouble: Retry,
        may_continue: Callable[[], bool],
    ) -> None:
        """Given a failed request, wait before the next one; raise Stopped if
        ``may_continue`` says no before or after the wait (a stop or a closing window
        must not wait for an outage to end), TransientError after a long outage."""
        if not may_continue():
            raise Stopped
        silent = self._monotonic() - progress.since
        delay = self._patience.delay(item, trouble, silent=silent, failures=progress.failures)
        logger.debug("file %d: %s; retrying in %.1f s", item.file_id, trouble.reason, delay)
        self._sleep(delay)
        progress.failures += 1
        if not may_continue():
            raise Stopped

    def _request(
        self,
        item: FileToFetch,
        part: _Part,
        may_continue: Callable[[], bool],
        on_progress: Callable[[int], None],
    ) -> None:
        """Given the part so far, make one request for the rest and write what arrives;
        raise Retry for anything a fresh request may cure."""
        url = fresh_url(self._url_for, item.file_id)
        byte_range = f"{part.offset}-" if part.offset else None
        with node_get(self._session, url, byte_range, self._timeout) as response:
            if body_start(response, part.offset, item) != part.offset:
                part.restart()  # the node ignored Range and is sending the whole file
            self._write_body(response, part, may_continue, on_progress)
        if part.offset < item.size:
            raise Retry(f"the node sent a short body ({part.offset} of {item.size} bytes)")

    def _write_body(
        self,
        response: requests.Response,
        part: _Part,
        may_continue: Callable[[], bool],
        on_progress: Callable[[int], None],
    ) -> None:
        # One buffer per request, refilled in place: no new bytes object per chunk.
        buffer = memoryview(bytearray(self._chunk_size))
        read = body_reader(response)
        while count := read(buffer):
            if self._limiter is not None:
                self._limiter.consume(count)
            part.write(buffer[:count])
            on_progress(count)
            if not may_continue():
                raise Stopped


@dataclass
class _Watch:
    """When bytes last arrived, and how many requests failed since then."""

    since: float
    offset: int
    failures: int = 0

    def note(self, now: float, offset: int) -> None:
        if offset != self.offset:
            self.since, self.offset, self.failures = now, offset, 0


def _verify(item: FileToFetch, part: _Part) -> None:
    """Given a whole part, raise ChecksumMismatchError if its size or CRC32 is wrong."""
    check_whole(item, part.offset, part.crc)
