"""The segments of a part file being fetched over several connections, and their sidecar.

Progress lives beside the part in ``<part>.segments`` (JSON: size, crc32,
connections and ``[start, end, done, crc32 of the done bytes]`` rows, ``end``
exclusive), written
atomically when its rows change and updated in place, one fixed-width number,
as each chunk lands. A sidecar is trusted only if it describes the same file version,
its rows tile the file edge to edge, and the part holds every byte it claims;
otherwise the part and sidecar are removed and the fetch starts over.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from putio_mirror.crc import crc32_combine
from putio_mirror.nodehttp import FileToFetch, expected_crc, no_space_is_item_error, size_of

logger = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".segments"
#: width of each number in the sidecar: JSON allows the padding, and a fixed width
#: lets a segment's progress (done, crc) be updated in place
_WIDTH = 20
_CRC_WIDTH = 10


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
    if not path.exists():
        return size_of(part_path) or 0
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["segments"]
        return sum(int(row[2]) for row in rows)
    except (OSError, ValueError, KeyError, TypeError):
        return 0


@dataclass
class Segment:
    """Bytes ``[start, end)`` of the file, ``done`` of them in the part; ``flight`` more
    are being written right now; ``owned`` once a thread works on it."""

    start: int
    end: int
    done: int = 0
    #: CRC32 of the ``done`` bytes: the file is verified by combining these
    crc: int = 0
    flight: int = 0
    owned: bool = False

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

    def __init__(self, item: FileToFetch, segments: list[Segment], connections: int) -> None:
        self.lock = threading.Lock()
        self._save_lock = threading.Lock()  # segment threads checkpoint concurrently
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
        """Write the sidecar atomically, unless it already has these rows (whose
        progress ``checkpoint`` keeps current in place)."""
        with self._save_lock:
            self._rewrite()

    def checkpoint(self, segment: Segment) -> None:
        """Record one segment's progress after its bytes were written.

        Its ``done`` field has a fixed width in the sidecar, so this is one small
        in-place write (no rename, cheap enough for every chunk): a kill -9 then
        costs at most the chunk in flight per connection. A segment the sidecar
        does not list yet (one split off by work stealing) rewrites it whole.
        """
        with self._save_lock:
            offset = self._slots.get(id(segment))
            if offset is None or self._fd is None:
                self._rewrite()
                return
            with no_space_is_item_error(self._item.part_path):
                os.pwrite(self._fd, _progress_field(segment.done, segment.crc), offset)

    def close(self) -> None:
        with self._save_lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _rewrite(self) -> None:
        with self.lock:
            ordered = sorted(self.segments, key=lambda segment: segment.start)
            rows = [[segment.start, segment.end, segment.done, segment.crc] for segment in ordered]
        edges = [(start, end) for start, end, _, _ in rows]
        if edges == self._saved and self._fd is not None:
            return  # same rows: their progress fields are kept current in place
        path = sidecar_path(self._item.part_path)
        text, offsets = self._render(rows)
        scratch = path.with_name(path.name + ".tmp")
        with no_space_is_item_error(path):
            scratch.write_text(text, encoding="ascii")
            scratch.replace(path)
            if self._fd is not None:
                os.close(self._fd)
            self._fd = os.open(path, os.O_WRONLY)
        self._slots = {
            id(segment): offset for segment, offset in zip(ordered, offsets, strict=True)
        }
        self._saved = edges

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
    that counts them as done and splits the rest into ``pieces`` contiguous segments."""
    segments = [Segment(0, have, have, have_crc)] if have else []
    rest = item.size - have
    edges = [have + rest * number // pieces for number in range(pieces + 1)]
    segments += [Segment(start, end) for start, end in pairwise(edges)]
    return SegmentTable(item, segments, connections)


def load_table(item: FileToFetch, connections: int) -> SegmentTable | None:
    """Given a file to fetch, return the table of its sidecar; None if it has none, or
    if the sidecar does not match (then the part and sidecar are removed: start over)."""
    path = sidecar_path(item.part_path)
    if not path.exists():
        return None
    segments = _read_sidecar(path, item)
    if segments is None:
        logger.warning("%s does not match the file on put.io; starting over", path.name)
        discard(item.part_path)
        return None
    return SegmentTable(item, segments, connections)


def _read_sidecar(path: Path, item: FileToFetch) -> list[Segment] | None:
    """Given a sidecar, return its segments if it describes this file and the part
    holds every byte it claims; otherwise None."""
    try:
        document: Any = json.loads(path.read_text(encoding="utf-8"))
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
    return [Segment(start, end, done, crc) for start, end, done, crc in rows]


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
