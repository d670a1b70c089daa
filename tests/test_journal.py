"""The journal against a real SQLite file and a real PostgreSQL server.

The portable tests (``any_journal``) run on both; each PostgreSQL test gets a database of its
own on the server of the ``postgres_url`` fixture (conftest.py): a throwaway server started for
the session, or $PUTIO_MIRROR_TEST_POSTGRES_URL (a role allowed to create databases).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

import putio_mirror
from putio_mirror.core.errors import JournalError
from putio_mirror.core.state import DownloadRecord, FileIdentity
from putio_mirror.fakeputio import FakePutio
from putio_mirror.journal.rows import FileProgress
from putio_mirror.journal.store import SCHEMA_VERSION, Journal
from tests.mirror_env import Mirror

T0 = datetime(2024, 3, 1, 2, 0, tzinfo=UTC)
HASH_A = "a" * 40
HASH_B = "b" * 40


def minutes(count: int) -> datetime:
    return T0 + timedelta(minutes=count)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    return tmp_path / "state" / "journal.sqlite3"


@pytest.fixture
def journal(db_file: Path) -> Iterator[Journal]:
    with Journal.open(sqlite_url(db_file)) as opened:
        yield opened


@pytest.fixture(params=["sqlite", "postgresql"])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a journal yet to be created on SQLite, and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "j.sqlite3")
        return
    # Asked for here, not as a parameter, so the server starts only when a PostgreSQL test runs.
    admin_url: str = request.getfixturevalue("postgres_url")
    with PostgresDatabase(admin_url) as url:
        yield url


@pytest.fixture
def any_journal(any_url: str) -> Iterator[Journal]:
    """A journal on SQLite, and on a fresh PostgreSQL database."""
    with Journal.open(any_url) as opened:
        yield opened


class PostgresDatabase:
    """Create a throwaway database on entering, drop it on leaving."""

    def __init__(self, admin_url: str) -> None:
        from sqlalchemy.engine import make_url

        self.admin_url = make_url(admin_url)
        self.name = f"putio_mirror_test_{uuid.uuid4().hex[:12]}"

    def _run(self, sql: str) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(sql))
        finally:
            engine.dispose()

    def __enter__(self) -> str:
        self._run(f'CREATE DATABASE "{self.name}"')
        return self.admin_url.set(database=self.name).render_as_string(hide_password=False)

    def __exit__(self, *exc_info: object) -> None:
        self._run(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def query(db_file: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(db_file)) as conn:
        return conn.execute(sql).fetchall()


def run_sql(url: str, *statements: str, **params: object) -> list[object]:
    """Given a URL, run the statements in one transaction; return the first column of the last.

    ``params`` are bound to every statement (``:name`` in the SQL).
    """
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            results = [conn.execute(text(sql), params) for sql in statements]
            return [row[0] for row in results[-1]] if results[-1].returns_rows else []
    finally:
        engine.dispose()


def schema_versions(url: str) -> list[object]:
    return run_sql(url, "SELECT version FROM schema_info")


# Legal input that PostgreSQL refused when keys and commands were VARCHAR(n).
LONG_HOST = "ip-10-0-0-1." + "h" * 171 + ".compute.internal"
LONG_NAME = "n" * 247 + ".torrent"  # 255 bytes, the longest name most filesystems allow


def use_long_names(journal: Journal) -> None:
    """Run, act on and claim a 255-byte name on a 200-character host; check they come back."""
    assert len(LONG_NAME.encode()) == 255 and len(LONG_HOST) == 200
    command = f"transfers cancel-seeding on {LONG_HOST}"
    run = journal.start_run(command, T0)
    key = f"reject:{LONG_NAME}"
    action = journal.action_started(run, "reject", key, LONG_NAME, T0)
    journal.action_finished(action, "done", T0)
    assert journal.recent_runs(1)[0].command == command
    assert [a.key for a in journal.actions_of(run)] == [key]
    owner = f"{LONG_HOST}:4242:0123456789abcdef"
    assert journal.claim(key, owner, timedelta(minutes=5))
    assert journal.claims()[key][0] == owner


# -- opening -------------------------------------------------------------------


def test_open_creates_folder_tables_schema_version_and_wal_mode(
    journal: Journal, db_file: Path
) -> None:
    tables = {row[0] for row in query(db_file, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"schema_info", "runs", "actions", "submissions", "downloads", "claims"} <= tables
    assert query(db_file, "SELECT version FROM schema_info") == [(SCHEMA_VERSION,)]
    assert query(db_file, "PRAGMA journal_mode") == [("wal",)]


def test_reopening_keeps_one_schema_version_row(db_file: Path) -> None:
    for _ in range(2):
        Journal.open(sqlite_url(db_file)).close()
    assert query(db_file, "SELECT version FROM schema_info") == [(SCHEMA_VERSION,)]


def test_a_255_byte_name_and_a_200_character_host_fit_on_both_databases(
    any_journal: Journal,
) -> None:
    use_long_names(any_journal)


# Run in another process, so modules this test session imported do not count.
ORM_PROBE = """
import sys
import threading
import time
from datetime import UTC, datetime
from putio_mirror.journal.store import Journal
on_import = "sqlalchemy.orm" in sys.modules
with Journal.open(sys.argv[1]) as journal:
    run = journal.start_run("sync", datetime.now(UTC))
    journal.recent_runs(), journal.actions_of(run), journal.facts()
