"""Every released journal schema opens, keeps its rows and ends equal to a new journal.

The journals are the ones released putio-mirrors created, captured from their own code on
SQLite and PostgreSQL with rows written through their own API (tests/journal_schemas/,
``capture.py`` there). Each is replayed into a fresh database, opened with this code, and
compared table by table, through SQLAlchemy's inspector, with a journal created new.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import putio_mirror
from putio_mirror.core.errors import JournalError
from putio_mirror.core.naming import STAGING_DIR_NAME
from putio_mirror.journal.migrations import HEAD
from putio_mirror.journal.store import SCHEMA_VERSION, Journal
from tests.journal_schemas import replay
from tests.mirror_env import Mirror
from tests.test_journal import PostgresDatabase, run_sql, sqlite_url, use_long_names

# The schema versions putio-mirror released; each has its captured journals in journal_schemas.
RELEASED = (1, 2, 3)
AT = datetime(2024, 3, 1, 2, 0, tzinfo=UTC)
PACKAGE_ROOT = str(Path(putio_mirror.__file__).parent.parent)


@pytest.fixture(params=["sqlite", "postgresql"])
def url_maker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A maker of URLs of new empty databases, all on SQLite or all on PostgreSQL."""
    if request.param == "sqlite":
        names = iter(range(100))
        yield lambda: sqlite_url(tmp_path / f"j{next(names)}.sqlite3")
        return
    admin_url: str = request.getfixturevalue("postgres_url")
    databases: list[PostgresDatabase] = []

    def make() -> str:
        databases.append(PostgresDatabase(admin_url))
        return databases[-1].__enter__()

    yield make
    for database in databases:
        database.__exit__(None, None, None)


def layout(url: str) -> dict[str, object]:
    """Given a URL, return every table's columns, keys and indexes, as the inspector sees them.

    SQLite ignores a declared length and keeps any string as text, and it cannot alter a
    column: a journal upgraded there keeps the VARCHAR(n) of its day. So on SQLite every
    string type counts as one; on PostgreSQL, which enforces them, types compare exactly.
    """
    from sqlalchemy import String, create_engine, inspect

    engine = create_engine(url)
    try:
        inspector = inspect(engine)
        is_sqlite = engine.dialect.name == "sqlite"

        def spelled(kind: Any) -> str:
            return "string" if is_sqlite and isinstance(kind, String) else repr(kind)

        tables: dict[str, object] = {}
        for name in sorted(inspector.get_table_names()):
            columns = [
                (c["name"], spelled(c["type"]), c["nullable"], c.get("default"))
                for c in inspector.get_columns(name)
            ]
            indexes = sorted(
                (i["name"], tuple(i["column_names"]), i["unique"])
                for i in inspector.get_indexes(name)
            )
            tables[name] = {
                "columns": columns,
                "primary key": inspector.get_pk_constraint(name),
                "foreign keys": inspector.get_foreign_keys(name),
                "unique": inspector.get_unique_constraints(name),
                "indexes": indexes,
            }
        return tables
    finally:
        engine.dispose()


def stored(url: str) -> tuple[list[object], list[object]]:
    """Given a journal's URL, return its alembic_version and schema_info rows."""
    revision = run_sql(url, "SELECT version_num FROM alembic_version")
    return revision, run_sql(url, "SELECT version FROM schema_info")


