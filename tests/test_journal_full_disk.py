"""A journal whose disk is full: the commands that only read (``status``, ``history``,
a dry run, ``doctor``) still read it; a writing run says the disk is full, where, and that
nothing was lost (exit 7), never SQLite's "disk I/O error"; a disk that fills up during a
run stops it so, and the next run, once there is room, carries on, fetching nothing twice.

SQLite in WAL mode makes its ``-shm`` file on opening a journal: with no room for it
that is a "disk I/O error" (SQLITE_IOERR_SHMSIZE), before any statement. The disk here is
a small tmpfs of its own, filled to the brim; without the right to mount, the tests are
skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from putio_mirror.core.errors import ExitCode, JournalError
from putio_mirror.fakeputio import FakePutio
from putio_mirror.journal.reader import JournalReader
from putio_mirror.journal.store import Journal
from tests.mirror_env import Mirror, mirror_for
from tests.small_disks import READING, assert_read, mount_tmpfs, one_run_journaled, unmount

FILLER = "filler"


def fill(folder: Path) -> Path:
    """Given a folder, fill its disk to the brim with one file; return that file."""
    filler = folder / FILLER
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for chunk in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    os.write(descriptor, b"x" * chunk)
            except OSError:
                continue
    finally:
        os.close(descriptor)
    assert shutil.disk_usage(folder).free < 4096
    return filler


@pytest.fixture
def journal_disk(mirror: Mirror) -> Iterator[Path]:
    """The journal's folder, a small disk of its own, with a journal that knows one run
    which placed one file; another file waits on put.io."""
    folder = mirror.journal.parent
    folder.mkdir()
    mount_tmpfs(folder, "4m")
    try:
        one_run_journaled(mirror)
        yield folder
    finally:
        unmount(folder)


@pytest.mark.parametrize("argv", READING, ids=" ".join)
def test_a_reading_command_reads_a_journal_whose_disk_is_full(
    mirror: Mirror, journal_disk: Path, argv: tuple[str, ...]
) -> None:
    fill(journal_disk)
    assert_read(mirror, argv)


def test_a_reader_sees_what_a_full_disks_journal_holds_in_its_wal(
    mirror: Mirror, journal_disk: Path
) -> None:
    """A journal whose last commits wait in its -wal (its writer was killed) is read with
    them, its -shm gone or not: read as immutable, it would be read without them."""
    url = f"sqlite:///{mirror.journal}"
    killed = (
        "import os, sys; from datetime import UTC, datetime;"
        "from putio_mirror.journal.store import Journal;"
        "Journal.open(sys.argv[1]).start_run('sync', datetime.now(UTC)); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", killed, url], check=True, timeout=60)
    wal = mirror.journal.with_name(mirror.journal.name + "-wal")
    assert wal.stat().st_size > 0  # the second run is only there
    mirror.journal.with_name(mirror.journal.name + "-shm").unlink()
    fill(journal_disk)
    reader = JournalReader.open(url)
    assert reader is not None
    with reader:
        assert [run.id for run in reader.recent_runs(5)] == [2, 1]


def test_doctor_says_the_journals_disk_is_full(mirror: Mirror, journal_disk: Path) -> None:
    fill(journal_disk)
    result = mirror.run("doctor")
    assert f"the disk holding the journal ({mirror.journal}) is full" in result.out, result.out
    assert "reachable, schema" in result.out  # read all the same


def assert_told_full(mirror: Mirror, err: str) -> None:
    assert f"the disk holding the journal ({mirror.journal}) is full" in err, err
    assert "free some space" in err and "nothing was lost" in err, err
    assert "disk I/O error" not in err and "Traceback" not in err, err


@pytest.mark.parametrize("argv", [("sync",), ("files", "download")], ids=" ".join)
def test_a_writing_run_on_a_full_journal_disk_says_so_and_the_next_carries_on(
    mirror: Mirror, journal_disk: Path, argv: tuple[str, ...]
) -> None:
    filler = fill(journal_disk)
    result = mirror.run(*argv)
    assert result.code == ExitCode.JOURNAL, result.err
    assert_told_full(mirror, result.err)
    assert not (mirror.downloads / "second.bin").exists()
    filler.unlink()
    again = mirror.run(*argv)
    assert again.code == ExitCode.OK, again.err
    assert (mirror.downloads / "second.bin").stat().st_size == 4000


def test_opening_a_journal_on_a_full_disk_tells_the_free_bytes(
    mirror: Mirror, journal_disk: Path
) -> None:
    fill(journal_disk)
    with pytest.raises(JournalError) as raised:
        Journal.open(f"sqlite:///{mirror.journal}")
    assert raised.value.exit_code == ExitCode.JOURNAL
    free = shutil.disk_usage(journal_disk).free
    assert f"is full ({free:,} bytes free)" in raised.value.message, raised.value.message


@pytest.fixture
def one_disk(
    tmp_path: Path, fake_putio: FakePutio, capsys: pytest.CaptureFixture[str]
) -> Iterator[Mirror]:
    """A mirror whose journal and downloads share one small disk."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount_tmpfs(disk, "8m")
    try:
        options = {"download": {"free_space_margin_mb": 0, "read_timeout_seconds": 2}}
        with mirror_for(disk, fake_putio, capsys, **options) as mirror:
            yield mirror
    finally:
        unmount(disk)


def test_a_disk_filling_up_during_a_run_stops_it_clearly_and_the_next_run_carries_on(
    one_disk: Mirror,
) -> None:
    mirror, fake = one_disk, one_disk.fake
    done = fake.add_file("done.bin", size=300_000)
    stalled = fake.add_file("stalled.bin", size=1_000_000)
    fake.node_fault(stalled, stall_after=400_000)
    part = mirror.downloads / ".putio-mirror-staging" / f"{stalled}.part"
    filled: list[Path] = []

    def stalled_and_done() -> bool:
        placed = (mirror.downloads / "done.bin").exists()
        return placed and part.exists() and part.stat().st_size > 0

    def fill_once_stalled() -> None:  # another program fills the disk meanwhile
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not stalled_and_done():
            time.sleep(0.02)
        time.sleep(0.3)  # the bytes before the stall written
        filled.append(fill(mirror.root))

    filler = threading.Thread(target=fill_once_stalled)
    filler.start()
    try:
        result = mirror.run("files", "download")
    finally:
        filler.join()
    assert result.code == ExitCode.JOURNAL, (result.code, result.out, result.err)
    assert_told_full(mirror, result.err)

    filled[0].unlink()
    fake.clear_requests()
    again = mirror.run("files", "download")
    assert again.code == ExitCode.OK, again.err
    assert mirror.local_files() == {
        "done.bin": fake.file_content(done),
        "stalled.bin": fake.file_content(stalled),
    }
    asked = [(r.path, r.headers.get("Range", "")) for r in fake.requests if r.host == "node"]
    assert not any(path.startswith(f"/download/{done}") for path, _ in asked), asked
    resumed = [ranged for path, ranged in asked if path.startswith(f"/download/{stalled}")]
    assert resumed and not resumed[0].startswith("bytes=0-"), asked  # its part taken over
    assert "1 download" in again.out, again.out
