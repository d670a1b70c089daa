"""A SQLite journal on a network share or a FUSE filesystem: SQLite's WAL needs shared
memory (its ``-shm`` mapped by every process) and locks that work, which a share does not
promise across hosts and many FUSE daemons break (a mergerfs pool without its page cache:
"disk I/O error"). ``doctor`` calls it a problem; every writing run says so as a
``needs you:`` line, and refuses only a journal another host wrote since this one did.

The share is a real FUSE filesystem (``tests/faulty_fs``) named ``fuse.mergerfs``; real
syncs against the local put.io; the other host's runs are rows it would have left."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import putio_mirror
from putio_mirror.app.opening import other_writer
from putio_mirror.core.errors import ExitCode
from putio_mirror.journal.writers import Writer
from tests.faulty_fs import faulty_mount
from tests.mirror_env import Mirror

POOL = "mergerfs"


@contextmanager
def journal_on_pool(mirror: Mirror, *, cached: bool = True, **sections: Any) -> Iterator[Path]:
    """The mirror's journal inside a FUSE pool (and the config's other ``sections``); yield
    the pool's mount point. ``cached``: the pool pages through the kernel's cache (SQLite's
    WAL works there), else each read and write goes to its daemon (mergerfs's default,
    where the WAL's ``-shm`` cannot be mapped)."""
    pool = mirror.root / "pool"
    with faulty_mount(
        mirror.root / "disks", pool, mirror.root / "no-faults", subtype=POOL, cached=cached
    ):
        journal = f"sqlite:///{pool / 'state' / 'journal.sqlite3'}"
        mirror.write_config(paths={"journal": journal}, **sections)
        yield pool


def problems(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("PROBLEM")]


def journal_runs(journal: Path) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(journal)) as database:
        return database.execute("SELECT host, command FROM runs ORDER BY id").fetchall()


def another_host_ran(journal: Path, host: str, ago: timedelta) -> None:
    """Given a journal, leave in it a run of ``host`` that started ``ago``, as that host
    would have."""
    started = (datetime.now(UTC) - ago).strftime("%Y-%m-%d %H:%M:%S.%f")
    with closing(sqlite3.connect(journal)) as database, database:
        database.execute(
            "INSERT INTO runs (command, started_at, finished_at, exit_code, summary, dry_run,"
            " host) VALUES (?, ?, ?, 0, 'nothing to do', 0, ?)",
            (f"sync on {host}", started, started, host),
        )


def test_doctor_calls_a_journal_on_a_fuse_pool_a_problem_naming_its_type_and_mount_point(
    mirror: Mirror,
) -> None:
    with journal_on_pool(mirror) as pool:
        result = mirror.run("doctor")
    assert result.code == ExitCode.USAGE, result.out
    (line,) = problems(result.out)
    journal = pool / "state" / "journal.sqlite3"
    assert line.startswith(
        f"PROBLEM paths.journal: {journal} is on a FUSE filesystem (fuse.mergerfs at {pool})"
    )
    assert "disk I/O error" in line  # what people see when it breaks
    assert "hint: keep the SQLite journal on a local disk" in result.out
    assert "PostgreSQL" in result.out


def test_doctor_says_nothing_of_a_journal_on_a_local_disk(mirror: Mirror) -> None:
    assert mirror.run("sync").code == 0
    result = mirror.run("doctor")
    assert result.code == 0 and problems(result.out) == [], result.out


def test_a_journal_linked_from_a_fuse_pool_to_a_local_disk_is_where_its_target_is(
    mirror: Mirror,
) -> None:
    # SQLite follows a link to the journal and keeps its -wal and -shm beside the target:
    # only the lock and its records are in the pool, and nothing is wrong with the journal.
    mirror.fake.add_file("film.mkv", content=b"a film")
    local = mirror.root / "local-disk" / "journal.sqlite3"
    local.parent.mkdir()
    with journal_on_pool(mirror) as pool:
        linked = pool / "state" / "journal.sqlite3"
        linked.parent.mkdir()
        linked.symlink_to(local)
        synced = mirror.run("sync")
        doctor = mirror.run("doctor")
    assert synced.code == 0, synced.err
    assert local.is_file() and mirror.local_files() == {"film.mkv": b"a film"}
    assert doctor.code == 0 and problems(doctor.out) == [], doctor.out


