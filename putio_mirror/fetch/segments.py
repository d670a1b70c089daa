"""The segments of a part file being fetched over several connections, and their sidecar.

Progress lives beside the part in ``<part>.segments`` (JSON: size, crc32,
connections and ``[start, end, done, crc32 of the done bytes]`` rows, ``end``
exclusive), written atomically when its rows change and updated in place (fixed-width
numbers) as progress becomes durable. Each segment has a live ``done``/``crc`` (what
was written) and a durable one (what a completed sync covered): the sidecar shows only
the durable one, promoted after each successful sync to the progress as it stood when
that sync started (``SegmentTable.mark``), so a power cut cannot leave it claiming
bytes the disk never got.

A sidecar is trusted only if it describes the same file version, its rows tile the
file edge to edge, and the part is long enough; otherwise the part and sidecar are
removed and the fetch starts over. Then each segment's claimed bytes are read back
and checked against its CRC32: a segment whose bytes differ starts over alone.

A file fetched over one connection is one segment from byte 0 and keeps no sidecar: it
is written in order, so the part's length is its progress, and on resume the part is
read back in full (``partfile.measure``) and counted as it is now; a part left without
a sidecar (also by the single-stream engine of earlier versions) is resumed that way.
Each small file is spared the sidecar's writes, rename and removal.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from putio_mirror.fetch.crc import crc32, crc32_combine
from putio_mirror.fetch.partfile import (
    drop_cached,
    fsync_folder,
    lstat_or_none,
    no_space_is_item_error,
    open_nofollow,
    refuse_symlink,
    size_of,
    sync_data,
)
from putio_mirror.fetch.values import FileToFetch, expected_crc

logger = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".segments"
#: width of each number in the sidecar: JSON allows the padding, and a fixed width
#: lets a segment's progress (done, crc) be updated in place
_WIDTH = 20
_CRC_WIDTH = 10
_PROVE_BLOCK = 1024 * 1024


def _progress_field(done: int, crc: int) -> bytes:
    return f"{done:{_WIDTH}d}, {crc:{_CRC_WIDTH}d}".encode()


def sidecar_path(part_path: Path) -> Path:
    """Given a part file, return the path of its segment sidecar."""
    return part_path.with_name(part_path.name + SIDECAR_SUFFIX)


def discard(part_path: Path) -> None:
    """Given a part file, remove it and its segment sidecar (either may be missing)."""
    part_path.unlink(missing_ok=True)
    sidecar_path(part_path).unlink(missing_ok=True)


def bytes_done(part_path: Path) -> int:
    """Given a part file, return the bytes really downloaded into it: what its sidecar
    claims if it has one (0 if that is unreadable), else the part's length."""
    path = sidecar_path(part_path)
    if not os.path.lexists(path):
        return size_of(part_path) or 0
    try:
        rows = json.loads(_read_text(path))["segments"]
        return sum(int(row[2]) for row in rows)
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _read_text(path: Path) -> str:
    """Given a sidecar, return its text; raise OSError (ELOOP if it is a symlink)."""
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), encoding="utf-8") as sidecar:
        return sidecar.read()


@dataclass
class Segment:
    """Bytes ``[start, end)`` of the file, ``done`` of them written to the part and
    ``durable`` (done, crc) of them covered by a completed sync; ``flight`` more are
    being written right now; ``owned`` once a thread works on it."""

    start: int
    end: int
    done: int = 0
    #: CRC32 of the ``done`` bytes: the file is verified by combining these
    crc: int = 0
    flight: int = 0
    owned: bool = False
    #: (done, crc) as a completed sync covered them: all the sidecar may claim
    durable: tuple[int, int] = (0, 0)

    @property
    def position(self) -> int:
        return self.start + self.done

    @property
    def left(self) -> int:
        return self.end - self.position

    @property
    def free(self) -> int:
        """The bytes no thread has started to write: what may be handed to another."""
        return self.left - self.flight


