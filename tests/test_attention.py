"""Problems only a person can solve are said in the run's output, with a hint: a remote root
or blackhole that does not exist, rejected blackhole files, transfers in ERROR; a run that
otherwise succeeded then exits 11 ("done, but something needs you")."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from putio_mirror.core.attention import KEEPS_FAILING
from putio_mirror.core.errors import ExitCode
from putio_mirror.journal.store import Journal
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
    mirror.blackhole.rmdir()
    mirror.fake.add_file("film.mkv", size=10)
    added = mirror.run("torrents", "add")
    assert added.code == 2
    assert f"the blackhole folder {mirror.blackhole} does not exist" in added.err
    assert "Hint: create it, or fix paths.blackhole" in added.err
    synced = mirror.run("sync")
    assert synced.code == ExitCode.NEEDS_ATTENTION == 11, synced.err
    assert f"needs you: the blackhole folder {mirror.blackhole} does not exist" in synced.err
    assert "film.mkv" in mirror.local_files()  # the rest of the run went on
    mirror.blackhole.mkdir()
    again = mirror.run("sync")
    assert again.code == 0 and "needs you" not in again.err


def test_rejected_blackhole_files_are_listed_in_the_run_s_output(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    mirror.drop("good.torrent", torrent_bytes("Good"))
    mirror.drop("bad.torrent", b"this is no torrent")
    result = mirror.run("--quiet", "sync")
    assert result.code == ExitCode.NEEDS_ATTENTION, result.err
    assert "needs you: blackhole file bad.torrent rejected: " in result.err
    assert ".rejected/" in result.err and "good.torrent" not in result.err


def test_a_transfer_in_error_is_listed_in_the_run_s_output_with_a_hint(mirror: Mirror) -> None:
    broken = mirror.fake.add_transfer("Broken", status="ERROR", error_message="tracker down")
    mirror.fake.add_transfer("Fine", status="DOWNLOADING")
    result = mirror.run("sync")
    assert result.code == ExitCode.NEEDS_ATTENTION, result.err
    assert f"needs you: put.io transfer #{broken} Broken is in ERROR: tracker down" in result.err
    assert f"putio-mirror transfers retry {broken}`" in result.err
    assert f"putio-mirror transfers dismiss {broken}`" in result.err and "Fine" not in result.err
    assert result.err.count("tracker down") == 1, "said once, not again as a log warning"


def test_the_journal_records_the_needs_you_code_and_a_failure_outranks_it(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    mirror.drop("bad.torrent", b"this is no torrent")
    assert mirror.run("sync").code == ExitCode.NEEDS_ATTENTION
    history = mirror.run("history", "--json")
    assert '"exit_code": 11' in history.out, history.out
    film = mirror.fake.world.tree.get(mirror.fake.add_file("film.mkv", size=10))
    assert film is not None
    film.crc32 = "deadbeef"  # put.io's listing and the bytes disagree: a failure
    mirror.drop("worse.torrent", b"no torrent either")
    failed = mirror.run("sync")
    assert failed.code == ExitCode.ITEMS_FAILED, failed.err
    assert "needs you: blackhole file worse.torrent rejected" in failed.err


def test_a_file_that_keeps_failing_needs_you_until_it_is_had(mirror: Mirror) -> None:
    film = mirror.fake.add_file("film.mkv", size=10)
    other = mirror.fake.add_file("other.mkv", size=10)
    journal = Journal.open(f"sqlite:///{mirror.journal}")
    try:
        now = datetime.now(UTC)
        for _ in range(KEEPS_FAILING):
            journal.record_failure(film, now, "the node answered HTTP 500")
        for _ in range(KEEPS_FAILING - 1):
            journal.record_failure(other, now, "a reset")
    finally:
        journal.close()
    result = mirror.run("sync")  # both wait for their next try; nothing else to do
    assert result.code == ExitCode.NEEDS_ATTENTION, result.err
    assert "needs you: film.mkv keeps failing (3 failures): the node answered HTTP 500" in (
        result.err
    )
    assert "other.mkv keeps" not in result.err, "two failures are not yet a pattern"
    mirror.fake.delete_file(film)
    gone = mirror.run("sync")
    assert gone.code == ExitCode.OK, gone.err
    assert "film.mkv keeps" not in gone.err, "a file put.io no longer has needs nobody"


def test_a_blackhole_file_changed_a_moment_ago_is_said_to_wait_not_in_step(
    mirror: Mirror,
) -> None:
    (mirror.blackhole / "fresh.magnet").write_text("magnet:?xt=urn:btih:" + "cd" * 20)
    result = mirror.run("sync")
    assert result.code == 0, result.err
    assert "in step" not in result.out
    assert "Nothing to do yet: 1 blackhole file changed a moment ago" in result.out
    assert "fresh.magnet in the blackhole changed a moment ago" in result.err
    assert mirror.fake.transfers() == [], "not read while it may still be written"
