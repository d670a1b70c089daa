"""Fake put.io accounts for the benchmarks: many files in folders, of seeded sizes.

``add_tree`` fills a FakePutio with files spread over folders; ``node_links`` hands out
the fake's own download URLs for a tool that does not speak put.io's API (aria2c);
``fill_journal`` writes what a journal would remember of them (``placed_records``: all
mirrored).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from putio_mirror.core.state import DownloadRecord
from putio_mirror.fakeputio import FakePutio

SEED = 14  # the issue these trees were made for: the same sizes in every run
MIRRORED_AT = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class RemoteEntry:
    """One file added to the fake: its id, its path under the account's root, its size."""

    file_id: int
    path: str
    size: int


def seeded_sizes(count: int, low: int, high: int, seed: int = SEED) -> list[int]:
    """Given a count and bounds in bytes, return that many sizes in [low, high], seeded."""
    draw = random.Random(seed)
    return [draw.randint(low, high) for _ in range(count)]


def add_tree(
    fake: FakePutio, sizes: Sequence[int], *, per_folder: int, top: str | None = None
) -> list[RemoteEntry]:
    """Given a fake and file sizes, add one file per size, ``per_folder`` to a folder.

    The folders go into a folder named ``top`` (if given) at the account's root, else
    at the root themselves; names are ASCII and unique, so the local path of a file is
    its put.io path as is.
    """
    parent, prefix = 0, ""
    if top is not None:
        parent, prefix = fake.add_folder(top), f"{top}/"
    entries: list[RemoteEntry] = []
    folder_id, folder_name = parent, ""
    for number, size in enumerate(sizes):
        if number % per_folder == 0:
            folder_name = f"folder-{number // per_folder:04d}"
            folder_id = fake.add_folder(folder_name, parent_id=parent)
        name = f"file-{number:06d}.bin"
        file_id = fake.add_file(name, parent_id=folder_id, size=size)
        entries.append(RemoteEntry(file_id, f"{prefix}{folder_name}/{name}", size))
    return entries


def node_links(fake: FakePutio, entries: Sequence[RemoteEntry]) -> dict[int, str]:
    """Given a started fake and its files, return a fresh download URL of each, on the
    fake's own node (the URL ``files/{id}/url`` would answer; reusable while the fake's
    ``url_max_uses`` is None, its default)."""
    with fake.world.lock:
        return {entry.file_id: fake.world.new_link(entry.file_id) for entry in entries}


def placed_records(fake: FakePutio, entries: Sequence[RemoteEntry]) -> list[DownloadRecord]:
    """Given a fake and its files, return the journal records of every file verified and
    placed where it belongs (what an account fully mirrored has)."""
    return [
        DownloadRecord(
            entry.file_id,
            entry.path,
            entry.size,
            fake.file_crc32(entry.file_id),
            entry.size,
            verified_at=MIRRORED_AT,
            placed_path=entry.path,
            placed_at=MIRRORED_AT,
        )
        for entry in entries
    ]


def fill_journal(url: str, records: Iterable[DownloadRecord]) -> None:
    """Given a journal URL, create it and insert one download row per record, at once."""
    from sqlalchemy import create_engine, insert

    from putio_mirror.journal.store import Journal, downloads_table

    Journal.open(url).close()
    rows = [
        {
            "file_id": record.file_id,
            "relative_path": record.relative_path,
            "size": record.size,
            "crc32": record.crc32,
            "bytes_done": record.bytes_done,
            "verified_at": record.verified_at,
            "updated_at": record.verified_at,
            "placed_at": record.placed_at,
            "placed_path": record.placed_path,
            "failures": 0,
        }
        for record in records
    ]
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(insert(downloads_table), rows)
    finally:
        engine.dispose()
