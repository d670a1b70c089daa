"""A PostgreSQL journal whose server restarts under a running ``sync`` (an upgrade, a
configuration change): the run waits for it and carries on, or stops with a clear message;
either way no file is left in staging, nothing is journaled placed that is not, and the
next run fetches again no file the first one placed.

Each test has a server of its own (restarting the session's would cut other tests'
connections), against the fake put.io over loopback.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

import psycopg
import pytest

from putio_mirror.core.errors import ExitCode
from putio_mirror.fakeputio.fake import LoggedRequest
from putio_mirror.journal import engine
from tests.mirror_env import Mirror, Result
from tests.postgres_server import PostgresServer, PostgresUnavailable, find_binaries

FILES = 40
SIZE = 200_000
PARALLEL = 2


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    bindir = find_binaries()
    if bindir is None:
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail("CI must test PostgreSQL, but there are no server programs")
        pytest.skip("no PostgreSQL server programs (initdb, pg_ctl, postgres)")
    try:
        with PostgresServer(bindir) as started:
            yield started
    except PostgresUnavailable as error:
        pytest.skip(f"no throwaway PostgreSQL server: {error}")


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture
def journal_url(server: PostgresServer) -> str:
    with psycopg.connect(libpq(server.url), autocommit=True) as conn:
        conn.execute("CREATE DATABASE journal")
    return server.url.rsplit("/", 1)[0] + "/journal"


@pytest.fixture
def syncing(
    mirror: Mirror, journal_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Mirror:
    """A mirror journaling into the PostgreSQL database, with files that take a few
    seconds to fetch; its run lock in a folder of its own."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    for n in range(FILES):
        mirror.fake.add_file(f"f{n:03}.bin", size=SIZE)
    mirror.fake.node_bytes_per_second = 2_000_000  # ~4 s for all
    mirror.write_config(paths={"journal": journal_url}, download={"parallel_files": PARALLEL})
    return mirror


