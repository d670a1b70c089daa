"""Sessions that share one connection pool and read the environment once per origin.

requests re-reads the proxy environment (``*_proxy``, ``no_proxy``, CA bundles) for every
request: two scans of ``os.environ`` each, ~0.3 ms of CPU, which profiled as the largest
single cost of a small file after the journal (an API call for its link and a node GET
each pay it). The environment does not change during a run, so a ``Session`` asks requests
once per (scheme, host) and keeps the answer.

A session is not promised to be thread-safe; its connection pool (urllib3's) is. So each
thread takes a ``sibling()``: a session of its own over the same pool, which lets a
connection to a node opened for one file serve the next, whichever thread fetches it.

A download node's GET, and an API GET (``direct_get``: a small file's link), may skip
requests altogether (``direct_pool``): preparing a request, merging its settings and finding
its pool cost ~1 ms of CPU each, as much as a small file's whole body. The pool requests
would pick is found once per origin, the same way (TLS settings from the environment's CA
bundle), and only where no proxy applies. The API's GET is then written and read by hand
on one of that pool's connections (``plainhttp.py``), urllib3 sending it only where the
answer is not plain.
"""

from __future__ import annotations

import http.client
import json
import weakref
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3 import HTTPConnectionPool, ProxyManager
from urllib3.exceptions import ConnectTimeoutError, ReadTimeoutError
from urllib3.exceptions import HTTPError as Urllib3Error

from putio_mirror.net.cutting import CUT_POOLS
from putio_mirror.net.plainhttp import (
    Head,
    Loan,
    read_body,
    read_head,
    request_bytes,
    reusable,
    send,
)

if TYPE_CHECKING:
    from requests.sessions import _Settings  # the stubs' name for what requests returns

# requests' own: an adapter whose ``send`` was replaced since (a test double, a library
# hooking requests) must see every request, so no GET skips it then.
_REQUESTS_SEND = HTTPAdapter.send

#: Connections kept per host: parallel_files (up to 16) times a few segments, with room.
POOL_PER_HOST = 64


