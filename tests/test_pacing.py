"""How many files download at once when the config says ``parallel_files: auto``."""

from __future__ import annotations

from putio_mirror.core.pacing import AUTO_MAX_FILES, MIB, files_at_once


def test_one_file_is_one_at_a_time() -> None:
    assert files_at_once([]) == 1
    assert files_at_once([5 * 1024**3]) == 1


def test_small_files_go_many_at_once_large_ones_two() -> None:
    assert files_at_once([4096] * 10_000) == AUTO_MAX_FILES
    assert files_at_once([MIB] * 300) == AUTO_MAX_FILES
    assert files_at_once([4 * MIB] * 300) == 8
    assert files_at_once([100 * MIB] * 20) == 4
    assert files_at_once([4 * 1024 * MIB] * 20) == 2


def test_never_more_workers_than_files() -> None:
    assert files_at_once([1000, 2000, 3000]) == 3


def test_the_median_decides_so_one_big_file_among_subtitles_does_not() -> None:
    assert files_at_once([2000] * 19 + [8 * 1024 * MIB]) == AUTO_MAX_FILES
