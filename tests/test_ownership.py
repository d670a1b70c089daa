"""`files.owner`, `files.group`, `files.mode`: placed items belong to whom the config says,
given before they appear in the download folder (a media manager may move them)."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from putio_mirror.config.settings import load_settings
from putio_mirror.core.errors import ConfigError
from putio_mirror.local.ownership import Ownership
from putio_mirror.local.staging import ToPlace, place_item
from tests.mirror_env import Mirror

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="only root may give files away")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def placed_tree(downloads: Path) -> Iterator[Path]:
    for path in sorted(downloads.rglob("*")):
        if ".putio-mirror-staging" not in path.parts:
            yield path


def stranger() -> tuple[str, str]:
    """A user and a group other than this process's: nobody and its group."""
    user = pwd.getpwnam("nobody")
    return user.pw_name, grp.getgrgid(user.pw_gid).gr_name


def add_items(mirror: Mirror) -> None:
    show = mirror.fake.add_folder("Show S01")
    season = mirror.fake.add_folder("Extras", show)
    mirror.fake.add_file("e01.mkv", show, b"episode one")
    mirror.fake.add_file("making-of.mkv", season, b"making of")
    mirror.fake.add_file("Movie.2020.mkv", 0, b"a movie")


def test_mode_is_given_to_placed_files_and_their_folders(mirror: Mirror) -> None:
    mirror.write_config(files={"mode": "0660"})
    add_items(mirror)
    result = mirror.run("sync")
    assert result.code == 0, result.err
    tree = list(placed_tree(mirror.downloads))
    assert {p.relative_to(mirror.downloads).as_posix() for p in tree} == {
        "Show S01",
        "Show S01/Extras",
        "Show S01/e01.mkv",
        "Show S01/Extras/making-of.mkv",
        "Movie.2020.mkv",
    }
    for path in tree:
        assert mode_of(path) == (0o770 if path.is_dir() else 0o660), path
    # staging is ours alone: it keeps what the umask gave it
    staging_mode = mode_of(mirror.downloads / ".putio-mirror-staging")
    assert staging_mode != 0o770


def test_without_a_files_section_placed_items_keep_the_umask_s_modes(mirror: Mirror) -> None:
    add_items(mirror)
    umask = os.umask(0o022)
    try:
        assert mirror.run("sync").code == 0
    finally:
        os.umask(umask)
    for path in placed_tree(mirror.downloads):
        assert mode_of(path) == (0o755 if path.is_dir() else 0o644), path


@ROOT_ONLY
def test_owner_and_group_are_given_to_placed_files_and_folders(mirror: Mirror) -> None:
    user, group = stranger()
    mirror.write_config(files={"owner": user, "group": group, "mode": "0640"})
    add_items(mirror)
    assert mirror.run("sync").code == 0
    expected = (pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid)
    tree = list(placed_tree(mirror.downloads))
    assert len(tree) == 5
    for path in tree:
        info = path.lstat()
        assert (info.st_uid, info.st_gid) == expected, path
        assert mode_of(path) == (0o750 if path.is_dir() else 0o640), path
    assert mirror.downloads.stat().st_uid == os.geteuid()  # made by the run, not for an item


def test_file_by_file_placement_gives_the_folders_it_makes(tmp_path: Path) -> None:
    # The item's folder is there already (e.g. a new episode of a known season): its files
    # are placed one by one, and only the folder made for them is given the mode.
    downloads, staging = tmp_path / "downloads", tmp_path / "staging"
    existing = downloads / "Show"
    existing.mkdir(parents=True)
    existing.chmod(0o700)
    staging.mkdir()
    sources = []
    for file_id, name in ((1, "e02.mkv"), (2, "Subs/e02.srt")):
        source = staging / str(file_id)
        source.write_bytes(name.encode())
        source.chmod(0o600)
        sources.append(ToPlace(file_id, source, existing / name))
    placed = place_item(sources, staging / "building", existing, Ownership(mode=0o664))
    assert placed.placed == (1, 2) and placed.problems == ()
    assert mode_of(existing / "e02.mkv") == 0o664
    assert mode_of(existing / "Subs" / "e02.srt") == 0o664
    assert mode_of(existing / "Subs") == 0o775
    assert mode_of(existing) == 0o700  # someone else's folder is left as it is


def test_folder_mode_adds_search_wherever_the_mode_lets_read() -> None:
    assert Ownership(mode=0o664).folder_mode == 0o775
    assert Ownership(mode=0o640).folder_mode == 0o750
    assert Ownership(mode=0o600).folder_mode == 0o700
    assert Ownership().folder_mode is None


def problems_of(tmp_path: Path, text: str, check_paths: bool = False) -> tuple[str, ...]:
    config = tmp_path / "mirror.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(config, {"HOME": str(tmp_path)}, require_token=False, check_paths=check_paths)
    return caught.value.problems


def test_the_files_section_is_read_into_ids_and_bits(tmp_path: Path) -> None:
    user, group = stranger()
    config = tmp_path / "mirror.yaml"
    config.write_text(f'files:\n  owner: {user}\n  group: "{group}"\n  mode: "640"\n')
    settings = load_settings(config, {"HOME": str(tmp_path)}, require_token=False)
    assert settings.ownership == Ownership(
        pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid, 0o640
    )
    config.write_text("files:\n  owner: 1234\n  group: '5678'\n")
    settings = load_settings(config, {"HOME": str(tmp_path)}, require_token=False)
    assert settings.ownership == Ownership(1234, 5678, None)


def test_unknown_users_and_unquoted_or_odd_modes_are_problems(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "files:\n  owner: no-such-user-x\n  group: no-such-group\n")
    assert any("files.owner" in p and "no-such-user-x" in p for p in problems)
    assert any("files.group" in p and "no-such-group" in p for p in problems)
    # also where an unreadable token is no problem (login is about to write it)
    with pytest.raises(ConfigError):
        load_settings(
            tmp_path / "mirror.yaml",
            {"HOME": str(tmp_path)},
            require_token=False,
            token_optional=True,
        )
    (problem,) = problems_of(tmp_path, "files:\n  mode: 0664\n")
    assert "files.mode" in problem and 'quotes, e.g. "0664"' in problem
    (problem,) = problems_of(tmp_path, "files:\n  mode: 'rw-rw-r--'\n")
    assert "files.mode" in problem and "octal" in problem


@pytest.mark.skipif(os.geteuid() == 0, reason="root may give files to anyone")
def test_without_root_giving_files_away_is_a_problem_before_the_run(tmp_path: Path) -> None:
    user, _ = stranger()
    config = tmp_path / "mirror.yaml"
    config.write_text(f"files:\n  owner: {user}\n")
    # Reading commands do not care; a run that writes is told at once.
    load_settings(config, {"HOME": str(tmp_path)}, require_token=False, check_paths=False)
    problems = problems_of(tmp_path, f"files:\n  owner: {user}\n", check_paths=True)
    assert any("only root may give files to another user" in p for p in problems)