class _CuttableAdapter(HTTPAdapter):
    """requests' adapter, its pools' connections cut short by the ``cutting.Cover`` of
    the thread that uses them, if it has one: a download's GET that requests sends (a
    redirect followed) or urllib3 reads (an answer not read by hand) is cut at a stop as
    one read by hand is, and so is an API call. The pools of an HTTP(S) proxy too (the
    environment's ``*_proxy``): every request then goes through requests, to the proxy's
    address. Nothing changes where no cover is."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = CUT_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        # (a SOCKS proxy's pools have connection classes of their own: left as they are)
        if type(manager) is ProxyManager:
            manager.pool_classes_by_scheme = CUT_POOLS
        return manager


class _CountedHeaders(CaseInsensitiveDict[str | bytes]):
    """A session's headers, their changes counted: what a GET by hand sends is merged once
    for each change (``Session.sent_headers``), not once a request."""

    def __init__(self, data: Mapping[str, str | bytes]) -> None:
        self.changes = 0
        super().__init__(data)

    def __setitem__(self, key: str, value: str | bytes) -> None:
        super().__setitem__(key, value)
        self.changes += 1

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.changes += 1


class Session(requests.Session):
    """A requests session over a shared pool, with the environment read once per origin."""

    def __init__(
        self,
        adapter: HTTPAdapter | None = None,
        environment: dict[tuple[str, str], _Settings] | None = None,
        family: weakref.WeakSet[HTTPConnectionPool] | None = None,
    ) -> None:
        super().__init__()
        self._owns_adapter = adapter is None
        # every pool this session and its siblings kept for GETs by hand: closed with the
        # session that owns the adapter (urllib3 2 closes a pool its manager let go of only
        # once it is garbage, and these are kept until the siblings are)
        self._family: weakref.WeakSet[HTTPConnectionPool] = (
            weakref.WeakSet() if family is None else family
        )
        self._adapter = adapter or _CuttableAdapter(pool_connections=8, pool_maxsize=POOL_PER_HOST)
        self.mount("http://", self._adapter)
        self.mount("https://", self._adapter)
        # shared with siblings: dict reads and writes are atomic, and a race costs one lookup
        self._environment: dict[tuple[str, str], _Settings] = (
            {} if environment is None else environment
        )
        self._pools: dict[tuple[str, str], HTTPConnectionPool | None] = {}
        # the same by a plain URL's start (``_plain_split``): one per origin, as written
        self._by_start: dict[str, HTTPConnectionPool | None] = {}
        self.headers = _CountedHeaders(self.headers)
        # a request's headers -> (the session's headers, their changes, what is sent)
        self._sent: dict[tuple[tuple[str, str], ...], tuple[object, int, dict[str, str]]] = {}

    def sibling(self) -> Session:
        """Return a session for another thread, over the same pool and environment."""
        return Session(self._adapter, self._environment, self._family)

    def sent_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Given a request's headers, return those a GET by hand sends: the session's, then
        these, as requests merges them (a None dropped, bytes read as Latin-1). Kept for
        each request's headers until the session's change: a small file's link is one
        request, and merging them was ~5 % of its CPU (issue 14)."""
        own, key = self.headers, tuple(headers.items())
        if isinstance(own, _CountedHeaders):
            known = self._sent.get(key)
            if known is not None and known[0] is own and known[1] == own.changes:
                return known[2]
        merged: dict[str, str | bytes | None] = {**own, **headers}  # as requests
        sent = {
            name: value.decode("latin-1") if isinstance(value, bytes) else value
            for name, value in merged.items()
            if value is not None
        }
        if isinstance(own, _CountedHeaders):
            if len(self._sent) >= 16:  # (one client sends one set of headers)
                self._sent.clear()
            self._sent[key] = (own, own.changes, sent)
        return sent

    def direct_pool(self, url: str) -> HTTPConnectionPool | None:
        """Given a URL, return the urllib3 pool requests would send it through, for a GET
        that skips requests; None where requests must do it (a proxy applies, a scheme
        other than HTTP(S), another adapter mounted or requests' hooked, the environment
        ignored)."""
        return self._pool_for(url, _plain_split(url))

    def _pool_for(self, url: str, split: tuple[str, str] | None) -> HTTPConnectionPool | None:
        """``direct_pool``, given the URL's ``_plain_split`` too."""
        if type(self._adapter).send is not _REQUESTS_SEND:
            return None
        if split is not None and split[0] in self._by_start:  # no urlsplit for most
            pool = self._by_start[split[0]]
            if pool is None or pool.pool is not None:  # a pool's is None once it is closed
                return pool
        origin = urlsplit(url)[:2]
        if origin in self._pools:
            pool = self._pools[origin]
            if pool is None or pool.pool is not None:
                if split is not None:
                    self._by_start[split[0]] = pool
                return pool
        if not self.trust_env or origin[0] not in ("http", "https"):
            return None
        if self.get_adapter(url) is not self._adapter:
            return None
        settings = self.merge_environment_settings(url, {}, None, None, None)
        if settings["proxies"] and requests.utils.select_proxy(url, settings["proxies"]):
            pool = None
        else:
            request = requests.Request("GET", url).prepare()
            found = self._adapter.get_connection_with_tls_context(
                request, settings["verify"], None, settings["cert"]
            )
            pool = found if isinstance(found, HTTPConnectionPool) else None
            if pool is not None:
                self._family.add(pool)
        self._pools[origin] = pool
        if split is not None:
            self._by_start[split[0]] = pool
        return pool

    def close(self) -> None:
        """Close every connection this session's pools hold (its siblings' too) if it owns
        them; a sibling's close leaves them to the owner.

        Clearing urllib3 2's pool manager (what requests' close does) no longer closes the
        pools: each closes once it is garbage. A ``serve`` running for weeks kept every
        run's connections to put.io open until the cyclic garbage collector came by."""
        if not self._owns_adapter:
            return
        manager = self._adapter.poolmanager
        # (urllib3's container refuses to be iterated: not thread-safe, it says)
        pools = [manager.pools.get(key) for key in manager.pools.keys()]  # noqa: SIM118
        super().close()
        for pool in [*pools, *self._family]:
            if pool is not None:
                pool.close()

    def merge_environment_settings(
        self, url: str | bytes | None, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> _Settings:
        if not self.trust_env or proxies or not isinstance(url, str):
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        origin = urlsplit(url)[:2]
        found = self._environment.get(origin)
        if found is None:
            found = super().merge_environment_settings(url, {}, None, None, None)
            self._environment[origin] = found
        return {
            "proxies": dict(found["proxies"]),
            "stream": self.stream if stream is None else stream,
            # an explicit verify=False (or a bundle) wins; True/None take the environment's
            "verify": found["verify"] if verify in (None, True) else verify,
            "cert": self.cert if cert is None else cert,
        }


def sibling_of(session: requests.Session) -> requests.Session:
    """Given a session, return one for another thread: over its pool if it is ours."""
    return session.sibling() if isinstance(session, Session) else requests.Session()


def request_target(url: str) -> str:
    """Given a URL, return what a GET asks for: path and query."""
    split = _plain_split(url)
    if split is not None:
        return split[1]
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _plain_split(url: str) -> tuple[str, str] | None:
    """Given a URL, return its start (scheme and authority, as written) and its request
    target when urlsplit would find the same target as written: an http(s) URL with a
    path, no fragment, nothing urlsplit removes, no empty query; else None. A node's and
    the API's URLs are plain: each file skips two urlsplit calls (issue 14)."""
    if not url.startswith(("http://", "https://")):
        return None
    cut = url.find("/", 8 if url[4] == "s" else 7)
    if cut < 0:
        return None
    start, target = url[:cut], url[cut:]
    if "?" in start or "#" in url or target.endswith("?"):
        return None
    if "\t" in url or "\r" in url or "\n" in url:  # urlsplit removes them
        return None
    return start, target


def pool_get(
    pool: urllib3.HTTPConnectionPool,
    target: str,
    headers: Mapping[str, str],
    timeout: tuple[float, float],
) -> urllib3.BaseHTTPResponse:
    """Given a pool, a request target, headers and timeouts, send one GET through the pool
    as requests would: no retries, redirects not followed, the body streamed as sent.
    Raise urllib3's (or the socket's) exceptions; the callers map them as they need."""
    return pool.urlopen(
        "GET",
        target,
        headers=dict(headers),
        retries=False,
        redirect=False,
        assert_same_host=False,
        preload_content=False,
        decode_content=False,
        timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
    )


def direct_get(
    session: requests.Session,
    url: str,
    params: Mapping[str, str | int] | None,
    headers: Mapping[str, str],
    timeout: tuple[float, float],
) -> requests.Response | PlainAnswer | None:
    """Given a session, a URL, its query, headers (the session's are added, as requests
    does) and timeouts, return the answer to a GET sent through the session's pool as
    requests would send it, redirects not followed: read by hand (``PlainAnswer``) where it
    is plain; None where requests must send it (``Session.direct_pool``). Raise requests'
    exceptions for connection trouble."""
    if not isinstance(session, Session):
        return None
    split = _plain_split(url)
    pool = session._pool_for(url, split)
    if pool is None:
        return None
    if split is not None:
        path, _, own = split[1].partition("?")
    else:
        parts = urlsplit(url)
        path, own = parts.path or "/", parts.query
    added = urlencode(params, doseq=True) if params else ""
    query = "&".join(part for part in (own, added) if part)
    target = path + (f"?{query}" if query else "")
    sent = session.sent_headers(headers)
    try:
        read = _read_by_hand(pool, target, sent, timeout)
        if read is not None:
            return _answer(url, query, read[0], read[1])
        raw = pool_get(pool, target, sent, timeout)
    except ConnectTimeoutError as exc:  # NewConnectionError too: nothing reached the host
        raise requests.ConnectTimeout(exc) from exc
    except (ReadTimeoutError, TimeoutError) as exc:  # TimeoutError: read by hand
        raise requests.ReadTimeout(exc) from exc
    except (OSError, http.client.HTTPException, Urllib3Error) as exc:
        raise requests.ConnectionError(exc) from exc
    # As requests' HTTPAdapter.build_response makes it (cookies aside: put.io sets none
    # that the API needs); the body is read, decoded, through ``raw`` when asked for.
    response = requests.Response()
    response.status_code = raw.status
    response.headers = CaseInsensitiveDict(raw.headers)
    response.encoding = get_encoding_from_headers(response.headers)
    response.raw = raw
    response.reason = raw.reason or ""
    response.url = url if not query else f"{url.split('?')[0]}?{query}"
    return response


#: the encodings of an answer read by hand (``plainhttp.py``): those requests asks for,
#: less any that needs a package (brotli, zstd: such an answer is read by urllib3)
_DECODED = frozenset({"", "identity", "gzip", "x-gzip", "deflate"})
#: the bytes of an API answer read ahead with its headers; a longer body is read after
_API_ROOM = 64 * 1024
#: the longest API answer read by hand: its buffer is made the size its Content-Length
#: says, the server's word; a longer one is read by urllib3, as it comes
_API_MOST = 4 * 1024 * 1024


def _read_by_hand(
    pool: urllib3.HTTPConnectionPool,
    target: str,
    headers: Mapping[str, str],
    timeout: tuple[float, float],
) -> tuple[Head, bytes] | None:
    """Given what ``direct_get`` sends, send it by hand (``plainhttp.py``); return the
    answer's head and its body, decoded; None where urllib3 is to send it instead (the
    request or the answer is not plain). Raise what ``pool_get`` raises for trouble, or
    TimeoutError for a read that timed out."""
    request = request_bytes(pool, target, headers)
    if request is None:
        return None
    with Loan(pool) as loan:
        if loan.conn is None:
            return None
        sock = send(loan.conn, request, timeout)
        head = read_head(sock, _API_ROOM)
        if not head.plain(_DECODED) or head.length > _API_MOST:
            return None
        body = _decoded(read_body(sock, head, head.length), head.headers.get("content-encoding"))
        if body is None:
            return None
        loan.kept = reusable(head, head.length)
        return head, body


def _decoded(body: memoryview, encoding: str | None) -> bytes | None:
    """Given a body and its Content-Encoding, return it decoded as urllib3 decodes it;
    None if it is not whole and plain (urllib3 then reads it, and fails as it does)."""
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return bytes(body)
    if encoding in ("gzip", "x-gzip"):
        return _inflated(body, 16 + zlib.MAX_WBITS)
    # deflate: a zlib stream, or a raw one (as urllib3 tries both)
    return _inflated(body, zlib.MAX_WBITS) or _inflated(body, -zlib.MAX_WBITS)


def _inflated(body: memoryview, wbits: int) -> bytes | None:
    """Given a compressed body, return it inflated; None unless it is one whole stream
    (several gzip members, left to urllib3, included)."""
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body)
    except zlib.error:
        return None
    return data if inflater.eof and not inflater.unused_data else None


