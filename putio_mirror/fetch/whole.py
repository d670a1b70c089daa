"""A small file in one request: fetched whole into memory, checked there, written once.

Ten thousand subtitles, ``.nfo`` files and covers spent much of their CPU on what makes a
large file resumable: the segment table, the write-behind, the part looked for three
times, a chunk's bookkeeping four times a MiB (issue 14). A file of at most
``WHOLE_AT_MOST`` bytes that has no part yet is created (``O_EXCL``, ``O_NOFOLLOW``: a
part or symlink already there is left to the usual path), asked of the node in one GET,
read into one buffer a chunk at a time, its CRC32 checked in memory, then written with
one write and synced with one sync before it counts: the same promise as the usual
path's (the final CRC32 proves the bytes on disk, ``partfile.py``).

Told to stop between two chunks (a window that closed, a stop), it keeps what came as
the part, synced: a part written in order needs no sidecar, its length is its progress,
and the usual path resumes it from that byte, as it would its own.

Nothing unusual is handled here. An answer the usual path would retry is handed back
(``Retry``) for the usual path to wait on and retry with its patience, as its own first
failure; a body longer than put.io lists hands the file to the usual path at once, which
fetches it again and verifies it as it always did. A body whose CRC32 is not put.io's
ends as the usual path's final check ends: kept as the part, ChecksumMismatchError (the
caller fetches it once more from zero, and tells a damaged copy on put.io by the same
bytes twice), not fetched a second time here first.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import requests

from putio_mirror.fetch.crc import crc32
from putio_mirror.fetch.leanget import NOT_MINE, Filling, Partial, lean_body
from putio_mirror.fetch.nodehttp import Retry, body_reader, body_start, fresh_url, node_get
from putio_mirror.fetch.partfile import (
    DROP_FROM,
    PartFolders,
    SyncFunction,
    check_whole,
    disk_error,
    drop_cached,
    pwrite_all,
)
from putio_mirror.fetch.values import Fetched, FileToFetch
from putio_mirror.net.cutting import Cutter
from putio_mirror.net.plainhttp import room_for
from putio_mirror.net.sessions import Session, request_target

#: what fetch_whole hands back when the usual path is to take over: why, if it should wait
#: and retry first (None: go on at once)
Handed = Retry | None

#: the largest file fetched this way (held in memory whole, written before its one sync):
#: 1,000 files of 1 MiB took 0.3–0.5 ms less CPU a file this way than on the usual path
#: at four chunks a file (bench/many_files.py)
WHOLE_AT_MOST = 1024 * 1024
#: ... and the most chunks it may span: held in memory until its one write, it is lost to
#: a kill -9 or a power cut where the usual path keeps the chunks it wrote; a user who
#: chose small chunks (a slow line) loses at most four of them
WHOLE_CHUNKS = 4


#: each thread's buffer for its whole files' answers (``_buffer``)
_buffers = threading.local()


def _buffer(size: int) -> bytearray:
    """Return this thread's buffer for the answer of a whole file of ``size`` bytes (made,
    or made longer, if need be). Reused file after file: a file's body is written and
    checked before its thread fetches the next, and nothing keeps a view of it after
    ``fetch_whole`` returns. A new buffer a file cost each MiB ~40 µs of CPU, zeroed and
    its pages faulted in (issue 14)."""
    buffer: bytearray | None = getattr(_buffers, "buffer", None)
    if buffer is None or len(buffer) < room_for(size):
        buffer = _buffers.buffer = bytearray(room_for(size))
    return buffer


@dataclass(frozen=True)
class Pace:
    """How a body is read: ``step`` bytes at a time (the run's chunk), asking between
    steps whether to go on."""

    step: int
    may_continue: Callable[[], bool]


def fetch_whole(
    item: FileToFetch,
    folders: PartFolders,
    url_for: Callable[[int], str],
    session: requests.Session,
    timeout: tuple[float, float],
    sync: SyncFunction,
    on_progress: Callable[[int], None],
    cutter: Cutter | None,
    pace: Pace,
) -> Fetched | Handed:
    """Given a file with no part yet, fetch it in one request into a new part (made in
    its folder as ``folders`` opened it), verified and synced; return Fetched (not
    complete if ``pace`` said stop first), or what the usual path needs to take over.
    What came before a stop or a failed connection is kept as the part, synced, for the
    usual path to go on from; otherwise the part, if made, is left empty for it. Raise
    what the usual path raises for the same trouble: ChecksumMismatchError if the bytes
    are not put.io's file (kept as the part) or the node's file has another size than
    put.io lists, NoSpaceError or ItemError if the disk refused the bytes."""
    fd = folders.new_part(item.part_path, os.O_WRONLY)
    if fd is None:
        return None
    try:
        body = _body(item, url_for, session, timeout, cutter, pace)
        if isinstance(body, Partial):
            _keep(item, fd, body.body, sync)
            folders.sync_folder(item.part_path)  # progress only if its name outlives a power cut
            on_progress(len(body.body))
            return body.trouble or Fetched(False, len(body.body))
        if not isinstance(body, memoryview):
            return body
        _keep(item, fd, body, sync)  # before the check: a mismatch keeps it, as the crew does
        check_whole(item, len(body), crc32(body))
        if item.size >= DROP_FROM:
            drop_cached(fd)  # as the usual path does: read no more, no reason to cache
    finally:
        os.close(fd)
    on_progress(item.size)
    return Fetched(True, item.size)


def _keep(item: FileToFetch, fd: int, body: memoryview, sync: SyncFunction) -> None:
    """Given a file's new part, write ``body`` at its start in one write and sync it."""
    pwrite_all(item.part_path, fd, body, 0)
    try:
        sync(fd)
    except OSError as exc:
        raise disk_error(item.part_path, exc) from exc


def _body(
    item: FileToFetch,
    url_for: Callable[[int], str],
    session: requests.Session,
    timeout: tuple[float, float],
    cutter: Cutter | None,
    pace: Pace,
) -> memoryview | Partial | Handed:
    """Given a file, return its whole body as the node sent it, or what came of it (see
    ``lean_body``); else what to hand over.

    Asked by hand where requests would add nothing (``leanget.py``), else through it."""
    filling: Filling | None = None
    try:
        url = fresh_url(url_for, item.file_id)
        pool = session.direct_pool(url) if isinstance(session, Session) else None
        if pool is not None:
            target = request_target(url)
            lean = lean_body(
                pool,
                target,
                item,
                timeout,
                cutter,
                pace.step,
                pace.may_continue,
                _buffer(item.size),
            )
            if lean is not NOT_MINE:
                return lean  # type: ignore[return-value]  # a memoryview, Partial or None
        with node_get(session, url, None, timeout, cutter) as response:
            body_start(response, 0, item)  # 200, or a 206 from byte 0 of this very size
            filling = Filling(memoryview(bytearray(item.size + 1)))  # a longer body shows
            stopped = filling.fill(body_reader(response), pace.step, pace.may_continue)
    except Retry as trouble:
        if filling is not None and 0 < filling.got < item.size:
            return Partial(filling.came(), trouble)
        return trouble
    if stopped and filling.got < item.size:
        return Partial(filling.came())
    if filling.got < item.size:
        return Retry(f"the node sent a short body for bytes 0-{item.size - 1}")
    return filling.came() if filling.got == item.size else None
