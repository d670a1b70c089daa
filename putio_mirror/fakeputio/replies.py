"""What a fake host answers: a status, headers and a body, plus how to misbehave."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

ERROR_URI = "http://api.put.io/v2/docs"
# One encoder for every answer: json.dumps with any option builds a new one each call.
_JSON = json.JSONEncoder(ensure_ascii=False)


@dataclass
class Reply:
    """One answer; ``stream`` replaces ``body`` for large bodies of ``length`` bytes.

    ``cut_after`` bytes into the body the connection is cut: ``cut`` is "stall"
    (send nothing more, keep the socket open) or "reset" (RST). ``reset`` resets
    the connection without answering at all. ``sent`` counts the body bytes handed
    to the socket so far.
    """

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: Callable[[], Iterator[bytes]] | None = None
    length: int | None = None
    cut_after: int | None = None
    cut: str = "reset"
    reset: bool = False
    delay: float = 0.0
    sent: int = 0

    def content_length(self) -> int:
        return len(self.body) if self.length is None else self.length

    def pieces(self) -> Iterator[bytes]:
        """Yield the body in the pieces it is sent in."""
        if self.stream is not None:
            yield from self.stream()
        elif self.body:
            yield self.body


class ApiError(Exception):
    """Raised by a route to answer with put.io's error envelope."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


def json_reply(payload: dict[str, Any], status: int = 200) -> Reply:
    """Given a payload, return it as JSON with put.io's exact Content-Type."""
    body = _JSON.encode(payload).encode("utf-8")
    return Reply(status, body, [("Content-Type", "application/json")])


def ok_reply(**payload: Any) -> Reply:
    """Given payload keys, return a success envelope carrying ``"status": "OK"``."""
    return json_reply({"status": "OK", **payload})


def listing_reply(kind: str, texts: list[str], **payload: Any) -> Reply:
    """Given a list's key, its objects as JSON texts and other payload keys, return the
    success envelope holding them (as ``ok_reply`` would, the list last)."""
    envelope = json.dumps({"status": "OK", **payload}, ensure_ascii=False)
    body = f"{envelope[:-1]}, {json.dumps(kind)}: [{', '.join(texts)}]}}"
    return Reply(200, body.encode("utf-8"), [("Content-Type", "application/json")])


def error_reply(status: int, error_type: str, message: str) -> Reply:
    """Given an HTTP status and put.io error type, return the error envelope."""
    return json_reply(
        {
            "status": "ERROR",
            "status_code": status,
            "error_type": error_type,
            "error_message": message,
            "error_uri": ERROR_URI,
            "error_id": None,
            "extra": {},
        },
        status,
    )


def unauthorized_reply() -> Reply:
    return error_reply(401, "invalid_grant", "You have to login with proper credentials")


def html_reply(status: int) -> Reply:
    """Given a status, return the kind of HTML page a proxy in front of put.io answers with."""
    title = f"{status} {_phrase(status)}"
    page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
    return Reply(status, page.encode(), [("Content-Type", "text/html")])


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def text_reply(status: int, text: str) -> Reply:
    return Reply(status, text.encode(), [("Content-Type", "text/plain; charset=utf-8")])
