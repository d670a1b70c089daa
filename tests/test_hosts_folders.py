"""Hosts sharing one PostgreSQL journal must place into one download folder: each host's
folder would hold only part of the mirror, an item split between them, and each host's
RPC door tell Sonarr an item is whole in its own. A host that finds another placing into
another folder says so (``needs you``, exit 11), and so does ``doctor``.

Real processes, each "host" with its own state folder (its own run lock, as two
machines), the fake put.io over loopback, real folders.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from putio_mirror.core.errors import ExitCode
from putio_mirror.fakeputio import FakePutio
from putio_mirror.journal.store import Journal
from putio_mirror.local.marks import MARK_NAME
from tests.mirror_env import Mirror
from tests.test_hosts import shared_journal
from tests.test_hosts_restart import _config

__all__ = ["shared_journal"]  # a fixture, used here

ELSEWHERE = "shares this journal but places files into another download folder"


def _run(config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run a command of the CLI as a host of its own (its own state folder)."""
    env = dict(os.environ, XDG_STATE_HOME=str(config.parent / "state"), XDG_RUNTIME_DIR="")
    env.pop("PUTIO_TOKEN", None)
    command = [sys.executable, "-m", "putio_mirror", "--config", str(config), *argv]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("layout", ["one-download-folder", "a-folder-each"])
def test_hosts_sharing_a_journal_are_told_when_they_place_into_folders_of_their_own(
    tmp_path: Path, fake_putio: FakePutio, shared_journal: str, layout: str
) -> None:
    item = fake_putio.add_folder("Show.S01")
    for n in range(4):
        fake_putio.add_file(f"e{n}.mkv", parent_id=item, size=10_000 + n)
    folders = {
        host: tmp_path / ("downloads" if layout == "one-download-folder" else f"{host}-downloads")
        for host in "ab"
    }
    configs = {
        host: _config(tmp_path / host, folders[host], fake_putio, shared_journal) for host in "ab"
    }
    for host, config in configs.items():
        (config.parent / "blackhole").mkdir()
        folders[host].mkdir(exist_ok=True)  # a share mounted there, say: marked at once
    first = _run(configs["a"], "sync")
    assert first.returncode == ExitCode.OK, first.stdout + first.stderr  # alone so far
    runs = [_run(configs["b"], "sync"), _run(configs["a"], "sync")]
    doctor = _run(configs["a"], "doctor")
    said = [line for line in doctor.stdout.splitlines() if "shared journal" in line]
    if layout == "one-download-folder":
        assert [run.returncode for run in runs] == [ExitCode.OK] * 2, runs[0].stdout
        assert all(ELSEWHERE not in run.stdout + run.stderr for run in runs)
        assert len(said) == 1 and said[0].startswith("ok") and "this download folder too" in said[0]
    else:
        assert [run.returncode for run in runs] == [ExitCode.NEEDS_ATTENTION] * 2
        for run, other in zip(runs, "ab", strict=True):
            told = run.stdout + run.stderr
            assert "needs you: host " in told and ELSEWHERE in told, told
            assert str(folders["b" if other == "a" else "a"]) in told  # names its own folder
        assert len(said) == 1 and said[0].startswith("PROBLEM"), doctor.stdout
        assert ELSEWHERE in said[0] and "paths.downloads" in doctor.stdout
        assert doctor.returncode == ExitCode.USAGE
    assert all((folder / MARK_NAME).is_file() for folder in folders.values())


def test_a_sqlite_journal_which_no_host_shares_marks_no_folder_and_leases_nothing(
    mirror: Mirror,
) -> None:
    mirror.fake.add_file("film.mkv", size=1000)
    assert mirror.run("sync").code == ExitCode.OK
    assert not (mirror.downloads / MARK_NAME).exists()
    with Journal.open(f"sqlite:///{mirror.journal}") as journal:
        assert journal.claims() == {}