def check_captured_rows(journal: Journal, version: int) -> None:
    """Given an upgraded journal, check the rows its old putio-mirror wrote (capture.py)."""
    first, crashed = sorted(journal.recent_runs(), key=lambda run: run.id)
    assert (first.command, first.exit_code, first.summary, first.owner) == (
        "sync",
        0,
        "1 downloaded",
        None,
    )
    assert crashed.finished_at is None and not crashed.dry_run
    done, failed = journal.actions_of(first.id)
    assert (done.key, done.status, done.detail) == ("download:7", "done", "10 B")
    assert (failed.status, failed.error) == ("failed", "put.io answered 500")
    assert [action.status for action in journal.actions_of(crashed.id)] == ["started"]
    facts = journal.facts()
    assert facts.submissions["a" * 40].transfer_id == 41
    assert facts.submissions["b" * 40].transfer_id is None
    film, extra = facts.downloads[7], facts.downloads[8]
    assert film.verified_at == AT + timedelta(minutes=2) and film.crc32 == "0badf00d"
    # Before schema 3 a verified file was in place: it stays mirrored, not fetched again.
    assert (film.placed_path, film.placed_at) == ("Film/film.mkv", film.verified_at)
    assert (extra.bytes_done, extra.is_verified, extra.is_placed) == (40, False, False)
    assert journal.record_failure(9, AT, "again") == 3  # two failures came with the journal
    if version >= 2:
        assert journal.claims()["download:8"][0] == "host-a:42:feed"


@pytest.mark.parametrize("version", RELEASED)
def test_a_released_journal_upgrades_keeping_its_rows_to_a_new_journals_layout(
    url_maker: Any, version: int
) -> None:
    old_url, new_url = url_maker(), url_maker()
    replay(old_url, version)
    with Journal.open(old_url) as journal:
        check_captured_rows(journal, version)
        use_long_names(journal)  # PostgreSQL refused these before schema 3 widened the keys
    Journal.open(new_url).close()
    assert layout(old_url) == layout(new_url)
    assert stored(old_url) == stored(new_url) == ([HEAD], [SCHEMA_VERSION])


def schema_5_journal(url: str) -> None:
    """Given an empty database, lay out the journal schema 5 made (its revisions, frozen)
    and the rows a run of its day wrote: a file placed, one verified in staging, one
    failing."""
    from alembic import command
    from sqlalchemy import create_engine

    from putio_mirror.journal.migrations.runner import alembic_config

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0005")
    finally:
        engine.dispose()
    run_sql(
        url,
        "INSERT INTO schema_info (id, version) VALUES (1, 5)",
        "INSERT INTO downloads (file_id, relative_path, size, crc32, bytes_done, verified_at,"
        " updated_at, failures, placed_at, placed_path) VALUES"
        " (7, 'Film/film.mkv', 10, '0badf00d', 10, :at, :at, 0, :at, 'Film/film.mkv'),"
        " (8, 'Film/extra.mkv', 20, NULL, 20, :at, :at, 0, NULL, NULL)",
        "INSERT INTO downloads (file_id, bytes_done, failures, last_failure_at, last_error)"
        " VALUES (9, 0, 2, :at, 'the node answered 500')",
        at=AT.replace(tzinfo=None) if url.startswith("sqlite") else AT,
    )


def test_a_schema_5_journal_upgrades_its_placed_files_to_an_identity_not_known(
    url_maker: Any,
) -> None:
    # Schema 6 keeps the identity of each file as placed (inode, modification time): a
    # file placed before it is of no known identity, never of a made-up one; the mount
    # checks such a copy's CRC32 once before it reads it (tests/test_placed_copies.py).
    from putio_mirror.core.state import FileIdentity
    from putio_mirror.journal.reader import JournalReader

    old_url, new_url = url_maker(), url_maker()
    schema_5_journal(old_url)
    reader = JournalReader.open(old_url)
    assert reader is not None
    with reader:  # status, history and a running mount read it before any run upgrades it
        before = reader.downloads()
    assert before[7].placed_path == "Film/film.mkv" and before[7].placed_identity is None
    with Journal.open(old_url) as journal:
        film, extra, failing = (journal.facts().downloads[key] for key in (7, 8, 9))
        assert (film.placed_path, film.placed_at, film.crc32) == ("Film/film.mkv", AT, "0badf00d")
        assert film.placed_identity is None
        assert (extra.is_verified, extra.is_placed, extra.placed_identity) == (True, False, None)
        assert (failing.failures, failing.last_error) == (2, "the node answered 500")
        # An inode number past a signed 64-bit integer (NFS, overlayfs) is kept all the same.
        identity = FileIdentity.of(2**64 - 5, 1_700_000_000_123_456_789)
        journal.mark_placed({8: "Film/extra.mkv"}, AT, {8: identity})
        assert journal.facts().downloads[8].placed_identity == identity
    Journal.open(new_url).close()
    assert layout(old_url) == layout(new_url)
    assert stored(old_url) == stored(new_url) == ([HEAD], [SCHEMA_VERSION])


