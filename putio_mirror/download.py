"""Fetch one put.io file into a ``.part`` file: resumable, stall-proof, CRC32-verified.

The node URL comes from ``url_for`` (put.io's ``files/{id}/url``) and is
fetched afresh on every (re)start, because node URLs expire and nodes stall.
Bytes already on disk are never thrown away except when the node ignores our
``Range`` and sends the whole file again. The caller renames the finished part
into place; this module only fills and verifies it.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import re
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from requests.auth import AuthBase

from putio_mirror.errors import ChecksumMismatchError, NoSpaceError, TransientError
from putio_mirror.retry import Backoff

logger = logging.getLogger(__name__)

DEFAULT_BACKOFF = Backoff(base=1.0, cap=30.0, max_attempts=1000)
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
_URL_EXPIRED = frozenset({401, 403, 404, 410})
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")


@dataclass(frozen=True)
class FileToFetch:
    """One remote file and the ``.part`` file its bytes go to."""

    file_id: int
    size: int
    crc32: str | None
    part_path: Path


@dataclass(frozen=True)
class Fetched:
    """How a fetch ended: complete and verified, or stopped early at a chunk boundary."""

    complete: bool
    bytes_done: int


class _NoAuth(AuthBase):
    """Strips any Authorization header: the API token must never reach a download node.

    Passing an auth object also stops requests from adding credentials from ``~/.netrc``.
    """

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.pop("Authorization", None)
        return request


class _Retry(Exception):
    """Internal: this request failed in a way that a fresh request may not."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _Stopped(Exception):
    """Internal: ``may_continue`` said no at a chunk boundary."""


class _Part:
    """The open ``.part`` file, its length and the running CRC32 of its bytes.

    Writes are unbuffered: chunks are large anyway, and without a buffer the
    length and CRC always describe exactly the bytes the OS accepted, even when
    the disk fills up in the middle of a chunk.
    """

    def __init__(self, path: Path, chunk_size: int) -> None:
        self.path = path
        self.offset, self.crc = _measure(path, chunk_size)
        with _no_space_is_item_error(path):
            self._file = open(path, "ab", buffering=0)  # noqa: SIM115 -- closed by close()

    def write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            with _no_space_is_item_error(self.path):
                written = self._file.write(view) or 0
            self.crc = zlib.crc32(view[:written], self.crc)
            self.offset += written
            view = view[written:]

    def restart(self) -> None:
        """Throw away every byte: the node sent the whole file instead of the range asked."""
        with _no_space_is_item_error(self.path):
            self._file.truncate(0)
        self.offset, self.crc = 0, 0

    def close(self) -> None:
        try:
            with _no_space_is_item_error(self.path):
                os.fsync(self._file.fileno())
        finally:
            self._file.close()


