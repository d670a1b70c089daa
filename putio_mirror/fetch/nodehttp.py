"""Talking to a put.io download node: one ranged request, its answer checked.

A node is asked with a session that never sends the API token, one ``Range``
request at a time; its answer is checked against the range asked for and the
size put.io listed. Anything a fresh request may cure becomes ``Retry``, and
``Patience`` decides how long to wait before the next one, or that the outage
has lasted long enough. The engine's workers (``crew.py``) build on these; the part
file itself (safe opens, syncs, verification) is ``partfile.py``'s.
"""

from __future__ import annotations

import http.client
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Protocol

import requests
import urllib3
from requests.auth import AuthBase
from requests.utils import default_user_agent
from urllib3.exceptions import HTTPError as Urllib3Error

from putio_mirror.core.errors import ChecksumMismatchError, TransientError
from putio_mirror.core.retry import Backoff
from putio_mirror.fetch.values import FileToFetch
from putio_mirror.net import waits
from putio_mirror.net.cutting import Cover, Cutter
from putio_mirror.net.sessions import Session, pool_get, request_target

DEFAULT_BACKOFF = Backoff(base=1.0, cap=30.0, max_attempts=1000)
URL_EXPIRED = frozenset({401, 403, 404, 410})
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# What requests sends a node, less its Authorization (see NoAuth): the direct path's headers.
DIRECT_HEADERS = {
    "User-Agent": default_user_agent(),
    "Accept": "*/*",
    "Accept-Encoding": "identity",
    "Connection": "keep-alive",
}


class Answered(Protocol):
    """A node's answer as ``body_start`` checks it: its status and headers."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


class NodeAnswer(Answered, Protocol):
    """A node's answer, as ``node_get`` yields it: a streamed ``requests.Response``, or
    urllib3's own where the request skipped requests."""

    @property
    def raw(self) -> urllib3.HTTPResponse: ...


@dataclass(frozen=True, slots=True)
class _DirectAnswer:
    status_code: int
    headers: Mapping[str, str]  # urllib3's: case-insensitive, as requests'
    raw: urllib3.HTTPResponse


class NoAuth(AuthBase):
    """Strips any Authorization header: the API token must never reach a download node.

    Passing an auth object also stops requests from adding credentials from ``~/.netrc``.
    """

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.pop("Authorization", None)
        return request


