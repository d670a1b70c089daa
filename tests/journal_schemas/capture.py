"""Capture the journal a released putio-mirror creates, as SQL files the migration tests replay.

Run it once when a schema version is released (never from the tests):

    python -m tests.journal_schemas.capture VERSION COMMIT

It extracts ``putio_mirror`` as it was at COMMIT into a temp folder, lets that code create a
journal on SQLite and on a throwaway PostgreSQL server and write a few rows through its own
API (``WRITER`` below), then dumps both databases: SQLite with ``iterdump``, PostgreSQL with
``pg_dump`` (psql meta-commands and session settings left out, so any server version and
plain psycopg can replay it). The files land beside this one as ``v<VERSION>.<dialect>.sql``.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
from contextlib import closing
from io import BytesIO
from pathlib import Path

from tests.postgres_server import PostgresServer, find_binaries

HERE = Path(__file__).parent
REPO = HERE.parent.parent

# Runs under the old code. What each version's API takes differs: ask it, don't assume.
WRITER = """
import inspect, sys
from datetime import UTC, datetime, timedelta
try:
    from putio_mirror.journal.store import Journal
except ImportError:  # before the journal became a package
    from putio_mirror.journal import Journal

T0 = datetime(2024, 3, 1, 2, 0, tzinfo=UTC)
def at(minutes):
    return T0 + timedelta(minutes=minutes)

with Journal.open(sys.argv[1]) as journal:
    run = journal.start_run("sync", at(0))
    done = journal.action_started(run, "download", "download:7", "Film/film.mkv", at(1))
    journal.action_finished(done, "done", at(2), detail="10 B")
    failed = journal.action_started(run, "submit", "submit:" + "a" * 40, "film.torrent", at(1))
    journal.action_finished(failed, "failed", at(2), error="put.io answered 500")
    journal.finish_run(run, at(3), 0, "1 downloaded")
    crashed = journal.start_run("sync", at(10), dry_run=False)
    journal.action_started(crashed, "download", "download:8", "Film/extra.mkv", at(11))
    journal.record_submission("a" * 40, 41, "Film", at(1))
    journal.record_submission("b" * 40, None, "Other", at(1))
    journal.mark_verified(7, "Film/film.mkv", 10, "0badf00d", at(2))
    journal.record_progress(8, "Film/extra.mkv", 100, None, 40, at(11))
    takes_error = "error" in inspect.signature(journal.record_failure).parameters
    for _ in range(2):
        if takes_error:
            journal.record_failure(9, at(12), "the node answered 500")
        else:
            journal.record_failure(9)
    if hasattr(journal, "mark_placed"):
        journal.mark_placed({7: "Film/film.mkv"}, at(2))
    if hasattr(journal, "claim"):
        lease = timedelta(days=3650)  # still live when the tests replay it
        if "now" in inspect.signature(journal.claim).parameters:
            journal.claim("download:8", "host-a:42:feed", at(10), lease)
        else:
            journal.claim("download:8", "host-a:42:feed", lease)
"""


def extract(commit: str, into: Path) -> None:
    """Given a commit, unpack its ``putio_mirror`` package into a folder."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit, "putio_mirror"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


def write_journal(old_tree: Path, url: str) -> None:
    env = os.environ | {"PYTHONPATH": str(old_tree)}
    subprocess.run([sys.executable, "-c", WRITER, url], check=True, env=env, cwd=old_tree)


def dump_sqlite(path: Path) -> str:
    with closing(sqlite3.connect(path)) as conn:
        return "\n".join(conn.iterdump()) + "\n"


def dump_postgres(bindir: Path, url: str) -> str:
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    # initdb may be a symlink on PATH while pg_dump is only in the real folder.
    pg_dump = (bindir / "initdb").resolve().parent / "pg_dump"
    dumped = subprocess.run(
        [str(pg_dump), "--no-owner", "--no-privileges", "--inserts", plain],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    kept = [
        line
        for line in dumped.splitlines()
        if line and not line.startswith(("--", "\\", "SET ", "SELECT pg_catalog.set_config"))
    ]
    # pg_dump names everything "public.x"; the tests replay into a fresh database's public.
    return "\n".join(kept) + "\n"


def main(version: str, commit: str) -> None:
    bindir = find_binaries()
    if bindir is None:
        raise SystemExit("no PostgreSQL programs found (see tests/postgres_server.py)")
    with tempfile.TemporaryDirectory() as temp, PostgresServer(bindir) as server:
        old_tree = Path(temp) / "old"
        extract(commit, old_tree)
        sqlite_file = Path(temp) / "journal.sqlite3"
        write_journal(old_tree, f"sqlite:///{sqlite_file}")
        (HERE / f"v{version}.sqlite.sql").write_text(dump_sqlite(sqlite_file))
        pg_url = server.url.rsplit("/", 1)[0] + "/postgres"
        write_journal(old_tree, pg_url)
        (HERE / f"v{version}.postgresql.sql").write_text(dump_postgres(bindir, pg_url))


if __name__ == "__main__":
    main(*sys.argv[1:])
