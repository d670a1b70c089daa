"""Hosts sharing one journal, in one process: executors with different owners and clocks.

Each "host" is an Executor with its own owner id, folders and clock, on its own handle of one
SQLite journal; the fetcher is a stand-in that writes the file at once, or (``Stalling``)
stops at a chunk boundary only when told it may not go on. What is shared is what two
machines share: the journal. Leases are judged by the database's clock, so a lease is made
to run out, or a claim handed over, by writing the claims table as the database would.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from putio_mirror.app import downloading
from putio_mirror.app.executor import Executor, Rules
from putio_mirror.app.report import RunReport
from putio_mirror.core.errors import ExitCode
from putio_mirror.core.plan import AdoptLocal, Download, Plan
from putio_mirror.fetch.values import Fetched, FileToFetch
from putio_mirror.journal.store import Journal
from putio_mirror.local.paths import Places
from tests.test_journal import run_sql, sqlite_url

CONTENT = b"the bytes of film.mkv" * 100
FILM = Download(7, "film.mkv", len(CONTENT), f"{zlib.crc32(CONTENT):08x}")
HAND_OVER = "UPDATE claims SET owner = :owner WHERE key = :key"
INSERT_CLAIM = (
    "INSERT INTO claims (key, owner, expires_at, claimed_at) VALUES (:key, :owner, :ends, :ends)"
)
OWNER_A, OWNER_B = "host-a:101:aaaa", "host-b:202:bbbb"


class Instant:
    """Writes the file into its part at once, complete."""

    def fetch(
        self,
        item: FileToFetch,
        *,
        may_continue: Callable[[], bool] = lambda: True,
        on_progress: Callable[[int], None] = lambda amount: None,
    ) -> Fetched:
        item.part_path.parent.mkdir(parents=True, exist_ok=True)
        item.part_path.write_bytes(CONTENT)
        return Fetched(True, len(CONTENT))

    def discard(self, part: Path) -> None:
        part.unlink(missing_ok=True)

    def close(self) -> None:
        pass


class Stalling(Instant):
    """Stands at a chunk boundary (a stalled node, a low bwlimit) until it may not go on."""

    def __init__(self, started: threading.Event, stop: threading.Event | None = None) -> None:
        self.started = started
        self.stop = stop or threading.Event()

    def fetch(
        self,
        item: FileToFetch,
        *,
        may_continue: Callable[[], bool] = lambda: True,
        on_progress: Callable[[int], None] = lambda amount: None,
    ) -> Fetched:
        self.started.set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.stop.is_set() or not may_continue():
                return Fetched(False, 0)
            time.sleep(0.02)
        raise AssertionError("the download was never told to stop")


class NoRemote:
    """The put.io writer: these plans never call it."""


@pytest.fixture
def url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path / "state" / "journal.sqlite3")


@pytest.fixture
def journal(url: str) -> Iterator[Journal]:
    with Journal.open(url) as opened:
        yield opened


def real_clock() -> datetime:
    return datetime.now(UTC)


def host(
    tmp_path: Path,
    url: str,
    owner: str,
    fetcher: Callable[[], Instant],
    *,
    lease: timedelta = timedelta(minutes=10),
    clock: Callable[[], datetime] = real_clock,
) -> tuple[Executor, Journal]:
    """Given a host's owner id, fetcher, lease and clock, return its executor and journal."""
    folder = tmp_path / owner.replace(":", "-")
    places = Places(folder / "blackhole", folder / "downloads", folder / "downloads" / ".staging")
    journal = Journal.open(url)
    rules = Rules(owner=owner, lease=lease)
    return Executor(NoRemote(), fetcher, journal, places, rules, clock=clock), journal  # type: ignore[arg-type]


def run(executor: Executor, journal: Journal, plan: Plan) -> RunReport:
    run_id = journal.start_run("sync", datetime.now(UTC))
    try:
        return executor.run(plan, run_id)
    finally:
        executor.close()
        journal.close()


def in_background(work: Callable[[], RunReport]) -> tuple[threading.Thread, list[RunReport]]:
    reports: list[RunReport] = []
    thread = threading.Thread(target=lambda: reports.append(work()))
    thread.start()
    return thread, reports