def wait_for_placed(mirror: Mirror, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(list(mirror.downloads.glob("*.bin"))) < count and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.fixture
def impatient(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run waits a tenth of a second, not 30, for its journal's server to come back: a
    test may outlast the patience without waiting it out."""
    monkeypatch.setattr(engine, "PATIENCE_SECONDS", 0.1)


def the_error(result: Result) -> str:
    """Given a run that stopped on an error, return what it said of it (its ``Error:``)."""
    said = [line for line in result.err.splitlines() if line.startswith("Error: ")]
    assert said, result.err
    return said[-1].removeprefix("Error: ")


def history_line(mirror: Mirror, run_id: int) -> str:
    """Given a run's id, return its line of ``history``."""
    shown = mirror.run("history").out.splitlines()
    line = next((line for line in shown if line.startswith(f"#{run_id} ")), None)
    assert line is not None, shown
    return line


def journal_rows(url: str) -> tuple[set[str], list[tuple[int | None, str | None]]]:
    """Return the files the journal says are placed, and each run's exit code and summary."""
    with psycopg.connect(libpq(url)) as conn:
        placed = {row[0] for row in conn.execute("SELECT placed_path FROM downloads") if row[0]}
        runs = conn.execute("SELECT exit_code, summary FROM runs ORDER BY id").fetchall()
    return placed, runs


def node_gets_by_file(mirror: Mirror) -> dict[int, list[LoggedRequest]]:
    """Return the node's GETs (``/download/{id}``), in order, by file id."""
    gets: dict[int, list[LoggedRequest]] = {}
    for r in mirror.fake.requests:
        if r.host == "node" and r.method == "GET":
            gets.setdefault(int(r.path.split("?")[0].rsplit("/", 1)[1]), []).append(r)
    return gets


def fetched_ids(mirror: Mirror) -> Counter[int]:
    return Counter({file_id: len(gets) for file_id, gets in node_gets_by_file(mirror).items()})


def staged(mirror: Mirror) -> list[Path]:
    """Return the files in the mirror's staging folder."""
    staging = mirror.downloads / ".putio-mirror-staging"
    return [p for p in staging.rglob("*") if p.is_file()] if staging.exists() else []


def assert_journaled_placed_on_disk(mirror: Mirror, url: str) -> set[str]:
    """Check every file the journal says placed is in the download folder; return the
    names there."""
    on_disk = {path.name for path in mirror.downloads.glob("*.bin")}
    placed, _ = journal_rows(url)
    assert placed <= on_disk, f"journaled placed, not on disk: {sorted(placed - on_disk)}"
    return on_disk


def assert_nothing_stranded(mirror: Mirror, url: str) -> set[str]:
    """Check the journal says placed only what is in the download folder and staging
    holds nothing; return the names placed."""
    on_disk = assert_journaled_placed_on_disk(mirror, url)
    assert not staged(mirror), f"left in staging: {staged(mirror)}"
    return on_disk


def parts_in_flight(mirror: Mirror) -> dict[int, int]:
    """Given a run the journal stopped, check staging holds only the parts of the files
    its workers had in hand (at most one each); return their lengths by file id."""
    left = staged(mirror)
    parts = [path for path in left if path.suffix == ".part"]
    assert parts == left and len(parts) <= PARALLEL, f"left in staging: {left}"
    return {int(path.stem): path.stat().st_size for path in parts}


def assert_the_next_run_finishes_without_fetching_again(
    mirror: Mirror, placed: set[str], parts: Mapping[int, int] | None = None
) -> None:
    """Run a sync: it must place every file, fetch none of those ``placed`` again, resume
    each of the ``parts`` (lengths by file id) from its length, and leave staging empty."""
    mirror.fake.node_bytes_per_second = None
    mirror.fake.clear_requests()
    assert mirror.run("sync").code == ExitCode.OK
    names = {f"f{n:03}.bin" for n in range(FILES)}
    assert set(mirror.local_files()) == names
    ids = {file["name"]: file["id"] for file in mirror.fake.files()}
    again = set(fetched_ids(mirror))
    assert not again & {ids[name] for name in placed}, "a file placed was fetched again"
    gets = node_gets_by_file(mirror)
    for file_id, length in (parts or {}).items():
        asked = [r.headers.get("Range") for r in gets.get(file_id, [])]
        if length == SIZE:
            assert not asked, f"{file_id}.part was whole, yet fetched again: {asked}"
        elif length:
            assert asked[:1] == [f"bytes={length}-"], f"{file_id}.part of {length}: {asked}"
    assert not staged(mirror), f"left in staging: {staged(mirror)}"


def test_a_sync_waits_for_a_restarted_journal_server_and_carries_on(
    syncing: Mirror, server: PostgresServer, journal_url: str
) -> None:
    with syncing.spawned("sync") as process:
        wait_for_placed(syncing, 5)
        server.stop_for(3.0)  # a restart: every connection cut, none taken for 3 s
        _, err = process.communicate(timeout=120)
    assert process.returncode == ExitCode.OK, err.decode()
    on_disk = assert_nothing_stranded(syncing, journal_url)
    placed, runs = journal_rows(journal_url)
    assert on_disk == placed == {f"f{n:03}.bin" for n in range(FILES)}
    assert runs[-1][0] == ExitCode.OK


def test_a_sync_whose_journal_sessions_are_killed_strands_nothing(
    syncing: Mirror, journal_url: str
) -> None:
    # pg_terminate_backend from another session, again and again: a transaction may be
    # cut in its middle, which the run may not repeat on its own; it may stop then, but
    # clearly, and what it did is found again by the next run. The node is slow enough
    # that each worker has a file in hand when a transaction is cut: a run stopped so
    # keeps its part (whole if the cut came between its fetch and its placement), and
    # the next run goes on from it. (A faster node let the run stop between files, most
    # times; a full suite's load once had it stop with two whole parts.)
    syncing.fake.node_bytes_per_second = 400_000
    stop = threading.Event()

    def kill_sessions() -> None:
        with psycopg.connect(libpq(journal_url), autocommit=True) as conn:
            while not stop.wait(0.01):
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = 'journal' AND pid <> pg_backend_pid()"
                )

    killer = threading.Thread(target=kill_sessions, daemon=True)
    with syncing.spawned("sync") as process:
        wait_for_placed(syncing, 3)
        killer.start()
        time.sleep(1.5)
        stop.set()
        killer.join(10)
        _, err = process.communicate(timeout=120)
    message = err.decode()
    assert process.returncode in (ExitCode.OK, ExitCode.JOURNAL), message
    parts: dict[int, int] = {}
    if process.returncode == ExitCode.JOURNAL:
        assert "lost its connection to the database" in message, message
        assert "Hint: check that the database server runs" in message
        placed = assert_journaled_placed_on_disk(syncing, journal_url)
        parts = parts_in_flight(syncing)
    else:
        placed = assert_nothing_stranded(syncing, journal_url)
    assert_the_next_run_finishes_without_fetching_again(syncing, placed, parts)


def halt_once_placed(mirror: Mirror, server: PostgresServer, placed: int) -> threading.Thread:
    """Given a running mirror, halt the journal's server (every session cut, none taken)
    once ``placed`` files are in the download folder; return the thread that does it."""

    def halt() -> None:
        wait_for_placed(mirror, placed)
        server.halt()

    halting = threading.Thread(target=halt, daemon=True)
    halting.start()
    return halting


def test_a_sync_stopped_by_its_journal_server_gone_journals_its_end_once_it_is_back(
    syncing: Mirror, server: PostgresServer, impatient: None
) -> None:
    # The server is away longer than the run waits for it (its patience made short): the
    # run stops at its next transaction (its files' ends are journaled a group at a time,
    # under 2 s apart) and the server is back a moment after: the run's end, and why, is
    # in the journal.
    halting = halt_once_placed(syncing, server, 3)
    resuming = threading.Thread(target=lambda: (halting.join(30), time.sleep(2.5), server.resume()))
    resuming.start()
    stopped = syncing.run("sync")
    resuming.join(30)
    assert stopped.code == ExitCode.JOURNAL, stopped.err
    line = history_line(syncing, 1)
    assert "[exit 7]" in line and the_error(stopped) in line, line
    assert "died" not in line and "killed, crashed" not in line, line


def test_a_sync_whose_journal_server_stays_away_has_its_end_journaled_by_the_next_run(
    syncing: Mirror, server: PostgresServer, impatient: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server is back only after the stopped run exited: the next run journals the end
    # the stopped one could not, rather than calling it killed or crashed.
    monkeypatch.setattr(engine, "LAST_WORD_SECONDS", 0.5)  # its last try need not be waited out
    halting = halt_once_placed(syncing, server, 3)
    started = time.monotonic()
    stopped = syncing.run("sync")
    took = time.monotonic() - started
    halting.join(30)
    server.resume()
    assert stopped.code == ExitCode.JOURNAL, stopped.err
    assert took < 20, f"the stopped run took {took:.1f} s to exit"
    # Before the next run (a day away, for a daily timer) history reads the kept end.
    line = history_line(syncing, 1)
    assert "[exit 7]" in line and the_error(stopped) in line, line
    assert syncing.run("sync").code == ExitCode.OK
    line = history_line(syncing, 1)
    assert "[exit 7]" in line and the_error(stopped) in line, line
    assert "died" not in line and "killed, crashed" not in line, line
