"""A full disk is the disk's trouble, not each file's: it is told once for the run, counts
no failure against any file, and the run after room was made downloads at once (no
pause that doubles per failure). The disk is "full" through the config's real seam (a
spare margin larger than any disk), or fills mid-write (the ``os.pwrite`` seam)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from putio_mirror.core.errors import AlreadyRunningError, ExitCode
from putio_mirror.local.lock import RunLock
from tests.mirror_env import Mirror

FULL = {"free_space_margin_mb": 10**12}


def _three_films(mirror: Mirror) -> None:
    for number in range(3):
        mirror.fake.add_file(f"film{number}.mkv", size=1000 + number)


def test_files_refused_for_room_are_downloaded_as_soon_as_there_is_room(mirror: Mirror) -> None:
    _three_films(mirror)
    mirror.write_config(download=FULL)
    assert mirror.run("sync").code == ExitCode.ITEMS_FAILED
    assert mirror.local_files() == {}

    mirror.write_config()  # room made: the next timer run must not wait 10 minutes, 20, 40 …
    result = mirror.run("sync")
    assert result.code == ExitCode.OK, result.err
    assert sorted(mirror.local_files()) == ["film0.mkv", "film1.mkv", "film2.mkv"]
    assert "next try after" not in result.err


def test_a_full_disk_fails_every_run_alike_and_never_backs_off(mirror: Mirror) -> None:
    _three_films(mirror)
    mirror.write_config(download=FULL)
    mirror.run("sync")
    again = mirror.run("sync")  # still full: told again, not "nothing to do"
    assert again.code == ExitCode.ITEMS_FAILED, again.err
    assert "3 files wait for room" in again.err
    assert "Nothing to do" not in again.out


def test_a_full_disk_is_one_message_for_all_its_files(mirror: Mirror) -> None:
    _three_films(mirror)
    mirror.write_config(download=FULL)
    result = mirror.run("sync")
    told = [line for line in result.err.splitlines() if line.startswith("failed:")]
    assert len(told) == 1, result.err
    assert "3 files wait for room" in told[0] and "kept spare" in told[0]
    assert result.err.count("  hint: ") == 1
    assert "Result: 0 done, 0 failed, 3 waiting for room on the disk." in result.out


def test_a_disk_that_fills_mid_write_counts_against_no_file(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The room was there when the files started; another program filled the disk while
    # they were written (ENOSPC from the write itself, through the os.pwrite seam).
    _three_films(mirror)

    with monkeypatch.context() as patched:
        patched.setattr(os, "pwrite", lambda *args: _raise(errno.ENOSPC))
        result = mirror.run("sync")
    assert result.code == ExitCode.ITEMS_FAILED
    assert "3 files wait for room" in result.err, result.err
    again = mirror.run("sync")
    assert again.code == ExitCode.OK, again.err
    assert sorted(mirror.local_files()) == ["film0.mkv", "film1.mkv", "film2.mkv"]


def test_the_run_lock_holds_on_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The pid written into the lock file only names the holder for the next comer: a disk
    # with no room for it must not crash the run (the journal beside it tells of the disk).
    lock = tmp_path / "journal.sqlite3.lock"
    with monkeypatch.context() as patched:
        patched.setattr(os, "pwrite", lambda *args: _raise(errno.ENOSPC))
        with RunLock(lock), pytest.raises(AlreadyRunningError), RunLock(lock):
            pass


def _raise(code: int) -> int:
    raise OSError(code, os.strerror(code))
