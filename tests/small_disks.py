"""Small disks of their own for a test's journal: a tmpfs mounted over a folder (full or
read-only at will), and the journal of one run on it. Tests run as root here; where
mounting is not permitted, the test is skipped with the reason."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from putio_mirror.core.errors import ExitCode
from tests.mirror_env import Mirror


def mount(*argv: str) -> None:
    subprocess.run(["mount", *argv], check=True, capture_output=True, timeout=30)


def mount_tmpfs(folder: Path, size: str) -> None:
    """Given a folder and a size ("4m"), mount a tmpfs of that size over it, or skip."""
    if shutil.which("mount") is None:
        pytest.skip("no mount program to make a small disk with")
    try:
        mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))
    except subprocess.CalledProcessError as error:
        pytest.skip(f"may not mount a tmpfs here: {error.stderr.decode().strip()}")


def unmount(path: Path) -> None:
    """Given a path mounted here, unmount it; lazily if something in this process still
    holds it open (a fetcher's folder kept open, until its thread ends)."""
    plainly = subprocess.run(["umount", str(path)], check=False, capture_output=True, timeout=30)
    if plainly.returncode != 0:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True, timeout=30)


def remount_read_only(folder: Path) -> None:
    mount("-o", "remount,ro", str(folder))


def one_run_journaled(mirror: Mirror) -> None:
    """Given a set-up, run once to place ``first.bin``; then ``second.bin`` waits on put.io."""
    mirror.fake.add_file("first.bin", size=3000)
    assert mirror.run("files", "download").code == ExitCode.OK
    mirror.fake.add_file("second.bin", size=4000)


READING = [("status",), ("history",), ("sync", "--dry-run"), ("files", "download", "-n")]


def assert_read(mirror: Mirror, argv: tuple[str, ...]) -> None:
    """Given a reading command, check it worked and read the journal of ``one_run_journaled``."""
    result = mirror.run(*argv)
    assert result.code == ExitCode.OK, result.err
    if argv[0] == "status":
        assert "Last run: #1 files download" in result.out
    elif argv[0] == "history":
        assert "#1 " in result.out and "1 done" in result.out
    else:  # the file placed is known to the journal: only the new one is planned
        assert "second.bin" in result.out and "first.bin" not in result.out
        assert "1 download" in result.out