class Downloader:
    """Given a way to get a fresh node URL for a file id, fetch files into ``.part`` files."""

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
    ) -> None:
        self._url_for = url_for
        self._chunk_size = chunk_size
        self._timeout = (connect_timeout, read_timeout)
        self._max_outage = max_outage
        self._backoff = backoff
        self._sleep = sleep
        self._monotonic = monotonic
        self._jitter = jitter
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
        are wrong, NoSpaceError if the disk is full."""
        with _no_space_is_item_error(item.part_path):
            _prepare(item)
        part = _Part(item.part_path, self._chunk_size)
        try:
            if part.offset < item.size:
                if not may_continue():
                    return Fetched(False, part.offset)
                self._fill(item, part, may_continue, on_progress)
        except _Stopped:
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
            except _Retry as trouble:
                progress.note(self._monotonic(), part.offset)
                self._pause(item, progress, trouble)

    def _pause(self, item: FileToFetch, progress: _Watch, trouble: _Retry) -> None:
        silent = self._monotonic() - progress.since
        if silent >= self._max_outage or progress.failures >= self._backoff.max_attempts:
            raise TransientError(
                f"download of put.io file {item.file_id} got no data for {silent:.0f} s: "
                f"{trouble.reason}",
                "put.io or the network is having trouble; the next run resumes from "
                f"{item.part_path.name}",
            ) from trouble
        delay = self._backoff.delay(progress.failures, self._jitter())
        delay = min(max(delay, trouble.retry_after or 0.0), self._max_outage - silent)
        logger.debug("file %d: %s; retrying in %.1f s", item.file_id, trouble.reason, delay)
        self._sleep(delay)
        progress.failures += 1

    def _request(
        self,
        item: FileToFetch,
        part: _Part,
        may_continue: Callable[[], bool],
        on_progress: Callable[[int], None],
    ) -> None:
        """Given the part so far, make one request for the rest and write what arrives;
        raise _Retry for anything a fresh request may cure."""
        url = self._fresh_url(item.file_id)
        headers = {"Range": f"bytes={part.offset}-"} if part.offset else {}
        try:
            with self._session.get(
                url, headers=headers, auth=_NoAuth(), stream=True, timeout=self._timeout
            ) as response:
                _accept(response, part, item)
                self._write_body(response, part, may_continue, on_progress)
        except requests.RequestException as exc:
            raise _Retry(f"the connection failed ({type(exc).__name__})") from exc
        if part.offset < item.size:
            raise _Retry(f"the node sent a short body ({part.offset} of {item.size} bytes)")

    def _fresh_url(self, file_id: int) -> str:
        try:
            return self._url_for(file_id)
        except TransientError as exc:
            raise _Retry(exc.message, exc.retry_after) from exc
        except requests.RequestException as exc:
            raise _Retry(f"no download URL ({type(exc).__name__})") from exc

    def _write_body(
        self,
        response: requests.Response,
        part: _Part,
        may_continue: Callable[[], bool],
        on_progress: Callable[[int], None],
    ) -> None:
        for chunk in response.iter_content(self._chunk_size):
            if not chunk:
                continue
            part.write(chunk)
            on_progress(len(chunk))
            if not may_continue():
                raise _Stopped


@dataclass
class _Watch:
    """When bytes last arrived, and how many requests failed since then."""

    since: float
    offset: int
    failures: int = 0

    def note(self, now: float, offset: int) -> None:
        if offset != self.offset:
            self.since, self.offset, self.failures = now, offset, 0


def _accept(response: requests.Response, part: _Part, item: FileToFetch) -> None:
    """Given the node's answer, return if its body continues the part (restarting the
    part on a 200 to a Range request); raise ChecksumMismatchError if the node's file
    has another size than put.io said, and _Retry for any other answer."""
    status = response.status_code
    if status == 206:
        start, total = _content_range(response)
        _check_total(item, total)
        if start != part.offset:
            raise _Retry(f"the node answered a range other than bytes {part.offset}-")
    elif status == 200:
        if part.offset > 0:
            part.restart()  # the node ignored Range and is sending the whole file
    elif status == 416:
        _check_total(item, _content_range(response)[1])
        raise _Retry(f"the node refused the range bytes {part.offset}- (HTTP 416)")
    elif status in _URL_EXPIRED:
        raise _Retry(f"the node refused the URL (HTTP {status}); asking for a fresh one")
    else:
        raise _Retry(f"the node answered HTTP {status}", _retry_after(response))


def _content_range(response: requests.Response) -> tuple[int | None, int | None]:
    """Given a 206 or 416 answer, return the start and total of its Content-Range."""
    header = response.headers.get("Content-Range", "").strip()
    if match := _CONTENT_RANGE.fullmatch(header):
        total = match.group(3)
        return int(match.group(1)), None if total == "*" else int(total)
    if match := _UNSATISFIED_RANGE.fullmatch(header):
        return None, int(match.group(1))
    return None, None


def _check_total(item: FileToFetch, total: int | None) -> None:
    if total is not None and total != item.size:
        raise ChecksumMismatchError(
            f"put.io file {item.file_id}: the download node has {total} bytes, "
            f"put.io lists {item.size}",
            "the file changed on put.io; the next run lists it again",
        )


def _retry_after(response: requests.Response) -> float | None:
    # Nodes are not known to send Retry-After at all; honour only the seconds form,
    # which needs no wall clock.
    header = response.headers.get("Retry-After", "").strip()
    return float(header) if header.isdigit() else None


def _prepare(item: FileToFetch) -> None:
    """Given a file to fetch, make its folder; empty its part if it is longer than the file."""
    item.part_path.parent.mkdir(parents=True, exist_ok=True)
    if item.part_path.exists() and item.part_path.stat().st_size > item.size:
        with open(item.part_path, "r+b") as stale:
            stale.truncate(0)


def _measure(path: Path, chunk_size: int) -> tuple[int, int]:
    """Given a part file, return its length and the CRC32 of its bytes (0, 0 if absent)."""
    if not path.exists():
        return 0, 0
    length, crc = 0, 0
    with open(path, "rb") as existing:
        while block := existing.read(chunk_size):
            length += len(block)
            crc = zlib.crc32(block, crc)
    return length, crc


def _verify(item: FileToFetch, part: _Part) -> None:
    """Given a whole part, raise ChecksumMismatchError if its size or CRC32 is wrong."""
    actual = f"{part.crc:08x}"
    expected = item.crc32.lower() if item.crc32 else None
    if part.offset == item.size and expected in (None, actual):
        return
    raise ChecksumMismatchError(
        f"put.io file {item.file_id}: expected {item.size} bytes with CRC32 {expected}, "
        f"got {part.offset} bytes with CRC32 {actual}",
        f"the bytes in {item.part_path} differ from put.io's; remove it to download again",
    )


@contextmanager
def _no_space_is_item_error(path: Path) -> Iterator[None]:
    """Within this block, turn a full disk or quota into NoSpaceError naming the folder."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _NO_SPACE:
            raise
        raise NoSpaceError(
            f"no room left to write {path.name}",
            f"free some space in {path.parent} (or raise the quota); the download resumes",
        ) from exc