class Retry(Exception):
    """This request failed in a way that a fresh request may not; ``from_api``: put.io's
    API failed to hand out a node URL (the node was not asked)."""

    def __init__(
        self, reason: str, retry_after: float | None = None, *, from_api: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.from_api = from_api


class Stopped(Exception):
    """``may_continue`` said no at a chunk boundary."""


@dataclass(frozen=True)
class Patience:
    """How long to keep asking a node: ``backoff`` between failed requests, and no
    more than ``max_outage`` seconds without a byte."""

    backoff: Backoff
    max_outage: float
    jitter: Callable[[], float]

    def delay(
        self, item: FileToFetch, trouble: Retry, *, silent: float, failures: int, where: str = ""
    ) -> float:
        """Given a failed request after ``silent`` seconds without a byte and ``failures``
        failures before it, return the seconds to wait before the next request; raise
        TransientError if the outage has lasted too long. ``where`` (e.g. " on any
        connection") goes into the message."""
        if silent >= self.max_outage or failures >= self.backoff.max_attempts:
            raise TransientError(
                f"download of put.io file {item.file_id} got no data{where} for {silent:.0f} s: "
                f"{trouble.reason}",
                "put.io or the network is having trouble; the next run resumes from the "
                "bytes already fetched",
            ) from trouble
        delay = self.backoff.delay(failures, self.jitter())
        return min(max(delay, trouble.retry_after or 0.0), self.max_outage - silent)


def fresh_url(url_for: Callable[[int], str], file_id: int) -> str:
    """Given put.io's ``files/{id}/url`` call, return a fresh node URL for the file;
    raise Retry if put.io could not hand one out right now."""
    try:
        return url_for(file_id)
    except TransientError as exc:
        raise Retry(exc.message, exc.retry_after, from_api=True) from exc
    except requests.RequestException as exc:
        raise Retry(f"no download URL ({type(exc).__name__})", from_api=True) from exc


def byte_range(first: int, last: int, size: int) -> str | None:
    """Given the first and last byte wanted of a file of ``size`` bytes, return what to
    ask in ``Range``: nothing for the whole file, ``first-`` for the rest of it, else
    ``first-last``."""
    if last < size - 1:
        return f"{first}-{last}"
    return f"{first}-" if first else None


@contextmanager
def node_get(
    session: requests.Session,
    url: str,
    byte_range: str | None,
    timeout: tuple[float, float],
    cutter: Cutter | None = None,
) -> Iterator[NodeAnswer]:
    """Given a session and a node URL, yield the streamed answer to a GET (of
    ``Range: bytes=<byte_range>`` if given); raise Retry if the connection fails,
    also while the body is being read.

    Through the session's pool directly where it has one for the URL (``direct_pool``):
    the same connection, TLS settings and headers, without requests' per-request work
    (~1 ms of CPU, as much as a small file's body); a redirect is followed by requests.
    Given a ``cutter``, its ``cut`` ends the request's connects and reads at once, until
    the answer is given back (over ``net/sessions.Session``'s pools: ``Cover``). The wait
    for the answer's head is counted in ``waits``."""
    began = time.monotonic()
    with (
        nullcontext() if cutter is None else Cover(cutter),
        _node_get(session, url, byte_range, timeout) as answer,
    ):
        waits.add(time.monotonic() - began)
        yield answer


@contextmanager
def _node_get(
    session: requests.Session, url: str, byte_range: str | None, timeout: tuple[float, float]
) -> Iterator[NodeAnswer]:
    """``node_get``, uncovered."""
    pool = session.direct_pool(url) if isinstance(session, Session) else None
    if pool is not None:
        with _direct_get(pool, url, byte_range, timeout) as answer:
            if answer is not None:
                yield answer
                return
    # The body is stored as sent: a compressed answer would only cost CPU to undo.
    headers = {"Accept-Encoding": "identity"}
    if byte_range is not None:
        headers["Range"] = f"bytes={byte_range}"
    try:
        with session.get(
            url, headers=headers, auth=NoAuth(), stream=True, timeout=timeout
        ) as response:
            yield response
    except requests.RequestException as exc:
        raise Retry(f"the connection failed ({type(exc).__name__})") from exc


@contextmanager
def _direct_get(
    pool: urllib3.HTTPConnectionPool, url: str, byte_range: str | None, timeout: tuple[float, float]
) -> Iterator[_DirectAnswer | None]:
    """Given the pool of a node URL, yield the streamed answer to a GET through it, or None
    for a redirect (requests follows those); raise Retry as ``node_get`` does."""
    headers = DIRECT_HEADERS
    if byte_range is not None:
        headers = headers | {"Range": f"bytes={byte_range}"}
    try:
        raw = pool_get(pool, request_target(url), headers, timeout)
    except (OSError, http.client.HTTPException, Urllib3Error) as exc:
        raise Retry(f"the connection failed ({type(exc).__name__})") from exc
    try:
        if raw.status in _REDIRECTS or not isinstance(raw, urllib3.HTTPResponse):
            yield None
        else:
            yield _DirectAnswer(raw.status, raw.headers, raw)
    finally:
        # As requests closes a streamed answer: a body read to its end already gave its
        # connection back (body_reader); one left unread closes it.
        raw.close()
        raw.release_conn()


def body_reader(response: NodeAnswer) -> Callable[[memoryview], int]:
    """Given a streamed answer, return a function that fills a buffer with the next
    bytes of its body and returns how many (0 once the body ends); it raises Retry if
    the connection fails, also when no byte came within the read timeout."""
    raw = response.raw
    plain = getattr(raw, "_fp", None)
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if isinstance(plain, http.client.HTTPResponse) and encoding in ("", "identity"):
        # urllib3's own readinto reads into a new bytes object and copies it
        # (urllib3/urllib3#1540); http.client's reads from the socket straight into
        # the buffer, filling it unless the body ends. The socket keeps the read
        # timeout urllib3 gave it, so a stalled node still raises TimeoutError.
        # Measured (bench/throughput.py --part unthrottled, 2 GiB, two pairs of runs):
        # 4.10 / 4.49 CPU s this way against 5.38 / 4.87 s through urllib3. raw._fp is
        # private: tests/test_download.py fails loudly if urllib3 ever moves it.
        return guarded(lambda view: _read_plain(raw, plain, view))
    return guarded(lambda view: _read_decoded(raw, view))


def _read_plain(
    raw: urllib3.HTTPResponse, plain: http.client.HTTPResponse, view: memoryview
) -> int:
    count = plain.readinto(view)
    if plain.length == 0:
        # The whole body was read: the connection may serve the next request, even if
        # the reader stops here, at the end of its segment, without a last empty read.
        raw.release_conn()
    return count


def _read_decoded(raw: urllib3.HTTPResponse, view: memoryview) -> int:
    data = raw.read(len(view), decode_content=True)
    view[: len(data)] = data
    return len(data)


def guarded(read: Callable[[memoryview], int]) -> Callable[[memoryview], int]:
    """Given a body's reader, return one that raises Retry where it fails."""

    def reader(view: memoryview) -> int:
        try:
            return read(view)
        except (OSError, http.client.HTTPException, Urllib3Error) as exc:
            raise Retry(f"the connection failed ({type(exc).__name__})") from exc

    return reader


def body_start(response: Answered, first: int, item: FileToFetch) -> int:
    """Given the node's answer to a request from byte ``first``, return where its body
    starts: ``first``, or 0 for a 200 (the whole file, whatever was asked); raise
    ChecksumMismatchError if the node's file has another size than put.io said, and
    Retry for any other answer."""
    status = response.status_code
    if status == 206:
        start, total = _content_range(response)
        check_total(item, total)
        if start != first:
            raise Retry(f"the node answered a range other than bytes {first}-")
        return first
    if status == 200:
        return 0
    if status == 416:
        check_total(item, _content_range(response)[1])
        raise Retry(f"the node refused the range bytes {first}- (HTTP 416)")
    if status in URL_EXPIRED:
        raise Retry(f"the node refused the URL (HTTP {status}); asking for a fresh one")
    raise Retry(f"the node answered HTTP {status}", _retry_after(response))


def _content_range(response: Answered) -> tuple[int | None, int | None]:
    """Given a 206 or 416 answer, return the start and total of its Content-Range."""
    header = response.headers.get("Content-Range", "").strip()
    if match := _CONTENT_RANGE.fullmatch(header):
        total = match.group(3)
        return int(match.group(1)), None if total == "*" else int(total)
    if match := _UNSATISFIED_RANGE.fullmatch(header):
        return None, int(match.group(1))
    return None, None


def check_total(item: FileToFetch, total: int | None) -> None:
    """Given the total size a node announced, raise ChecksumMismatchError if it is
    not the size put.io lists."""
    if total is not None and total != item.size:
        raise ChecksumMismatchError(
            f"put.io file {item.file_id}: the download node has {total} bytes, "
            f"put.io lists {item.size}",
            "the file changed on put.io; the next run lists it again",
        )


def _retry_after(response: Answered) -> float | None:
    # Nodes are not known to send Retry-After at all; honour only the seconds form,
    # which needs no wall clock.
    header = response.headers.get("Retry-After", "").strip()
    return float(header) if header.isdigit() else None