def test_an_empty_database_taken_through_every_revision_matches_a_new_journal(
    url_maker: Any,
) -> None:
    # What a revision creates must be what create_all gives a new journal: a revision that
    # forgot a column or spelled a type differently fails here before any journal meets it.
    from alembic import command
    from sqlalchemy import create_engine

    from putio_mirror.journal.migrations.runner import alembic_config

    upgraded, new_url = url_maker(), url_maker()
    engine = create_engine(upgraded)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
    finally:
        engine.dispose()
    Journal.open(new_url).close()
    assert layout(upgraded) == layout(new_url)


def test_head_is_the_last_revision_and_every_released_schema_has_one() -> None:
    from alembic.script import ScriptDirectory

    from putio_mirror.journal.migrations.runner import alembic_config

    scripts = ScriptDirectory.from_config(alembic_config())
    assert scripts.get_heads() == [HEAD]
    chain = [script.revision for script in scripts.walk_revisions()][::-1]
    assert chain == [f"{version:04d}" for version in range(1, SCHEMA_VERSION + 1)]
    assert set(RELEASED) <= set(range(1, SCHEMA_VERSION + 1))


def test_a_journal_at_an_unknown_revision_is_refused_and_left_as_it_is(url_maker: Any) -> None:
    url = url_maker()
    Journal.open(url).close()
    run_sql(url, "UPDATE alembic_version SET version_num = 'f00d'")
    with pytest.raises(JournalError) as caught:
        Journal.open(url)
    assert "newer putio-mirror" in caught.value.message and "f00d" in caught.value.message
    assert "upgrade putio-mirror" in caught.value.hint
    assert stored(url) == (["f00d"], [SCHEMA_VERSION])


def test_a_journal_from_before_alembic_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "j.sqlite3")
    replay(url, 3)
    run_sql(url, "UPDATE schema_info SET version = 4")
    with pytest.raises(JournalError) as caught:
        Journal.open(url)
    assert "newer putio-mirror" in caught.value.message and "schema 4" in caught.value.message
    assert "alembic_version" not in layout(url)


def test_an_upgrade_that_fails_halfway_leaves_the_journal_as_it_was(url_maker: Any) -> None:
    url = url_maker()
    replay(url, 2)
    # A column schema 3 adds, already there: its upgrade fails after stamping and a few steps.
    run_sql(url, "ALTER TABLE downloads ADD COLUMN last_error TEXT")
    before = layout(url)
    with pytest.raises(JournalError) as caught:
        Journal.open(url)
    assert "last_error" in caught.value.message
    assert layout(url) == before  # no alembic_version, no runs.owner: all rolled back
    assert run_sql(url, "SELECT version FROM schema_info") == [2]


# Run in another process, so modules this test session imported do not count.
ALEMBIC_PROBE = """
import sys
from putio_mirror.journal.store import Journal
Journal.open(sys.argv[1]).close()
print("alembic" in sys.modules)
"""