print(on_import, "sqlalchemy.orm" in sys.modules)
"""


def test_the_journal_neither_imports_nor_uses_the_sqlalchemy_orm(tmp_path: Path) -> None:
    # Every timer-started run imports the journal; the ORM would add tens of ms to each.
    package_root = str(Path(putio_mirror.__file__).parent.parent)
    probe = subprocess.run(
        [sys.executable, "-c", ORM_PROBE, sqlite_url(tmp_path / "j.sqlite3")],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": package_root},
        check=False,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["False", "False"]


def test_corrupt_file_raises_journal_error_saying_to_move_it_aside(db_file: Path) -> None:
    db_file.parent.mkdir(parents=True)
    db_file.write_bytes(b"this is not a database, just garbage\x00\xff" * 200)
    with pytest.raises(JournalError) as caught:
        Journal.open(sqlite_url(db_file))
    assert "corrupt" in caught.value.message
    assert "move it aside" in caught.value.hint


def test_unsupported_database_is_refused_with_a_hint() -> None:
    with pytest.raises(JournalError) as caught:
        Journal.open("mysql://user:pw@127.0.0.1/db")
    assert "PostgreSQL" in caught.value.hint


def test_unreachable_server_error_hides_the_password() -> None:
    # Port 1 on loopback refuses at once: a quick, local connection failure.
    with pytest.raises(JournalError) as caught:
        Journal.open("postgresql+psycopg://mirror:hunter2secret@127.0.0.1:1/mirror")
    assert "hunter2secret" not in f"{caught.value.message} {caught.value.hint}"
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_a_writer_waiting_too_long_gets_a_locked_error(db_file: Path) -> None:
    with (
        Journal.open(sqlite_url(db_file), busy_timeout=0.05) as journal,
        closing(sqlite3.connect(db_file, isolation_level=None)) as holder,
    ):
        holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
        with pytest.raises(JournalError) as caught:
            journal.start_run("sync", T0)
        holder.execute("ROLLBACK")
    assert "locked" in caught.value.message
    assert "another process holds it" in caught.value.hint


_EXCLUSIVE_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode = DELETE")  # as a sqlite3 shell or a backup tool may leave it
conn.execute("BEGIN EXCLUSIVE")
conn.execute("DELETE FROM runs")
print("holding", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


@pytest.mark.parametrize("face", ["journal", "reader"])
def test_a_journal_another_process_holds_exclusively_is_refused_after_the_busy_timeout(
    db_file: Path, face: str
) -> None:
    """A rollback-journal database under another process's EXCLUSIVE lock cannot be
    switched to WAL: each try waited out the busy timeout, and there were a hundred tries
    per second of it (5 s: 40 minutes of every command, status and doctor too)."""
    from putio_mirror.journal.reader import JournalReader

    Journal.open(sqlite_url(db_file)).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", _EXCLUSIVE_HOLDER, str(db_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        started = time.monotonic()
        with pytest.raises(JournalError) as caught:
            if face == "journal":
                Journal.open(sqlite_url(db_file), busy_timeout=0.5).close()
            else:
                reader = JournalReader.open(sqlite_url(db_file), busy_timeout=0.5)
                assert reader is not None
                with reader:
                    reader.recent_runs(1)
        waited = time.monotonic() - started
    finally:
        holder.communicate("", timeout=10)
    assert "locked" in caught.value.message and "another process" in caught.value.hint
    assert waited < 3.0, f"waited {waited:.1f} s for a busy timeout of 0.5 s"


# -- the lock path ---------------------------------------------------------------


def test_lock_path_of_a_sqlite_journal_sits_beside_the_file(
    journal: Journal, db_file: Path
) -> None:
    assert journal.lock_path == db_file.with_name("journal.sqlite3.lock")


def test_lock_path_of_a_server_journal_ignores_the_password(tmp_path: Path) -> None:
    # Journal.open would connect; lock_path needs only the URL, so build it unopened.
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    def lock_for(url: str, runtime: Path) -> Path:
        engine = create_engine("sqlite://")
        try:
            return Journal(engine, make_url(url), runtime).lock_path
        finally:
            engine.dispose()

    first = lock_for("postgresql+psycopg://mirror:one@db.local/mirror", tmp_path)
    second = lock_for("postgresql+psycopg://mirror:two@db.local/mirror", tmp_path)
    other = lock_for("postgresql+psycopg://mirror:one@db.local/other", tmp_path)
    assert first == second != other
    assert first.parent == tmp_path
    assert "one" not in first.name


# -- runs and actions ------------------------------------------------------------


def test_runs_are_recorded_and_listed_newest_first(any_journal: Journal) -> None:
    first = any_journal.start_run("sync", minutes(0))
    any_journal.finish_run(first, minutes(5), 0, "3 downloads")
    second = any_journal.start_run("files download", minutes(10), dry_run=True)
    runs = any_journal.recent_runs()
    assert [run.id for run in runs] == [second, first]
    assert runs[0].finished_at is None and runs[0].exit_code is None and runs[0].dry_run
    assert runs[1].command == "sync" and runs[1].summary == "3 downloads"
    assert runs[1].started_at == minutes(0) and runs[1].finished_at == minutes(5)
    assert any_journal.recent_runs(limit=1) == runs[:1]


def test_action_lifecycle_records_outcome_error_and_detail(any_journal: Journal) -> None:
    run = any_journal.start_run("sync", minutes(0))
    done = any_journal.action_started(run, "upload", f"upload:{HASH_A}", "a.torrent", minutes(1))
    failed = any_journal.action_started(run, "download", "download:7", "a/b.mkv", minutes(2))
    any_journal.action_finished(done, "done", minutes(3), detail="transfer 12")
    any_journal.action_finished(failed, "failed", minutes(4), error="CRC32 mismatch")
    first, second = any_journal.actions_of(run)
    assert (first.id, first.kind, first.status, first.detail) == (
        done,
        "upload",
        "done",
        "transfer 12",
    )
    assert (second.target, second.status, second.error) == ("a/b.mkv", "failed", "CRC32 mismatch")
    assert second.started_at == minutes(2) and second.finished_at == minutes(4)
    assert any_journal.actions_of(run + 1) == ()


def test_attempts_count_earlier_actions_with_the_same_key(any_journal: Journal) -> None:
    first_run = any_journal.start_run("sync", minutes(0))
    any_journal.action_started(first_run, "download", "download:7", "x", minutes(1))
    any_journal.action_started(first_run, "download", "download:8", "y", minutes(1))
    second_run = any_journal.start_run("sync", minutes(60))
    again = any_journal.action_started(second_run, "download", "download:7", "x", minutes(61))
    other = any_journal.action_started(second_run, "cancel", "cancel:3", "t", minutes(61))
    attempts = {action.id: action.attempts for action in any_journal.actions_of(second_run)}
    assert attempts == {again: 2, other: 1}


def test_abandon_stale_actions_marks_only_started_ones_interrupted(any_journal: Journal) -> None:
    crashed = any_journal.start_run("sync", minutes(0))
    finished = any_journal.action_started(crashed, "upload", "upload:x", "x", minutes(1))
    any_journal.action_finished(finished, "done", minutes(2))
    left = any_journal.action_started(crashed, "download", "download:7", "y", minutes(3))
    assert any_journal.abandon_stale_actions(minutes(30)) == 1
    statuses = {action.id: action for action in any_journal.actions_of(crashed)}
    assert statuses[finished].status == "done"
    assert statuses[left].status == "interrupted"
    assert statuses[left].finished_at == minutes(30)
    assert any_journal.abandon_stale_actions(minutes(31)) == 0


def test_abandon_stale_actions_leaves_the_actions_a_live_claim_covers(
    any_url: str, any_journal: Journal
) -> None:
    lease = timedelta(minutes=10)
    started = {}
    for owner, key in [
        ("b:1:aa", "download:7"),
        ("c:2:bb", "download:8"),
        ("d:3:cc", "download:9"),
    ]:
        run = any_journal.start_run(f"sync on {owner}", minutes(0), owner=owner)
        started[key] = any_journal.action_started(run, "download", key, key, minutes(1))
        assert any_journal.claim(key, owner, lease)
    any_journal.release_all("c:2:bb")  # a run that died and whose claims were freed
    # One whose lease ran out on the database's clock: its host stopped renewing long ago.
    run_sql(any_url, "UPDATE claims SET expires_at = '2000-01-01 00:00:00' WHERE key = :key",
            key="download:9")  # fmt: skip
    assert any_journal.abandon_stale_actions(minutes(30)) == 2
    statuses = {
        action.key: action.status
        for run in any_journal.recent_runs()
        for action in any_journal.actions_of(run.id)
    }
    assert statuses == {
        "download:7": "started",
        "download:8": "interrupted",
        "download:9": "interrupted",
    }


def test_action_finished_refuses_a_status_that_is_not_an_outcome(journal: Journal) -> None:
    run = journal.start_run("sync", T0)
    action = journal.action_started(run, "upload", "upload:x", "x", T0)
    with pytest.raises(ValueError, match="started"):
        journal.action_finished(action, "started", T0)
    with pytest.raises(ValueError, match="finished"):
        journal.action_finished(action, "finished", T0)


def test_naive_datetimes_are_refused(journal: Journal) -> None:
    with pytest.raises(ValueError, match="aware"):
        journal.start_run("sync", datetime(2024, 3, 1, 2, 0))


def test_datetimes_come_back_as_the_same_instant_in_utc(any_journal: Journal) -> None:
    paris_summer = timezone(timedelta(hours=2))
    local = datetime(2024, 7, 1, 4, 30, 15, 250_000, tzinfo=paris_summer)
    run = any_journal.start_run("sync", local)
    (record,) = any_journal.recent_runs()
    assert record.id == run
    assert record.started_at == local
    assert record.started_at.utcoffset() == timedelta(0)
    assert record.started_at.hour == 2 and record.started_at.microsecond == 250_000


# -- submissions and downloads -----------------------------------------------------


def test_record_submission_is_idempotent_and_keeps_a_known_transfer_id(
    any_journal: Journal,
) -> None:
    any_journal.record_submission(HASH_A, None, "Show S01E01", minutes(0))
    any_journal.record_submission(HASH_A, 41, "Show S01E01", minutes(1))
    any_journal.record_submission(HASH_A, None, "Show S01E01 again", minutes(2))
    any_journal.record_submission(HASH_B, 42, "Film", minutes(3))
    facts = any_journal.facts()
    assert set(facts.submissions) == {HASH_A, HASH_B}
    first = facts.submissions[HASH_A]
    assert (first.transfer_id, first.name, first.submitted_at) == (41, "Show S01E01 again", T0)
    assert facts.own_transfer_ids == frozenset({41, 42})


def test_progress_then_verification_shows_in_facts(any_journal: Journal) -> None:
    any_journal.record_progress(7, "Show/e01.mkv", 1000, "0badf00d", 256, minutes(0))
    assert any_journal.facts().downloads[7] == DownloadRecord(
        7, "Show/e01.mkv", 1000, "0badf00d", 256, None
    )
    any_journal.record_progress(7, "Show/e01.mkv", 1000, "0badf00d", 512, minutes(1))
    any_journal.mark_verified(7, "Show/e01.mkv", 1000, "0badf00d", minutes(2))
    record = any_journal.facts().downloads[7]
    assert record.is_verified and record.verified_at == minutes(2)
    assert record.bytes_done == 1000


def test_reset_download_forgets_progress_and_placement_but_keeps_the_failure_count(
    any_journal: Journal,
) -> None:
    any_journal.mark_verified(7, "e01.mkv", 1000, "0badf00d", minutes(0))
    any_journal.mark_placed({7: "Show/e01.mkv"}, minutes(1))
    assert any_journal.record_failure(7, minutes(2), "gone") == 1
    any_journal.reset_download(7)
    record = any_journal.facts().downloads[7]
    assert (record.bytes_done, record.verified_at, record.relative_path) == (0, None, "e01.mkv")
    assert (record.placed_at, record.placed_path, record.failures) == (None, None, 1)
    assert any_journal.record_failure(7, minutes(3), "gone") == 2


def test_failures_of_a_file_without_progress_show_in_facts_with_their_last_error(
    any_journal: Journal,
) -> None:
    counts = [any_journal.record_failure(9, minutes(n), f"HTTP 50{n}") for n in range(3)]
    assert counts == [1, 2, 3]
    assert any_journal.facts().downloads[9] == DownloadRecord(
        9, "", 0, None, failures=3, last_failure_at=minutes(2), last_error="HTTP 502"
    )
    any_journal.record_progress(9, "film.mkv", 10, None, 5, minutes(3))
    record = any_journal.facts().downloads[9]
    assert (record.relative_path, record.bytes_done, record.failures) == ("film.mkv", 5, 3)
    assert any_journal.record_failure(9, minutes(4), "timeout") == 4


def test_verification_clears_the_failure_count_and_last_error(any_journal: Journal) -> None:
    any_journal.record_failure(7, minutes(0), "CRC32 mismatch")
    any_journal.mark_verified(7, "e01.mkv", 10, None, minutes(1))
    record = any_journal.facts().downloads[7]
    assert (record.failures, record.last_error, record.last_failure_at) == (0, None, minutes(0))
    assert not record.is_placed
    assert any_journal.record_failure(7, minutes(2), "gone") == 1


def test_mark_placed_records_where_each_file_went_in_one_call(any_journal: Journal) -> None:
    for file_id in (7, 8):
        any_journal.mark_verified(file_id, f"Show/e0{file_id}.mkv", 10, None, minutes(0))
    any_journal.mark_placed({7: "Show/e07.mkv", 8: "Show/e08 (2).mkv", 99: "unknown"}, minutes(5))
    any_journal.mark_placed({}, minutes(6))
    downloads = any_journal.facts().downloads
    assert [(downloads[n].placed_path, downloads[n].placed_at) for n in (7, 8)] == [
        ("Show/e07.mkv", minutes(5)),
        ("Show/e08 (2).mkv", minutes(5)),
    ]
    assert downloads[7].is_placed and 99 not in downloads


def test_times_of_downloads_read_back_as_the_same_instants_in_utc(any_journal: Journal) -> None:
    paris = timezone(timedelta(hours=1))
    verified = datetime(2024, 3, 1, 3, 4, 5, 678901, tzinfo=paris)
    any_journal.mark_verified(7, "e01.mkv", 10, None, verified)
    any_journal.mark_placed({7: "e01.mkv"}, datetime(2024, 3, 1, 9, 0, tzinfo=paris))
    any_journal.record_failure(7, minutes(3), "gone")
    record = any_journal.facts().downloads[7]
    times = (record.verified_at, record.placed_at, record.last_failure_at)
    assert times == (verified, minutes(360), minutes(3))
    assert all(when is not None and when.utcoffset() == timedelta(0) for when in times)


def test_download_times_sqlite_kept_in_other_shapes_are_read_too(db_file: Path) -> None:
    with Journal.open(sqlite_url(db_file)) as journal:
        journal.mark_verified(7, "e01.mkv", 10, None, minutes(0))
        journal.mark_verified(8, "e02.mkv", 10, None, minutes(0))
    with sqlite3.connect(db_file) as conn:  # as an older version or a hand may have left them
        conn.execute("UPDATE downloads SET placed_at = '2024-03-01 02:05:00' WHERE file_id = 7")
        conn.execute("UPDATE downloads SET placed_at = '2024-03-02' WHERE file_id = 8")
    with Journal.open(sqlite_url(db_file)) as journal:
        downloads = journal.facts().downloads
    assert downloads[7].placed_at == minutes(5)
    assert downloads[8].placed_at == datetime(2024, 3, 2, tzinfo=UTC)


def test_sqlite_records_are_read_fast_as_the_typed_way_reads_them(db_file: Path) -> None:
    # The fast path falls back to the typed one on any ValueError or TypeError: one that
    # no longer read today's rows would only be slow, so it is called here on its own.
    from putio_mirror.journal import files as journal_files

    with Journal.open(sqlite_url(db_file)) as journal:
        journal.mark_verified(7, "Show/e01.mkv", 10, "0badf00d", minutes(1))
        journal.mark_placed({7: "Show/e01 (2).mkv"}, minutes(2), {7: FileIdentity(5, 6)})
        journal.record_progress(8, "Show/e02.mkv", 10, None, 4, minutes(3))
        journal.record_failure(9, minutes(4), "gone")  # a failure-only row
        with journal._db.read() as conn:
            # (and as a reader reads a journal from before schema 6: no identity known)
            ways = (
                (journal_files._RECORDS, FileIdentity(5, 6)),
                (journal_files._RECORDS_BEFORE_IDENTITIES, None),
            )
            for query, identity in ways:
                fast = journal_files._sqlite_records(conn, query)
                typed = {row[0]: DownloadRecord(*row) for row in conn.execute(query)}
                assert fast == typed and sorted(fast) == [7, 8, 9]
                assert all(type(record) is DownloadRecord for record in fast.values())
                assert fast[7].placed_identity == identity


def test_a_placement_forgotten_forgets_which_file_was_placed(any_journal: Journal) -> None:
    # Placed again later, the file there then is another: an identity kept from before
    # would let the mount take a stranger's file for it, or refuse ours.
    identity = FileIdentity(41, 1_700_000_000_000_000_001)
    any_journal.mark_verified(7, "e01.mkv", 10, None, minutes(1), placed=True, identity=identity)
    assert any_journal.facts().downloads[7].placed_identity == identity
    any_journal.reset_download(7)
    assert any_journal.facts().downloads[7].placed_identity is None
    any_journal.mark_verified(7, "e01.mkv", 10, None, minutes(2))
    any_journal.mark_placed({7: "e01.mkv"}, minutes(3), {7: identity})
    assert any_journal.facts().downloads[7].placed_identity == identity
    any_journal.forget_placement([7])
    record = any_journal.facts().downloads[7]
    assert (record.is_placed, record.placed_inode, record.placed_mtime_ns) == (False, None, None)


def test_progress_never_undoes_a_verification(any_journal: Journal) -> None:
    # A host that lost its claim records where it stopped after another host verified it.
    any_journal.mark_verified(7, "e01.mkv", 1000, "0badf00d", minutes(1))
    any_journal.record_progress(7, "e01.mkv", 1000, "0badf00d", 256, minutes(2))
    record = any_journal.facts().downloads[7]
    assert (record.verified_at, record.bytes_done) == (minutes(1), 1000)
    any_journal.reset_download(7)
    any_journal.record_progress(7, "e01.mkv", 1000, "0badf00d", 256, minutes(3))
    assert any_journal.facts().downloads[7].bytes_done == 256


def test_facts_of_an_empty_journal_are_empty(any_journal: Journal) -> None:
    facts = any_journal.facts()
    assert (dict(facts.submissions), dict(facts.downloads), facts.own_transfer_ids) == (
        {},
        {},
        frozenset(),
    )


# -- two processes -----------------------------------------------------------------


def test_two_journals_on_one_file_see_each_others_writes(db_file: Path) -> None:
    url = sqlite_url(db_file)
    with Journal.open(url) as runner, Journal.open(url) as viewer:
        assert viewer.facts().downloads == {}
        runner.record_progress(7, "e01.mkv", 100, None, 50, T0)
        assert viewer.facts().downloads[7].bytes_done == 50
        run = viewer.start_run("status", T0)
        runner.abandon_stale_actions(T0)
        assert [record.id for record in runner.recent_runs()] == [run]


# -- commands that only read -------------------------------------------------------


def test_a_dry_run_on_a_fresh_machine_creates_no_journal(
    mirror: Mirror, fake_putio: FakePutio
) -> None:
    fake_putio.add_file("film.mkv", size=1000)
    result = mirror.run("sync", "--dry-run")
    assert result.code == 0, result.err
    assert "film.mkv" in result.out
    assert not mirror.journal.parent.exists()
    assert mirror.run("history").out.strip() == "No runs recorded yet."
    assert not mirror.journal.parent.exists()


def test_a_dry_run_over_an_empty_journal_file_leaves_it_empty(
    mirror: Mirror, fake_putio: FakePutio
) -> None:
    """A zero-byte journal (made by `touch`, or a first run killed before its first commit)
    knows nothing: a dry run plans from nothing, and wrote the journal's tables into it."""
    fake_putio.add_file("movie.mkv", size=1000)
    mirror.journal.parent.mkdir(parents=True)
    mirror.journal.touch()
    result = mirror.run("sync", "--dry-run")
    assert result.code == 0 and "movie.mkv" in result.out
    assert mirror.journal.stat().st_size == 0
    assert sorted(path.name for path in mirror.journal.parent.iterdir()) == ["journal.sqlite3"]


