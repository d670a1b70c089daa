"""A run that died (kill -9, a crash, a power cut) reads "died", never "running" forever.

Right after the death, ``status`` on the run's own host sees its process gone; the next run,
which holds the run lock and so proves the previous lock holder over, ends its journal row
at its last sign of life, and ``history`` and ``status`` say so.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from putio_mirror.app.owners import take_over_from_dead_runs
from putio_mirror.app.run import Request, Runtime, run_once
from putio_mirror.config.settings import load_settings
from putio_mirror.core.errors import ExitCode
from putio_mirror.journal.store import DIED, Journal
from tests.mirror_env import Mirror
from tests.power_cut_fs import lock_on_a_power_cut_disk
from tests.test_claims import BACKENDS, new_journal_url
from tests.test_journal import sqlite_url


def kill_mid_download(mirror: Mirror) -> int:
    """Start ``files download`` in its own process and kill -9 it halfway through a file;
    return the file's id."""
    file_id = mirror.fake.add_file("movie.mkv", size=4_000_000)
    mirror.fake.node_fault(file_id, stall_after=1_500_000, times=1)
    mirror.kill_mid_file(file_id, at_least=1_000_000)
    return file_id


def test_status_right_after_a_kill_9_says_the_run_died_not_that_it_runs(mirror: Mirror) -> None:
    kill_mid_download(mirror)
    out = mirror.run("status").out
    assert "Last run: #1 files download" in out
    assert "died: its process" in out and "running" not in out
    assert json.loads(mirror.run("status", "--json").out)["last_run"]["alive"] is False


def test_the_next_run_ends_a_killed_runs_row_and_history_says_it_died(mirror: Mirror) -> None:
    before = datetime.now(UTC)
    kill_mid_download(mirror)
    killed = datetime.now(UTC)
    assert mirror.run("files", "download").code == 0
    history = mirror.run("history").out
    first = next(line for line in history.splitlines() if line.startswith("#1 "))
    assert "[died]" in first and "killed, crashed or the power went" in first, history
    assert "[running]" not in history
    document = json.loads(mirror.run("history", "--json").out)
    (died,) = (run for run in document["runs"] if run["id"] == 1)
    assert died["exit_code"] is None
    assert before <= datetime.fromisoformat(died["finished_at"]) <= killed  # its last sign
    assert "Last run: #2 files download" in mirror.run("status").out


@pytest.fixture(params=BACKENDS)
def journal_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with new_journal_url(request, tmp_path) as url:
        yield url


def test_a_take_over_ends_only_the_previous_lock_holders_unfinished_runs(
    journal_url: str, tmp_path: Path
) -> None:
    """Another host's unfinished run (a journal shared on PostgreSQL) may be alive: left."""
    lock = tmp_path / "journal.lock"
    start = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    with Journal.open(journal_url) as journal:
        finished = journal.start_run("sync", start, owner="here:1:aa")
        journal.finish_run(finished, start + timedelta(minutes=1), 0, "1 done, 0 failed")
        dead = journal.start_run("sync", start + timedelta(minutes=15), owner="here:2:bb")
        action = journal.action_started(dead, "download", "download:7", "a.mkv", start)
        journal.action_finished(action, "done", start + timedelta(minutes=17))
        journal.action_started(dead, "download", "download:8", "b.mkv", start)
        elsewhere = journal.start_run("sync", start + timedelta(minutes=16), owner="there:3:cc")
        lock.with_name(lock.name + ".owner").write_text("here:2:bb\n")

        take_over_from_dead_runs(journal, start + timedelta(hours=1), lock, "here:4:dd")

        runs = {run.id: run for run in journal.recent_runs(5)}
    assert runs[finished].summary == "1 done, 0 failed"
    assert runs[dead].finished_at == start + timedelta(minutes=17)  # its last sign of life
    assert runs[dead].exit_code is None and runs[dead].summary == DIED
    assert runs[elsewhere].finished_at is None and runs[elsewhere].summary is None


