"""Free space is shared by downloads running at once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from putio_mirror.core.errors import NoSpaceError
from putio_mirror.local.space import MEASURE_SECONDS, RoomKeeper, free_bytes

GIB = 1024**3
MIB = 1024**2


def test_two_downloads_that_fit_only_one_at_a_time_do_not_both_start(tmp_path: Path) -> None:
    # A margin that leaves room for one and a half files on this very disk.
    keeper = RoomKeeper(margin=shutil.disk_usage(tmp_path).free - 3 * GIB // 2)
    first = keeper.reserved(tmp_path, GIB)
    with first, pytest.raises(NoSpaceError), keeper.reserved(tmp_path, GIB):
        pass  # never reached: the second promise does not fit beside the first
    with keeper.reserved(tmp_path, GIB):
        pass  # the first one's promise ended with it


class Disk:
    """The real disk's free space as measured, each measure counted; ``taken`` bytes less
    (as if another program had written them)."""

    def __init__(self) -> None:
        self.measures = 0
        self.taken = 0

    def free(self, folder: Path) -> int:
        self.measures += 1
        return free_bytes(folder) - self.taken


def test_many_small_files_measure_the_disk_once_a_second(tmp_path: Path) -> None:
    disk, now = Disk(), [0.0]
    keeper = RoomKeeper(margin=0, measure=disk.free, clock=lambda: now[0])
    for _ in range(1000):
        with keeper.reserved(tmp_path, 4096):
            pass
    assert disk.measures == 1
    now[0] += MEASURE_SECONDS
    with keeper.reserved(tmp_path, 4096):
        pass
    assert disk.measures == 2


def test_a_full_disk_is_seen_by_the_next_measure(tmp_path: Path) -> None:
    disk, now = Disk(), [0.0]
    keeper = RoomKeeper(margin=0, measure=disk.free, clock=lambda: now[0])
    with keeper.reserved(tmp_path, 4096):
        pass
    disk.taken = free_bytes(tmp_path)  # another program filled the disk
    now[0] += MEASURE_SECONDS
    with pytest.raises(NoSpaceError), keeper.reserved(tmp_path, 4096):
        pass


def test_a_file_that_takes_half_the_room_left_measures_again(tmp_path: Path) -> None:
    disk = Disk()
    free = free_bytes(tmp_path)
    keeper = RoomKeeper(margin=free - 100 * MIB, measure=disk.free, clock=lambda: 0.0)
    with keeper.reserved(tmp_path, 10 * MIB):
        pass
    with keeper.reserved(tmp_path, 30 * MIB):  # 40 MiB of the 100 MiB room: the measure holds
        pass
    assert disk.measures == 1
    with keeper.reserved(tmp_path, 20 * MIB):  # 60 MiB: measured again
        pass
    assert disk.measures == 2
    disk.taken = 100 * MIB  # the room is gone: refused at once, whatever the clock says
    with pytest.raises(NoSpaceError), keeper.reserved(tmp_path, 60 * MIB):
        pass


def test_a_download_that_fails_ends_its_promise_and_one_refused_made_none(tmp_path: Path) -> None:
    keeper = RoomKeeper(margin=shutil.disk_usage(tmp_path).free - 3 * GIB // 2)
    with pytest.raises(OSError), keeper.reserved(tmp_path, GIB):
        raise OSError("the node went away")  # a failed download: its promise ends all the same
    with pytest.raises(NoSpaceError), keeper.reserved(tmp_path, 2 * GIB):
        pass  # never reached: refused, and so promised nothing
    with keeper.reserved(tmp_path, GIB):
        pass  # neither left a promise behind
