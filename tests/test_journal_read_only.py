"""A journal that cannot be written (a NAS share remounted read-only, a folder of the wrong
owner): every command says which path and why, never a traceback; the commands that only
read (``status``, ``history``, a dry run) still work.

The tests run as root here, and chmod does not stop root: the journal's folder is a tmpfs
of its own, remounted read-only (or the file alone bound read-only over itself). Without
the right to mount, they are skipped.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from putio_mirror.core.errors import ExitCode, JournalError
from putio_mirror.journal.store import Journal
from tests.mirror_env import Mirror
from tests.small_disks import (
    READING,
    assert_read,
    mount,
    mount_tmpfs,
    one_run_journaled,
    remount_read_only,
    unmount,
)


@pytest.fixture
def state(mirror: Mirror) -> Iterator[Path]:
    """The journal's folder, a tmpfs of its own (so that it can be made read-only), with a
    journal that knows one run which placed one file."""
    folder = mirror.journal.parent
    folder.mkdir()
    mount_tmpfs(folder, "16m")
    try:
        one_run_journaled(mirror)
        yield folder
    finally:
        unmount(folder)


@pytest.fixture
def read_only_file(mirror: Mirror, state: Path) -> Iterator[Path]:
    """The journal file alone read-only (bound read-only over itself), its folder writable."""
    mount("--bind", str(mirror.journal), str(mirror.journal))
    try:
        mount("-o", "remount,ro,bind", str(mirror.journal))
        yield mirror.journal
    finally:
        unmount(mirror.journal)


WRITING = [("sync",), ("files", "download")]


@pytest.mark.parametrize("argv", WRITING, ids=" ".join)
def test_a_writing_command_on_a_read_only_journal_folder_says_so_and_where(
    mirror: Mirror, state: Path, argv: tuple[str, ...]
) -> None:
    remount_read_only(state)
    result = mirror.run(*argv)
    assert result.code in (ExitCode.USAGE, ExitCode.JOURNAL), result.err
    assert f"{mirror.journal} is on a read-only filesystem" in result.err
    assert "Traceback" not in result.err and "crash report" not in result.err
    assert not (mirror.downloads / "second.bin").exists()


@pytest.mark.parametrize("argv", READING, ids=" ".join)
def test_a_reading_command_reads_a_journal_on_a_read_only_folder(
    mirror: Mirror, state: Path, argv: tuple[str, ...]
) -> None:
    remount_read_only(state)
    assert_read(mirror, argv)


@pytest.mark.parametrize("argv", READING, ids=" ".join)
def test_a_reading_command_reads_a_read_only_journal_file(
    mirror: Mirror, read_only_file: Path, argv: tuple[str, ...]
) -> None:
    assert_read(mirror, argv)


def test_a_writing_command_on_a_read_only_journal_file_says_so_and_where(
    mirror: Mirror, read_only_file: Path
) -> None:
    result = mirror.run("files", "download")
    assert result.code in (ExitCode.USAGE, ExitCode.JOURNAL), result.err
    assert f"{mirror.journal} is on a read-only filesystem" in result.err


@pytest.fixture
def writable_file_in_read_only_folder(
    mirror: Mirror, state: Path, tmp_path: Path
) -> Iterator[Path]:
    """The journal file writable, its folder not (as a folder of another owner is): SQLite
    writes its -wal and -shm files beside the journal, and a run its lock."""
    elsewhere = tmp_path / "writable.sqlite3"
    shutil.copy(mirror.journal, elsewhere)
    remount_read_only(state)
    mount("--bind", str(elsewhere), str(mirror.journal))
    try:
        yield mirror.journal
    finally:
        unmount(mirror.journal)


def test_a_writable_journal_in_a_folder_it_cannot_write_in_is_told_apart(
    state: Path, writable_file_in_read_only_folder: Path
) -> None:
    with pytest.raises(JournalError) as raised:
        Journal.open(f"sqlite:///{writable_file_in_read_only_folder}")
    message = f"{raised.value.message} / {raised.value.hint}"
    assert f"its folder {state} is on a read-only filesystem" in message, message
    assert "-wal" in message and "`status`, `history` and `--dry-run`" in message


def test_doctor_and_a_run_tell_of_a_journal_folder_they_cannot_write_in(
    mirror: Mirror, state: Path, writable_file_in_read_only_folder: Path
) -> None:
    doctor = mirror.run("doctor")
    assert doctor.code == ExitCode.USAGE, doctor.out
    assert f"{state} is on a read-only filesystem" in doctor.out
    run = mirror.run("files", "download")
    assert run.code in (ExitCode.USAGE, ExitCode.JOURNAL), run.err
    assert f"{state} is on a read-only filesystem" in run.err
    assert_read(mirror, ("status",))
    assert_read(mirror, ("files", "download", "--dry-run"))
