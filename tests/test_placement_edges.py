"""Odd trees and odd disks end to end, against the local put.io and real folders: a tree
deeper than the kernel's longest path, and a staging folder on another filesystem than
the download folder (rename(2) refuses with EXDEV there)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from putio_mirror.core.errors import ExitCode
from tests.mirror_env import Mirror

#: the longest path the kernel takes, with its closing NUL (linux/limits.h)
PATH_MAX = 4096


def _deep_chain(mirror: Mirror, depth: int) -> tuple[int, int]:
    """Nest ``depth`` folders of 240-odd bytes of name each; return (top, deepest)."""
    top = parent = mirror.fake.add_folder("界" * 80 + " 0")
    for level in range(1, depth):
        parent = mirror.fake.add_folder("界" * 80 + f" {level}", parent)
    return top, parent


def test_a_tree_deeper_than_the_longest_path_is_placed_whole(mirror: Mirror) -> None:
    top, deepest = _deep_chain(mirror, 20)  # ~4,900 bytes of path
    mirror.fake.add_file("deep.mkv", deepest, content=b"deep")
    mirror.fake.add_file("shallow.mkv", top, content=b"shallow")
    result = mirror.run("sync")
    assert result.code == ExitCode.OK, result.out + result.err
    local = mirror.local_files()
    assert sorted(local.values()) == [b"deep", b"shallow"]
    for relative in local:
        assert len(os.fsencode(mirror.downloads / relative)) < PATH_MAX
    assert mirror.run("sync").out.startswith("Nothing to do")


@pytest.fixture
def staging_elsewhere(mirror: Mirror) -> Iterator[Path]:
    """Staging on another filesystem than the download folder (/dev/shm, a tmpfs)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == mirror.root.stat().st_dev:
        pytest.skip("no second filesystem at /dev/shm")
    staging = shm / f"putio-mirror-test-{os.getpid()}-{mirror.root.name}"
    mirror.write_config(paths={"staging": str(staging)})
    yield staging
    shutil.rmtree(staging, ignore_errors=True)


def _no_leftovers(mirror: Mirror, staging: Path) -> None:
    assert [p for p in staging.rglob("*") if p.is_file()] == []
    assert [p.name for p in mirror.downloads.iterdir() if p.name.startswith(".")] == []


def test_staging_on_another_filesystem_still_places_files_and_items(
    mirror: Mirror, staging_elsewhere: Path
) -> None:
    show = mirror.fake.add_folder("Show S01")
    mirror.fake.add_file("e1.mkv", show, content=b"episode one")
    mirror.fake.add_file("e2.mkv", mirror.fake.add_folder("extras", show), content=b"extra")
    mirror.fake.add_file("film.mkv", content=b"a film")
    result = mirror.run("sync")
    assert result.code == ExitCode.OK, result.out + result.err
    assert mirror.local_files() == {
        "Show S01/e1.mkv": b"episode one",
        "Show S01/extras/e2.mkv": b"extra",
        "film.mkv": b"a film",
    }
    _no_leftovers(mirror, staging_elsewhere)
    assert mirror.run("sync").out.startswith("Nothing to do")


class _Died(BaseException):
    """The process dying at that point (nothing after it runs, no handler catches it)."""


def test_staging_on_another_filesystem_a_run_dying_after_the_copy_is_placed_next_run(
    mirror: Mirror, staging_elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    show = mirror.fake.add_folder("Show S01")
    mirror.fake.add_file("e1.mkv", show, content=b"episode one")
    mirror.fake.add_file("film.mkv", content=b"a film")
    real_fsync = os.fsync
    placed = (mirror.downloads / "film.mkv", mirror.downloads / "Show S01")

    def dies_once_the_download_folder_is_synced(descriptor: int) -> None:
        real_fsync(descriptor)
        status = os.fstat(descriptor)
        is_downloads = (status.st_dev, status.st_ino) == (downloads.st_dev, downloads.st_ino)
        if is_downloads and all(path.exists() for path in placed):  # both in, and synced
            raise _Died

    monkeypatch.setattr(os, "fsync", dies_once_the_download_folder_is_synced)
    mirror.downloads.mkdir()
    downloads = mirror.downloads.stat()
    with pytest.raises(_Died):
        mirror.run("sync")
    assert sorted(mirror.local_files()) == ["Show S01/e1.mkv", "film.mkv"]
    monkeypatch.setattr(os, "fsync", real_fsync)
    mirror.fake.clear_requests()
    result = mirror.run("sync")
    assert result.code == ExitCode.OK, result.out + result.err
    assert mirror.local_files() == {"Show S01/e1.mkv": b"episode one", "film.mkv": b"a film"}
    assert [r.path for r in mirror.fake.requests if r.host == "node"] == []
    _no_leftovers(mirror, staging_elsewhere)