def test_a_sync_over_a_journal_on_a_fuse_pool_does_its_work_and_says_it_needs_you_once(
    mirror: Mirror,
) -> None:
    mirror.fake.add_file("film.mkv", content=b"a film")
    with journal_on_pool(mirror) as pool:
        first = mirror.run("--quiet", "sync")
        again = mirror.run("sync")
        status = mirror.run("status")
    assert first.code == again.code == ExitCode.NEEDS_ATTENTION, first.err
    assert mirror.local_files() == {"film.mkv": b"a film"}
    said = f"needs you: the journal {pool / 'state' / 'journal.sqlite3'} is on a FUSE filesystem"
    for run in (first, again):
        assert run.err.count(said) == 1, run.err  # once a run, whatever it did
        assert f"(fuse.mergerfs at {pool})" in run.err
        assert "hint: keep the SQLite journal on a local disk" in run.err
    assert said.removeprefix("needs you: ") in status.out


def test_a_run_refuses_a_journal_on_a_share_another_host_wrote_since_this_one_did(
    mirror: Mirror,
) -> None:
    mirror.fake.add_file("film.mkv", content=b"a film")
    with journal_on_pool(mirror) as pool:
        journal = pool / "state" / "journal.sqlite3"
        assert mirror.run("transfers", "groom").code == ExitCode.NEEDS_ATTENTION
        another_host_ran(journal, "other-pi", ago=timedelta(days=2))  # long gone since
        assert mirror.run("transfers", "groom").code == ExitCode.NEEDS_ATTENTION
        another_host_ran(journal, "other-pi", ago=timedelta(hours=1))
        before = journal_runs(journal)
        refused = mirror.run("sync")
        after = journal_runs(journal)
        looked = mirror.run("sync", "--dry-run")  # a person may still look: it only reads
    assert refused.code == ExitCode.JOURNAL, refused.err
    assert after == before, "the refused run wrote nothing into the journal"
    assert mirror.local_files() == {}
    assert "host other-pi wrote it" in refused.err and f"fuse.mergerfs at {pool}" in refused.err
    assert "PostgreSQL" in refused.err
    assert looked.code == 0 and "1 download" in looked.out, looked.err


def test_which_host_wrote_last_is_told_by_the_journals_order_not_the_hosts_clocks() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    here = Writer("here", last_run=5, last_seen=now)
    behind = Writer("nas", last_run=6, last_seen=now - timedelta(hours=3))  # its clock is slow
    ahead = Writer("pi", last_run=4, last_seen=now + timedelta(hours=1))  # wrote before us
    assert other_writer([here, behind, ahead], "here", now) == behind
    assert other_writer([here, ahead], "here", now) is None
    gone = Writer("nas", last_run=6, last_seen=now - timedelta(hours=25))
    assert other_writer([here, gone], "here", now) is None, "a day after, this host may"
    assert other_writer([behind, ahead], "here", now) is None, "a host new to it takes it"


def test_a_host_taking_over_a_journal_on_a_share_from_another_is_not_refused(
    mirror: Mirror,
) -> None:
    # The Pi whose SD card died left its journal on the NAS; the new one (another name)
    # carries on from it the same day.
    with journal_on_pool(mirror) as pool:
        journal = pool / "state" / "journal.sqlite3"
        assert mirror.run("transfers", "groom").code == ExitCode.NEEDS_ATTENTION
        with closing(sqlite3.connect(journal)) as database, database:
            database.execute("UPDATE runs SET host = 'dead-pi'")
        another_host_ran(journal, "dead-pi", ago=timedelta(minutes=5))
        taken_over = mirror.run("transfers", "groom")
        runs = journal_runs(journal)
    assert taken_over.code == ExitCode.NEEDS_ATTENTION, taken_over.err
    assert runs[-1][0] == socket.gethostname()


def test_another_hosts_runs_in_a_journal_on_a_local_disk_refuse_nothing(mirror: Mirror) -> None:
    # A journal copied from the old machine: no share, no two hosts writing it at once.
    assert mirror.run("transfers", "groom").code == 0
    another_host_ran(mirror.journal, "old-pi", ago=timedelta(minutes=5))
    assert mirror.run("transfers", "groom").code == 0


def test_a_journal_on_a_fuse_pool_that_breaks_wals_shared_memory_says_why(
    mirror: Mirror,
) -> None:
    # mergerfs's default (no page cache) cannot map the WAL's -shm: SQLite says only
    # "disk I/O error", and people moved disks and ran fsck for it.
    with journal_on_pool(mirror, cached=False) as pool:
        result = mirror.run("sync")
    assert result.code == ExitCode.JOURNAL, result.err
    assert "disk I/O error" in result.err
    assert f"on a FUSE filesystem (fuse.mergerfs at {pool})" in result.err
    assert "keep the SQLite journal on a local disk" in result.err


