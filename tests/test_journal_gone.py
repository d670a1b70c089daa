"""A SQLite journal deleted or moved away while a run uses it (a person tidying up, a backup
tool moving it): the run stops at its next transaction with a clear message, instead of
journaling on into a file nobody will read again, and the next run takes over every file
the stopped one fetched."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing, suppress
from datetime import UTC, datetime
from pathlib import Path

import pytest

from putio_mirror.core.errors import ExitCode, JournalError
from putio_mirror.fetch.partfile import fsync_folder
from putio_mirror.journal.connecting import PinnedFile
from putio_mirror.journal.store import Journal
from tests.mirror_env import Mirror
from tests.postgres_server import free_port
from tests.power_cut_fs import lock_on_a_power_cut_disk, power_cut_mount

FILES = 40
SIZE = 200_000


def delete(journal: Path) -> None:
    journal.unlink()


def move_away(journal: Path) -> None:
    journal.rename(journal.with_name(journal.name + ".bak"))


def fetched_ids(mirror: Mirror) -> Counter[int]:
    """Return how many times the node was asked for each file (``/download/{id}``)."""
    paths = (r.path for r in mirror.fake.requests if r.host == "node" and r.method == "GET")
    return Counter(int(path.split("?")[0].rsplit("/", 1)[1]) for path in paths)


def journal_taken_mid_download(mirror: Mirror, take: Callable[[Path], None]) -> tuple[int, str]:
    """Given a set-up with files on put.io, run a slow ``files download`` in its own
    process and ``take`` its journal away once the first file is placed; return its exit
    code and what it wrote to stderr."""
    mirror.fake.node_bytes_per_second = 2_000_000  # ~4 s for all: time to take it away
    mirror.write_config(download={"parallel_files": 2})
    with mirror.spawned("files", "download") as process:
        deadline = time.monotonic() + 30
        while not any(mirror.downloads.glob("*.bin")) and time.monotonic() < deadline:
            time.sleep(0.02)
        take(mirror.journal)
        _, err = process.communicate(timeout=60)
    return process.returncode, err.decode()


@pytest.mark.parametrize("gone", [delete, move_away], ids=["deleted", "moved away"])
def test_a_run_whose_journal_is_taken_away_stops_and_the_next_run_keeps_its_files(
    mirror: Mirror, gone: Callable[[Path], None]
) -> None:
    ids = [mirror.fake.add_file(f"f{n:03}.bin", size=SIZE) for n in range(FILES)]
    code, message = journal_taken_mid_download(mirror, gone)
    assert code == ExitCode.JOURNAL, message
    assert f"the journal sqlite:///{mirror.journal} was deleted or moved away" in message
    assert "Hint: " in message
    assert len(list(mirror.downloads.glob("*.bin"))) < FILES, "the run went on regardless"
    placed = {ids[int(path.name[1:4])] for path in mirror.downloads.glob("*.bin")}
    staged = mirror.downloads / ".putio-mirror-staging" / "verified"
    verified = {int(path.name) for path in staged.glob("*")}
    assert placed, "the first run placed files before it stopped"
    mirror.fake.clear_requests()

    assert mirror.run("files", "download").code == 0
    assert mirror.local_files() == {
        f"f{n:03}.bin": mirror.fake.file_content(file_id) for n, file_id in enumerate(ids)
    }
    assert not (placed | verified) & set(fetched_ids(mirror)), "a file it had was fetched again"


def test_serve_whose_journal_is_deleted_exits_saying_so_rather_than_failing_every_poll(
    mirror: Mirror,
) -> None:
    """``serve`` keeps its journal open for the RPC door: once that file is deleted, every
    later transaction of the door fails. It stops with the clear message (exit 7), so
    that systemd starts it again, which makes a new journal there; not a warning each
    poll for ever, Sonarr's every call refused, while its syncs write a new journal."""
    mirror.fake.add_file("first.bin", size=3000)
    rpc = {"listen": f"127.0.0.1:{free_port()}", "poll_seconds": 0.2}
    mirror.write_config(rpc=rpc)
    with mirror.spawned("serve") as process:
        deadline = time.monotonic() + 30
        while not (mirror.downloads / "first.bin").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (mirror.downloads / "first.bin").exists(), "serve's first sync did not run"
        delete(mirror.journal)
        try:
            _, err = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate(timeout=10)
            pytest.fail(f"serve went on without its journal:\n{err.decode()[-3000:]}")
    message = err.decode()
    assert process.returncode == ExitCode.JOURNAL, message
    assert f"Error: the journal sqlite:///{mirror.journal} was deleted or moved away" in message
    assert "Hint: " in message and "Traceback" not in message


def stopped_by_its_journal_moved_away_and_back(mirror: Mirror) -> list[str]:
    """Given a mirror, run a download whose journal is moved away mid-run (it stops, exit
    7), then put the journal back, as the hint says; return what the run said (its
    ``Error:`` lines, without the prefix)."""
    for n in range(FILES):
        mirror.fake.add_file(f"f{n:03}.bin", size=SIZE)
    aside = mirror.journal.with_name(mirror.journal.name + ".bak")
    code, err = journal_taken_mid_download(mirror, move_away)
    said = [line.removeprefix("Error: ") for line in err.splitlines() if line.startswith("Error: ")]
    assert code == ExitCode.JOURNAL and said, err
    aside.rename(mirror.journal)
    return said