def test_a_dry_run_reads_an_existing_journal(mirror: Mirror, fake_putio: FakePutio) -> None:
    fake_putio.add_file("film.mkv", size=1000)
    assert mirror.run("files", "download").code == 0
    (mirror.downloads / "film.mkv").unlink()  # moved away by the media manager
    assert "film.mkv" not in mirror.run("sync", "--dry-run").out


def test_a_dry_run_peeks_at_a_sqlite_journal_as_the_journal_reads_it(db_file: Path) -> None:
    from putio_mirror.core.state import Desire
    from putio_mirror.journal.peek import peek_facts

    assert peek_facts(sqlite_url(db_file)) is None  # missing: Journal.open_existing tells
    with Journal.open(sqlite_url(db_file)) as journal:
        journal.record_submission(HASH_A, 41, "Show", minutes(0))
        journal.record_submission("c" * 40, None, "Magnet", minutes(1))
        journal.mark_verified(7, "tv/Show/a.mkv", 10, "0badf00d", minutes(1))
        journal.mark_placed({7: "tv/Show/a (2).mkv"}, minutes(2), {7: FileIdentity(-3, 12)})
        journal.record_progress(8, "tv/Show/b.mkv", 10, None, 4, minutes(3))
        journal.record_failure(9, minutes(4), "gone")  # a failure-only row
        book = journal.desires
        for number, info_hash in enumerate(("d" * 40, "e" * 40, "f" * 40)):
            book.add(Desire(info_hash, 0, f"D{number}", "torrent", minutes(number), size=5,
                            labels=("tv", "4k")), b"d4:infode")  # fmt: skip
        book.change(["d" * 40], paused=True, seed_ratio_limit=1.5, seed_idle_minutes=30)
        book.locate("e" * 40, 6, "tv/E", ((7, "tv/E/a.mkv", 5), (8, "tv/E/b.mkv", 6)))
        book.reorder(["f" * 40, "d" * 40])
        book.remove(["e" * 40], minutes(5), purge=True)
        facts = journal.facts()
    assert peek_facts(sqlite_url(db_file)) == facts
    assert (len(facts.submissions), len(facts.downloads), len(facts.desires)) == (2, 3, 2)
    assert facts.downloads[7].placed_identity == FileIdentity(-3, 12)
    assert facts.purged_items == {6} and facts.removed_ids == {6, 7, 8}
    with sqlite3.connect(db_file) as conn:  # an older schema is the journal's to upgrade
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    assert peek_facts(sqlite_url(db_file)) is None


