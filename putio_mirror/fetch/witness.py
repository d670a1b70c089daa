"""Whether put.io's download nodes send a byte at all: asked when the files a run suspected
(``pulse.py``) have no file after them to tell an outage from their own failing.

The usual proof is a byte of another file arriving after a suspect gave up. A run whose
last downloads are all broken files (often the only ones left, run after run) has no such
file: without a witness they would be forgotten as an outage each run, tried again each
run for a whole ``max_outage``, never waiting and never told as failing. One byte of a
file mirrored before settles it.
"""

from __future__ import annotations

from collections.abc import Callable

import requests

from putio_mirror.core.errors import MirrorError
from putio_mirror.fetch.leanget import streamed_get
from putio_mirror.fetch.nodehttp import Retry, fresh_url
from putio_mirror.net.cutting import Cutter


def first_byte_comes(
    url_for: Callable[[int], str],
    session: requests.Session,
    file_id: int,
    timeout: tuple[float, float],
    cutter: Cutter | None = None,
) -> bool:
    """Given put.io's link call, a session, a file id and (connect, read) timeouts, say
    whether a node sends the file's first byte; any failure (of the API too) is a no.
    Given the run's ``cutter``, its ``cut`` (a stop, a window's end) ends the wait for a
    node that stays silent: the caller asks ``cutter.done`` whether the no means much."""
    try:
        url = fresh_url(url_for, file_id)
        with streamed_get(session, url, "0-0", timeout, cutter) as (answer, read):
            if answer.status_code not in (200, 206):
                return False
            return read(memoryview(bytearray(1))) > 0
    except (Retry, MirrorError, requests.RequestException, OSError):
        return False
