"""Reading put.io's answers: JSON bodies, error fields, shapes, and whether a failed
request ever reached put.io (only then may a non-idempotent call be in doubt)."""

from __future__ import annotations

from typing import Any

import requests
from urllib3.exceptions import ConnectTimeoutError

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
