"""A node's GETs, spoken by hand (``net/plainhttp.py``) where requests would add nothing:
a small file's, whole (``lean_body``, a chunk at a time): ~0.4 ms less CPU a file than
through urllib3; and
a part's, streamed chunk by chunk (``streamed_get``): the same, and one ``recv`` a chunk
(issue 14).

The answer meets ``nodehttp.body_start``'s checks, and a failed connection raises ``Retry``
as ``node_get`` does: the same status codes, the same 206 checks, the same Retry-After.
An answer not read by hand (a redirect, a chunked or compressed body, …) is ``NOT_MINE``:
the caller asks again through ``node_get``.
"""

from __future__ import annotations

import http.client
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import requests
import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error

from putio_mirror.fetch.nodehttp import (
    DIRECT_HEADERS,
    Answered,
    Retry,
    body_reader,
    body_start,
    guarded,
    node_get,
)
from putio_mirror.fetch.values import FileToFetch
from putio_mirror.net.cutting import Cutter
from putio_mirror.net.plainhttp import (
    NOT_MINE,
    BodyReader,
    Head,
    Loan,
    NotMine,
    read_head,
    request_bytes,
    send,
)
from putio_mirror.net.sessions import Session, request_target

__all__ = ["NOT_MINE", "Filling", "Partial", "lean_body", "streamed_get"]

#: an answer, and what fills a buffer with the next bytes of its body (0 at its end)
Streamed = tuple[Answered, Callable[[memoryview], int]]

#: a node is asked for the bytes as stored (``DIRECT_HEADERS``)
_STORED = frozenset({"", "identity"})


@dataclass(frozen=True)
class Partial:
    """A body's first bytes, as they came, and why the rest did not: the caller said stop
    between two steps (``trouble`` None), or the connection failed (its Retry)."""

    body: memoryview
    trouble: Retry | None = None


class Filling:
    """A buffer filled with a body's bytes a step at a time, asking between steps whether
    to go on; what came is known even when a read fails."""

    __slots__ = ("got", "view")

    def __init__(self, view: memoryview) -> None:
        self.view = view
        self.got = 0

    def fill(
        self, read: Callable[[memoryview], int], step: int, may_continue: Callable[[], bool]
    ) -> bool:
        """Given what fills a buffer with the body's next bytes (0 at its end), the step
        (the run's chunk) and whether to go on, read until the buffer is full or the body
        ends, asking after each read that leaves room; return whether told to stop."""
        while self.got < len(self.view):
            count = read(self.view[self.got : self.got + step])
            if not count:
                return False
            self.got += count
            if self.got < len(self.view) and not may_continue():
                return True
        return False

    def came(self) -> memoryview:
        """The bytes read so far."""
        return self.view[: self.got]


def lean_body(
    pool: urllib3.HTTPConnectionPool,
    target: str,
    item: FileToFetch,
    timeout: tuple[float, float],
    cutter: Cutter | None = None,
    step: int | None = None,
    may_continue: Callable[[], bool] = lambda: True,
    buffer: bytearray | None = None,
) -> memoryview | Partial | NotMine | None:
    """Given the pool of a node URL, the URL's path and query, a file and the timeouts,
    GET the whole file on one of the pool's connections, ``step`` bytes at a time (None:
    all at once), asking between steps whether to go on; return its body if it has the
    file's size, Partial if told to stop first or if the connection failed after some of
    it came, None if it is longer (the caller's usual path verifies what it fetches),
    NOT_MINE for an answer to ask again through ``node_get``. Given a ``cutter``, its
    ``cut`` ends the wait. Raise Retry for a connection failed before any of the body
    came, a short body or an answer ``body_start`` refuses (ChecksumMismatchError for a
    node announcing another size). Given a ``buffer`` (``room_for`` the file), the answer
    is read into it: the body returned is a view of it."""
    request = request_bytes(pool, target, DIRECT_HEADERS)
    if request is None:
        return NOT_MINE
    filling: Filling | None = None
    try:
        with Loan(pool, cutter) as loan:
            if loan.conn is None:
                return NOT_MINE
            sock = loan.watch(send(loan.conn, request, timeout))
            head = read_head(sock, item.size, buffer)
            if not head.plain(_STORED):
                return NOT_MINE
            body_start(head, 0, item)  # raises for anything but the whole file
            if head.length > item.size:
                return None  # longer than put.io lists: the usual path fetches, verifies
            # into the room read_head left after the head, each step in one ``recv``; a
            # node that trickles hands over what came within the read timeout, and a
            # window that closed is then heard of between steps as on the usual path
            reader = BodyReader(sock, head, head.length)
            filling = Filling(memoryview(head.stored)[head.start : head.start + head.length])
            if filling.fill(reader.readinto, step or head.length, may_continue):
                return Partial(filling.came())
            if head.length < item.size:
                raise Retry(f"the node sent a short body for bytes 0-{item.size - 1}")
            loan.kept = reader.done and reader.reusable
            return filling.view
    except (OSError, http.client.HTTPException, Urllib3Error) as exc:
        failed = Retry(f"the connection failed ({type(exc).__name__})")
        if filling is not None and filling.got:
            return Partial(filling.came(), failed)  # kept: the usual path goes on from there
        raise failed from exc


@contextmanager
def streamed_get(
    session: requests.Session,
    url: str,
    byte_range: str | None,
    timeout: tuple[float, float],
    cutter: Cutter | None = None,
) -> Iterator[Streamed]:
    """Given what ``node_get`` is given, yield the node's answer and its body's reader
    (which raises Retry as ``body_reader``'s does); raise Retry as ``node_get`` does.
    Spoken by hand on a connection of the session's pool where it has one for the URL;
    an answer not read by hand is asked again through ``node_get``. Given a ``cutter``,
    its ``cut`` ends the request's connect and reads (the head's too) at once, either
    way."""
    pool = session.direct_pool(url) if isinstance(session, Session) else None
    request = None if pool is None else _request(pool, url, byte_range)
    if pool is not None and request is not None:
        with Loan(pool, cutter) as loan:
            sent = _head(loan, request, timeout)
            if sent is not None and sent[1].plain(_STORED):
                body = BodyReader(*sent, sent[1].length)
                yield sent[1], guarded(body.readinto)
                loan.kept = body.done and body.reusable
                return
    with node_get(session, url, byte_range, timeout, cutter) as answer:
        yield answer, body_reader(answer)


def _request(pool: urllib3.HTTPConnectionPool, url: str, byte_range: str | None) -> bytes | None:
    """Return the GET of ``url`` (of ``Range: bytes=<byte_range>`` if given) as sent by
    hand; None if it is not plain enough to be."""
    request = request_bytes(pool, request_target(url), DIRECT_HEADERS)
    if request is None or byte_range is None:
        return request
    if not byte_range.isascii() or not byte_range.isprintable():
        return None
    # after the headers every request to the host shares (``request_bytes`` keeps them)
    return request[:-2] + b"Range: bytes=" + byte_range.encode("ascii") + b"\r\n\r\n"


def _head(
    loan: Loan, request: bytes, timeout: tuple[float, float]
) -> tuple[socket.socket, Head] | None:
    """Given a loan, send the request on its connection and read the answer's head; return
    the socket and the head, None for a connection of a class not known here. Raise Retry
    if the connection fails."""
    if loan.conn is None:
        return None
    try:
        sock = loan.watch(send(loan.conn, request, timeout))
        return sock, read_head(sock, 0)
    except (OSError, http.client.HTTPException, Urllib3Error) as exc:
        raise Retry(f"the connection failed ({type(exc).__name__})") from exc
