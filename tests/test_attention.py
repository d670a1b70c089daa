"""Problems only a person can solve are said in the run's output, with a hint: a remote root
or blackhole that does not exist, rejected blackhole files, transfers in ERROR."""

from __future__ import annotations

from collections.abc import Callable

from tests.mirror_env import Mirror


def test_a_remote_root_put_io_does_not_have_is_an_error_not_in_step(mirror: Mirror) -> None:
    mirror.fake.add_file("film.mkv", size=10)
    mirror.write_config(download={"remote_root": 999999})
    for command in (("sync",), ("files", "download"), ("files", "list")):
        result = mirror.run(*command)
        assert result.code == 2, (command, result.err)
        assert "download.remote_root 999999: put.io has no such folder" in result.err
        assert "Hint: set download.remote_root" in result.err
        assert "in step" not in result.out
    assert mirror.local_files() == {}


def test_a_remote_root_that_is_a_file_is_an_error(mirror: Mirror) -> None:
    film = mirror.fake.add_file("film.mkv", size=10)
    mirror.write_config(download={"remote_root": film})
    result = mirror.run("sync")
    assert result.code == 2 and "is the file 'film.mkv', not a folder" in result.err


def test_a_missing_blackhole_is_an_error_for_torrents_add_and_said_by_sync(
    mirror: Mirror,
) -> None:
    mirror.fake.add_file("film.mkv", size=10)
    added = mirror.run("torrents", "add")
    assert added.code == 2
    assert f"the blackhole folder {mirror.blackhole} does not exist" in added.err
    assert "Hint: create it, or fix paths.blackhole" in added.err
    synced = mirror.run("sync")
    assert synced.code == 0, synced.err
    assert f"needs you: the blackhole folder {mirror.blackhole} does not exist" in synced.err
    assert "film.mkv" in mirror.local_files()  # the rest of the run went on
    mirror.blackhole.mkdir()
    assert "needs you" not in mirror.run("sync").err


def test_rejected_blackhole_files_are_listed_in_the_run_s_output(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    mirror.drop("good.torrent", torrent_bytes("Good"))
    mirror.drop("bad.torrent", b"this is no torrent")
    result = mirror.run("sync")
    assert result.code == 0, result.err
    assert "needs you: blackhole file bad.torrent rejected: " in result.err
    assert ".rejected/" in result.err and "good.torrent" not in result.err


def test_a_transfer_in_error_is_listed_in_the_run_s_output_with_a_hint(mirror: Mirror) -> None:
    mirror.blackhole.mkdir()
    mirror.fake.add_transfer("Broken", status="ERROR", error_message="tracker down")
    mirror.fake.add_transfer("Fine", status="DOWNLOADING")
    result = mirror.run("sync")
    assert result.code == 0, result.err
    assert "needs you: put.io transfer Broken is in ERROR: tracker down" in result.err
    assert "app.put.io/transfers" in result.err and "Fine" not in result.err
    assert result.err.count("tracker down") == 1, "said once, not again as a log warning"
