"""Faults a test arms on the fake put.io: error answers, resets, stalls, outages.

Each fault fires for the next ``times`` matching requests and is then used up.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from putio_mirror.fakeputio.replies import Reply, error_reply, html_reply


@dataclass
class ApiFault:
    """An answer the API or upload host gives instead of the real one."""

    path: str
    times: int
    status: int = 500
    retry_after: str | None = None
    json_body: bool = True
    reset: bool = False
    delay: float = 0.0
    error_type: str | None = None
    #: do the work (create the transfer, ...), then reset instead of answering: the
    #: answer is lost on the way, as in a timeout after put.io acted
    lose_answer: bool = False

    def matches(self, path: str) -> bool:
        return fnmatch.fnmatchcase(path, self.path)


@dataclass
class NodeFault:
    """What the download node does instead of serving a file's bytes normally."""

    file_id: int
    times: int
    stall_after: int | None = None
    reset_after: int | None = None
    status: int | None = None
    #: answer 302 to the very URL asked (its next fault, or its bytes, come after)
    redirect: bool = False
    #: answer with a header folded over two lines (HTTP/1.1 allows it, deprecated): what
    #: a client reading only the plainest answers leaves to urllib3
    folded_header: bool = False


@dataclass(frozen=True)
class Outage:
    """The ``hosts`` (all of them if None) refuse connections until ``clock()`` reaches
    ``until``."""

    until: float
    clock: Callable[[], float]
    hosts: frozenset[str] | None = None

    def active(self, host: str) -> bool:
        return (self.hosts is None or host in self.hosts) and self.clock() < self.until


_Fault = TypeVar("_Fault", ApiFault, NodeFault)


class FaultBook:
    """Given nothing, hold armed faults and hand each out as many times as it was armed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._api: list[ApiFault] = []
        self._node: list[NodeFault] = []
        self.outage: Outage | None = None

    def arm_api(self, fault: ApiFault) -> None:
        with self._lock:
            self._api.append(fault)

    def arm_node(self, fault: NodeFault) -> None:
        with self._lock:
            self._node.append(fault)

    def take_api(self, path: str) -> ApiFault | None:
        """Given a request path, return the first armed fault for it, using up one time."""
        with self._lock:
            return _take(self._api, lambda fault: fault.matches(path))

    def disarm_api(self) -> None:
        """Forget every armed API fault not used up yet (put.io answers again)."""
        with self._lock:
            self._api.clear()

    def take_node(self, file_id: int) -> NodeFault | None:
        """Given a file id, return the first armed node fault for it, using up one time."""
        with self._lock:
            return _take(self._node, lambda fault: fault.file_id == file_id)

    def in_outage(self, host: str) -> bool:
        outage = self.outage
        return outage is not None and outage.active(host)


def _take(faults: list[_Fault], wanted: Callable[[_Fault], bool]) -> _Fault | None:
    for fault in faults:
        if wanted(fault):
            fault.times -= 1
            if fault.times <= 0:
                faults.remove(fault)
            return fault
    return None


def fault_reply(fault: ApiFault) -> Reply:
    """Given an armed API fault, return the answer it stands for."""
    if fault.reset:
        return Reply(0, reset=True, delay=fault.delay)
    if fault.status == 429:
        reply = error_reply(429, fault.error_type or "TooManyRequests", "Too many requests")
        reply.headers.extend(_rate_limit_headers(fault.retry_after))
    elif fault.json_body:
        error_type = fault.error_type or _DEFAULT_ERROR_TYPES.get(fault.status, "ERROR")
        reply = error_reply(fault.status, error_type, "Injected failure")
    else:
        reply = html_reply(fault.status)
    if fault.retry_after is not None and fault.status != 429:
        reply.headers.append(("Retry-After", fault.retry_after))  # e.g. a 503 for maintenance
    reply.delay = fault.delay
    return reply


_DEFAULT_ERROR_TYPES = {
    400: "BadRequest",
    401: "invalid_grant",
    402: "PaymentRequired",
    403: "Forbidden",
    404: "NotFound",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


def _rate_limit_headers(retry_after: str | None) -> list[tuple[str, str]]:
    reset = retry_after if retry_after is not None and retry_after.isdigit() else "60"
    headers = [
        ("x-ratelimit-limit", "60"),
        ("x-ratelimit-remaining", "0"),
        ("x-ratelimit-reset", reset),
        ("x-ratelimit-id", "fakeputio"),
    ]
    if retry_after is not None:
        headers.append(("Retry-After", retry_after))
    return headers
