"""Fetch one put.io file over several connections at once, each filling its own byte range.

put.io caps the speed of each connection, so a big file goes faster as a few
contiguous segments fetched in parallel: each segment thread has its own session,
asks for a fresh node URL on every (re)start, requests ``Range: bytes=a-b`` and
writes with ``os.pwrite`` into the part file, which is first stretched (sparse)
to the full size. A segment that finishes early takes over the second half of the
largest segment still running. Progress lives beside the part in
``<part>.segments`` (JSON: size, crc32, connections and ``[start, end, done]``
rows, ``end`` exclusive), written atomically and only after the bytes it claims
are in the part, so a stop, a crash or ``kill -9`` resumes every segment from its
own offset. Small files, and the part left by ``download.Downloader`` when little
is left, go to a ``download.Downloader``: the contract is the same, so the
executor can use either downloader.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import requests

from putio_mirror.download import (
    _URL_EXPIRED,
    DEFAULT_BACKOFF,
    Downloader,
    Fetched,
    FileToFetch,
    _check_total,
    _content_range,
    _measure,
    _no_space_is_item_error,
    _NoAuth,
    _prepare,
    _Retry,
    _retry_after,
    _Stopped,
)
from putio_mirror.errors import ChecksumMismatchError, TransientError
from putio_mirror.retry import Backoff
from putio_mirror.throttle import RateLimiter

logger = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".segments"
_CHECKPOINT_SECONDS = 0.5
_NAP_SECONDS = 0.25  # backoff sleeps in slices, so a stopped fetch does not linger
_METER_PIECE = 64 * 1024  # the limiter is asked in pieces, so a stop is noticed quickly
_VERIFY_BLOCK = 1024 * 1024


def sidecar_path(part_path: Path) -> Path:
    """Given a part file, return the path of its segment sidecar."""
    return part_path.with_name(part_path.name + SIDECAR_SUFFIX)


def discard(part_path: Path) -> None:
    """Given a part file, remove it and its segment sidecar (either may be missing)."""
    part_path.unlink(missing_ok=True)
    sidecar_path(part_path).unlink(missing_ok=True)


def bytes_done(part_path: Path) -> int:
    """Given a part file, return the bytes really downloaded into it: what its sidecar
    claims if it has one (0 if that is unreadable), else the part's length."""
    path = sidecar_path(part_path)
    if not path.exists():
        return _size_of(part_path) or 0
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["segments"]
        return sum(int(done) for _, _, done in rows)
    except (OSError, ValueError, KeyError, TypeError):
        return 0


@dataclass
class _Segment:
    """Bytes ``[start, end)`` of the file, ``done`` of them in the part; ``flight`` more
    are being written right now; ``owned`` once a thread works on it."""

    start: int
    end: int
    done: int = 0
    flight: int = 0
    owned: bool = False

    @property
    def position(self) -> int:
        return self.start + self.done

    @property
    def left(self) -> int:
        return self.end - self.position

    @property
    def free(self) -> int:
        """The bytes no thread has started to write: what may be handed to another."""
        return self.left - self.flight


class _Table:
    """The segments of one part file, the lock over them, and their sidecar."""

    def __init__(self, item: FileToFetch, segments: list[_Segment], connections: int) -> None:
        self.lock = threading.Lock()
        self.segments = segments
        self._item = item
        self._connections = connections
        self._saved: list[list[int]] | None = None

    def rows(self) -> list[list[int]]:
        with self.lock:
            return sorted([segment.start, segment.end, segment.done] for segment in self.segments)

    def done(self) -> int:
        return sum(done for _, _, done in self.rows())

    def left(self) -> int:
        return sum(end - start - done for start, end, done in self.rows())

    def save(self) -> None:
        """Write the sidecar atomically, unless it already says the same."""
        rows = self.rows()
        if rows == self._saved:
            return
        path = sidecar_path(self._item.part_path)
        document = {
            "size": self._item.size,
            "crc32": _expected_crc(self._item),
            "connections": self._connections,
            "segments": rows,
        }
        scratch = path.with_name(path.name + ".tmp")
        with _no_space_is_item_error(path):
            scratch.write_text(json.dumps(document), encoding="utf-8")
            scratch.replace(path)
        self._saved = rows

    def claim(self, min_size: int) -> _Segment | None:
        """Return a segment nobody works on, else the second half of the largest one
        (if both halves keep ``min_size`` bytes), else None."""
        with self.lock:
            for segment in self.segments:
                if not segment.owned and segment.left > 0:
                    segment.owned = True
                    return segment
            victims = [segment for segment in self.segments if segment.free >= 2 * min_size]
            if not victims:
                return None
            victim = max(victims, key=lambda segment: segment.free)
            middle = victim.end - victim.free // 2
            taken = _Segment(middle, victim.end, owned=True)
            victim.end = middle
            self.segments.append(taken)
            return taken