class PlainAnswer:
    """An API answer read by hand (``direct_get``): what the client reads of a
    ``requests.Response`` (status, headers by any case, the body, ``json()``), without
    requests' response machinery (its cookie jar, its header dict, its encoding guess
    run again for ``json()``): ~0.1 ms of CPU a small file's link (issue 14)."""

    __slots__ = ("content", "headers", "reason", "status_code", "url")

    def __init__(self, url: str, head: Head, content: bytes) -> None:
        self.status_code = head.status_code
        self.reason = head.reason
        self.headers = head.headers
        self.content = content
        self.url = url

    def json(self) -> Any:
        """Return the body's JSON as requests' ``Response.json()`` reads it: decoded by the
        charset the headers name (errors replaced), else detected as JSON is; raise
        ValueError if it is not JSON."""
        kind = self.headers.by_name.get("content-type")
        if kind == "application/json":  # put.io's: no need to parse it
            encoding: str | None = "utf-8"
        else:
            encoding = get_encoding_from_headers(self.headers)
        if encoding is None:
            return json.loads(self.content)  # UTF-8, -16 or -32, found as requests finds it
        try:
            text = str(self.content, encoding, errors="replace")
        except (LookupError, TypeError):  # a charset Python does not know: as requests does
            text = str(self.content, errors="replace")
        return json.loads(text)

    def close(self) -> None:
        """Nothing to give back: the body was read and the connection returned."""


def _answer(url: str, query: str, head: Head, body: bytes) -> PlainAnswer:
    """Given an answer read by hand, return it with the URL requests would give it."""
    return PlainAnswer(url if not query else f"{url.split('?')[0]}?{query}", head, body)
