"""Streaming a byte range of a put.io file from its download node: patient, never forever.

The node protocol (a token-free session, one ``Range`` request, the answer checked
against the range asked for and the size put.io lists) is ``fetch.nodehttp``'s, shared
with the downloader. What is the mount's own: a URL per file kept while it works and
renewed once a request with it failed (put.io's links expire, its nodes fail), a
stall or a dropped connection retried from the first byte not yet delivered, and a
read that got no byte for ``max_outage`` seconds given up with ``Unavailable`` (the
mount answers ``EIO``), so a ``read()`` never hangs whatever the network does.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import requests

from putio_mirror.core.errors import MirrorError
from putio_mirror.core.retry import Backoff
from putio_mirror.fetch.nodehttp import (
    NodeAnswer,
    Retry,
    body_reader,
    body_start,
    fresh_url,
    node_get,
)
from putio_mirror.fetch.values import FileToFetch

logger = logging.getLogger(__name__)

#: The most one body read asks of the socket (the outage clock restarts after each).
PIECE_SIZE = 256 * 1024
_CONNECT_TIMEOUT = 5.0
#: the files whose node links are kept (~250 bytes each): more than a player and a
#: scanner read at once; put.io's links expire anyway
KEPT_LINKS = 4096
DEFAULT_BACKOFF = Backoff(base=0.2, cap=5.0, max_attempts=1_000_000)


class Unavailable(Exception):
    """The node gave no byte for too long, or put.io refused the file: the read fails."""


@dataclass(frozen=True)
class Timing:
    """``read_timeout``: seconds one request may stay silent before it is retried;
    ``max_outage``: seconds without a byte before the read is given up."""

    read_timeout: float
    max_outage: float
    backoff: Backoff = DEFAULT_BACKOFF


@dataclass(frozen=True)
class FileRef:
    """What the node's answers are checked against: the file's id and listed size."""

    id: int
    size: int


class Receiver(Protocol):
    """Where a fetched range goes: ``space`` is the buffer the next bytes are read into
    (never empty while bytes are expected), ``filled`` says how many landed at its start."""

    def space(self) -> memoryview: ...

    def filled(self, count: int) -> None: ...


class _Progress:
    def __init__(self, position: int, now: float) -> None:
        self.position = position
        self.last_byte_at = now


class NodeFetcher:
    """Given a token-free session and put.io's ``files/{id}/url`` call, stream file ranges."""

    def __init__(
        self,
        session: requests.Session,
        url_for: Callable[[int], str],
        timing: Timing,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        jitter: Callable[[], float] = random.random,
        keep_links: int = KEPT_LINKS,
    ) -> None:
        self._session = session
        self._url_for = url_for
        self._timing = timing
        self._read_timeout = min(timing.read_timeout, timing.max_outage)
        self._clock = clock
        self._closed = threading.Event()
        # A pause before the next request ends at once when the mount ends.
        self._sleep = sleep if sleep is not None else self._closed.wait
        self._jitter = jitter
        #: each file's link and the lock its first reader asks put.io under, newest last
        self._links: OrderedDict[int, tuple[threading.Lock, str | None]] = OrderedDict()
        self._keep_links = keep_links
        self._lock = threading.Lock()
        #: the answers whose bodies are being read, by id (an answer may not be hashable)
        self._in_flight: dict[int, NodeAnswer] = {}

    def close(self) -> None:
        """The mount is ending: fail every fetch, those waiting on a node included, now."""
        self._closed.set()
        with self._lock:
            answers = list(self._in_flight.values())
        for answer in answers:
            _cut(answer)

    def fetch(self, ref: FileRef, start: int, end: int, receiver: Receiver) -> None:
        """Given a file, a half-open byte range and where its bytes go, read them from the
        node straight into the receiver's buffers, in order.

        Failed requests are retried from the first byte not yet received; raise
        Unavailable once ``max_outage`` seconds passed without a byte, or at once if
        put.io refuses the file (gone, token refused) or lists another size than the node.
        """
        progress = _Progress(start, self._clock())
        failures = 0
        while progress.position < end:
            before = progress.position
            try:
                self._attempt(ref, progress, end, receiver)
            except Retry as trouble:
                if self._closed.is_set():
                    raise Unavailable(f"put.io file {ref.id}: the mount is ending") from trouble
                failures = 1 if progress.position > before else failures + 1
                self._pause(ref, trouble, progress, failures)
            except MirrorError as error:  # 401, 404, a changed file: no retry cures it
                raise Unavailable(f"put.io file {ref.id}: {error.message}") from error

    def _attempt(self, ref: FileRef, progress: _Progress, end: int, receiver: Receiver) -> None:
        remaining = progress.last_byte_at + self._timing.max_outage - self._clock()
        if remaining <= 0:
            raise Retry("no time left")
        url = self._url(ref.id)
        try:
            self._request(ref, url, progress, end, receiver, remaining)
        except Retry:
            # Expired, or its node is down or failing: put.io may send the next request
            # elsewhere (as the downloader does, ask it again; a URL kept until the outage
            # ended failed every later read of the file too).
            self._forget(ref.id, url)
            raise

    def _request(
        self,
        ref: FileRef,
        url: str,
        progress: _Progress,
        end: int,
        receiver: Receiver,
        remaining: float,
    ) -> None:
        timeout = (min(_CONNECT_TIMEOUT, remaining), min(self._read_timeout, remaining))
        first = progress.position
        with (
            node_get(self._session, url, f"{first}-{end - 1}", timeout) as response,
            self._tracked(response),
        ):
            self._receive(ref, response, progress, end, receiver)

    @contextmanager
    def _tracked(self, answer: NodeAnswer) -> Iterator[None]:
        """Keep the answer where ``close`` can cut it while its body is read."""
        with self._lock:
            self._in_flight[id(answer)] = answer
        try:
            if self._closed.is_set():  # closed before it was tracked: cut it here
                raise Retry("the mount is ending")
            yield
        finally:
            with self._lock:
                self._in_flight.pop(id(answer), None)

    def _receive(
        self,
        ref: FileRef,
        response: NodeAnswer,
        progress: _Progress,
        end: int,
        receiver: Receiver,
    ) -> None:
        first = progress.position
        item = FileToFetch(ref.id, ref.size, None, Path(f"put.io file {ref.id}"))
        read = body_reader(response)
        _skip(read, first - body_start(response, first, item))  # a 200 sends the whole file
        while progress.position < end:
            space = receiver.space()
            # At most a piece at a time: the outage clock restarts with each one.
            count = read(space[: min(len(space), end - progress.position, PIECE_SIZE)])
            if count == 0:
                raise Retry("the node's answer ended early")
            receiver.filled(count)
            progress.position += count
            progress.last_byte_at = self._clock()
        if response.status_code == 206:
            read(memoryview(bytearray(0)))  # the body is over: the connection goes back

    def _pause(self, ref: FileRef, trouble: Retry, progress: _Progress, failures: int) -> None:
        """Sleep before the next request; raise Unavailable if the outage has lasted too long."""
        left = progress.last_byte_at + self._timing.max_outage - self._clock()
        if left <= 0:
            raise Unavailable(
                f"put.io file {ref.id}: no data for {self._timing.max_outage:.0f} s "
                f"({trouble.reason})"
            ) from trouble
        delay = self._timing.backoff.delay(failures - 1, self._jitter())
        delay = max(delay, trouble.retry_after or 0.0)
        logger.debug("put.io file %d: %s; retrying in %.1f s", ref.id, trouble.reason, delay)
        self._sleep(min(delay, left))
        if self._closed.is_set():
            raise Unavailable(f"put.io file {ref.id}: the mount is ending") from trouble

    def _url(self, file_id: int) -> str:
        """Return the file's node URL, asking put.io once however many readers want it;
        the links of the ``keep_links`` files read last are kept (a link let go is asked
        for again: a scanner reading every file's head must not grow the mount for ever)."""
        with self._lock:
            lock, url = self._links.get(file_id) or (threading.Lock(), None)
            self._links[file_id] = (lock, url)
            self._links.move_to_end(file_id)
            while len(self._links) > self._keep_links:
                self._links.popitem(last=False)
        if url is not None:
            return url
        with lock:
            with self._lock:  # another reader may have asked meanwhile
                url = self._links.get(file_id, (lock, None))[1]
            if url is None:
                url = fresh_url(self._url_for, file_id)
                with self._lock:
                    self._links[file_id] = (lock, url)
            return url

    def _forget(self, file_id: int, url: str) -> None:
        """A request to ``url`` failed: the next one asks put.io for a new URL."""
        with self._lock:
            kept = self._links.get(file_id)
            if kept is not None and kept[1] == url:
                self._links[file_id] = (kept[0], None)


def _cut(answer: NodeAnswer) -> None:
    """Shut the socket of an answer being read: a read waiting on it returns at once."""
    connection = getattr(answer.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _skip(read: Callable[[memoryview], int], count: int) -> None:
    """Read and drop ``count`` bytes (the head of a whole file sent for a range)."""
    scratch = memoryview(bytearray(min(PIECE_SIZE, count)))
    while count > 0:
        got = read(scratch[: min(len(scratch), count)])
        if got == 0:
            raise Retry("the node's answer ended early")
        count -= got