def probe(code: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": PACKAGE_ROOT},
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_creating_or_opening_a_journal_at_head_does_not_import_alembic(tmp_path: Path) -> None:
    # Every timer-started run opens the journal; Alembic would add tens of ms to each.
    url = sqlite_url(tmp_path / "j.sqlite3")
    assert probe(ALEMBIC_PROBE, url).split() == ["False"]  # nor does creating it (fresh.py)
    assert probe(ALEMBIC_PROBE, url).split() == ["False"]


# Each racer waits for the same moment, then opens the journal; the runner logs an upgrade.
RACER = """
import logging, sys, time
from putio_mirror.journal.store import Journal
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s %(message)s")
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
Journal.open(sys.argv[1], busy_timeout=30).close()
"""


@contextmanager
def writes_held_back(url: str) -> Iterator[None]:
    """Given a journal's URL, hold back its upgrade until leaving, so racers pile up at it.

    SQLite: another write transaction. PostgreSQL: a lock on ``schema_info``, which the
    upgrade reads first; the fast path, which reads only ``alembic_version``, goes by.
    """
    if url.startswith("sqlite"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)) as db:
            db.execute("BEGIN IMMEDIATE")
            yield
            db.execute("ROLLBACK")
        return
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("LOCK TABLE schema_info IN ACCESS EXCLUSIVE MODE"))
            yield
    finally:
        engine.dispose()


def wait_for_waiters(url: str, count: int, start_at: float) -> None:
    """Given a held-back journal, return once ``count`` racers wait at its upgrade.

    PostgreSQL says who waits for a lock; SQLite does not, so there: a second after the start.
    """
    if url.startswith("sqlite"):
        time.sleep(max(0.0, start_at + 1.0 - time.time()))
        return
    waiting = (
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock' "
        "AND backend_type = 'client backend'"  # not autovacuum, which may wait too
    )
    deadline = time.monotonic() + 30
    while run_sql(url, waiting) != [count]:
        assert time.monotonic() < deadline, "the racers never reached the upgrade"
        time.sleep(0.05)


def test_processes_opening_one_old_journal_at_once_upgrade_it_once(url_maker: Any) -> None:
    url = url_maker()
    replay(url, 1)
    start_at = time.time() + 2.0  # after every racer has imported the journal
    with writes_held_back(url):
        racers = [
            subprocess.Popen(
                [sys.executable, "-c", RACER, url, str(start_at)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=os.environ | {"PYTHONPATH": PACKAGE_ROOT},
            )
            for _ in range(3)
        ]
        time.sleep(max(0.0, start_at + 1.0 - time.time()))  # all are waiting by now
    outputs = [racer.communicate(timeout=60) for racer in racers]
    assert [racer.returncode for racer in racers] == [0, 0, 0], outputs
    logs = "".join(out for out, _ in outputs)
    assert logs.count("upgrading the journal") == 1, logs
    assert "alembic" not in logs  # its INFO lines stay out of a run's log
    assert stored(url) == ([HEAD], [SCHEMA_VERSION])


@pytest.mark.parametrize("version", RELEASED)
def test_a_dry_run_reads_an_older_journal_and_leaves_it_as_it_was(
    mirror: Mirror, version: int
) -> None:
    # Trying a new release with --dry-run must not upgrade the journal: the release the
    # person goes back to would refuse it as written by a newer putio-mirror.
    mirror.journal.parent.mkdir(parents=True, exist_ok=True)
    replay(f"sqlite:///{mirror.journal}", version)
    # the download folder its files were placed in (else: a disk not mounted, refused)
    (mirror.downloads / STAGING_DIR_NAME).mkdir(parents=True)
    before = {path.name: path.read_bytes() for path in mirror.journal.parent.iterdir()}
    mirror.fake.add_file("film.mkv", size=100)
    result = mirror.run("sync", "--dry-run")
    assert result.code == 0, result.err
    assert "film.mkv" in result.out
    after = {path.name: path.read_bytes() for path in mirror.journal.parent.iterdir()}
    assert after == before
    assert mirror.run("sync").code == 0  # a run upgrades it, as ever
    assert stored(f"sqlite:///{mirror.journal}") == ([HEAD], [SCHEMA_VERSION])