def test_hostile_names_read_alike_by_the_journal_and_by_a_dry_runs_peek(db_file: Path) -> None:
    from putio_mirror.journal.peek import peek_facts

    names = ['tv/"quoted" \\ back\\slash.mkv', "tv/tab\there\x01\x7f.mkv", "tv/é 🎬 \u2028.mkv"]
    with Journal.open(sqlite_url(db_file)) as journal:
        for file_id, name in enumerate(names, start=1):
            journal.record_progress(file_id, name, 2**40 + file_id, "0badf00d", file_id, minutes(1))
        journal.mark_placed({1: names[0]}, minutes(2), {1: FileIdentity(2**62, -(2**62))})
        facts = journal.facts()
    assert [facts.downloads[n].relative_path for n in (1, 2, 3)] == names
    assert facts.downloads[1].placed_identity == FileIdentity(2**62, -(2**62))
    assert peek_facts(sqlite_url(db_file)) == facts


def test_rows_read_at_once_are_the_rows_read_one_by_one_even_where_sqlite_cannot_make_them_json(
    tmp_path: Path,
) -> None:
    from putio_mirror.journal.rows import rows_at_once

    with closing(sqlite3.connect(tmp_path / "rows.sqlite3")) as conn:
        conn.execute("CREATE TABLE t (a, b, c)")
        rows = [(1, "x", None), (2, 2.5, -(2**63)), (3, "", 2**63 - 1)]
        conn.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
        query = "SELECT a, b, c FROM t"
        assert sorted(rows_at_once(conn, query)) == [list(r) for r in rows]
        conn.execute("UPDATE t SET b = X'00ff' WHERE a = 2")  # a BLOB: no JSON for it
        assert sorted(rows_at_once(conn, query))[1] == [2, b"\x00\xff", -(2**63)]


