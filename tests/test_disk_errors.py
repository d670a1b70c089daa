"""A disk that fails to make a move durable (fsync of a folder: EIO) is never taken for one
that did: nothing is journaled placed, so put.io's copy is not deleted on its word, and the
run says what happened. A filesystem that cannot sync a folder at all (EINVAL, as some
network filesystems answer) is let be, as before.

``os.fsync`` is the seam: a disk error cannot be had on demand from a real disk here.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from putio_mirror.core.errors import NotDurableError
from putio_mirror.fetch.partfile import fsync_folder
from putio_mirror.journal.store import Journal
from putio_mirror.local.durable import FoldersToSync
from tests.mirror_env import Mirror


def folders_fail_to_sync(
    monkeypatch: pytest.MonkeyPatch, code: int, named: str | None = None
) -> Callable[[], int]:
    """Make every fsync of a folder (``named`` so, if given) fail with ``code``; return how
    many were asked."""
    real, asked = os.fsync, [0]

    def fsync(descriptor: int) -> None:
        path = Path(os.readlink(f"/proc/self/fd/{descriptor}"))
        if stat.S_ISDIR(os.fstat(descriptor).st_mode) and named in (None, path.name):
            asked[0] += 1
            raise OSError(code, os.strerror(code))
        real(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    return lambda: asked[0]


def test_a_folder_sync_that_fails_on_the_disk_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folders_fail_to_sync(monkeypatch, errno.EIO)
    with pytest.raises(OSError, match="Input/output error"):
        fsync_folder(tmp_path)


def test_a_filesystem_that_cannot_sync_folders_is_let_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = folders_fail_to_sync(monkeypatch, errno.EINVAL)
    fsync_folder(tmp_path)
    assert asked() == 1


def test_folders_a_sync_failed_to_make_durable_stay_due_for_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folders = FoldersToSync()
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        folders.add(tmp_path / name)
    with monkeypatch.context() as patched:
        asked = folders_fail_to_sync(patched, errno.EIO, named="a")
        with pytest.raises(NotDurableError, match="Input/output error"):
            folders.sync()
        assert asked() == 1
    # no later file's placement may be taken as durable on the failed sync's word
    asked = folders_fail_to_sync(monkeypatch, errno.EIO)
    with pytest.raises(NotDurableError):
        folders.sync()
    assert asked() == 1  # "a" again, first


@pytest.mark.parametrize("layout", ["loose file", "folder item"])
def test_a_placement_the_disk_could_not_make_durable_deletes_nothing_on_put_io(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    if layout == "loose file":
        file_id = mirror.fake.add_file("movie.mkv", size=300_000)
        relative = "movie.mkv"
    else:
        show = mirror.fake.add_folder("Show S01")
        file_id = mirror.fake.add_file("e1.mkv", parent_id=show, size=300_000)
        relative = "Show S01/e1.mkv"
    content = mirror.fake.file_content(file_id)
    mirror.write_config(download={"delete_remote_after": True})
    # staging is there, as after any earlier run: a folder the disk fails to make durable
    # for a fetch is that fetch's disk error, counted against the file (and waited on)
    (mirror.downloads / ".putio-mirror-staging" / "verified").mkdir(parents=True)
    undo = monkeypatch.context()
    with undo as patched:
        folders_fail_to_sync(patched, errno.EIO)
        for _ in range(2):  # a second run must not take the first one's word either
            result = mirror.run("sync")
            assert result.code == 1, result.err
            assert "Input/output error" in result.err and "hint:" in result.err
    assert any(item["id"] == file_id for item in mirror.fake.files()), "put.io keeps it"
    for _ in range(2):  # placed (or found in place and checked), then deleted on put.io
        assert mirror.run("sync").code == 0
    assert (mirror.downloads / relative).read_bytes() == content
    assert all(item["id"] != file_id for item in mirror.fake.files())


def test_a_staging_folder_the_disk_could_not_make_durable_fails_the_fetch_with_a_hint(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first run makes staging; its name in the download folder must outlive a power
    # cut, or so does nothing fetched into it. A disk that fails that is told as such.
    file_id = mirror.fake.add_file("movie.mkv", size=300_000)
    mirror.write_config(download={"delete_remote_after": True})
    folders_fail_to_sync(monkeypatch, errno.EIO, named="downloads")
    result = mirror.run("sync")
    assert result.code == 1, result.err
    assert "the disk failed to store" in result.err and "Input/output error" in result.err
    assert "hint: check the disk" in result.err
    assert any(item["id"] == file_id for item in mirror.fake.files()), "put.io keeps it"


def test_no_file_is_journaled_verified_before_its_move_into_verified_is_durable(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    show = mirror.fake.add_folder("Show S01")
    ids = [mirror.fake.add_file(f"e{n}.mkv", parent_id=show, size=50_000) for n in (1, 2)]
    asked = folders_fail_to_sync(monkeypatch, errno.EIO, named="verified")
    result = mirror.run("sync")
    assert result.code == 1 and asked() >= 1
    journal = Journal.open(f"sqlite:///{mirror.journal}")
    try:
        downloads = journal.facts().downloads
    finally:
        journal.close()
    assert not any(downloads[file_id].is_verified for file_id in ids if file_id in downloads)
    assert not (mirror.downloads / "Show S01").exists()


def test_loose_files_placed_in_one_run_sync_the_download_folder_once_per_commit_not_each(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each file's move in must be durable before the journal says it is placed, but one
    # sync of the folder makes every move made before it durable: the files whose ends
    # commit together share one (on a NAS's disks, a folder sync is a cache flush).
    count = 64
    ids = [mirror.fake.add_file(f"f{n:02d}.nfo", size=2_000) for n in range(count)]
    real, synced = os.fsync, [0]

    def fsync(descriptor: int) -> None:
        if Path(os.readlink(f"/proc/self/fd/{descriptor}")) == mirror.downloads.resolve():
            synced[0] += 1
        real(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    result = mirror.run("sync")
    assert result.code == 0, result.err
    assert sorted(p.name for p in mirror.downloads.glob("f*.nfo")) == [
        f"f{n:02d}.nfo" for n in range(count)
    ]
    # (a few more than count / 16: each worker journals its last ends when it runs out)
    assert 1 <= synced[0] <= count // 4, f"{synced[0]} syncs of the folder for {count} files"
    journal = Journal.open(f"sqlite:///{mirror.journal}")
    try:
        downloads = journal.facts().downloads
    finally:
        journal.close()
    assert all(downloads[file_id].is_placed for file_id in ids)
