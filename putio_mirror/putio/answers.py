"""Reading put.io's answers: JSON bodies, error fields, shapes, and whether a failed
request ever reached put.io (only then may a non-idempotent call be in doubt)."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from typing import Any

import requests
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from putio_mirror.core.errors import TransientError
from putio_mirror.net.sessions import PlainAnswer
from putio_mirror.putio.values import TRANSIENT_HINT

_JSON = dict[str, Any]
#: an answer of put.io's: requests', or one read by hand (``direct_get``)
Answer = requests.Response | PlainAnswer


def never_reached_server(exc: requests.RequestException) -> bool:
    """Given a requests exception, return True if the connection was never made
    (refused, unresolvable host, connect timeout), so no byte reached put.io."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    cause = exc.args[0] if exc.args else None  # urllib3's MaxRetryError
    # urllib3's NewConnectionError and NameResolutionError subclass ConnectTimeoutError.
    return isinstance(getattr(cause, "reason", cause), ConnectTimeoutError)


#: what a failed connect's system error means to a person
_CONNECT_ERRORS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ETIMEDOUT: "timed out connecting",
}


def connection_trouble(exc: requests.RequestException) -> str:
    """Given why a request failed, say it as a person reads it: urllib3 files a refused
    connection and an unknown host under its connect *timeout* error, and a user told
    "ConnectTimeout" looks for a slow network, not for a closed port or a wrong proxy."""
    for cause in _causes(exc):
        if isinstance(cause, NameResolutionError):
            return f"the connection failed (could not resolve the host name {cause.conn.host})"
        if isinstance(cause, OSError) and cause.errno in _CONNECT_ERRORS:
            return f"the connection failed ({_CONNECT_ERRORS[cause.errno]})"
        if isinstance(cause, ConnectTimeoutError) and not isinstance(cause, NewConnectionError):
            return "the connection failed (timed out connecting)"
    return f"the connection failed ({type(exc).__name__})"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """Given an exception, yield it and what it wraps: its cause or context, the reason of
    urllib3's MaxRetryError, requests' first argument; each once."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        wrapped += list(current.args[:1])
        todo += [each for each in wrapped if isinstance(each, BaseException)]


def shape_error(what: str) -> TransientError:
    return TransientError(f"put.io answered {what} with an unexpected body", TRANSIENT_HINT)


def answer_object(body: _JSON, key: str, what: str) -> _JSON:
    """Given an answer, return its object under ``key``; raise TransientError if absent."""
    item = body.get(key)
    if not isinstance(item, dict):
        raise shape_error(what)
    return item


def json_of(response: Answer) -> _JSON | None:
    try:
        body = response.json()
    except ValueError:  # HTML error pages, text bodies from the upload host
        return None
    return body if isinstance(body, dict) else None


def error_fields(response: Answer) -> tuple[str, str]:
    body = json_of(response) or {}
    error_type = body.get("error_type") or body.get("error") or ""
    message = body.get("error_message") or ""
    return str(error_type), str(message)