def voluntary_switches_reading(read: Callable[[], object]) -> int:
    """Run ``read`` on this thread while another builds values in Python, as put.io's
    listings are parsed while a run reads its journal; return how many times this thread
    gave up the CPU meanwhile (waiting for the GIL, mostly)."""
    import resource

    stop = threading.Event()

    def build() -> None:
        while not stop.is_set():
            [str(number) for number in range(1000)]

    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)  # each wait for the GIL short: the old way took 0.6 s, not 15
    builder = threading.Thread(target=build)
    builder.start()
    try:
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw
        read()
        return resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw - before
    finally:
        stop.set()
        builder.join()
        sys.setswitchinterval(interval)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RUSAGE_THREAD is Linux's")
def test_the_journals_files_are_read_in_one_go_not_a_wait_for_the_gil_a_row(db_file: Path) -> None:
    # sqlite3 lets go of the GIL at every row: beside a thread parsing put.io's listings,
    # each row of 100,000 waited out a switch interval (5 ms): minutes, for a 0.3 s read.
    from putio_mirror.journal.peek import peek_facts

    rows = 3000
    with Journal.open(sqlite_url(db_file)) as journal, journal.batch():
        for file_id in range(rows):
            journal.record_progress(file_id, f"f/{file_id}.bin", 10, None, 1, minutes(1))
    with Journal.open(sqlite_url(db_file)) as journal:
        assert voluntary_switches_reading(journal.facts) < rows / 3
        # the RPC door's every poll, while a sync's threads work beside it
        everyone = list(range(rows))
        progress = journal.desires.progress_of
        assert voluntary_switches_reading(lambda: progress(everyone)) < rows / 3
    assert voluntary_switches_reading(lambda: peek_facts(sqlite_url(db_file))) < rows / 3


