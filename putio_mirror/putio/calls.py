"""One put.io API request as the client sends it: its route and payload, whether a retry is
safe, the token it carries (never shown), and the internal signal that an attempt may be
tried again. Plain values for ``client.py``; no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import requests
from requests.auth import AuthBase


class TokenAuth(AuthBase):
    """Adds ``Authorization: token …`` to one request; its repr hides the token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"token {self._token}"
        return request

    def __repr__(self) -> str:
        return "TokenAuth(<hidden>)"


@dataclass(frozen=True)
class Call:
    """One API request: where it goes, what it carries, and whether a retry is safe."""

    method: str
    route: str
    params: Mapping[str, str | int] | None = None
    data: Mapping[str, str | int] | None = None
    files: Mapping[str, tuple[str, bytes, str]] | None = None
    upload: bool = False
    #: tries before giving up; None = the client's backoff policy decides
    attempts: int | None = None
    # Retrying ``transfers/add`` or an upload after a read timeout, a reset or a 500/502/504
    # could create a second transfer: it is retried only if the request provably never
    # reached put.io (no connection) or put.io said it did not process it (429, 503);
    # otherwise the next run pairs the transfer by info-hash instead of guessing now.
    creates: bool = False
    #: what this call submits as a torrent (a file name, "the link"): a 400 answer then means
    #: put.io refuses that torrent itself and will refuse it again (TorrentRefusedError)
    submits: str | None = None

    def describe(self) -> str:
        return f"{self.method} {self.route}"


class Retryable(Exception):
    """This attempt failed in a way that the next attempt may not."""

    def __init__(self, reason: str, retry_after: float | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
