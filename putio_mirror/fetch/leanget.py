"""A small file's node GET, spoken by hand (``net/plainhttp.py``) where requests would add
nothing: ~0.4 ms less CPU a file than through urllib3 (issue 14).

The answer meets ``nodehttp.body_start``'s checks, and a failed connection raises ``Retry``
as ``node_get`` does: the same status codes, the same 206 checks, the same Retry-After.
An answer not read by hand (a redirect, a chunked or compressed body, …) is ``NOT_MINE``:
the caller asks again through ``node_get``.
"""

from __future__ import annotations

import http.client

import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error

from putio_mirror.fetch.nodehttp import DIRECT_HEADERS, Retry, body_start
from putio_mirror.fetch.values import FileToFetch
from putio_mirror.net.plainhttp import (
    NOT_MINE,
    Loan,
    NotMine,
    read_body,
    read_head,
    request_bytes,
    reusable,
    send,
)

__all__ = ["NOT_MINE", "lean_body"]

#: a node is asked for the bytes as stored (``DIRECT_HEADERS``)
_STORED = frozenset({"", "identity"})


def lean_body(
    pool: urllib3.HTTPConnectionPool,
    target: str,
    item: FileToFetch,
    timeout: tuple[float, float],
) -> memoryview | NotMine | None:
    """Given the pool of a node URL, the URL's path and query, a file and the timeouts,
    GET the whole file on one of the pool's connections; return its body if it has the
    file's size, None if it is longer (the caller's usual path verifies what it fetches),
    NOT_MINE for an answer to ask again through ``node_get``. Raise Retry for a failed
    connection, a short body or an answer ``body_start`` refuses (ChecksumMismatchError
    for a node announcing another size)."""
    request = request_bytes(pool, target, DIRECT_HEADERS)
    if request is None:
        return NOT_MINE
    try:
        with Loan(pool) as loan:
            if loan.conn is None:
                return NOT_MINE
            sock = send(loan.conn, request, timeout)
            head = read_head(sock, item.size)
            if not head.plain(_STORED):
                return NOT_MINE
            body_start(head, 0, item)  # raises for anything but the whole file
            if head.length > item.size:
                return None  # longer than put.io lists: the usual path fetches, verifies
            body = read_body(sock, head, head.length)
            if head.length < item.size:
                raise Retry(f"the node sent a short body for bytes 0-{item.size - 1}")
            loan.kept = reusable(head, head.length)
            return body
    except (OSError, http.client.HTTPException, Urllib3Error) as exc:
        raise Retry(f"the connection failed ({type(exc).__name__})") from exc