def test_a_batch_is_one_transaction_all_or_nothing(any_journal: Journal) -> None:
    lease = timedelta(minutes=10)
    run_id = any_journal.start_run("sync", T0)
    with pytest.raises(RuntimeError), any_journal.batch():
        assert any_journal.claim("download:1", "me", lease)
        any_journal.action_started(run_id, "download", "download:1", "a.mkv", T0)
        raise RuntimeError("killed between two lines")
    assert any_journal.claims() == {}
    assert any_journal.actions_of(run_id) == ()


def test_a_batch_sees_its_own_writes_and_others_see_them_at_its_end(any_journal: Journal) -> None:
    lease = timedelta(minutes=10)
    with any_journal.batch():
        any_journal.mark_verified(7, "a.mkv", 10, None, T0, placed=True)
        assert any_journal.is_verified(7)
        assert any_journal.claim("download:7", "me", lease)
        with any_journal.batch():  # nested: part of the same transaction
            any_journal.release("download:7", "me")
    assert any_journal.is_verified(7) and any_journal.claims() == {}


def test_together_commits_before_returning_and_one_failure_spoils_nobody_elses_work(
    any_journal: Journal,
) -> None:
    """Work handed in while another thread commits waits, then goes in one transaction;
    if one work of that group fails, the others are run again alone and kept."""
    lease = timedelta(minutes=10)
    inside, go_on = threading.Event(), threading.Event()
    runs: Counter[str] = Counter()
    outcomes: dict[str, object] = {}

    def first() -> str:
        inside.set()
        go_on.wait(10)  # holds the commit while the others hand in their work
        return "first"

    def good() -> bool:
        runs["good"] += 1
        return any_journal.claim("download:1", "me", lease)

    def bad() -> None:
        runs["bad"] += 1
        any_journal.claim("download:2", "me", lease)
        raise RuntimeError("this work fails")

    def hand_in(name: str, work: Callable[[], object]) -> None:
        try:
            outcomes[name] = any_journal.together(work)
        except RuntimeError as error:
            outcomes[name] = error

    leader = threading.Thread(target=hand_in, args=("first", first))
    leader.start()
    assert inside.wait(10)
    pairs = (("good", good), ("bad", bad))
    others = [threading.Thread(target=hand_in, args=pair) for pair in pairs]
    for thread in others:
        thread.start()
    while len(any_journal._group._pending) < 2:  # both wait behind the leader's commit
        time.sleep(0.01)
    go_on.set()
    for thread in [leader, *others]:
        thread.join(10)
    assert outcomes["first"] == "first" and outcomes["good"] is True
    assert isinstance(outcomes["bad"], RuntimeError)
    assert runs == {"good": 2, "bad": 2}  # once in their group, then each alone
    assert set(any_journal.claims()) == {"download:1"}


