"""A journal file whose path is too long for SQLite: said before a run, with the limit."""

from __future__ import annotations

import os
from pathlib import Path

from putio_mirror.config.paths import SQLITE_PATH_MOST
from putio_mirror.core.errors import ExitCode
from tests.mirror_env import Mirror


def _journal_at(mirror: Mirror, length: int) -> Path:
    """Given a set-up and a path length in bytes, point its journal at a file of that path."""
    name = "journal.sqlite3"
    folder = mirror.root / "state"
    while len(os.fsencode(folder)) + 1 + len(name) < length:
        room = length - len(os.fsencode(folder)) - 2 - len(name)
        folder = folder / ("j" * max(1, min(100, room)))
    path = folder / name
    assert len(os.fsencode(path)) == length
    mirror.write_config(paths={"journal": f"sqlite:///{path}"})
    return path


def test_a_journal_path_too_long_for_sqlite_is_refused_before_the_run_with_the_limit(
    mirror: Mirror,
) -> None:
    mirror.fake.add_file("a.mkv", 0, content=b"a" * 100)
    path = _journal_at(mirror, SQLITE_PATH_MOST + 1)
    result = mirror.run("sync")
    assert result.code == ExitCode.USAGE
    assert "SQLite" in result.err and f"{SQLITE_PATH_MOST:,}" in result.err
    assert not path.exists() and not (mirror.downloads / "a.mkv").exists()
    doctor = mirror.run("doctor")
    assert doctor.code != 0
    assert "PROBLEM paths.journal" in doctor.out and "SQLite" in doctor.out


def test_a_journal_path_as_long_as_sqlite_takes_mirrors(mirror: Mirror) -> None:
    mirror.fake.add_file("a.mkv", 0, content=b"a" * 100)
    path = _journal_at(mirror, SQLITE_PATH_MOST)
    assert mirror.run("sync").code == 0
    assert path.exists() and (mirror.downloads / "a.mkv").read_bytes() == b"a" * 100
