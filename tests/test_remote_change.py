"""put.io changes what was mirrored already: a placed file replaced by a new one of the
same name (a transfer fetched again, a better release), a placed item renamed. Every test
runs real syncs against the local put.io, on real folders and a real SQLite journal."""

from __future__ import annotations

import os
from pathlib import Path

from putio_mirror.fakeputio import FakePutio
from tests.mirror_env import Mirror


def _staging(mirror: Mirror) -> Path:
    return mirror.downloads / ".putio-mirror-staging"


def _node_gets(fake: FakePutio) -> int:
    return sum(1 for logged in fake.requests if logged.host == "node")


def _placed_season(mirror: Mirror) -> tuple[int, int, int]:
    """An item of two files mirrored and placed whole."""
    show = mirror.fake.add_folder("Show S01")
    first = mirror.fake.add_file("e1.mkv", parent_id=show, content=b"the first release")
    second = mirror.fake.add_file("e2.mkv", parent_id=show, content=b"episode two")
    assert mirror.run("sync").code == 0
    assert mirror.local_files() == {
        "Show S01/e1.mkv": b"the first release",
        "Show S01/e2.mkv": b"episode two",
    }
    return show, first, second


def _replace(mirror: Mirror, file_id: int, parent: int, name: str, content: bytes) -> int:
    """Replace a file on put.io as a transfer fetched again does: a new id, the same name."""
    mirror.fake.delete_file(file_id)
    replacement = mirror.fake.add_file(name, parent_id=parent, content=content)
    assert replacement != file_id
    return replacement


def test_placed_file_replaced_on_put_io_replaces_the_local_copy_once(mirror: Mirror) -> None:
    show, first, _ = _placed_season(mirror)
    _replace(mirror, first, show, "e1.mkv", b"the proper release, longer")
    result = mirror.run("sync")
    assert result.code == 0, result.err
    assert mirror.local_files()["Show S01/e1.mkv"] == b"the proper release, longer"
    again = mirror.run("sync")
    assert again.code == 0, again.err
    assert "in the way" not in again.err
    assert not (_staging(mirror) / "verified").exists() or not any(
        (_staging(mirror) / "verified").iterdir()
    )


def test_placed_file_replaced_by_one_of_the_same_size_replaces_the_local_copy(
    mirror: Mirror,
) -> None:
    show, first, _ = _placed_season(mirror)
    _replace(mirror, first, show, "e1.mkv", b"the other release")  # 17 bytes, as the first
    result = mirror.run("sync")
    assert result.code == 0, result.err
    assert mirror.local_files()["Show S01/e1.mkv"] == b"the other release"
    assert mirror.run("sync").code == 0


def test_top_level_file_replaced_on_put_io_replaces_the_local_copy(mirror: Mirror) -> None:
    movie = mirror.fake.add_file("Movie.mkv", content=b"a cam")
    assert mirror.run("sync").code == 0
    _replace(mirror, movie, 0, "Movie.mkv", b"the blu-ray")
    result = mirror.run("sync")
    assert result.code == 0, result.err
    assert mirror.local_files() == {"Movie.mkv": b"the blu-ray"}


def test_replacement_of_the_same_bytes_is_adopted_without_downloading(mirror: Mirror) -> None:
    show, first, _ = _placed_season(mirror)
    _replace(mirror, first, show, "e1.mkv", b"the first release")
    mirror.fake.clear_requests()
    result = mirror.run("sync")
    assert result.code == 0, result.err
    assert _node_gets(mirror.fake) == 0
    assert mirror.local_files()["Show S01/e1.mkv"] == b"the first release"
    assert mirror.run("sync").code == 0


def test_placed_file_changed_locally_is_never_overwritten_by_a_replacement(
    mirror: Mirror,
) -> None:
    show, first, _ = _placed_season(mirror)
    local = mirror.downloads / "Show S01" / "e1.mkv"
    local.write_bytes(b"the user's own edit")  # not the bytes placed: not provably ours
    _replace(mirror, first, show, "e1.mkv", b"the proper release, longer")
    result = mirror.run("sync")
    assert result.code == 11
    assert "in the way" in result.err
    assert local.read_bytes() == b"the user's own edit"


def test_placed_file_changed_locally_to_the_same_size_is_never_overwritten(
    mirror: Mirror,
) -> None:
    show, first, _ = _placed_season(mirror)
    local = mirror.downloads / "Show S01" / "e1.mkv"
    local.write_bytes(b"THE FIRST RELEASE")  # the size of the bytes placed, not their CRC32
    _replace(mirror, first, show, "e1.mkv", b"the proper release, longer")
    result = mirror.run("sync")
    assert result.code != 0
    assert local.read_bytes() == b"THE FIRST RELEASE"
    assert (mirror.downloads / "Show S01" / "e2.mkv").read_bytes() == b"episode two"


def test_replaced_file_a_media_manager_moved_away_is_placed_afresh(mirror: Mirror) -> None:
    show, first, _ = _placed_season(mirror)
    os.unlink(mirror.downloads / "Show S01" / "e1.mkv")  # imported (moved) by Sonarr
    _replace(mirror, first, show, "e1.mkv", b"the proper release, longer")
    assert mirror.run("sync").code == 0
    assert mirror.local_files()["Show S01/e1.mkv"] == b"the proper release, longer"


