"""How long this thread has waited for answers to begin: from a request sent to its head read.

Downloads at once are chosen by how much of a file's time goes to waiting for put.io
(``core/pacing.Crowd``): a node or an API far away makes each file wait for its first
byte, which more files at once hide; close by, more files at once only hand the
interpreter lock around (issue 14). Kept per thread, so that a worker reads the waits of
its own requests without any being handed to it: two clock reads a request.
"""

from __future__ import annotations

import threading


class _Waited(threading.local):
    seconds = 0.0


_WAITED = _Waited()


def waited() -> float:
    """Seconds this thread has spent waiting for answers' heads so far."""
    return _WAITED.seconds


def add(seconds: float) -> None:
    """Given seconds this thread waited for an answer's head, count them."""
    _WAITED.seconds += seconds
