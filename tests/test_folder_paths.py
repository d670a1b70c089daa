"""Folders named by path in the config (`remote_root: /Shows`, `save_parent_id: /Incoming`):
looked up on put.io each run, never mistaken for the whole account when missing."""

from __future__ import annotations

import json

from putio_mirror.core.errors import ExitCode
from tests.mirror_env import Mirror


def test_a_remote_root_given_by_path_mirrors_only_that_folder(mirror: Mirror) -> None:
    media = mirror.fake.add_folder("Media")
    shows = mirror.fake.add_folder("Shows", media)
    mirror.fake.add_file("episode.mkv", shows, size=100)
    mirror.fake.add_file("other.mkv", media, size=100)
    mirror.write_config(download={"remote_root": "/Media/Shows/"})
    result = mirror.run("sync")
    assert result.code == 0, result.err
    assert set(mirror.local_files()) == {"episode.mkv"}
    listed = json.loads(mirror.run("files", "list").out)
    assert [item["path"] for item in listed] == ["episode.mkv"]


def test_a_path_put_io_does_not_have_is_an_error_naming_the_missing_part(
    mirror: Mirror,
) -> None:
    mirror.fake.add_folder("Media")
    mirror.fake.add_file("film.mkv", size=100)
    mirror.write_config(download={"remote_root": "/Media/Shows"})
    result = mirror.run("sync")
    assert result.code == ExitCode.USAGE
    assert "download.remote_root: put.io has no folder /Media/Shows" in result.err
    assert "no folder 'Shows' in /Media" in result.err and "app.put.io/files" in result.err
    assert mirror.local_files() == {}, "never the whole account instead"


def test_a_renamed_folder_is_found_by_its_new_path_and_missed_by_its_old(
    mirror: Mirror,
) -> None:
    shows = mirror.fake.add_folder("Shows")
    mirror.fake.add_file("a.mkv", shows, size=10)
    mirror.write_config(download={"remote_root": "/Shows"})
    assert mirror.run("sync").code == 0
    mirror.fake.rename(shows, "TV")
    assert mirror.run("sync").code == ExitCode.USAGE
    mirror.write_config(download={"remote_root": "/TV"})
    assert mirror.run("sync").code == 0


def test_two_folders_of_one_name_are_refused_rather_than_guessed(mirror: Mirror) -> None:
    mirror.fake.add_folder("Shows")
    mirror.fake.add_folder("Shows")
    mirror.write_config(download={"remote_root": "/Shows"})
    result = mirror.run("sync")
    assert result.code == ExitCode.USAGE
    assert "2 folders named 'Shows' in the account's root" in result.err


def test_new_transfers_go_into_the_save_folder_given_by_path(mirror: Mirror) -> None:
    incoming = mirror.fake.add_folder("Incoming")
    mirror.write_config(transfers={"save_parent_id": "/Incoming"})
    mirror.drop("a.magnet", ("magnet:?xt=urn:btih:" + "ab" * 20 + "&dn=a").encode())
    result = mirror.run("torrents", "add")
    assert result.code == 0, result.err
    (transfer,) = mirror.fake.transfers()
    assert transfer["save_parent_id"] == incoming


def test_doctor_says_which_folder_a_path_is_and_what_is_missing(mirror: Mirror) -> None:
    shows = mirror.fake.add_folder("Shows")
    mirror.write_config(
        download={"remote_root": "/Shows"}, transfers={"save_parent_id": "/Nowhere"}
    )
    result = mirror.run("doctor")
    assert result.code == ExitCode.USAGE
    assert f"/Shows, the folder {shows}" in result.out
    assert "transfers.save_parent_id: put.io has no folder /Nowhere" in result.out
