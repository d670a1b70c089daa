"""HTTP/1.1 as the fake hosts speak it: request heads and bodies in, response heads out.

Written by hand rather than through ``http.server``: its header parsing goes through the
``email`` package and costs the fake ~0.2 ms of CPU a request, which benchmarks charge to
the product sharing the fake's cores (a put.io's servers are not on the user's machine).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from email.utils import formatdate
from http import HTTPStatus
from io import BufferedIOBase
from typing import NamedTuple, TypeVar, overload
from urllib.parse import parse_qsl, urlsplit

_T = TypeVar("_T")
MAX_LINE = 65536
MAX_HEADERS = 100
_BLANK_LINES = (b"\r\n", b"\n", b"")
_FOLDING = b" \t"  # a header line starting so continues the one before
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"})
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class HeaderMap(Mapping[str, str]):
    """Headers as received: iteration keeps their casing, lookups ignore it."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._values: dict[str, str] = {}  # by lowercase name; repeated headers joined
        self._names: dict[str, str] = {}  # lowercase name -> name as first received
        for name, value in pairs:
            key = name.lower()
            if key in self._values:
                self._values[key] = f"{self._values[key]}, {value}"
            else:
                self._values[key], self._names[key] = value, name

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()]

    @overload
    def get(self, name: str, /) -> str | None: ...
    @overload
    def get(self, name: str, /, default: str | _T) -> str | _T: ...
    def get(self, name: str, /, default: object = None) -> object:
        # Without the KeyError Mapping.get goes through: absent headers are the usual case.
        return self._values.get(name.lower(), default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names.values())

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"HeaderMap({dict(self.items())!r})"


class BadRequest(Exception):
    """The request cannot be read; ``status`` is the answer, after which the connection closes."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class RequestHead(NamedTuple):
    """A request line and its headers; ``keep_alive`` is whether the connection may serve
    another request after this one."""

    method: str
    path: str
    query: dict[str, str]
    headers: HeaderMap
    keep_alive: bool
    expects_continue: bool


def read_head(rfile: BufferedIOBase) -> RequestHead | None:
    """Given a connection's reader, return the next request's head, or None if the client
    closed the connection; raise BadRequest if what came is not a request we can read."""
    line = rfile.readline(MAX_LINE + 1)
    if not line:
        return None
    if len(line) > MAX_LINE:
        raise BadRequest(HTTPStatus.REQUEST_URI_TOO_LONG)
    words = line.decode("iso-8859-1").split()
    if len(words) != 3 or not words[2].startswith("HTTP/"):
        raise BadRequest(HTTPStatus.BAD_REQUEST)
    if not words[2].startswith(("HTTP/1.", "HTTP/0.")):
        raise BadRequest(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED)
    method, target, version = words
    if method not in METHODS:
        raise BadRequest(HTTPStatus.NOT_IMPLEMENTED)
    headers = HeaderMap(_header_lines(rfile))
    connection = headers.get("Connection", "").lower()
    old = version < "HTTP/1.1"  # HTTP/1.0 closes unless asked to keep alive
    keep_alive = connection == "keep-alive" or (not old and connection != "close")
    expects = not old and headers.get("Expect", "").lower() == "100-continue"
    path, query = split_target(target)
    return RequestHead(method, path, query, headers, keep_alive, expects)


def _header_lines(rfile: BufferedIOBase) -> list[tuple[str, str]]:
    """Read header lines up to the blank one; a folded line continues the previous value."""
    pairs: list[tuple[str, str]] = []
    readline = rfile.readline
    while (line := readline(MAX_LINE + 1)) not in _BLANK_LINES:
        if len(line) > MAX_LINE or len(pairs) == MAX_HEADERS:
            raise BadRequest(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
        name, colon, value = line.decode("iso-8859-1").partition(":")
        if line[0] in _FOLDING and pairs:
            pairs[-1] = (pairs[-1][0], f"{pairs[-1][1]} {line.decode('iso-8859-1').strip()}")
        elif colon and name and name.strip() == name:
            pairs.append((name, value.strip()))
        else:
            raise BadRequest(HTTPStatus.BAD_REQUEST)
    return pairs


def split_target(target: str) -> tuple[str, dict[str, str]]:
    """Given a request target, return its path and its query parameters."""
    if target.startswith("//"):
        target = "/" + target.lstrip("/")  # a path, not a "//host/..." network reference
    if target.startswith("/"):
        path, _, query = target.partition("#")[0].partition("?")
    else:  # absolute form, as sent to a proxy
        split = urlsplit(target)
        path, query = split.path, split.query
    return path, dict(parse_qsl(query, keep_blank_values=True)) if query else {}


def read_body(rfile: BufferedIOBase, headers: Mapping[str, str]) -> bytes:
    """Given a reader positioned after a request's head and its headers, read its body."""
    if headers.get("Transfer-Encoding", "").lower() == "chunked":
        return _read_chunked(rfile)
    try:
        length = int(headers.get("Content-Length") or 0)
    except ValueError:
        raise BadRequest(HTTPStatus.BAD_REQUEST) from None
    return rfile.read(length) if length > 0 else b""


def _read_chunked(rfile: BufferedIOBase) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = int(rfile.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        chunks.append(rfile.read(size))
        rfile.readline()


def response_head(status: int, headers: Iterable[tuple[str, str]], length: int) -> bytes:
    """Given a status, headers and the body's length, return the response's head as sent."""
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, '')}", f"Date: {_date()}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    lines.append(f"Content-Length: {length}\r\n\r\n")
    return "\r\n".join(lines).encode("latin-1")


_REASONS = {status.value: status.phrase for status in HTTPStatus}
_last_date: tuple[int, str] = (0, "")


def _date() -> str:
    """The Date header's value, formatted once a second."""
    global _last_date
    now = int(time.time())
    if _last_date[0] != now:
        _last_date = (now, formatdate(now, usegmt=True))
    return _last_date[1]