def test_status_of_a_run_on_this_host_whose_process_lives_says_running(
    mirror: Mirror,
) -> None:
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as sleeper:
        try:
            with Journal.open(sqlite_url(mirror.journal)) as journal:
                owner = f"{socket.gethostname()}:{sleeper.pid}:ee"
                journal.start_run("sync on this host", datetime.now(UTC), owner=owner)
            out = mirror.run("status").out
        finally:
            sleeper.kill()
    assert "Last run: #1 sync on this host" in out and ": running" in out, out
    assert "died" not in out


def test_after_a_power_cut_the_next_run_frees_the_dead_runs_claims_at_once(
    mirror: Mirror, tmp_path: Path
) -> None:
    # The run lock's folder is on a disk whose unsynced changes vanish in a power cut (the
    # journal on another disk, through a symlink: SQLite syncs its own). The power goes
    # mid-download: after the reboot, the next run must still know whose claims the dead
    # run held (the owner record beside the lock), free them and fetch its file, not
    # leave it to the claim's lease (10 minutes).
    powered, _ = lock_on_a_power_cut_disk(mirror.journal, tmp_path)
    with powered():
        kill_mid_download(mirror)
    with powered():
        assert mirror.run("files", "download").code == 0
        assert "movie.mkv" in mirror.local_files(), mirror.run("history", "--run", "2").out


def test_a_run_killed_while_taking_over_leaves_every_claim_to_the_next_one(
    journal_url: str, tmp_path: Path
) -> None:
    """The owner record names the run killed mid-take-over as well as the one it took
    over from: whichever holds the claims now, the next run takes them over."""
    lock = tmp_path / "journal.lock"
    lease = timedelta(minutes=10)
    with Journal.open(journal_url) as journal:
        journal.claim("download:7", "here:2:bb", lease)  # not taken over yet
        journal.claim("download:8", "here:3:cc", lease)  # taken over by the killed run
        journal.claim("download:9", "there:4:ee", lease)  # another host's, alive
        lock.with_name(lock.name + ".owner").write_text("here:2:bb\nhere:3:cc\n")
        wanted = {"download:7", "download:8", "download:9"}

        taken = take_over_from_dead_runs(
            journal, datetime.now(UTC), lock, "here:5:ff", wanted=wanted, lease=lease
        )

        owners = {key: owner for key, (owner, _) in journal.claims().items()}
    assert taken == {"download:7", "download:8"}
    assert owners == {
        "download:7": "here:5:ff",
        "download:8": "here:5:ff",
        "download:9": "there:4:ee",
    }
    assert lock.with_name(lock.name + ".owner").read_text() == "here:5:ff\n"


def test_claims_a_restarted_run_took_over_and_never_came_to_are_freed_at_its_end(
    mirror: Mirror,
) -> None:
    """Killed mid-file; the next run plans the file but may not start it (its window is
    closed): the claim it took over for it is freed as it ends, not left to its lease."""
    file_id = kill_mid_download(mirror)
    with Journal.open(sqlite_url(mirror.journal)) as journal:
        assert list(journal.claims()) == [f"download:{file_id}"]
    mirror.write_config(schedule={"windows": ["00:05-05:55"]})
    settings = load_settings(mirror.config, {})
    day = datetime(2026, 11, 27, 12, 0).astimezone()
    outcome = run_once(Runtime(settings, clock=lambda: day), Request("files download"))
    assert outcome.exit_code == ExitCode.WINDOW_CLOSED
    assert outcome.report is not None and outcome.report.deferred == 1
    with Journal.open(sqlite_url(mirror.journal)) as journal:
        assert journal.claims() == {}
        (killed, *_) = sorted(journal.recent_runs(), key=lambda run: run.id)
        assert [action.status for action in journal.actions_of(killed.id)] == ["interrupted"]
