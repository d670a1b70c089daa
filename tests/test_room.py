"""Free space is shared by downloads running at once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from putio_mirror.app.downloading import RoomKeeper
from putio_mirror.core.errors import NoSpaceError

GIB = 1024**3


def test_two_downloads_that_fit_only_one_at_a_time_do_not_both_start(tmp_path: Path) -> None:
    # A margin that leaves room for one and a half files on this very disk.
    keeper = RoomKeeper(margin=shutil.disk_usage(tmp_path).free - 3 * GIB // 2)
    first = keeper.reserved(tmp_path, GIB)
    with first, pytest.raises(NoSpaceError), keeper.reserved(tmp_path, GIB):
        pass  # never reached: the second promise does not fit beside the first
    with keeper.reserved(tmp_path, GIB):
        pass  # the first one's promise ended with it