def test_together_does_a_groups_first_once_before_its_transaction(journal: Journal) -> None:
    """Files renamed into one folder and journaled together cost one sync of it, done
    before any of them is journaled; a failed ``first`` fails only the work behind it."""
    inside, go_on = threading.Event(), threading.Event()
    order: list[str] = []
    outcomes: dict[str, object] = {}

    def sync() -> None:
        order.append("sync")

    def broken() -> None:
        raise OSError("no sync")

    def work(name: str) -> Callable[[], str]:
        def journaled() -> str:
            if name == "first":
                inside.set()
                go_on.wait(10)
            order.append(name)
            return name

        return journaled

    def hand_in(name: str, first: Callable[[], None] | None) -> None:
        try:
            outcomes[name] = journal.together(work(name), first)
        except OSError as error:
            outcomes[name] = error

    leader = threading.Thread(target=hand_in, args=("first", None))
    leader.start()
    assert inside.wait(10)
    pairs = (("a", sync), ("b", sync), ("c", broken))
    others = [threading.Thread(target=hand_in, args=pair) for pair in pairs]
    for thread in others:
        thread.start()
    while len(journal._group._pending) < 3:
        time.sleep(0.01)
    go_on.set()
    for thread in [leader, *others]:
        thread.join(10)
    assert order[0] == "first" and order[1] == "sync" and sorted(order[2:]) == ["a", "b"]
    assert outcomes["a"] == "a" and outcomes["b"] == "b"
    assert isinstance(outcomes["c"], OSError)


def test_a_groups_ends_are_written_together_at_its_end_or_not_at_all(
    any_journal: Journal,
) -> None:
    """In a group commit, verified marks, action ends and claim releases wait for the end
    of the transaction and go as one statement each; a failure drops them all."""
    lease = timedelta(minutes=10)
    run_id = any_journal.start_run("sync", T0, owner="me")
    ids = {}
    for file_id in (1, 2, 3):
        assert any_journal.claim(f"download:{file_id}", "me", lease)
        ids[file_id] = any_journal.action_started(
            run_id, "download", f"download:{file_id}", f"f{file_id}", T0
        )

    def end(file_id: int) -> None:
        any_journal.mark_verified(file_id, f"f{file_id}", 10, None, T0, placed=file_id == 2)
        any_journal.action_finished(ids[file_id], "done", T0, detail="ok")
        any_journal.release(f"download:{file_id}", "me")

    with pytest.raises(RuntimeError), any_journal._db.deferring_batch():
        end(3)
        raise RuntimeError("killed before the commit")
    with any_journal._db.deferring_batch():
        end(1)
        end(2)
    facts = any_journal.facts().downloads
    assert facts[1].verified_at is not None and facts[1].placed_path is None
    assert facts[2].placed_path == "f2" and 3 not in facts
    assert set(any_journal.claims()) == {"download:3"}
    statuses = {action.key: action.status for action in any_journal.actions_of(run_id)}
    assert statuses == {"download:1": "done", "download:2": "done", "download:3": "started"}


