"""The folders the config names may be symbolic links (a NAS share linked in, a disk
mounted elsewhere): the user chose them. Files and folder items are placed through
them, and reported under the path the config names (what Sonarr's path mappings know);
a link *inside* them, which nobody configured, is still refused."""

from __future__ import annotations

import os
from pathlib import Path

from putio_mirror.core.errors import ExitCode
from tests.mirror_env import Mirror


def _linked_downloads(mirror: Mirror) -> Path:
    """Make the config's download folder a link to a real folder elsewhere; return that."""
    real = mirror.root / "nas" / "share"
    real.mkdir(parents=True)
    mirror.downloads.symlink_to(real, target_is_directory=True)
    return real


def test_files_and_items_are_placed_through_a_linked_download_folder(mirror: Mirror) -> None:
    real = _linked_downloads(mirror)
    show = mirror.fake.add_folder("Show S01")
    mirror.fake.add_file("e01.mkv", show, content=b"episode one")
    mirror.fake.add_file("film.mkv", content=b"a film")
    result = mirror.run("sync")
    assert result.code == ExitCode.OK, result.err
    assert (real / "Show S01" / "e01.mkv").read_bytes() == b"episode one"
    assert (real / "film.mkv").read_bytes() == b"a film"
    assert f"into {mirror.downloads}." in result.out  # the path as the config names it
    assert mirror.run("sync").out.startswith("Nothing to do")


def test_a_link_inside_a_linked_download_folder_is_still_refused(mirror: Mirror) -> None:
    real = _linked_downloads(mirror)
    elsewhere = mirror.root / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, real / "Show S01")
    show = mirror.fake.add_folder("Show S01")
    mirror.fake.add_file("e01.mkv", show, content=b"episode one")
    result = mirror.run("sync")
    assert result.code == ExitCode.NEEDS_ATTENTION, result.err
    assert list(elsewhere.iterdir()) == []
    # a person's link, told as such: not "a bug or a hostile name"
    assert f"Show S01 is a symbolic link to {elsewhere}" in result.err, result.err
    assert "bug" not in result.err and "hint: replace the link" in result.err


def test_a_link_out_at_a_file_s_path_is_never_written_through_and_put_io_s_copy_kept(
    mirror: Mirror,
) -> None:
    # A person linked a file of another disk where put.io's file goes: it is not
    # written through, nor replaced; put.io's copy is kept, fetched once, and placed
    # once the link is gone.
    mirror.write_config(download={"delete_remote_after": True})
    file_id = mirror.fake.add_file("film.mkv", content=b"a film, put.io's")
    elsewhere = mirror.root / "other-disk" / "film.mkv"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(b"a film, mine")
    mirror.downloads.mkdir(parents=True)
    (mirror.downloads / "film.mkv").symlink_to(elsewhere)
    for _ in range(2):
        result = mirror.run("sync")
        assert result.code == ExitCode.NEEDS_ATTENTION, result.err
        assert f"needs you: film.mkv: film.mkv is a symbolic link to {elsewhere}" in result.err
        assert "not yet complete" not in result.out, "verified: it waits for its place"
        assert elsewhere.read_bytes() == b"a film, mine"
        assert file_id in {item["id"] for item in mirror.fake.files()}, "put.io's copy kept"
    assert len([r for r in mirror.fake.requests if r.host == "node"]) == 1, "fetched once"
    (mirror.downloads / "film.mkv").unlink()
    assert mirror.run("sync").code == ExitCode.OK
    assert mirror.local_files() == {"film.mkv": b"a film, put.io's"}


def test_a_linked_staging_folder_is_used(mirror: Mirror) -> None:
    real = mirror.root / "fast-disk" / "staging"
    real.mkdir(parents=True)
    staging = mirror.root / "staging-link"
    staging.symlink_to(real, target_is_directory=True)
    mirror.write_config(paths={"staging": str(staging)})
    mirror.fake.add_file("film.mkv", content=b"a film")
    result = mirror.run("sync")
    assert result.code == ExitCode.OK, result.err
    assert mirror.local_files() == {"film.mkv": b"a film"}


def test_a_linked_blackhole_is_watched_and_its_files_filed_away(mirror: Mirror) -> None:
    real = mirror.root / "share" / "blackhole"
    real.mkdir(parents=True)
    mirror.blackhole.rmdir()
    mirror.blackhole.symlink_to(real, target_is_directory=True)
    info_hash = "c9e15763f722f23e98a29decdfae341b98d53056"
    mirror.drop("show.magnet", f"magnet:?xt=urn:btih:{info_hash}&dn=Show".encode())
    result = mirror.run("sync")
    assert result.code == ExitCode.OK, result.err
    assert [transfer["hash"] for transfer in mirror.fake.transfers()] == [info_hash]
    assert not (real / "show.magnet").exists()  # filed away, as from a real folder
