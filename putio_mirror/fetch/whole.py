"""A small file in one request: fetched whole into memory, checked there, written once.

Ten thousand subtitles, ``.nfo`` files and covers spent much of their CPU on what makes a
large file resumable: the segment table, the write-behind, the part looked for three
times, a buffer of a whole chunk (issue 14). A file that fits in one buffer and has no
part yet is created (``O_EXCL``, ``O_NOFOLLOW``: a part or symlink already there is left
to the usual path), asked of the node in one GET, its CRC32 checked in memory, then
written with one write and synced with one sync before it counts: the same promise as
the usual path's (the final CRC32 proves the bytes on disk, ``partfile.py``).

Nothing unusual is handled here. An answer the usual path would retry is handed back
(``Retry``) for the usual path to wait on and retry with its patience, as its own first
failure; a body of another size or CRC32 hands the file to the usual path at once, which
fetches it again and verifies it as it always did; so does a body not whole within the
read timeout (a node that trickles: the usual path asks between chunks whether to go on).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import requests

from putio_mirror.core.errors import ChecksumMismatchError
from putio_mirror.fetch.crc import crc32
from putio_mirror.fetch.leanget import NOT_MINE, lean_body
from putio_mirror.fetch.nodehttp import Retry, body_reader, body_start, fresh_url, node_get
from putio_mirror.fetch.partfile import (
    PartFolders,
    SyncFunction,
    check_whole,
    disk_error,
    pwrite_all,
)
from putio_mirror.fetch.values import Fetched, FileToFetch
from putio_mirror.net.cutting import Cutter
from putio_mirror.net.sessions import Session, request_target

#: what fetch_whole hands back when the usual path is to take over: why, if it should wait
#: and retry first (None: go on at once)
Handed = Retry | None

#: the largest file fetched this way (held in memory whole, written before its one sync)
WHOLE_AT_MOST = 1024 * 1024


def fetch_whole(
    item: FileToFetch,
    folders: PartFolders,
    url_for: Callable[[int], str],
    session: requests.Session,
    timeout: tuple[float, float],
    sync: SyncFunction,
    on_progress: Callable[[int], None],
    cutter: Cutter | None = None,
) -> Fetched | Handed:
    """Given a file with no part yet, fetch it in one request into a new part (made in
    its folder as ``folders`` opened it), verified
    and synced; return Fetched, or what the usual path needs to take over (the part, if
    made, is left empty for it). Raise what the usual path raises for the same trouble:
    ChecksumMismatchError if the node's file has another size than put.io lists,
    NoSpaceError or ItemError if the disk refused the bytes."""
    fd = folders.new_part(item.part_path, os.O_WRONLY)
    if fd is None:
        return None
    try:
        body = _body(item, url_for, session, timeout, cutter)
        if not isinstance(body, memoryview):
            return body
        try:
            check_whole(item, len(body), crc32(body))
        except ChecksumMismatchError:
            return None  # the usual path fetches it again and verifies what it wrote
        pwrite_all(item.part_path, fd, body, 0)
        try:
            sync(fd)
        except OSError as exc:
            raise disk_error(item.part_path, exc) from exc
    finally:
        os.close(fd)
    on_progress(item.size)
    return Fetched(True, item.size)


def _body(
    item: FileToFetch,
    url_for: Callable[[int], str],
    session: requests.Session,
    timeout: tuple[float, float],
    cutter: Cutter | None,
) -> memoryview | Handed:
    """Given a file, return its whole body as the node sent it; else what to hand over.

    Asked by hand where requests would add nothing (``leanget.py``), else through it."""
    try:
        url = fresh_url(url_for, item.file_id)
        pool = session.direct_pool(url) if isinstance(session, Session) else None
        if pool is not None:
            lean = lean_body(pool, request_target(url), item, timeout, cutter)
            if lean is not NOT_MINE:
                return lean  # type: ignore[return-value]  # a memoryview or None
        with node_get(session, url, None, timeout, cutter) as response:
            body_start(response, 0, item)  # 200, or a 206 from byte 0 of this very size
            buffer = memoryview(bytearray(item.size + 1))  # one more: a longer body shows
            read, got = body_reader(response), 0
            while got <= item.size and (count := read(buffer[got:])):
                got += count
    except Retry as trouble:
        return trouble
    if got < item.size:
        return Retry(f"the node sent a short body for bytes 0-{item.size - 1}")
    return buffer[:got] if got == item.size else None
