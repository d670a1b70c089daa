"""A small file's GET, spoken by hand on a connection of the session's pool.

A node GET through urllib3 cost ~0.4 ms of CPU (a ``Retry`` and a ``Timeout`` object, the
request written header by header, the answer's headers parsed by the ``email`` package, a
liveness ``poll`` and two ``settimeout`` system calls), as much as the rest of a small file's
fetch; written and read by hand it costs a tenth of that (issue 14). Only the plainest
answer is read here: a status line, headers, a body framed by ``Content-Length``. The
connection itself is urllib3's, taken from and given back to the pool requests would use
(``Session.direct_pool``: no proxy applies), so it is made, and for HTTPS verified, exactly
as before, and the files fetched the usual way share it.

Whatever this reader does not handle itself (a redirect, a chunked or compressed body, an
informational answer, a header folded over lines, a target that is not plain ASCII) is
``NOT_MINE``: the caller asks again through ``nodehttp.node_get`` as before. Every other
answer meets ``nodehttp.body_start``'s checks, and a failed connection raises ``Retry`` as
``node_get`` does: the same status codes, the same 206 checks, the same Retry-After.
"""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator, Mapping
from typing import Final

import urllib3
from urllib3.connection import HTTPConnection
from urllib3.exceptions import HTTPError as Urllib3Error

from putio_mirror.fetch.nodehttp import DIRECT_HEADERS, Retry, body_start
from putio_mirror.fetch.values import FileToFetch


class _NotMine:
    """The answer (or the request) is not one this reader handles: ask through node_get."""


NOT_MINE: Final = _NotMine()

#: the most bytes of status line and headers read before the body
HEAD_ROOM = 16 * 1024
_HANDED_ELSEWHERE = frozenset({301, 302, 303, 307, 308})  # requests follows redirects
_FIXED = "".join(f"{name}: {value}\r\n" for name, value in DIRECT_HEADERS.items()) + "\r\n"


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


class LeanAnswer:
    """An answer's status and headers, as ``body_start`` reads them."""

    __slots__ = ("headers", "status_code")

    def __init__(self, status_code: int, headers: Headers) -> None:
        self.status_code = status_code
        self.headers = headers


def lean_body(
    pool: urllib3.HTTPConnectionPool,
    target: str,
    item: FileToFetch,
    timeout: tuple[float, float],
) -> memoryview | _NotMine | None:
    """Given the pool of a node URL, the URL's path and query, a file and the timeouts,
    GET the whole file on one of the pool's connections; return its body if it has the
    file's size, None if it is longer (the caller's usual path verifies what it fetches),
    NOT_MINE for an answer to ask again through ``node_get``. Raise Retry for a failed
    connection, a short body or an answer ``body_start`` refuses (ChecksumMismatchError
    for a node announcing another size)."""
    request = _request(pool, target)
    if request is None:
        return NOT_MINE
    try:
        conn = pool._get_conn()  # the connection requests' GET would take
    except Urllib3Error as exc:  # the pool was closed meanwhile
        raise Retry(f"the connection failed ({type(exc).__name__})") from exc
    keep = False
    try:
        if not isinstance(conn, HTTPConnection):  # another class mounted: not known here
            keep = True
            return NOT_MINE
        keep, body = _exchange(conn, request, item, timeout)
        return body
    except (OSError, http.client.HTTPException, Urllib3Error) as exc:
        raise Retry(f"the connection failed ({type(exc).__name__})") from exc
    finally:
        if not keep:
            conn.close()  # the pool makes a new one for the next request
        pool._put_conn(conn)


def _request(pool: urllib3.HTTPConnectionPool, target: str) -> bytes | None:
    """Given a pool and a request target, return the GET as http.client would write it
    with the direct path's headers; None if the target is not plain ASCII."""
    if not (target.isascii() and target.isprintable()) or " " in target:
        return None
    host = pool.host
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    if pool.port is not None and pool.port != pool.ConnectionCls.default_port:
        host = f"{host}:{pool.port}"
    if not host.isascii():
        return None
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{_FIXED}".encode("ascii")


def _exchange(
    conn: HTTPConnection,
    request: bytes,
    item: FileToFetch,
    timeout: tuple[float, float],
) -> tuple[bool, memoryview | _NotMine | None]:
    """Send the request on the connection and read the answer; return whether the
    connection may serve another request, and what ``lean_body`` returns."""
    if conn.sock is None:
        conn.timeout = timeout[0]
        conn.connect()  # urllib3's: its socket options, and TLS verified as requests asks
    sock = conn.sock
    assert sock is not None  # connected
    if sock.gettimeout() != timeout[1]:  # each settimeout is a system call
        sock.settimeout(timeout[1])
    sock.sendall(request)
    stored = bytearray(HEAD_ROOM + item.size + 1)
    buffer = memoryview(stored)
    got, head_end = _read_head(sock, stored, buffer)
    status, headers, closes = _parse_head(buffer[:head_end])
    if status < 200 or status in _HANDED_ELSEWHERE or not _plainly_framed(headers):
        return False, NOT_MINE
    body_start(LeanAnswer(status, headers), 0, item)  # raises for anything but the file
    length = int(headers["content-length"])
    if length > item.size:
        return False, None  # longer than put.io lists: the usual path fetches and verifies
    end = head_end + length
    while got < end:
        count = sock.recv_into(buffer[got : end + 1])
        if not count:
            raise http.client.IncompleteRead(bytes(buffer[head_end:got]), end - got)
        got += count
    if length < item.size:
        raise Retry(f"the node sent a short body for bytes 0-{item.size - 1}")
    # bytes past the body (none were asked for) spoil the connection for the next request
    return got == end and not closes, buffer[head_end:end]


def _read_head(sock: socket.socket, stored: bytearray, buffer: memoryview) -> tuple[int, int]:
    """Read until the end of the headers; return the bytes read and where the body starts."""
    got = 0
    while True:
        count = sock.recv_into(buffer[got:HEAD_ROOM])
        if not count:
            raise http.client.RemoteDisconnected("the node closed the connection")
        start = max(0, got - 3)
        got += count
        found = stored.find(b"\r\n\r\n", start, got)
        if found >= 0:
            return got, found + 4
        if got >= HEAD_ROOM:
            raise http.client.LineTooLong("headers")


def _parse_head(head: memoryview) -> tuple[int, Headers, bool]:
    """Given the status line and headers, return the status, the headers and whether the
    node closes the connection after this answer."""
    lines = bytes(head).decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not (version.startswith("HTTP/1.") and code.isdigit() and rest[3:4] in ("", " ")):
        raise http.client.BadStatusLine(lines[0])
    headers = Headers()
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon or line[0] in " \t" or name != name.strip():
            headers.add("transfer-encoding", "unreadable")  # a folded or odd line: not ours
            continue
        headers.add(name, value.strip())
    connection = headers.get("connection", "").lower()
    closes = "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection)
    return int(code), headers, closes


def _plainly_framed(headers: Headers) -> bool:
    """Whether the body is framed by one Content-Length and sent as stored."""
    encoding = headers.get("content-encoding", "identity").strip().lower()
    return (
        "transfer-encoding" not in headers
        and encoding in ("", "identity")
        and headers.get("content-length", "").isdigit()
    )