def test_hard_link_a_media_manager_made_keeps_the_old_bytes(mirror: Mirror) -> None:
    show, first, _ = _placed_season(mirror)
    library = mirror.root / "library"
    library.mkdir()
    os.link(mirror.downloads / "Show S01" / "e1.mkv", library / "e1.mkv")
    _replace(mirror, first, show, "e1.mkv", b"the proper release, longer")
    assert mirror.run("sync").code == 0
    assert mirror.local_files()["Show S01/e1.mkv"] == b"the proper release, longer"
    assert (library / "e1.mkv").read_bytes() == b"the first release"


def test_item_renamed_on_put_io_after_placement_takes_new_files_where_it_is(
    mirror: Mirror,
) -> None:
    show, _, _ = _placed_season(mirror)
    mirror.fake.rename(show, "Show S01 (2026)")
    mirror.fake.add_file("e3.mkv", parent_id=show, content=b"episode three")
    result = mirror.run("sync")
    assert result.code == 0, result.err
    assert mirror.local_files() == {
        "Show S01/e1.mkv": b"the first release",
        "Show S01/e2.mkv": b"episode two",
        "Show S01/e3.mkv": b"episode three",
    }
    assert mirror.run("sync").code == 0


def test_item_renamed_mid_item_with_item_placement_off_is_not_split(mirror: Mirror) -> None:
    mirror.write_config(download={"placement": "file"})
    show = mirror.fake.add_folder("Show S01")
    mirror.fake.add_file("e1.mkv", parent_id=show, content=b"episode one")
    assert mirror.run("sync").code == 0
    mirror.fake.rename(show, "Show S01 (2026)")
    mirror.fake.add_file("e2.mkv", parent_id=show, content=b"episode two")
    assert mirror.run("sync").code == 0
    assert mirror.local_files() == {
        "Show S01/e1.mkv": b"episode one",
        "Show S01/e2.mkv": b"episode two",
    }


def test_renamed_item_whose_old_name_is_taken_by_another_item_keeps_its_new_name(
    mirror: Mirror,
) -> None:
    show, _, _ = _placed_season(mirror)
    mirror.fake.rename(show, "Show S01 (2026)")
    mirror.fake.add_file("e3.mkv", parent_id=show, content=b"episode three")
    other = mirror.fake.add_folder("Show S01")
    mirror.fake.add_file("x.mkv", parent_id=other, content=b"another item")
    result = mirror.run("sync")
    assert result.code == 0, result.err
    assert mirror.local_files()["Show S01 (2026)/e3.mkv"] == b"episode three"
    assert mirror.local_files()["Show S01/x.mkv"] == b"another item"


def test_put_io_copy_of_a_replacement_is_kept_while_the_local_file_is_not_ours(
    mirror: Mirror,
) -> None:
    show, first, _ = _placed_season(mirror)
    mirror.write_config(download={"delete_remote_after": True})
    local = mirror.downloads / "Show S01" / "e1.mkv"
    local.write_bytes(b"THE FIRST RELEASE")  # changed since placed, to the very size
    replacement = _replace(mirror, first, show, "e1.mkv", b"the proper release, longer")
    assert mirror.run("sync").code != 0
    assert replacement in {item["id"] for item in mirror.fake.files()}, "put.io keeps it"
    local.unlink()
    assert mirror.run("sync").code == 0
    assert mirror.local_files()["Show S01/e1.mkv"] == b"the proper release, longer"
    assert replacement not in {item["id"] for item in mirror.fake.files()}


def _killed_after_the_rename_over(mirror: Mirror, path: str, content: bytes) -> None:
    """The state a run killed between moving a replacement over the placed file and
    journaling it leaves: the new bytes in place, the journal still naming the old file."""
    final = mirror.downloads / path
    moved = final.with_name(".moved-in")
    moved.write_bytes(content)
    os.replace(moved, final)


def test_a_run_killed_after_moving_a_replacement_in_journals_it_next_run_without_a_download(
    mirror: Mirror,
) -> None:
    show, first, _ = _placed_season(mirror)
    _replace(mirror, first, show, "e1.mkv", b"the proper release, longer")
    _killed_after_the_rename_over(mirror, "Show S01/e1.mkv", b"the proper release, longer")
    mirror.fake.clear_requests()
    result = mirror.run("sync")
    assert result.code == 0, result.err
    assert _node_gets(mirror.fake) == 0, "the file in place is put.io's: adopted, not fetched"
    assert mirror.local_files()["Show S01/e1.mkv"] == b"the proper release, longer"
    assert "Nothing to do" in mirror.run("sync", "--dry-run").out


def test_a_run_killed_after_moving_a_same_size_replacement_in_is_journaled_without_a_download(
    mirror: Mirror,
) -> None:
    show, first, _ = _placed_season(mirror)
    _replace(mirror, first, show, "e1.mkv", b"the other release")  # 17 bytes, as the first
    _killed_after_the_rename_over(mirror, "Show S01/e1.mkv", b"the other release")
    mirror.fake.clear_requests()
    result = mirror.run("sync")
    assert result.code == 0, result.err
    assert _node_gets(mirror.fake) == 0, "the file in place is put.io's: adopted, not fetched"
    assert mirror.local_files()["Show S01/e1.mkv"] == b"the other release"
    assert "Nothing to do" in mirror.run("sync", "--dry-run").out