def test_a_download_another_host_took_over_is_left_to_it_not_deferred_to_a_window(
    tmp_path: Path, url: str, journal: Journal
) -> None:
    started = threading.Event()
    lease = timedelta(seconds=1.5)  # host A's keeper looks every half second
    a, a_journal = host(tmp_path, url, OWNER_A, lambda: Stalling(started), lease=lease)
    thread, a_reports = in_background(lambda: run(a, a_journal, Plan((FILM,))))
    assert started.wait(10)
    # Host A stalled past its lease and host B took the file over, as the database lets it.
    run_sql(url, HAND_OVER, owner=OWNER_B, key=FILM.key)
    b, b_journal = host(tmp_path, url, OWNER_B, Instant)
    b_report = run(b, b_journal, Plan((FILM,)))
    thread.join(20)
    (a_report,) = a_reports
    assert b_report.done == [FILM.key]
    # No window is configured: the lost claim is work left to another host, not a closed window.
    assert (a_report.elsewhere, a_report.window_closed, a_report.done) == (1, False, [])
    assert a_report.exit_code == ExitCode.OK
    assert "window" not in a_report.summary()
    # Host A recorded where it stopped after B verified the file: B's verification stands.
    record = journal.facts().downloads[FILM.file_id]
    assert record.is_verified and record.bytes_done == FILM.size


def test_a_host_whose_clock_is_hours_ahead_leaves_a_live_claim_alone(
    tmp_path: Path, url: str
) -> None:
    started, stop = threading.Event(), threading.Event()
    b, b_journal = host(tmp_path, url, OWNER_B, lambda: Stalling(started, stop))
    thread, _ = in_background(lambda: run(b, b_journal, Plan((FILM,))))
    assert started.wait(10)
    ahead = lambda: datetime.now(UTC) + timedelta(hours=3)  # noqa: E731
    a, a_journal = host(tmp_path, url, OWNER_A, Instant, clock=ahead)
    a_report = run(a, a_journal, Plan((FILM,)))
    assert (a_report.done, a_report.elsewhere) == ([], 1)
    stop.set()
    thread.join(20)


def test_a_host_whose_clock_is_hours_behind_takes_over_a_dead_hosts_expired_claim(
    tmp_path: Path, url: str, journal: Journal
) -> None:
    ended = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
    run_sql(url, INSERT_CLAIM, key=FILM.key, owner="dead-host:1:dead", ends=ended)
    behind = lambda: datetime.now(UTC) - timedelta(hours=3)  # noqa: E731
    a, a_journal = host(tmp_path, url, OWNER_A, Instant, clock=behind)
    a_report = run(a, a_journal, Plan((FILM,)))
    assert (a_report.done, a_report.elsewhere) == ([FILM.key], 0)


def test_a_long_adoption_keeps_its_claim_alive_without_any_chunk_to_renew_at(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Adopting checks the CRC32 of the whole local file: minutes for 50 GB, no chunks.
    film = AdoptLocal(7, "film.mkv", len(CONTENT), "0badf00d")
    hashing = threading.Event()

    def slow_crc32_of(path: Path) -> str:
        hashing.set()
        time.sleep(3)
        return "0badf00d"

    monkeypatch.setattr(downloading, "crc32_of", slow_crc32_of)
    a, a_journal = host(tmp_path, url, OWNER_A, Instant, lease=timedelta(seconds=1.2))
    local = tmp_path / OWNER_A.replace(":", "-") / "downloads" / "film.mkv"
    local.parent.mkdir(parents=True)
    local.write_bytes(CONTENT)  # what is adopted is there (and made durable before journaled)
    thread, a_reports = in_background(lambda: run(a, a_journal, Plan((film,))))
    assert hashing.wait(10)
    time.sleep(2)  # longer than the lease: unrenewed, it would have run out
    b, b_journal = host(tmp_path, url, OWNER_B, Instant)
    b_report = run(b, b_journal, Plan((film,)))
    thread.join(20)
    assert (b_report.done, b_report.elsewhere) == ([], 1)
    assert a_reports[0].done == [film.key]


def test_the_claim_keeper_renews_what_it_holds_and_flags_what_another_took(
    url: str, journal: Journal
) -> None:
    from putio_mirror.journal.keeper import ClaimKeeper  # imported here: a module this change added

    keeper = ClaimKeeper(journal, OWNER_A, timedelta(seconds=1))
    try:
        assert keeper.claim("download:7") and keeper.claim("download:8")
        run_sql(url, HAND_OVER, owner=OWNER_B, key="download:8")
        time.sleep(1.5)  # several renewals; unrenewed, both leases would have run out
        assert keeper.holds("download:7") and not keeper.holds("download:8")
        assert journal.claims()["download:7"][1] > journal.database_now()
        assert not journal.claim("download:7", OWNER_B, timedelta(minutes=1))
        keeper.release("download:7")
        keeper.release("download:8")  # another's now: left as it is
        assert {key: owner for key, (owner, _) in journal.claims().items()} == {
            "download:8": OWNER_B
        }
    finally:
        keeper.close()
