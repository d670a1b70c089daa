"""Streaming a byte range of a put.io file from its download node: patient, never forever.

The node protocol (a token-free session, one ``Range`` request, the answer checked
against the range asked for and the size put.io lists) is ``fetch.nodehttp``'s, shared
with the downloader. What is the mount's own: a URL per file kept while it works and
renewed once a request with it failed (put.io's links expire, its nodes fail), a
stall or a dropped connection retried from the first byte not yet delivered, and a
read that got no byte for ``max_outage`` seconds given up with ``Unavailable`` (the
mount answers ``EIO``), so a ``read()`` never hangs whatever the network does.

A node (or a proxy before it) may ignore ``Range`` and send the whole file: each block
read past the start then streamed the file from byte 0 again, so a sequential read cost
the square of the file's size (32 MiB read: 205 MiB from the node). Such an answer is
kept open where its range ended (``_Parked``): the next request of the file at or past
that byte reads on from there, and ``ignores_range`` tells the reader to ask for the
file's blocks in order, over one connection.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
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
#: The most whole-file answers (of nodes ignoring Range) kept open to read on from.
KEPT_ANSWERS = 8
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


@dataclass
class _Body:
    """A node's answer being read: where its next byte is in the file, and how to read
    it; ``closing`` ends the request."""

    answer: NodeAnswer
    read: Callable[[memoryview], int]
    position: int
    closing: ExitStack


class _Parked:
    """Whole-file answers kept open where their reader stopped, by file, at most ``most``
    (the one parked longest ago is closed first)."""

    def __init__(self, most: int) -> None:
        self._most = most
        self._bodies: OrderedDict[int, tuple[int, _Body]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, file_id: int, position: int) -> _Body | None:
        """Return the answer of the file nearest before ``position``, if one is kept."""
        with self._lock:
            found = [
                (body.position, key)
                for key, (owner, body) in self._bodies.items()
                if owner == file_id and body.position <= position
            ]
            if not found:
                return None
            return self._bodies.pop(max(found)[1])[1]

    def park(self, file_id: int, body: _Body) -> None:
        with self._lock:
            self._bodies[id(body)] = (file_id, body)
            dropped = []
            while len(self._bodies) > self._most:
                dropped.append(self._bodies.popitem(last=False)[1][1])
        for old in dropped:
            old.closing.close()

    def close(self) -> None:
        with self._lock:
            bodies, self._bodies = list(self._bodies.values()), OrderedDict()
        for _, body in bodies:
            body.closing.close()


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
        self._parked = _Parked(KEPT_ANSWERS)
        #: the files whose node answered a range with the whole file, newest last
        self._whole_files: OrderedDict[int, None] = OrderedDict()

    def close(self) -> None:
        """The mount is ending: fail every fetch, those waiting on a node included, now."""
        self._closed.set()
        with self._lock:
            answers = list(self._in_flight.values())
        for answer in answers:
            _cut(answer)
        self._parked.close()

    def ignores_range(self, file_id: int) -> bool:
        """Whether the file's node answered a range with the whole file: its blocks are
        best asked for in order, each request reading on where the last one stopped."""
        with self._lock:
            return file_id in self._whole_files

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
        parked = self._parked.take(ref.id, progress.position)
        if parked is not None:
            before = progress.position
            try:
                self._read_on(ref, parked, progress, end, receiver)
                return
            except Retry as trouble:
                if progress.position > before:
                    raise
                # closed by the node while parked: ask afresh, no failure of the node
                logger.debug("put.io file %d: a kept answer ended (%s)", ref.id, trouble.reason)
        timeout = (min(_CONNECT_TIMEOUT, remaining), min(self._read_timeout, remaining))
        first = progress.position
        closing = ExitStack()
        try:
            response = closing.enter_context(
                node_get(self._session, url, f"{first}-{end - 1}", timeout)
            )
            item = FileToFetch(ref.id, ref.size, None, Path(f"put.io file {ref.id}"))
            start = body_start(response, first, item)
        except BaseException:
            closing.close()
            raise
        if response.status_code == 200:
            self._note_whole(ref.id)
        self._read_on(
            ref, _Body(response, body_reader(response), start, closing), progress, end, receiver
        )

    def _note_whole(self, file_id: int) -> None:
        with self._lock:
            self._whole_files[file_id] = None
            self._whole_files.move_to_end(file_id)
            while len(self._whole_files) > self._keep_links:
                self._whole_files.popitem(last=False)

    def _read_on(
        self, ref: FileRef, body: _Body, progress: _Progress, end: int, receiver: Receiver
    ) -> None:
        """Read the range from an answer; then end the request, or keep a whole file's
        answer open where the range ended, for the next range of the file to read on."""
        try:
            with self._tracked(body.answer):
                self._receive(body, progress, end, receiver)
        except BaseException:
            body.closing.close()
            raise
        body.position = end
        if body.answer.status_code == 200 and end < ref.size and not self._closed.is_set():
            self._parked.park(ref.id, body)
        else:
            body.closing.close()

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

    def _receive(self, body: _Body, progress: _Progress, end: int, receiver: Receiver) -> None:
        read = body.read
        # A whole file's answer (a 200) starts before the range: what comes first is dropped.
        _skip(read, progress.position - body.position)
        body.position = progress.position
        while progress.position < end:
            space = receiver.space()
            # At most a piece at a time: the outage clock restarts with each one.
            count = read(space[: min(len(space), end - progress.position, PIECE_SIZE)])
            if count == 0:
                raise Retry("the node's answer ended early")
            receiver.filled(count)
            progress.position += count
            body.position = progress.position
            progress.last_byte_at = self._clock()
        if body.answer.status_code == 206:
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