def test_a_run_stopped_by_its_journal_moved_away_is_journaled_so_once_it_is_put_back(
    mirror: Mirror,
) -> None:
    # The stopped run cannot journal its end into a file moved away; once a person puts
    # it back (as the hint says), the next run journals that end (exit 7, and why) rather
    # than calling the run killed or crashed.
    said = stopped_by_its_journal_moved_away_and_back(mirror)

    assert mirror.run("files", "download").code == 0
    shown = mirror.run("history").out.splitlines()
    line = next((line for line in shown if line.startswith("#1 ")), "")
    assert "[exit 7]" in line and said[-1] in line, shown
    assert "died" not in line and "killed, crashed" not in line, line


def journal_runs(journal: Path) -> list[tuple[int, int | None, str | None, str | None]]:
    """Return each run's id, exit code, end and summary, read without writing a byte."""
    with closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as conn:
        query = "SELECT id, exit_code, finished_at, summary FROM runs ORDER BY id"
        return [(row[0], row[1], row[2], row[3]) for row in conn.execute(query)]


def test_history_and_status_tell_a_kept_end_before_the_next_run_journals_it(
    mirror: Mirror,
) -> None:
    # The stopped run kept its end beside the run lock; the next run may be a day away
    # (a daily timer). Meanwhile ``history`` and ``status`` read that end (exit 7, and
    # why) rather than calling the run killed or crashed, and write nothing: the next
    # writing run still journals it.
    said = stopped_by_its_journal_moved_away_and_back(mirror)
    kept = mirror.journal.with_name(mirror.journal.name + ".lock.end")
    assert kept.exists(), "the stopped run kept no end beside its lock"
    before = journal_runs(mirror.journal)

    shown = mirror.run("history").out.splitlines()
    line = next((line for line in shown if line.startswith("#1 ")), "")
    assert "[exit 7]" in line and said[-1] in line, shown
    assert "died" not in line and "killed, crashed" not in line, line
    (run,) = json.loads(mirror.run("history", "--json").out)["runs"]
    assert (run["exit_code"], run["finished_at"] is not None) == (7, True), run
    status = mirror.run("status").out
    last = next((line for line in status.splitlines() if line.startswith("Last run:")), "")
    assert "exit 7" in last and said[-1] in last and "died" not in last, status
    assert json.loads(mirror.run("status", "--json").out)["last_run"]["exit_code"] == 7

    assert journal_runs(mirror.journal) == before, "history or status wrote the journal"
    assert before[0][1] is None and kept.exists()
    assert mirror.run("files", "download").code == 0
    assert journal_runs(mirror.journal)[0][1] == ExitCode.JOURNAL
    assert not kept.exists()


def test_the_power_cut_filesystem_keeps_only_what_was_synced(tmp_path: Path) -> None:
    # The seam the next test stands on: it must lose what was not synced, or prove nothing.
    disk = tmp_path / "disk"
    with power_cut_mount(disk, tmp_path / "mounted", tmp_path / "record") as mounted:
        with (mounted / "synced").open("w") as file:
            file.write("kept")
            file.flush()
            os.fsync(file.fileno())
        (mounted / "bytes unsynced").write_text("lost")
        folder = os.open(mounted, os.O_RDONLY | os.O_DIRECTORY)
        os.fsync(folder)
        os.close(folder)
        (mounted / "name unsynced").write_text("lost")
        (mounted / "synced").rename(mounted / "renamed unsynced")
    assert sorted(path.name for path in disk.iterdir()) == ["bytes unsynced", "synced"]
    assert (disk / "synced").read_text() == "kept"
    assert (disk / "bytes unsynced").read_text() == "", "its name was synced, not its bytes"


def test_the_end_a_stopped_run_kept_outlives_a_power_cut_right_after_it(
    mirror: Mirror, tmp_path: Path
) -> None:
    # The journal's folder (where the run lock and the kept end are) is on a disk whose
    # unsynced changes vanish in a power cut; the journal itself is on another disk,
    # through a symlink (SQLite syncs its own writes). The power goes right after the
    # stopped run exits: the end it kept must be there after the reboot.
    for n in range(FILES):
        mirror.fake.add_file(f"f{n:03}.bin", size=SIZE)
    powered, journal = lock_on_a_power_cut_disk(mirror.journal, tmp_path)
    with powered():
        code, err = journal_taken_mid_download(mirror, lambda _: move_away(journal))
    said = [line.removeprefix("Error: ") for line in err.splitlines() if line.startswith("Error: ")]
    assert code == ExitCode.JOURNAL and said, err
    journal.with_name(journal.name + ".bak").rename(journal)  # put back, as the hint says

    with powered():
        shown = mirror.run("history").out.splitlines()
    line = next((line for line in shown if line.startswith("#1 ")), "")
    assert "[exit 7]" in line and said[-1] in line, shown
    assert "died" not in line, line


