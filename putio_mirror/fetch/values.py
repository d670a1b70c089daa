"""What a fetch is given and what it hands back: plain values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FileToFetch:
    """One remote file and the ``.part`` file its bytes go to."""

    file_id: int
    size: int
    crc32: str | None
    part_path: Path


@dataclass(frozen=True)
class Fetched:
    """How a fetch ended: complete and verified, or stopped early at a chunk boundary."""

    complete: bool
    bytes_done: int


def expected_crc(item: FileToFetch) -> str | None:
    """Given a file to fetch, return put.io's CRC32 in lower case (None if unknown)."""
    return item.crc32.lower() if item.crc32 else None