def test_a_corrupt_journal_on_a_share_says_where_it_is_so_its_rebuild_is_kept_elsewhere(
    mirror: Mirror,
) -> None:
    # Moved aside and rebuilt in place, it would be corrupted again the same way.
    with journal_on_pool(mirror) as pool:
        journal = pool / "state" / "journal.sqlite3"
        journal.parent.mkdir()
        journal.write_bytes(b"written by two hosts at once " * 200)
        result = mirror.run("sync")
    assert result.code == ExitCode.JOURNAL, result.err
    assert (
        "is corrupt" in result.err
        and f"on a FUSE filesystem (fuse.mergerfs at {pool})" in result.err
    )
    assert "move it aside" in result.err and "keep the SQLite journal on a local disk" in result.err


def test_transfers_retry_over_a_journal_on_a_fuse_pool_does_it_and_says_it_needs_you_once(
    mirror: Mirror,
) -> None:
    # Like a sync, a command that writes the journal is a writing run: told once, exit 11.
    broken = mirror.fake.add_transfer("Broken", status="ERROR", error_message="tracker down")
    with journal_on_pool(mirror) as pool:
        result = mirror.run("transfers", "retry")
    assert result.code == ExitCode.NEEDS_ATTENTION, result.err
    assert f"retried #{broken} Broken" in result.out
    said = f"needs you: the journal {pool / 'state' / 'journal.sqlite3'} is on a FUSE filesystem"
    assert result.err.count(said) == 1, result.err
    assert "hint: keep the SQLite journal on a local disk" in result.err


def test_transfers_retry_and_dismiss_refuse_a_journal_on_a_share_another_host_wrote_since(
    mirror: Mirror,
) -> None:
    broken = mirror.fake.add_transfer("Broken", status="ERROR", error_message="tracker down")
    with journal_on_pool(mirror) as pool:
        journal = pool / "state" / "journal.sqlite3"
        assert mirror.run("transfers", "groom").code == ExitCode.NEEDS_ATTENTION
        another_host_ran(journal, "other-pi", ago=timedelta(hours=1))
        before = journal_runs(journal)
        retried = mirror.run("transfers", "retry")
        dismissed = mirror.run("transfers", "dismiss", str(broken))
        after = journal_runs(journal)
    for refused in (retried, dismissed):
        assert refused.code == ExitCode.JOURNAL, refused.err
        assert "host other-pi wrote it" in refused.err and f"fuse.mergerfs at {pool}" in refused.err
    assert after == before, "the refused commands wrote nothing into the journal"
    # nor did anything on put.io: the transfer waits, in ERROR, for the person's answer
    assert mirror.fake.transfer(broken)["status"] == "ERROR"


def test_serve_refuses_a_journal_on_a_share_another_host_wrote_since_before_it_listens(
    mirror: Mirror,
) -> None:
    # Its Transmission door writes desires into the journal whenever Sonarr adds one, not
    # only in the watcher's runs: it must not open the journal at all.
    rpc = {"listen": "127.0.0.1:0", "username": "sonarr", "password": "secret"}
    with journal_on_pool(mirror, rpc=rpc) as pool:
        journal = pool / "state" / "journal.sqlite3"
        assert mirror.run("transfers", "groom").code == ExitCode.NEEDS_ATTENTION
        another_host_ran(journal, "other-pi", ago=timedelta(hours=1))
        before = journal_runs(journal)
        with mirror.spawned("serve") as process:
            try:
                _, err = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                raise AssertionError("serve opened the journal and ran on") from None
        after = journal_runs(journal)
    assert process.returncode == ExitCode.JOURNAL, err.decode()
    assert "host other-pi wrote it" in err.decode()
    assert after == before
    assert "Transmission RPC on" not in err.decode(), "it listened: Sonarr could add a torrent"


def test_only_the_opening_path_opens_a_journal_to_write() -> None:
    # Every command that writes the journal opens it through app/opening (open_journal, of
    # a place journal_place checked): one opened around it skips the share check.
    package = Path(putio_mirror.__file__).parent
    opening = {package / "app" / "opening.py", package / "journal" / "store.py"}
    # journal/older opens an upgraded copy in a temporary folder, never the journal
    opening.add(package / "journal" / "older.py")
    around = [
        str(path.relative_to(package))
        for path in sorted(package.rglob("*.py"))
        if path not in opening and "Journal.open(" in path.read_text(encoding="utf-8")
    ]
    assert around == []