class _Run:
    """One fetch in flight, shared by its segment threads: the part's file descriptor,
    the stop signal, the first error, when the last byte arrived, and the caller's
    callbacks (called one at a time, so they need not be thread-safe)."""

    def __init__(
        self,
        table: _Table,
        fd: int,
        may_continue: Callable[[], bool],
        on_progress: Callable[[int], None],
        now: float,
    ) -> None:
        self.table = table
        self.fd = fd
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.last_byte = now
        self._may_continue = may_continue
        self._on_progress = on_progress
        self._lock = threading.Lock()
        self._callbacks = threading.Lock()

    def check(self) -> None:
        """Raise _Stopped if the fetch is stopping or ``may_continue`` says no."""
        if self.stop.is_set():
            raise _Stopped
        with self._callbacks:
            going_on = self._may_continue()
        if not going_on:
            self.stop.set()
            raise _Stopped

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
    every connection (and may be shared with other downloaders).
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
    ) -> None:
        self._connections = max(1, connections)
        self._min_segment = max(1, min_segment_size)
        self._chunk_size = chunk_size
        self._timeout = (connect_timeout, read_timeout)
        self._max_outage = max_outage
        self._backoff = backoff
        self._sleep = sleep
        self._monotonic = monotonic
        self._jitter = jitter
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
        after ``max_outage`` seconds without a byte on any connection,
        ChecksumMismatchError if the bytes are wrong, NoSpaceError if the disk is full."""
        with _no_space_is_item_error(item.part_path):
            _prepare(item)
        table = _load_table(item, self._connections)
        if table is None:
            have = _size_of(item.part_path) or 0
            pieces = min(self._connections, (item.size - have) // self._min_segment)
            if pieces < 2:
                return self._single.fetch(
                    item, may_continue=may_continue, on_progress=self._metered(on_progress)
                )
            table = _fresh_table(item, have, pieces, self._connections)
        if table.left() > 0:
            if not may_continue():
                return Fetched(False, table.done())
            self._run(item, table, may_continue, on_progress)
            if table.left() > 0:
                return Fetched(False, table.done())
        _verify(item)
        sidecar_path(item.part_path).unlink(missing_ok=True)
        return Fetched(True, item.size)

    def _metered(self, on_progress: Callable[[int], None]) -> Callable[[int], None]:
        limiter = self._limiter
        if limiter is None:
            return on_progress

        def metered(nbytes: int) -> None:
            # Downloader has no hook before its writes: pay right after each one instead.
            limiter.consume(nbytes)
            on_progress(nbytes)

        return metered

    def _run(
        self,
        item: FileToFetch,
        table: _Table,
        may_continue: Callable[[], bool],
        on_progress: Callable[[int], None],
    ) -> None:
        """Given a table with bytes left, fill them with segment threads; raise the first
        error any thread met, after all of them stopped and the sidecar was saved."""
        table.save()  # before the part grows: a part is never longer without a sidecar
        with _no_space_is_item_error(item.part_path):
            fd = os.open(item.part_path, os.O_RDWR | os.O_CREAT, 0o644)
        run = _Run(table, fd, may_continue, on_progress, self._monotonic())
        try:
            with _no_space_is_item_error(item.part_path):
                os.ftruncate(fd, item.size)
            self._crew(item, run)
            with _no_space_is_item_error(item.part_path):
                os.fsync(fd)
        finally:
            os.close(fd)
        table.save()
        if run.error is not None:
            raise run.error

    def _crew(self, item: FileToFetch, run: _Run) -> None:
        """Run the segment threads, saving the sidecar now and then; return once all
        have ended (stopping them first if this thread is interrupted)."""
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
                while thread.is_alive():
                    thread.join(_CHECKPOINT_SECONDS)
                    run.table.save()
        finally:
            run.stop.set()
            for thread in started:
                thread.join()

    def _work(self, item: FileToFetch, run: _Run) -> None:
        """One segment thread: fill segments until none is left to claim or take over."""
        try:
            with requests.Session() as session:
                while not run.stop.is_set():
                    segment = run.table.claim(self._min_segment)
                    if segment is None:
                        break
                    self._fill(item, run, segment, session)
        except _Stopped:
            pass
        except BaseException as error:
            run.fail(error)

    def _fill(
        self, item: FileToFetch, run: _Run, segment: _Segment, session: requests.Session
    ) -> None:
        """Given a segment, request and write its bytes until it is done; back off
        between failed requests; raise TransientError after a long silence."""
        failures = 0
        while segment.left > 0:
            run.check()
            before = segment.done
            try:
                self._request(item, run, segment, session)
            except _Retry as trouble:
                failures = 0 if segment.done != before else failures
                self._pause(item, run, trouble, failures)
                failures += 1

    def _pause(self, item: FileToFetch, run: _Run, trouble: _Retry, failures: int) -> None:
        silent = self._monotonic() - run.last_byte
        if silent >= self._max_outage or failures >= self._backoff.max_attempts:
            raise TransientError(
                f"download of put.io file {item.file_id} got no data on any connection for "
                f"{silent:.0f} s: {trouble.reason}",
                "put.io or the network is having trouble; the next run resumes from "
                f"{item.part_path.name}",
            ) from trouble
        delay = self._backoff.delay(failures, self._jitter())
        delay = min(max(delay, trouble.retry_after or 0.0), self._max_outage - silent)
        logger.debug("file %d: %s; retrying in %.1f s", item.file_id, trouble.reason, delay)
        while delay > 0 and not run.stop.is_set():
            self._sleep(min(delay, _NAP_SECONDS))
            delay -= _NAP_SECONDS

    def _request(
        self, item: FileToFetch, run: _Run, segment: _Segment, session: requests.Session
    ) -> None:
        """Given a segment, make one request for the rest of it and write what arrives;
        raise _Retry for anything a fresh request may cure."""
        url = self._fresh_url(item.file_id)
        with run.table.lock:
            first, last = segment.position, segment.end - 1
        headers = {"Range": f"bytes={first}-{last}"}
        try:
            with session.get(
                url, headers=headers, auth=_NoAuth(), stream=True, timeout=self._timeout
            ) as response:
                _accept(response, first, item)
                self._write_body(item, run, segment, response)
        except requests.RequestException as exc:
            raise _Retry(f"the connection failed ({type(exc).__name__})") from exc
        if segment.left > 0:
            raise _Retry(f"the node sent a short body for bytes {first}-{last}")

    def _fresh_url(self, file_id: int) -> str:
        with self._url_lock:
            return self._single._fresh_url(file_id)

    def _write_body(
        self, item: FileToFetch, run: _Run, segment: _Segment, response: requests.Response
    ) -> None:
        for chunk in response.iter_content(self._chunk_size):
            if chunk and not self._write_chunk(item, run, segment, chunk):
                return
            run.check()

    def _write_chunk(self, item: FileToFetch, run: _Run, segment: _Segment, chunk: bytes) -> bool:
        """Given a chunk at the segment's position, write what belongs to the segment;
        return True if the segment wants more."""
        with run.table.lock:
            offset = segment.position
            size = segment.flight = min(len(chunk), segment.left)
        if size > 0:
            self._meter(run, size)
            _pwrite_all(item.part_path, run.fd, memoryview(chunk)[:size], offset)
        with run.table.lock:
            segment.done += size
            segment.flight = 0
        run.wrote(size, self._monotonic())
        return segment.left > 0

    def _meter(self, run: _Run, size: int) -> None:
        if self._limiter is None:
            return
        for start in range(0, size, _METER_PIECE):
            if run.stop.is_set():
                return  # the bytes are here anyway; writing them costs no bandwidth
            self._limiter.consume(min(_METER_PIECE, size - start))


def _accept(response: requests.Response, first: int, item: FileToFetch) -> None:
    """Given the node's answer to a request from byte ``first``, return if its body
    starts there; raise ChecksumMismatchError if the node's file has another size than
    put.io said, and _Retry for any other answer."""
    status = response.status_code
    if status == 206:
        start, total = _content_range(response)
        _check_total(item, total)
        if start != first:
            raise _Retry(f"the node answered a range other than bytes {first}-")
    elif status == 200:
        if first > 0:
            raise _Retry(f"the node ignored the range bytes {first}- (HTTP 200)")
    elif status == 416:
        _check_total(item, _content_range(response)[1])
        raise _Retry(f"the node refused the range bytes {first}- (HTTP 416)")
    elif status in _URL_EXPIRED:
        raise _Retry(f"the node refused the URL (HTTP {status}); asking for a fresh one")
    else:
        raise _Retry(f"the node answered HTTP {status}", _retry_after(response))


def _pwrite_all(path: Path, fd: int, view: memoryview, offset: int) -> None:
    with _no_space_is_item_error(path):
        while view:
            written = os.pwrite(fd, view, offset)
            view, offset = view[written:], offset + written


def _fresh_table(item: FileToFetch, have: int, pieces: int, connections: int) -> _Table:
    """Given the bytes already at the start of the part, return a table that counts
    them as done and splits the rest into ``pieces`` contiguous segments."""
    segments = [_Segment(0, have, have)] if have else []
    rest = item.size - have
    edges = [have + rest * number // pieces for number in range(pieces + 1)]
    segments += [_Segment(start, end) for start, end in pairwise(edges)]
    return _Table(item, segments, connections)


def _load_table(item: FileToFetch, connections: int) -> _Table | None:
    """Given a file to fetch, return the table of its sidecar; None if it has none, or
    if the sidecar does not match (then the part and sidecar are removed: start over)."""
    path = sidecar_path(item.part_path)
    if not path.exists():
        return None
    segments = _read_sidecar(path, item)
    if segments is None:
        logger.warning("%s does not match the file on put.io; starting over", path.name)
        discard(item.part_path)
        return None
    return _Table(item, segments, connections)


def _read_sidecar(path: Path, item: FileToFetch) -> list[_Segment] | None:
    """Given a sidecar, return its segments if it describes this file and the part
    holds every byte it claims; otherwise None."""
    try:
        document: Any = json.loads(path.read_text(encoding="utf-8"))
        rows = [(int(start), int(end), int(done)) for start, end, done in document["segments"]]
        matches = document["size"] == item.size and document["crc32"] == _expected_crc(item)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    part_size = _size_of(item.part_path)
    if not matches or part_size is None or not _tiles(rows, item.size, part_size):
        return None
    return [_Segment(start, end, done) for start, end, done in rows]


def _tiles(rows: list[tuple[int, int, int]], size: int, part_size: int) -> bool:
    """Return True if the rows cover ``[0, size)`` edge to edge and claim no byte
    beyond a part of ``part_size`` bytes."""
    edge = 0
    for start, end, done in sorted(rows):
        if start != edge or end <= start or not 0 <= done <= end - start:
            return False
        if start + done > part_size:
            return False
        edge = end
    return edge == size


def _expected_crc(item: FileToFetch) -> str | None:
    return item.crc32.lower() if item.crc32 else None


def _size_of(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def _verify(item: FileToFetch) -> None:
    """Given a filled part, raise ChecksumMismatchError if its size or CRC32 is wrong."""
    length, crc = _measure(item.part_path, _VERIFY_BLOCK)
    actual, expected = f"{crc:08x}", _expected_crc(item)
    if length == item.size and expected in (None, actual):
        return
    raise ChecksumMismatchError(
        f"put.io file {item.file_id}: expected {item.size} bytes with CRC32 {expected}, "
        f"got {length} bytes with CRC32 {actual}",
        f"the bytes in {item.part_path} differ from put.io's; discard it to download again",
    )
