"""A GET spoken by hand on a connection of a urllib3 pool: the plainest answers only.

A GET through urllib3 costs ~0.4 ms of CPU (a ``Retry`` and a ``Timeout`` object, the
request written header by header, the answer's headers parsed by the ``email`` package, a
liveness ``poll`` and two ``settimeout`` system calls): as much as the rest of a small
file's fetch, and a small file makes two (its link from the API, its bytes from a node).
Written and read by hand it costs a tenth of that (issue 14). Only the plainest answer is
read here: a status line, headers, a body framed by ``Content-Length``. The connection
itself is urllib3's, taken from and given back to the pool requests would use
(``Session.direct_pool``: no proxy applies), so it is made, and for HTTPS verified, exactly
as before, and requests' own GETs share it.

What this reader does not handle (a redirect, a chunked or unknown-encoded body, an
informational answer, a header folded over lines, a target that is not plain ASCII, a
connection class of another kind) is ``NOT_MINE``: the caller asks again the usual way.
The callers map the exceptions raised here (``OSError``, ``http.client.HTTPException``,
urllib3's) as they map urllib3's own.
"""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Final

import urllib3
from urllib3.connection import HTTPConnection


class NotMine:
    """The answer (or the request) is not one read here: ask again the usual way."""


NOT_MINE: Final = NotMine()

#: the most bytes of status line and headers read before the body
HEAD_ROOM = 16 * 1024
#: answers requests would follow (redirects) or that precede the real one (1xx)
_ELSEWHERE = frozenset({301, 302, 303, 307, 308})


class Headers(Mapping[str, str]):
    """An answer's headers, looked up by name whatever its case; repeated headers joined
    with ", ", as urllib3 joins them."""

    __slots__ = ("_by_name",)

    def __init__(self) -> None:
        self._by_name: dict[str, str] = {}

    def __getitem__(self, name: str) -> str:
        return self._by_name[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def add(self, name: str, value: str) -> None:
        key = name.lower()
        known = self._by_name.get(key)
        self._by_name[key] = value if known is None else f"{known}, {value}"


class Head:
    """An answer's status line and headers, read; the body's first bytes in ``stored``."""

    __slots__ = ("closes", "got", "headers", "reason", "start", "status_code", "stored")

    def __init__(
        self,
        status: int,
        reason: str,
        headers: Headers,
        closes: bool,
        stored: bytearray,
        start: int,
        got: int,
    ) -> None:
        self.status_code = status
        self.reason = reason
        self.headers = headers
        self.closes = closes  # the node closes the connection after this answer
        self.stored, self.start, self.got = stored, start, got  # the body is stored[start:]

    def plain(self, encodings: frozenset[str]) -> bool:
        """Whether this answer is read here: final, framed by one Content-Length, in one of
        ``encodings``."""
        encoding = self.headers.get("content-encoding", "identity").strip().lower()
        return (
            self.status_code >= 200
            and self.status_code not in _ELSEWHERE
            and "transfer-encoding" not in self.headers
            and encoding in encodings
            and self.headers.get("content-length", "").isdigit()
        )

    @property
    def length(self) -> int:
        return int(self.headers["content-length"])


def request_bytes(
    pool: urllib3.HTTPConnectionPool, target: str, headers: Mapping[str, str]
) -> bytes | None:
    """Given a pool, a request target and headers, return the GET as http.client writes it
    (``Host`` first, as it computes it); None if anything in it is not plain ASCII."""
    host = f"[{pool.host}]" if ":" in pool.host else pool.host  # an IPv6 literal
    if pool.port is not None and pool.port != pool.ConnectionCls.default_port:
        host = f"{host}:{pool.port}"
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if not all(line.isprintable() for line in lines) or " " in target:
        return None  # a line break or a control character: http.client refuses it, let it
    text = "\r\n".join(lines) + "\r\n\r\n"
    if not text.isascii():
        return None
    return text.encode("ascii")


class Loan:
    """A connection borrowed from a pool (None: of a class not known here, left alone);
    ``kept``: the answer was read to its end and the connection may serve the next one."""

    __slots__ = ("conn", "kept")

    def __init__(self, conn: HTTPConnection | None) -> None:
        self.conn = conn
        self.kept = False


@contextmanager
def borrowed(pool: urllib3.HTTPConnectionPool) -> Iterator[Loan]:
    """Given a pool, yield one of its connections, given back afterwards: closed first
    unless the borrower set ``kept``."""
    conn = pool._get_conn()  # the connection requests' GET would take
    loan = Loan(conn if isinstance(conn, HTTPConnection) else None)
    try:
        yield loan
    finally:
        if loan.conn is not None and not loan.kept:
            conn.close()  # the pool makes a new one for the next request
        pool._put_conn(conn)


def send(conn: HTTPConnection, request: bytes, timeout: tuple[float, float]) -> socket.socket:
    """Given a connection, a request and the (connect, read) timeouts, send the request,
    connecting first if need be (urllib3's connect: its socket options, TLS verified as
    requests asks); return the socket, ready to read within the read timeout."""
    if conn.sock is None:
        conn.timeout = timeout[0]
        conn.connect()
    sock = conn.sock
    assert sock is not None  # connected
    if sock.gettimeout() != timeout[1]:  # each settimeout is a system call
        sock.settimeout(timeout[1])
    sock.sendall(request)
    return sock


def read_head(sock: socket.socket, room: int) -> Head:
    """Given a socket a GET was sent on and the bytes of body expected at most (``room``),
    read the answer's status line and headers."""
    stored = bytearray(HEAD_ROOM + room + 1)  # one more: a longer body shows
    view, got = memoryview(stored), 0
    while True:
        count = sock.recv_into(view[got:HEAD_ROOM])
        if not count:
            raise http.client.RemoteDisconnected("the remote end closed the connection")
        start = max(0, got - 3)
        got += count
        found = stored.find(b"\r\n\r\n", start, got)
        if found >= 0:
            break
        if got >= HEAD_ROOM:
            raise http.client.LineTooLong("headers")
    lines = stored[:found].decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if not (version.startswith("HTTP/1.") and len(code) == 3 and code.isdigit()):
        raise http.client.BadStatusLine(lines[0])
    headers = Headers()
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or line[0] in " \t" or name != name.strip():
            headers.add("transfer-encoding", "unreadable")  # a folded or odd line: not ours
            continue
        headers.add(name, value.strip())
    connection = headers.get("connection", "").lower()
    closes = "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection)
    return Head(int(code), reason, headers, closes, stored, found + 4, got)


def read_body(sock: socket.socket, head: Head, length: int) -> memoryview:
    """Given an answer's head and its body's length (no more than the room it was read
    with), read the rest of the body; return it. Raise IncompleteRead if the connection
    ends before it does."""
    got, end = head.got, head.start + length
    if len(head.stored) <= end:  # more than the room read_head was given
        head.stored.extend(bytes(end + 1 - len(head.stored)))
    view = memoryview(head.stored)
    while got < end:
        count = sock.recv_into(view[got : end + 1])
        if not count:
            raise http.client.IncompleteRead(bytes(view[head.start : got]), end - got)
        got += count
    head.got = got
    return view[head.start : end]


def reusable(head: Head, length: int) -> bool:
    """Whether the connection may serve the next request after this body: the node keeps
    it open and sent nothing past the body."""
    return not head.closes and head.got == head.start + length
