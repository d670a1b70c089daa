"""A run's start: put.io is asked at once and awaited last, and the first files' links come
while the run gets ready, so that distance (50-100 ms an answer) is paid as few times as it
can be before the first byte; a run that fails meanwhile ends at once, and one that may
not run asks put.io nothing (issue 14)."""

from __future__ import annotations

import gc
import logging
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from putio_mirror.app.run import DOWNLOAD_KINDS, Request, Runtime, run_once
from putio_mirror.config.settings import load_settings
from putio_mirror.core.errors import AuthError, ExitCode
from putio_mirror.fakeputio.fake import LoggedRequest
from putio_mirror.journal.store import Journal
from putio_mirror.journal.where import plain_lock_path
from putio_mirror.local.lock import RunLock
from tests.mirror_env import Mirror

LATENCY = 0.5  # seconds before every answer of the fake: long enough to tell overlaps apart


def _eventually(condition: Callable[[], bool], seconds: float = 2.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _arrivals(mirror: Mirror, path: str) -> list[float]:
    return [q.received_at for q in mirror.fake.requests if q.host == "api" and q.path == path]


def test_transfers_and_files_are_listed_at_once(mirror: Mirror) -> None:
    mirror.fake.add_file("a.srt", size=300)
    mirror.fake.latency_seconds = LATENCY
    assert mirror.run("files", "download").code == 0
    (transfers,) = _arrivals(mirror, "/v2/transfers/list")
    (files,) = _arrivals(mirror, "/v2/files/list")
    assert abs(files - transfers) < LATENCY / 2, "neither listing waited for the other"
    assert set(mirror.local_files()) == {"a.srt"}


def test_a_dry_run_lists_both_at_once_too(mirror: Mirror) -> None:
    mirror.fake.add_file("a.srt", size=300)
    mirror.fake.latency_seconds = LATENCY
    assert mirror.run("files", "download", "--dry-run").code == 0
    (transfers,) = _arrivals(mirror, "/v2/transfers/list")
    (files,) = _arrivals(mirror, "/v2/files/list")
    assert abs(files - transfers) < LATENCY / 2


def test_put_io_is_asked_before_the_journal_is_opened_and_a_journal_that_fails_ends_the_run_at_once(
    mirror: Mirror,
) -> None:
    mirror.fake.add_file("a.srt", size=300)
    mirror.journal.parent.mkdir(parents=True)
    mirror.journal.write_bytes(b"not a database, not even close " * 100)
    mirror.fake.latency_seconds = 5.0
    started = time.monotonic()
    result = mirror.run("files", "download")
    assert result.code == ExitCode.JOURNAL, result.err
    assert time.monotonic() - started < 2.5, "the run waited for no listing"


def test_put_io_is_asked_while_the_journal_is_opened(mirror: Mirror) -> None:
    # The journal is held (another program's write, a slow disk) until put.io has been
    # asked for its listings: a run that opened it first would wait for it in vain and end
    # on its busy timeout, one that asks first goes on as soon as the journal is let go.
    mirror.fake.add_file("a.srt", size=300)
    assert mirror.run("sync").code == 0
    mirror.fake.add_file("b.srt", size=300)
    holder = sqlite3.connect(mirror.journal, check_same_thread=False, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    asked = threading.Event()

    def let_go_once_asked(request: LoggedRequest) -> None:
        if request.path == "/v2/transfers/list" and not asked.is_set():
            asked.set()
            holder.close()  # (in WAL, only closing gives an exclusive hold up)

    mirror.fake.on_request = let_go_once_asked
    try:
        result = mirror.run("files", "download")
    finally:
        mirror.fake.on_request = None
        holder.close()  # (a second close does nothing)
    assert asked.is_set()
    assert result.code == 0, result.err
    assert set(mirror.local_files()) == {"a.srt", "b.srt"}


def test_a_listing_that_fails_ends_the_run_without_waiting_for_the_other(mirror: Mirror) -> None:
    mirror.fake.add_file("a.srt", size=300)
    mirror.fake.inject("/v2/transfers/list", status=500, delay=5.0)  # slow, then retried
    mirror.fake.inject("/v2/files/list", status=401)  # the token refused: never retried
    started = time.monotonic()
    result = mirror.run("files", "download")
    assert result.code == ExitCode.REMOTE_FATAL, result.err
    assert "refused the token" in result.err
    assert time.monotonic() - started < 2.5, "the run waited for no transfers"
    assert mirror.local_files() == {}


def _busy_since(before: set[threading.Thread]) -> list[str]:
    """The threads of put.io's listings (``observe``, ``putio-pages``) started since."""
    prefixes = ("observe", "putio-pages")
    return [t.name for t in set(threading.enumerate()) - before if t.name.startswith(prefixes)]


def test_a_listing_left_by_a_run_that_failed_is_cut_and_tells_nothing_after_the_run(
    mirror: Mirror, caplog: pytest.LogCaptureFixture
) -> None:
    # The transfers' listing is still on its way when the files' ends the run: left to
    # finish on its thread, it logged a retry (and would have retried) into a run that was
    # over, in ``serve`` and ``watch`` amid the next run's lines.
    mirror.fake.add_file("a.srt", size=300)
    mirror.fake.inject("/v2/transfers/list", status=500, delay=2.0)  # slow, then retried
    mirror.fake.inject("/v2/files/list", status=401)  # the token refused: never retried
    settings = load_settings(mirror.config, {})
    before = set(threading.enumerate())
    with caplog.at_level(logging.DEBUG, logger="putio_mirror"):
        started = time.monotonic()
        with pytest.raises(AuthError):
            run_once(Runtime(settings), Request("files download", kinds=DOWNLOAD_KINDS))
        took, ended = time.monotonic() - started, time.time()
        finished = _eventually(lambda: not _busy_since(before), seconds=0.5)
        busy = _busy_since(before)
        time.sleep(2.5)  # the slow answer came by now, to a listing still waiting for it
    assert took < 1.5, "the run waited for the listing"
    assert finished, f"still listing after the run: {busy}"
    late = [record.getMessage() for record in caplog.records if record.created > ended]
    assert late == [], "logged after the run ended"


def test_a_run_that_may_not_run_asks_put_io_nothing(mirror: Mirror) -> None:
    mirror.fake.add_file("a.srt", size=300)
    lock = mirror.journal.with_name(mirror.journal.name + ".lock")
    with RunLock(lock):
        assert mirror.run("files", "download").code == ExitCode.ALREADY_RUNNING
    assert mirror.fake.requests == []
    assert mirror.local_files() == {}


def test_the_first_links_are_asked_for_before_the_run_is_journaled(mirror: Mirror) -> None:
    assert mirror.run("files", "download").code == 0  # the journal exists
    first = mirror.fake.add_file("a.srt", size=300)
    mirror.fake.add_file("b.srt", size=300)
    mirror.write_config(download={"parallel_files": 1})
    # The journal's write lock is held from the files' listing on, so the run cannot journal
    # itself (nor claim a file); it is let go when the first link is asked for, or after 3 s.
    holder = sqlite3.connect(mirror.journal, check_same_thread=False, isolation_level=None)
    held = threading.Event()
    released_by: list[str] = []
    lock = threading.Lock()

    def release(why: str) -> None:
        with lock:
            if held.is_set() and not released_by:
                holder.execute("COMMIT")
                released_by.append(why)

    def hook(request: LoggedRequest) -> None:
        if request.path == "/v2/files/list" and not held.is_set():
            holder.execute("BEGIN IMMEDIATE")
            held.set()
            threading.Timer(3.0, release, ["a timer"]).start()
        elif request.path == f"/v2/files/{first}/url":
            release("the first link")

    mirror.fake.on_request = hook
    try:
        assert mirror.run("files", "download").code == 0
    finally:
        release("the end")
        holder.close()
    assert released_by == ["the first link"], "the link did not wait for the journal"
    assert set(mirror.local_files()) == {"a.srt", "b.srt"}


@pytest.mark.parametrize("url", ["sqlite:///{tmp}/journal.sqlite3", "sqlite:///journal.sqlite3"])
def test_the_lock_taken_before_the_journal_is_opened_is_the_journal_s_own(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = url.format(tmp=tmp_path)
    journal = Journal.open(url)
    try:
        assert plain_lock_path(url) == journal.lock_path
    finally:
        journal.close()


@pytest.mark.parametrize("url", ["sqlite:///{tmp}/j.sqlite3?timeout=3", "sqlite://"])
def test_a_lock_not_plain_is_left_to_the_journal(tmp_path: Path, url: str) -> None:
    assert plain_lock_path(url.format(tmp=tmp_path)) is None


def test_ctrl_c_twice_while_put_io_is_listed_ends_the_run_at_once_and_records_it(
    mirror: Mirror,
) -> None:
    mirror.fake.add_file("a.srt", size=300)
    assert mirror.run("files", "download", "--dry-run").code == 0  # nothing made
    mirror.fake.latency_seconds = 30.0  # the listings are under way for the whole test
    process = mirror.spawn("files", "download")
    try:
        assert _eventually(lambda: len(mirror.fake.requests) >= 2, seconds=20)
        # by then the journal is open (SQLAlchemy imported meanwhile) and the listings awaited
        assert _eventually(mirror.journal.exists, seconds=20)
        time.sleep(1.0)
        started = time.monotonic()
        process.send_signal(signal.SIGINT)  # the first asks for a stop between chunks
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)  # the second interrupts at once
        _, err = process.communicate(timeout=10)
        assert process.returncode == ExitCode.INTERRUPTED, err.decode()
        assert time.monotonic() - started < 5, "it waited for no listing"
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    journal = Journal.open(f"sqlite:///{mirror.journal}")
    try:
        (run,) = journal.recent_runs()
    finally:
        journal.close()
    assert run.exit_code == ExitCode.INTERRUPTED
    assert run.summary == "ended before its plan: interrupted"
    assert mirror.local_files() == {}


@pytest.mark.skipif(os.geteuid() == 0, reason="root may list any folder")
def test_a_blackhole_that_cannot_be_listed_ends_a_run_that_is_recorded(mirror: Mirror) -> None:
    # scanned before put.io is asked, its failure is raised once the run can be recorded
    mirror.drop("show.torrent", b"d4:infod4:name4:showee")
    mirror.blackhole.chmod(0)
    try:
        result = mirror.run("sync")
    finally:
        mirror.blackhole.chmod(0o755)
    assert result.code != 0 and "cannot list the blackhole folder" in result.err
    journal = Journal.open(f"sqlite:///{mirror.journal}")
    try:
        (run,) = journal.recent_runs()
    finally:
        journal.close()
    assert run.summary is not None
    assert run.summary.startswith("ended before its plan: cannot list the blackhole folder")


def test_what_a_run_built_before_its_plan_is_kept_out_of_the_collector_s_walks_until_it_ends(
    mirror: Mirror,
) -> None:
    # Walking the snapshot and plan (every object made so far) as the first downloads
    # start paused every thread; they are frozen meanwhile, handed back when the run ends.
    for n in range(3):
        mirror.fake.add_file(f"{n}.srt", size=300)
    frozen_at_plan: list[int] = []
    settings = load_settings(mirror.config, {})
    runtime = Runtime(settings, on_plan=lambda plan: frozen_at_plan.append(gc.get_freeze_count()))
    outcome = run_once(runtime, Request("files download", kinds=DOWNLOAD_KINDS))
    assert outcome.exit_code == ExitCode.OK
    assert frozen_at_plan and frozen_at_plan[0] > 10_000
    assert gc.get_freeze_count() == 0 and gc.isenabled()
    assert len(mirror.local_files()) == 3
