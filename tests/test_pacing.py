"""How many files download at once when the config says ``parallel_files: auto``: the most
the sizes allow, and how many of those put.io's distance calls for."""

from __future__ import annotations

from putio_mirror.core.pacing import AUTO_FEWEST_FILES, AUTO_MAX_FILES, MIB, Crowd, files_at_once


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


# -- how many of the most a run uses: Crowd -------------------------------------------


def generation(crowd: Crowd, waited: float, took: float = 1.0) -> None:
    """End as many files as the crowd allows, each having waited ``waited`` of ``took``."""
    for _ in range(crowd.allowed):
        crowd.ended(waited, took)


def test_an_auto_crowd_starts_at_the_fewest_and_doubles_while_files_wait_for_put_io() -> None:
    crowd = Crowd(AUTO_MAX_FILES)
    assert crowd.allowed == AUTO_FEWEST_FILES
    seen = [crowd.allowed]
    for _ in range(4):
        generation(crowd, waited=0.9)
        seen.append(crowd.allowed)
    assert seen == [2, 4, 8, AUTO_MAX_FILES, AUTO_MAX_FILES]


def test_a_crowd_decides_once_a_generation_not_at_each_file() -> None:
    crowd = Crowd(AUTO_MAX_FILES)
    generation(crowd, waited=0.9)
    assert crowd.allowed == 4
    for _ in range(3):  # three of the four files of the next generation
        crowd.ended(0.9, 1.0)
    assert crowd.allowed == 4
    crowd.ended(0.9, 1.0)
    assert crowd.allowed == 8


def test_a_crowd_shrinks_by_one_to_the_fewest_while_files_hardly_wait() -> None:
    crowd = Crowd(AUTO_MAX_FILES)
    for _ in range(3):
        generation(crowd, waited=0.9)
    assert crowd.allowed == AUTO_MAX_FILES
    for _ in range(20):
        generation(crowd, waited=0.05)
    assert crowd.allowed == AUTO_FEWEST_FILES


def test_a_crowd_holds_while_the_wait_is_neither_most_nor_little_of_the_time() -> None:
    crowd = Crowd(AUTO_MAX_FILES)
    generation(crowd, waited=0.9)
    for _ in range(5):
        generation(crowd, waited=0.3)
    assert crowd.allowed == 4


def test_the_configs_number_of_files_at_once_never_changes() -> None:
    crowd = Crowd(5, fewest=5)
    for waited in (0.9, 0.9, 0.0, 0.0):
        generation(crowd, waited)
        assert crowd.allowed == 5


def test_a_crowd_of_one_file_at_a_time_stays_one() -> None:
    crowd = Crowd(1)
    generation(crowd, waited=1.0)
    assert (crowd.allowed, crowd.fewest, crowd.most) == (1, 1, 1)
