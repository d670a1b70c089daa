"""``torrent-add``'s ``filename`` as an http(s) URL: fetch the .torrent it names.

Bounded so that one client's bad URL costs only its own request: a deadline for the
whole fetch, the blackhole's size cap counted as the bytes arrive (a missing or lying
``Content-Length`` gains nothing), at most a few redirects, and only http and https at
every hop. The endpoint serves each connection on its own thread, so other clients are
answered while a fetch waits. A redirect to a ``magnet:`` link (indexers do that for
magnet-only results) hands the link back instead of bytes.
"""

from __future__ import annotations

import time
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from putio_mirror.local.blackhole import MAX_TORRENT_BYTES
from putio_mirror.rpc.adding import RpcError

#: seconds the whole fetch may take, redirects included
URL_TIMEOUT = 30.0
MAX_REDIRECTS = 5
_CHUNK = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def is_url(text: str) -> bool:
    """Say whether a ``filename`` is a URL (a magnet link is not: it names no place)."""
    return "://" in text and bool(urlsplit(text).scheme)


def fetch_torrent(url: str, timeout: float = URL_TIMEOUT) -> bytes | str:
    """Given an http(s) URL, return the bytes it serves (at most ``MAX_TORRENT_BYTES``), or
    the magnet link it redirects to; raise RpcError saying what went wrong, URL included."""
    deadline = time.monotonic() + timeout
    with requests.Session() as session:
        # identity: the cap counts what is decoded, and a small compressed body can decode
        # to a great deal in one read
        session.headers.update({"User-Agent": "putio-mirror", "Accept-Encoding": "identity"})
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            _check_scheme(url, current)
            try:
                with session.get(
                    current, stream=True, allow_redirects=False, timeout=_left(deadline, url)
                ) as response:
                    location = response.headers.get("Location")
                    if response.status_code in _REDIRECTS and location:
                        current = urljoin(current, location)
                        if current.lower().startswith("magnet:"):
                            return current
                        continue
                    return _body(url, response, deadline)
            except requests.Timeout:
                raise RpcError(f"{url}: timed out after {timeout:g} s") from None
            except requests.ConnectionError as error:
                if (
                    time.monotonic() >= deadline - 0.05
                ):  # a read that timed out, as requests says it
                    raise RpcError(f"{url}: timed out after {timeout:g} s") from None
                raise RpcError(f"{url}: could not reach it ({_reason(error)})") from None
            except requests.RequestException as error:
                raise RpcError(f"{url}: {_reason(error)}") from None
    raise RpcError(f"{url}: too many redirects (more than {MAX_REDIRECTS})")


def _check_scheme(url: str, current: str) -> None:
    if urlsplit(current).scheme.lower() not in ("http", "https"):
        raise RpcError(f"{url}: only http and https URLs are fetched (led to {current[:80]})")


def _body(url: str, response: requests.Response, deadline: float) -> bytes:
    if response.status_code != 200:
        raise RpcError(f"{url}: HTTP {response.status_code} {response.reason or ''}".rstrip())
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > MAX_TORRENT_BYTES:
        raise RpcError(f"{url}: over {MAX_TORRENT_BYTES} bytes, too big for a .torrent")
    # read1: one read from the socket a call, so a server dripping a byte at a time meets
    # the deadline too (iter_content would wait for a whole chunk); each read waits at most
    # the time that was left when the request went out.
    data = bytearray()
    try:
        while chunk := response.raw.read1(_CHUNK, decode_content=True):
            data += chunk
            if len(data) > MAX_TORRENT_BYTES:
                raise RpcError(f"{url}: over {MAX_TORRENT_BYTES} bytes, too big for a .torrent")
            _left(deadline, url)
    except urllib3.exceptions.ReadTimeoutError:
        raise requests.Timeout(url) from None
    except urllib3.exceptions.HTTPError as error:
        raise requests.ConnectionError(error) from None
    return bytes(data)


def _left(deadline: float, url: str) -> float:
    """Return the seconds left before the deadline; raise requests.Timeout if none."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise requests.Timeout(url)
    return left


def _reason(error: Exception) -> str:
    """Given what requests raised, return the words a person needs, not the pool's repr."""
    found = error.args[0] if error.args and isinstance(error.args[0], Exception) else error
    found = getattr(found, "reason", None) or found
    if isinstance(found, urllib3.exceptions.NameResolutionError):
        return "its host name does not resolve"
    return str(found).split(">: ", 1)[-1][:200]