class SegmentTable:
    """The segments of one part file, the lock over them, and their sidecar."""

    def __init__(
        self, item: FileToFetch, segments: list[Segment], connections: int, *, sidecar: bool = True
    ) -> None:
        self.lock = threading.Lock()
        #: False for a sequential part (one segment from byte 0): its length is its progress
        self.keeps_sidecar = sidecar
        self._save_lock = threading.Lock()  # the sync thread publishes while a fetch saves
        self.segments = segments
        self._item = item
        self._connections = connections
        self._saved: list[tuple[int, int]] | None = None  # edges of the rows on disk
        self._slots: dict[int, int] = {}  # id(segment) -> byte offset of its ``done`` field
        self._fd: int | None = None

    def rows(self) -> list[list[int]]:
        with self.lock:
            return sorted(
                [segment.start, segment.end, segment.done, segment.crc] for segment in self.segments
            )

    def done(self) -> int:
        return sum(row[2] for row in self.rows())

    def left(self) -> int:
        return sum(end - start - done for start, end, done, _ in self.rows())

    def crc32(self) -> int:
        """The CRC32 of the whole file once every segment is done, from the segments' own."""
        total = 0
        for _, _, done, crc in self.rows():
            total = crc32_combine(total, crc, done)
        return total

    def save(self) -> None:
        """Write the sidecar atomically with every segment's durable progress, unless it
        already has these rows (then their progress fields are current already)."""
        if not self.keeps_sidecar:
            return
        with self._save_lock:
            ordered, rows = self._snapshot()
            if not self._unchanged(rows):
                self._rewrite(ordered, rows)

    def mark(self) -> Callable[[], None]:
        """Note every segment's progress as a sync starts; return what records it as
        durable, in memory and in the sidecar, once that sync succeeded."""
        with self.lock:
            progress = [(segment, segment.done, segment.crc) for segment in self.segments]

        def promote() -> None:
            with self.lock:
                for segment, done, crc in progress:
                    segment.durable = (done, crc)  # syncs run one at a time: it only grows
            if self.keeps_sidecar:
                self._publish()

        return promote

    def close(self) -> None:
        with self._save_lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _publish(self) -> None:
        """Write the durable progress into the sidecar: in place, one fixed-width field
        per segment (no rename), or whole if its rows changed (work stealing)."""
        with self._save_lock:
            ordered, rows = self._snapshot()
            if not self._unchanged(rows) or self._fd is None:
                self._rewrite(ordered, rows)
                return
            with no_space_is_item_error(self._item.part_path):
                for segment, (_, _, done, crc) in zip(ordered, rows, strict=True):
                    os.pwrite(self._fd, _progress_field(done, crc), self._slots[id(segment)])
                sync_data(self._fd)  # the progress, as durable as the bytes it claims

    def _snapshot(self) -> tuple[list[Segment], list[list[int]]]:
        """Return the segments by start, and their rows as the sidecar shows them."""
        with self.lock:
            ordered = sorted(self.segments, key=lambda segment: segment.start)
            return ordered, [[segment.start, segment.end, *segment.durable] for segment in ordered]

    def _unchanged(self, rows: list[list[int]]) -> bool:
        return self._fd is not None and [(row[0], row[1]) for row in rows] == self._saved

    def _rewrite(self, ordered: list[Segment], rows: list[list[int]]) -> None:
        path = sidecar_path(self._item.part_path)
        text, offsets = self._render(rows)
        with no_space_is_item_error(path):
            self._replace(path, text)
        self._slots = {
            id(segment): offset for segment, offset in zip(ordered, offsets, strict=True)
        }
        self._saved = [(row[0], row[1]) for row in rows]

    def _replace(self, path: Path, text: str) -> None:
        """Given the sidecar's text, write it atomically and keep it open for updates."""
        scratch = path.with_name(path.name + ".tmp")
        scratch.unlink(missing_ok=True)  # a symlink planted there goes, never its target
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        with os.fdopen(open_nofollow(scratch, flags), "w", encoding="ascii") as out:
            out.write(text)
            out.flush()
            sync_data(out.fileno())  # renamed in only once its text is on disk
        scratch.replace(path)  # replaces a symlink at ``path`` itself, never its target
        fsync_folder(path.parent)  # and its name outlives a power cut
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._fd = open_nofollow(path, os.O_WRONLY)

    def _render(self, rows: list[list[int]]) -> tuple[str, list[int]]:
        """Return the sidecar's JSON text and the offset of each row's ``done`` field."""
        head = json.dumps(
            {
                "size": self._item.size,
                "crc32": expected_crc(self._item),
                "connections": self._connections,
            }
        )
        text = head[:-1] + ', "segments": [\n'
        offsets: list[int] = []
        for number, (start, end, done, crc) in enumerate(rows):
            row = f"[{start:{_WIDTH}d}, {end:{_WIDTH}d}, "
            offsets.append(len(text) + len(row))
            field = _progress_field(done, crc).decode()
            text += row + field + "]" + (",\n" if number < len(rows) - 1 else "\n")
        return text + "]}\n", offsets

    def claim(self, min_size: int) -> Segment | None:
        """Return a segment nobody works on, else the second half of the largest one
        (if both halves keep ``min_size`` bytes), else None."""
        with self.lock:
            for segment in self.segments:
                if not segment.owned and segment.left > 0:
                    segment.owned = True
                    return segment
            victims = [segment for segment in self.segments if segment.free >= 2 * min_size]
            if not victims:
                return None
            victim = max(victims, key=lambda segment: segment.free)
            middle = victim.end - victim.free // 2
            taken = Segment(middle, victim.end, owned=True)
            victim.end = middle
            self.segments.append(taken)
            return taken


