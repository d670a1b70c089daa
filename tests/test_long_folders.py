"""A download folder (or staging folder) whose own path is long, as on a NAS share of
nested folders: the kernel refuses a path of PATH_MAX bytes whole, the folder's own path
included, so put.io's names must fit in what it leaves. Real syncs against the local
put.io, on real folders and a real SQLite journal."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from putio_mirror.core.errors import ExitCode
from tests.mirror_env import Mirror

#: the longest path the kernel takes, with its closing NUL (linux/limits.h)
PATH_MAX = 4096


def _long_folder(base: Path, length: int) -> Path:
    """A folder path under ``base`` of about ``length`` bytes, in names of 200 bytes or
    less (not made: the mirror makes what it needs)."""
    folder = base
    level = 0
    while len(os.fsencode(folder)) < length - 201:
        folder = folder / (f"{level:02d}" + "n" * 198)
        level += 1
    rest = length - len(os.fsencode(folder)) - 1
    return folder / ("t" * max(rest, 1))


def _deep_chain(mirror: Mirror, depth: int) -> tuple[int, int]:
    """Nest ``depth`` folders of 240-odd bytes of name each; return (top, deepest)."""
    top = parent = mirror.fake.add_folder("界" * 80 + " 0")
    for level in range(1, depth):
        parent = mirror.fake.add_folder("界" * 80 + f" {level}", parent)
    return top, parent


def _placed_files(downloads: Path) -> dict[Path, bytes]:
    """Every file under ``downloads`` but staging's, read through folder descriptors: a
    file at a path of PATH_MAX bytes or more (that no other program can open) is found
    too, for the test to see its path."""
    found: dict[Path, bytes] = {}
    pending = [downloads]
    while pending:
        folder = pending.pop()
        descriptor = _fd(folder)
        try:
            for entry in os.scandir(descriptor):
                if entry.name == ".putio-mirror-staging":
                    continue
                if entry.is_dir(follow_symlinks=False):
                    pending.append(folder / entry.name)
                    continue
                with os.fdopen(os.open(entry.name, os.O_RDONLY, dir_fd=descriptor), "rb") as file:
                    found[folder / entry.name] = file.read()
        finally:
            os.close(descriptor)
    return found


def _fd(folder: Path) -> int:
    """A descriptor of a folder whose path may be too long to open whole: walked to."""
    descriptor = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    for part in folder.parts[1:]:
        inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY, dir_fd=descriptor)
        os.close(descriptor)
        descriptor = inner
    return descriptor


def _downloads_at(mirror: Mirror, downloads: Path, **paths: str) -> None:
    """Point the mirror's download folder at ``downloads`` (the journal stays short:
    SQLite refuses a long path of its own)."""
    mirror.write_config(paths={"downloads": str(downloads), **paths})


def _deep_item(mirror: Mirror) -> None:
    top, deepest = _deep_chain(mirror, 20)  # ~4,900 bytes of path
    mirror.fake.add_file("deep.mkv", deepest, content=b"deep")
    mirror.fake.add_file("shallow.mkv", top, content=b"shallow")


def _assert_placed_whole(downloads: Path) -> None:
    _assert_placed_whole_with(downloads, {b"deep", b"shallow"})


def _assert_placed_whole_with(downloads: Path, contents: set[bytes]) -> None:
    placed = _placed_files(downloads)
    assert sorted(placed.values()) == sorted(contents)
    for path in placed:
        assert len(os.fsencode(path)) < PATH_MAX


@pytest.mark.parametrize("length", [700, 1500, 2900])
def test_a_deep_tree_is_placed_whole_in_a_download_folder_of_a_long_path(
    mirror: Mirror, length: int
) -> None:
    downloads = _long_folder(mirror.root, length)
    _downloads_at(mirror, downloads)
    _deep_item(mirror)
    result = mirror.run("sync")
    assert result.code == ExitCode.OK, result.out + result.err
    _assert_placed_whole(downloads)
    assert mirror.run("sync").out.startswith("Nothing to do")


def test_files_list_names_the_local_paths_a_sync_places_under_a_long_folder(
    mirror: Mirror,
) -> None:
    downloads = _long_folder(mirror.root, 1500)
    _downloads_at(mirror, downloads)
    _deep_item(mirror)
    listed = {
        item["id"]: item["local_path"] for item in json.loads(mirror.run("files", "list").out)
    }
    assert mirror.run("sync").code == ExitCode.OK
    placed = {path.relative_to(downloads).as_posix() for path in _placed_files(downloads)}
    assert placed <= set(listed.values())


def test_a_deep_tree_is_placed_whole_through_a_staging_folder_of_a_long_path(
    mirror: Mirror,
) -> None:
    staging = _long_folder(mirror.root / "s", 1200)
    mirror.write_config(paths={"staging": str(staging)})
    _deep_item(mirror)
    result = mirror.run("sync")
    assert result.code == ExitCode.OK, result.out + result.err
    _assert_placed_whole(mirror.downloads)
    assert [p for p in staging.rglob("*") if p.is_file()] == []
    assert mirror.run("sync").out.startswith("Nothing to do")


@pytest.mark.parametrize("length", [3800, 5000])
def test_a_download_folder_too_long_for_any_name_is_refused_with_nothing_lost(
    mirror: Mirror, length: int
) -> None:
    downloads = _long_folder(mirror.root, length)
    mirror.write_config(paths={"downloads": str(downloads)}, download={"delete_remote_after": True})
    _deep_item(mirror)
    film = mirror.fake.add_file("film.mkv", content=b"a film")
    on_put_io = {item["id"] for item in mirror.fake.files()}
    mirror.fake.clear_requests()
    result = mirror.run("sync")
    assert result.code == ExitCode.USAGE, result.out + result.err
    assert "too long" in result.err
    assert "Hint:" in result.err and "shorter" in result.err
    assert [r.path for r in mirror.fake.requests if r.host == "node"] == []
    assert {item["id"] for item in mirror.fake.files()} == on_put_io
    # the way out the hint names: a shorter folder, and everything comes down
    mirror.write_config(download={"delete_remote_after": True})
    again = mirror.run("sync")
    assert again.code == ExitCode.OK, again.out + again.err
    _assert_placed_whole_with(mirror.downloads, {b"deep", b"shallow", b"a film"})
    assert film not in {item["id"] for item in mirror.fake.files()}


def test_a_short_link_to_a_download_folder_of_a_long_path_counts_the_long_one(
    mirror: Mirror,
) -> None:
    real = _long_folder(mirror.root / "share", 1500)  # placement writes under the real one
    real.mkdir(parents=True)
    link = mirror.root / "dl"
    link.symlink_to(real, target_is_directory=True)
    _downloads_at(mirror, link, staging=str(mirror.root / "staging"))  # (short: it counts too)
    _deep_item(mirror)
    result = mirror.run("sync")
    assert result.code == ExitCode.OK, result.out + result.err
    _assert_placed_whole(real)
    assert mirror.run("sync").out.startswith("Nothing to do")


def test_a_long_link_to_a_short_download_folder_counts_the_long_one(mirror: Mirror) -> None:
    real = mirror.root / "dl"
    real.mkdir()
    link = _long_folder(mirror.root / "links", 1500)  # what hooks and Sonarr are told
    link.parent.mkdir(parents=True)
    link.symlink_to(real, target_is_directory=True)
    _downloads_at(mirror, link)
    _deep_item(mirror)
    result = mirror.run("sync")
    assert result.code == ExitCode.OK, result.out + result.err
    placed = _placed_files(real)
    assert sorted(placed.values()) == [b"deep", b"shallow"]
    for path in placed:
        assert len(os.fsencode(link / path.relative_to(real))) < PATH_MAX