def test_the_power_cut_filesystem_keeps_a_folder_made_only_as_far_as_it_was_synced(
    tmp_path: Path,
) -> None:
    # The seam tests/test_power_cut_run.py stands on: a folder's names are durable only as
    # its own last sync left them, wherever it was renamed to since; one made since: empty.
    disk = tmp_path / "disk"
    with power_cut_mount(disk, tmp_path / "mounted", tmp_path / "record") as mounted:
        for name in ("unsynced", "empty", "renamed"):
            (mounted / name).mkdir()
            (mounted / name / "file").write_text("lost")
        (mounted / "unsynced" / "sub").mkdir()
        fsync_folder(mounted / "renamed")  # its "file", by name (not its bytes)
        (mounted / "renamed").rename(mounted / "moved")
        fsync_folder(mounted)  # "empty" and "moved" by name, "unsynced" too
        (mounted / "gone").mkdir()
    found = sorted(str(path.relative_to(disk)) for path in disk.rglob("*"))
    assert found == ["empty", "moved", "moved/file", "unsynced"]
    assert (disk / "moved" / "file").read_text() == ""


def test_a_journal_moved_away_between_a_threads_look_and_its_connection_is_not_made_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each transaction looks for the pinned file, then connects. A file moved away in
    # between (by a person, while another thread of the run emptied the pool: a stopped
    # run's last word does) was met by SQLite making a new, empty journal at its path, in
    # WAL mode: the -wal it left there was read with the journal once put back, as the
    # hint says, and its history read "No runs recorded yet" (a CI rehearsal, once).
    path = tmp_path / "journal.sqlite3"
    journal = Journal.open(f"sqlite:///{path}")
    run = journal.start_run("files download", datetime.now(UTC))
    looked = PinnedFile.check

    def moved_right_after_the_look(pinned: PinnedFile) -> None:
        looked(pinned)
        if path.exists():
            move_away(path)

    monkeypatch.setattr(PinnedFile, "check", moved_right_after_the_look)
    journal.close()  # the pool emptied: the next transaction connects anew
    with pytest.raises(JournalError) as raised:
        journal.finish_run(run, datetime.now(UTC), 0, "done")
    assert "was deleted or moved away" in raised.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["journal.sqlite3.bak"]
    monkeypatch.undo()
    path.with_name(path.name + ".bak").rename(path)
    again = Journal.open(f"sqlite:///{path}")
    try:
        assert [r.id for r in again.recent_runs(5)] == [run]
    finally:
        again.close()


def runs_in_the_file_alone(journal: Path, aside: Path) -> list[int]:
    """Given a SQLite journal's file, return the ids of the runs it holds by itself: read
    from a copy of that file made in ``aside`` without its ``-wal``, as a backup that copies
    the file alone has it, or a journal moved away once the ``-wal`` it left is gone."""
    aside.mkdir()
    alone = aside / journal.name
    alone.write_bytes(journal.read_bytes())
    with closing(sqlite3.connect(alone)) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM runs ORDER BY id")]


def test_a_journal_moved_away_mid_run_holds_by_itself_every_run_up_to_this_ones_start(
    tmp_path: Path,
) -> None:
    # A journal open in a long process (``serve``, ``watch``) kept every row in its -wal:
    # nothing checkpointed it before 1,000 pages. Moved away mid-run, as the hint of a run
    # it stops tells the person it may be (or copied by a backup of the file alone), it was
    # a 4 KB header, its runs left in the -wal, which a new journal made at the path deletes.
    path = tmp_path / "journal.sqlite3"
    journal = Journal.open(f"sqlite:///{path}")
    try:
        first = journal.start_run("files download", datetime.now(UTC))
        journal.finish_run(first, datetime.now(UTC), 0, "done")
        second = journal.start_run("files download", datetime.now(UTC))
        move_away(path)
        moved = path.with_name(path.name + ".bak")
        assert runs_in_the_file_alone(moved, tmp_path / "alone") == [first, second]
    finally:
        journal.close()


def test_a_copy_of_serves_journal_file_alone_holds_the_runs_it_finished(
    mirror: Mirror, tmp_path: Path
) -> None:
    # serve keeps its journal open for weeks; a backup that copies the journal's file (not
    # its -wal) while it runs, or after it was killed, must find its runs in that file.
    mirror.fake.add_file("first.bin", size=3000)
    mirror.write_config(rpc={"listen": f"127.0.0.1:{free_port()}", "poll_seconds": 0.2})
    with mirror.spawned("serve") as process:
        deadline = time.monotonic() + 30
        finished: list[int] = []
        while not finished and time.monotonic() < deadline:
            time.sleep(0.1)
            with suppress(sqlite3.Error):
                finished = [run for run, code, *_ in journal_runs(mirror.journal) if code == 0]
        assert finished, "serve finished no run"
        os.kill(process.pid, signal.SIGKILL)  # as it was: a closing journal checkpoints
        process.communicate(timeout=10)
    assert set(finished) <= set(runs_in_the_file_alone(mirror.journal, tmp_path / "backup"))