def fresh_table(
    item: FileToFetch, have: int, have_crc: int, pieces: int, connections: int
) -> SegmentTable:
    """Given the bytes already at the start of the part (and their CRC32), return a table
    that counts them as done and splits the rest into ``pieces`` contiguous segments;
    for fewer than two, one sequential segment that keeps no sidecar."""
    if pieces < 2:
        whole = Segment(0, item.size, have, have_crc, durable=(have, have_crc))
        return SegmentTable(item, [whole], connections, sidecar=False)
    segments = [Segment(0, have, have, have_crc)] if have else []  # durable once synced
    rest = item.size - have
    edges = [have + rest * number // pieces for number in range(pieces + 1)]
    segments += [Segment(start, end) for start, end in pairwise(edges)]
    return SegmentTable(item, segments, connections)


def load_table(item: FileToFetch, connections: int) -> SegmentTable | None:
    """Given a file to fetch, return the table of its sidecar; None if it has none, or
    if the sidecar does not match (then the part and sidecar are removed: start over)."""
    path = sidecar_path(item.part_path)
    status = lstat_or_none(path)  # one call: absent (the usual case), a symlink, or read it
    if status is None:
        return None
    if stat.S_ISLNK(status.st_mode):
        refuse_symlink(path)
    segments = _read_sidecar(path, item)
    if segments is None:
        logger.warning("%s does not match the file on put.io; starting over", path.name)
        discard(item.part_path)
        return None
    _prove(item, segments)
    return SegmentTable(item, segments, connections)


def _prove(item: FileToFetch, segments: list[Segment]) -> None:
    """Given the segments a sidecar claims, read each one's done bytes back from the part
    and start over (with a warning) every segment whose CRC32 differs from its own."""
    fd = open_nofollow(item.part_path, os.O_RDONLY)
    try:
        for segment in segments:
            if segment.done and _crc_on_disk(fd, segment) != segment.crc:
                logger.warning(
                    "%s: bytes %d-%d differ from what its sidecar recorded (lost in a "
                    "power cut?); fetching them again",
                    item.part_path.name,
                    segment.start,
                    segment.position - 1,
                )
                segment.done = segment.crc = 0
                segment.durable = (0, 0)
        drop_cached(fd)  # read once to prove them: no reason to keep them cached
    finally:
        os.close(fd)


def _crc_on_disk(fd: int, segment: Segment) -> int:
    crc, offset = 0, segment.start
    while offset < segment.position:
        block = os.pread(fd, min(_PROVE_BLOCK, segment.position - offset), offset)
        if not block:
            return -1  # shorter than claimed: no CRC32 matches
        crc, offset = crc32(block, crc), offset + len(block)
    return crc


def _read_sidecar(path: Path, item: FileToFetch) -> list[Segment] | None:
    """Given a sidecar, return its segments if it describes this file and the part
    holds every byte it claims; otherwise None."""
    try:
        document: Any = json.loads(_read_text(path))
        rows = [
            (int(start), int(end), int(done), int(crc))
            for start, end, done, crc in document["segments"]
        ]
        matches = document["size"] == item.size and document["crc32"] == expected_crc(item)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    part_size = size_of(item.part_path)
    if not matches or part_size is None or not _tiles(rows, item.size, part_size):
        return None
    return [Segment(start, end, done, crc, durable=(done, crc)) for start, end, done, crc in rows]


def _tiles(rows: list[tuple[int, int, int, int]], size: int, part_size: int) -> bool:
    """Return True if the rows cover ``[0, size)`` edge to edge and claim no byte
    beyond a part of ``part_size`` bytes."""
    edge = 0
    for start, end, done, _ in sorted(rows):
        if start != edge or end <= start or not 0 <= done <= end - start:
            return False
        if start + done > part_size:
            return False
        edge = end
    return edge == size
