"""A file's life in staging, end to end: fetched → verified in staging → placed → deleted on
put.io, with put.io renaming, replacing and deleting things between runs, files in the way,
and one file that keeps failing. Every test runs real syncs against the local put.io."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from putio_mirror.app.downloading import NoProgress
from putio_mirror.app.run import Request, Runtime, run_once
from putio_mirror.config.settings import load_settings
from putio_mirror.core.errors import ExitCode
from putio_mirror.journal.store import Journal
from tests.journal_schemas import replay
from tests.mirror_env import Mirror
from tests.test_sync import SteppingClock


def _staging(mirror: Mirror) -> Path:
    return mirror.downloads / ".putio-mirror-staging"


def _staged_files(mirror: Mirror) -> list[str]:
    root = _staging(mirror)
    return (
        sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())
        if root.exists()
        else []
    )


def _sync(mirror: Mirror, clock: SteppingClock) -> int:
    settings = load_settings(mirror.config, {})
    return int(run_once(Runtime(settings, clock=clock), Request("sync")).exit_code)


def _window_closes_after_first_file(mirror: Mirror) -> None:
    """Run once with a window that closes while the second file downloads; the config
    then has no window any more."""
    one_at_a_time = {"chunk_size_kb": 64, "parallel_files": 1, "connections": 1}
    mirror.write_config(schedule={"windows": ["00:05-05:55"]}, download=one_at_a_time)
    late = SteppingClock(datetime(2026, 11, 27, 5, 30), timedelta(minutes=1))
    assert _sync(mirror, late) == 10
    mirror.write_config(download=one_at_a_time)


def _age_staging(mirror: Mirror, days: float) -> None:
    """Make everything in staging look ``days`` older, as if that time had passed."""
    for path in _staging(mirror).rglob("*"):
        info = path.lstat()
        shift = days * 86400
        os.utime(path, (info.st_atime - shift, info.st_mtime - shift), follow_symlinks=False)


@pytest.fixture
def season(mirror: Mirror) -> Iterator[tuple[int, int, int]]:
    show = mirror.fake.add_folder("Show S01")
    first = mirror.fake.add_file("e1.mkv", parent_id=show, size=300_000)
    second = mirror.fake.add_file("e2.mkv", parent_id=show, size=2_000_000)
    yield show, first, second


def test_folder_renamed_on_put_io_mid_item_is_placed_whole_under_its_new_name(
    mirror: Mirror, season: tuple[int, int, int]
) -> None:
    show, first, second = season
    _window_closes_after_first_file(mirror)
    mirror.fake.rename(show, "Show S01 (2026)")
    assert mirror.run("sync").code == 0
    assert mirror.local_files() == {
        "Show S01 (2026)/e1.mkv": mirror.fake.file_content(first),
        "Show S01 (2026)/e2.mkv": mirror.fake.file_content(second),
    }
    assert _staged_files(mirror) == []


def test_file_replaced_on_put_io_by_one_of_the_same_name_is_placed_and_the_old_bytes_tidied(
    mirror: Mirror, season: tuple[int, int, int]
) -> None:
    show, first, second = season
    _window_closes_after_first_file(mirror)
    mirror.fake.delete_file(first)
    replacement = mirror.fake.add_file("e1.mkv", parent_id=show, content=b"the proper release")
    assert mirror.run("sync").code == 0
    assert mirror.local_files() == {
        "Show S01/e1.mkv": b"the proper release",
        "Show S01/e2.mkv": mirror.fake.file_content(second),
    }
    assert _staged_files(mirror) == [f"verified/{first}"], "kept for the grace period"
    assert replacement != first
    _age_staging(mirror, days=2)
    assert mirror.run("sync").code == 0
    assert _staged_files(mirror) == []


def test_part_of_a_file_deleted_on_put_io_is_removed_after_the_grace_period(
    mirror: Mirror, season: tuple[int, int, int]
) -> None:
    show, first, second = season  # noqa: RUF059
    _window_closes_after_first_file(mirror)
    assert f"{second}.part" in _staged_files(mirror)
    mirror.fake.delete_file(show)
    mirror.fake.add_file("other.mkv", size=1000)
    assert mirror.run("sync").code == 0
    assert f"{second}.part" in _staged_files(mirror), "not before the grace period"
    _age_staging(mirror, days=2)
    assert mirror.run("sync").code == 0
    assert _staged_files(mirror) == []
    assert list(mirror.local_files()) == ["other.mkv"]


def test_placement_blocked_by_one_file_places_the_rest_and_the_blocked_one_once_freed(
    mirror: Mirror, season: tuple[int, int, int]
) -> None:
    show, first, second = season  # noqa: RUF059
    _window_closes_after_first_file(mirror)
    stranger = mirror.downloads / "Show S01" / "e2.mkv"
    stranger.parent.mkdir(parents=True)
    stranger.write_bytes(b"someone else's file")
    result = mirror.run("sync")
    assert "not overwriting" in result.err
    assert mirror.local_files()["Show S01/e1.mkv"] == mirror.fake.file_content(first)
    assert stranger.read_bytes() == b"someone else's file"
    stranger.unlink()
    assert mirror.run("sync").code == 0
    assert mirror.local_files()["Show S01/e2.mkv"] == mirror.fake.file_content(second)
    assert _staged_files(mirror) == []


class _StrangerAppears(NoProgress):
    """Progress that, once the last download ends, puts a stranger's file where the
    item's first file will be placed: a folder of the item's name appeared mid-run."""

    def __init__(self, path: Path, last_key: str) -> None:
        self.path, self.last_key = path, last_key

    def end(self, key: str) -> None:
        if key == self.last_key:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_bytes(b"someone else's file")


def test_put_io_copy_is_never_deleted_while_the_local_copy_is_not_placed(
    mirror: Mirror, season: tuple[int, int, int]
) -> None:
    show, first, second = season
    mirror.write_config(download={"delete_remote_after": True, "parallel_files": 1})
    stranger = mirror.downloads / "Show S01" / "e1.mkv"
    wanted = mirror.fake.file_content(first)
    progress = _StrangerAppears(stranger, f"download:{second}")
    settings = load_settings(mirror.config, {})
    outcome = run_once(Runtime(settings, progress=progress), Request("sync"))
    assert outcome.exit_code == ExitCode.NEEDS_ATTENTION, "a person's to move: no failure"
    assert show in {item["id"] for item in mirror.fake.files()}, "put.io keeps the item"
    assert mirror.local_files()["Show S01/e2.mkv"] == mirror.fake.file_content(second)
    assert _staged_files(mirror) == [f"verified/{first}"]
    stranger.unlink()
    assert mirror.run("sync").code == 0
    assert mirror.local_files()["Show S01/e1.mkv"] == wanted
    assert show not in {item["id"] for item in mirror.fake.files()}
    assert _staged_files(mirror) == []


def test_one_file_the_node_refuses_fails_alone_and_grooming_still_runs(mirror: Mirror) -> None:
    broken = mirror.fake.add_file("broken.mkv", size=50_000)
    fine = mirror.fake.add_file("fine.mkv", size=50_000)
    seeding = mirror.fake.add_transfer("fine", status="SEEDING", file_id=fine)
    mirror.write_config(
        download={"max_outage_seconds": 1, "parallel_files": 1},
        transfers={"manage_foreign": True},
    )
    mirror.fake.node_fault(broken, status=500, times=10_000)
    result = mirror.run("sync")
    assert result.code == 1 and "broken.mkv" in result.err
    assert list(mirror.local_files()) == ["fine.mkv"]
    assert seeding not in {transfer["id"] for transfer in mirror.fake.transfers()}
    journal = Journal.open(f"sqlite:///{mirror.journal}")
    try:
        record = journal.facts().downloads[broken]
    finally:
        journal.close()
    assert record.failures == 1 and record.last_error
    again = mirror.run("sync")
    assert again.code == 0 and "next try after" in again.out, "it waits before trying again"
    assert "in step" not in again.out and "see the notes above" in again.out
    history = mirror.run("history").out
    assert "broken.mkv: 1 failure(s)" in history and "HTTP 500" in history


def test_symlink_planted_as_a_verified_file_is_never_placed(
    mirror: Mirror, season: tuple[int, int, int], tmp_path: Path
) -> None:
    show, first, second = season  # noqa: RUF059
    _window_closes_after_first_file(mirror)
    secret = tmp_path / "secret"
    secret.write_bytes(b"not yours")
    verified = _staging(mirror) / "verified" / str(first)
    verified.unlink()
    os.symlink(secret, verified)
    assert mirror.run("sync").code == 0
    placed = mirror.downloads / "Show S01" / "e1.mkv"
    assert not placed.is_symlink()
    assert placed.read_bytes() == mirror.fake.file_content(first)
    assert secret.read_bytes() == b"not yours"


def test_an_upgrade_keeps_mirrored_files_and_places_items_an_earlier_version_left_staged(
    mirror: Mirror, season: tuple[int, int, int]
) -> None:
    show, first, second = season  # noqa: RUF059
    loose = mirror.fake.add_file("loose.mkv", size=1000)
    # What a version-2 journal (as that putio-mirror created it) and staging look like:
    # loose.mkv placed, e1 verified but still inside staging's items/ folder, e2 not fetched.
    legacy = _staging(mirror) / "items" / "Show S01" / "e1.mkv"
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(mirror.fake.file_content(first))
    (mirror.downloads / "loose.mkv").write_bytes(mirror.fake.file_content(loose))
    mirror.journal.parent.mkdir(parents=True, exist_ok=True)
    replay(f"sqlite:///{mirror.journal}", 2, rows=False)
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ")
    with closing(sqlite3.connect(mirror.journal)) as db, db:
        for file_id, path in ((first, "Show S01/e1.mkv"), (loose, "loose.mkv")):
            info = mirror.fake.file(file_id)
            db.execute(
                "INSERT INTO downloads (file_id, relative_path, size, crc32, bytes_done, "
                "verified_at, updated_at, failures) VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
                (file_id, path, info["size"], info["crc32"], info["size"], now, now),
            )
    mirror.fake.clear_requests()
    assert mirror.run("sync").code == 0
    fetched = {r.path for r in mirror.fake.requests if "/files/" in r.path and "/url" in r.path}
    assert fetched == {f"/v2/files/{second}/url"}, "only the missing file is fetched"
    assert sorted(mirror.local_files()) == ["Show S01/e1.mkv", "Show S01/e2.mkv", "loose.mkv"]
    assert _staged_files(mirror) == []
