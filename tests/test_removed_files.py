"""What a run placing files hears of items RPC clients removed meanwhile (on another host
sharing the journal): fresh within a second, and the costly set read only when it changed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from putio_mirror.app.downloading import RemovedFiles
from putio_mirror.core.state import Desire
from putio_mirror.journal.store import Journal

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
HASH_A, HASH_B = "a" * 40, "b" * 40


class Counting:
    """A journal whose removed-files reads are counted (the rest passed through)."""

    def __init__(self, journal: Journal) -> None:
        self._desires = journal.desires
        self.reads = 0

    @property
    def desires(self) -> Counting:
        return self

    def removed_mark(self) -> tuple[int, int, int]:
        return self._desires.removed_mark()

    def removed_files(self) -> frozenset[int]:
        self.reads += 1
        return self._desires.removed_files()


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal.open(f"sqlite:///{tmp_path / 'journal.sqlite3'}")
    for number, info_hash in enumerate((HASH_A, HASH_B), start=1):
        magnet = f"magnet:?xt=urn:btih:{info_hash}"
        opened.desires.add(
            Desire(info_hash, number, f"item {number}", "magnet", NOW, magnet_uri=magnet), None
        )
        files = tuple((10 * number + n, f"item {number}/e{n}.mkv", 100) for n in range(2))
        opened.desires.locate(info_hash, 10 * number, f"item {number}", files)
    yield opened
    opened.close()


def test_a_removal_is_heard_within_a_second_and_the_set_read_only_when_it_changed(
    journal: Journal,
) -> None:
    clock = [0.0]
    counting = Counting(journal)
    removed = RemovedFiles(cast(Any, counting), clock=lambda: clock[0])
    ids = [10, 11, 20, 21]
    assert removed.among(ids) == frozenset()
    journal.desires.remove([HASH_A], NOW)
    clock[0] = 0.5
    assert removed.among(ids) == frozenset(), "read at most once a second"
    clock[0] = 1.5
    assert removed.among(ids) == {10, 11}
    reads = counting.reads
    for second in range(2, 12):  # nothing changes: the mark alone is looked at
        clock[0] = second + 0.5
        assert removed.among(ids) == {10, 11}
    assert counting.reads == reads
    journal.desires.remove([HASH_B], NOW)
    clock[0] = 20.0
    assert removed.among(ids) == {10, 11, 20, 21}
    journal.desires.add(
        Desire(HASH_A, 3, "item 1", "magnet", NOW, magnet_uri="magnet:?xt=urn:btih:" + HASH_A), None
    )
    clock[0] = 30.0
    assert removed.among(ids) == {20, 21}, "added again: no longer removed"