def test_a_groups_ends_store_what_the_same_writes_made_at_once_store(
    any_url: str, any_journal: Journal
) -> None:
    """A group's ends are bound by hand (``engine._BoundWrite``), not by SQLAlchemy: the
    values stored must be the ones SQLAlchemy stores, times included, on both databases."""
    moment = datetime(2024, 3, 1, 4, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    run_id = any_journal.start_run("sync", T0, owner="me")
    first, second = (any_journal.action_started(run_id, "download", k, k, T0) for k in "ab")

    def end(file_id: int, action_id: int) -> None:
        any_journal.mark_verified(file_id, "f.bin", 10, "0badcafe", moment, placed=True)
        any_journal.action_finished(action_id, "failed", moment, error="e", detail="d")

    end(1, first)
    with any_journal._db.deferring_batch():
        end(2, second)
    for table, columns in (
        ("downloads", ("verified_at", "updated_at", "placed_at", "placed_path", "last_error")),
        ("actions", ("status", "finished_at", "error", "detail")),
    ):
        key = "file_id" if table == "downloads" else "id"
        for column in columns:
            sql = f"SELECT {column} FROM {table} ORDER BY {key}"  # noqa: S608 (our names)
            at_once, deferred = run_sql(any_url, sql)
            assert at_once == deferred, column
    assert any_journal.facts().downloads[2].verified_at == moment


def test_desires_are_kept_once_by_info_hash_changed_removed_and_added_again(
    any_journal: Journal,
) -> None:
    from putio_mirror.core.state import Desire

    book = any_journal.desires
    wanted = Desire(HASH_A, 0, "Show", "torrent", minutes(0), size=5, category="tv",
                    labels=("tv", "4k"))  # fmt: skip
    assert book.add(wanted, b"d4:infode") == (1, True)
    assert book.add(wanted, b"d4:infode") == (1, False)
    assert book.add(Desire("b" * 40, 0, "Magnet", "magnet", minutes(1)), None) == (2, True)
    book.change([HASH_A], paused=True, seed_ratio_limit=1.5, labels=("films",))
    book.locate(HASH_A, 6, "tv/Show", ((7, "tv/Show/a.mkv", 5),))
    listed = book.listing()
    assert listed[HASH_A].paused and listed[HASH_A].seed_ratio_limit == 1.5
    assert listed[HASH_A].labels == ("films",) and listed[HASH_A].item_files == (
        (7, "tv/Show/a.mkv", 5),
    )
    assert book.torrent(HASH_A) == b"d4:infode" and book.torrent("b" * 40) is None
    book.remove([HASH_A], minutes(2), purge=True)
    book.remove(["b" * 40], minutes(2))
    assert book.listing() == {}
    facts = any_journal.facts()
    assert (facts.removed_desires, facts.purged_items) == ({HASH_A, "b" * 40}, {6})
    assert facts.removed_ids == {6, 7}  # its item and its file, as located
    assert book.add(wanted, b"d4:infode") == (1, True)  # its number again
    assert set(book.listing()) == {HASH_A} and not book.listing()[HASH_A].paused
    assert any_journal.facts().purged_items == frozenset()
    any_journal.record_progress(7, "tv/Show/a.mkv", 5, None, 3, minutes(3))
    assert book.progress_of([7, 8]) == {7: FileProgress(3, False, None)}
    any_journal.mark_verified(8, "tv/Show/b.srt", 2, None, minutes(4), placed=True)
    any_journal.record_failure(7, minutes(5), "the node answered HTTP 500")
    assert book.progress_of([7, 8, 9]) == {  # its failures too: why an RPC item is stuck
        7: FileProgress(3, False, None, 1, minutes(5), "the node answered HTTP 500"),
        8: FileProgress(2, True, "tv/Show/b.srt"),
    }


def test_a_journal_with_no_room_says_so_and_what_to_do(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    from putio_mirror.journal.engine import translate_error

    engine = create_engine(f"sqlite:///{tmp_path / 'journal.sqlite3'}")
    with pytest.raises(OperationalError) as caught, engine.begin() as conn:
        # SQLite's own "database or disk is full", as a full disk gives it
        conn.execute(text("CREATE TABLE t (x TEXT)"))
        conn.execute(text("PRAGMA max_page_count = 2"))
        conn.execute(text("INSERT INTO t VALUES (:x)"), [{"x": "x" * 4000}] * 4)
    error = translate_error(caught.value, "sqlite:///journal.sqlite3")
    assert "has no room" in error.message and "free some space" in error.hint


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 12, 1, 20, 0, tzinfo=UTC),
        datetime(2026, 3, 1, 1, 2, 3, 999_999, tzinfo=timezone(timedelta(hours=-5))),
        datetime(1, 1, 1, 0, 0, 0, 7, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        None,
    ],
)
def test_a_time_is_written_to_sqlite_as_sqlalchemy_would_write_it(moment: datetime | None) -> None:
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.types import TypeDecorator

    from putio_mirror.journal.schema import UtcDateTime

    dialect = sqlite.dialect()
    ours = UtcDateTime().dialect_impl(dialect)
    generic = TypeDecorator.bind_processor(ours, dialect)  # process_bind_param, then DATETIME's
    fast = ours.bind_processor(dialect)
    assert generic is not None and fast is not None
    assert fast(moment) == generic(moment)  # the same text, so times still compare as text
