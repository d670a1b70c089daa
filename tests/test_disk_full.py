"""A full disk is the disk's trouble, not each file's: it is told once for the run, counts
no failure against any file, and the run after room was made downloads at once (no
pause that doubles per failure). The disk is "full" through the config's real seam: a
spare margin larger than any disk."""

from __future__ import annotations

from putio_mirror.core.errors import ExitCode
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
