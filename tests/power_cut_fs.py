"""A real filesystem whose unsynced changes vanish in a power cut, for tests: a FUSE
passthrough of a folder that records what the disk would hold, and a power cut that
leaves the folder as that.

What a disk holds after a power cut, as POSIX promises it (and as ext4, XFS or btrfs may
leave it, depending on timing): a file's bytes as of its last ``fsync`` (a file never
synced: empty), and a folder's names as of the last ``fsync`` of that folder (a name
created, renamed or removed since: as it was; a folder made since and never synced: empty).
A folder's names are kept by its inode, so they follow it when it is renamed, as a real
disk's do. Everything there at mount is on the disk.
The record is kept beside the folder, outside the mount: the power cut is applied to the
folder once unmounted (``power_cut_mount`` does both).

``python -m tests.power_cut_fs BACKING MOUNT_POINT RECORD`` serves it in the foreground.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import mfusepy

from tests.faulty_fs import Faulty, served


class Recording(Faulty):
    """Every call passed through to ``backing``; each sync of a file or a folder records
    what it made durable in ``record``: a file's bytes by its inode, a folder's names."""

    def __init__(self, backing: str, record: str) -> None:
        super().__init__(backing, os.path.join(record, "never-failing"))
        self._record = Path(record)

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        os.fsync(fh)
        keep_bytes(Path(self._full(path)), self._record)
        return 0

    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        keep_names(Path(self._backing), path.lstrip("/"), self._record)
        return 0


def keep_bytes(file: Path, record: Path) -> None:
    """Record ``file``'s bytes as durable (by its inode: its names are its folders')."""
    inode = file.stat().st_ino
    (record / "bytes").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(file, record / "bytes" / str(inode))


def keep_names(backing: Path, folder: str, record: Path) -> None:
    """Record the names in ``backing/folder`` (each with its inode, and whether it is a
    folder) as durable, by the folder's inode."""
    names = {
        entry.name: [entry.inode(), entry.is_dir(follow_symlinks=False)]
        for entry in os.scandir(backing / folder)
    }
    (record / "names").mkdir(parents=True, exist_ok=True)
    (record / "names" / f"{_key(backing / folder)}.json").write_text(json.dumps(names))


def keep_everything(backing: Path, record: Path) -> None:
    """Record all that ``backing`` holds as durable (it is, when it is mounted)."""
    shutil.rmtree(record, ignore_errors=True)
    for folder, _, files in os.walk(backing):
        relative = os.path.relpath(folder, backing)
        keep_names(backing, "" if relative == "." else relative, record)
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink():
                keep_bytes(path, record)


def cut_power(backing: Path, record: Path) -> None:
    """Leave ``backing`` (not mounted) as the disk would hold it after a power cut now:
    each folder, from the top, as its last sync left it (one never synced: empty)."""
    for folder, inside, _ in os.walk(backing):
        kept = record / "names" / f"{_key(Path(folder))}.json"
        names = json.loads(kept.read_text()) if kept.exists() else {}
        _restore(Path(folder), names, record / "bytes")
        inside[:] = [name for name in inside if name in names]  # the rest is gone


def _restore(folder: Path, names: dict[str, list[object]], saved: Path) -> None:
    """Given a folder and the names durable in it, remove what is not durable and give
    each durable file its durable bytes (a symlink made before the mount stays)."""
    for entry in os.scandir(folder):
        if entry.name not in names:
            path = Path(entry.path)
            shutil.rmtree(path) if entry.is_dir(follow_symlinks=False) else path.unlink()
    for name, (inode, is_folder) in names.items():
        path = folder / name
        if is_folder or path.is_symlink():
            continue
        data = saved / str(inode)
        path.write_bytes(data.read_bytes() if data.exists() else b"")


def _key(folder: Path) -> str:
    return str(folder.stat().st_ino)


@contextmanager
def power_cut_mount(backing: Path, mount_point: Path, record: Path) -> Iterator[Path]:
    """Serve ``backing`` at ``mount_point`` (made) until the block ends, then cut the
    power: ``backing`` holds only what was synced. Skips where FUSE is missing."""
    backing.mkdir(parents=True, exist_ok=True)
    keep_everything(backing, record)
    with served(
        "tests.power_cut_fs", [str(backing), str(mount_point), str(record)], backing, mount_point
    ):
        yield mount_point
    cut_power(backing, record)


def lock_on_a_power_cut_disk(
    journal: Path, tmp_path: Path
) -> tuple[Callable[[], AbstractContextManager[Path]], Path]:
    """Given a SQLite journal's path and a scratch folder, put the journal's folder (the
    run lock and what is kept beside it) on a disk whose unsynced changes vanish in a power
    cut, and the journal itself on another disk, through a symlink (SQLite syncs its own
    writes); return how to mount that folder (each unmount cuts the power) and where the
    journal really is."""
    disk, record = tmp_path / "state-disk", tmp_path / "state-record"
    real = tmp_path / "journal-disk" / journal.name
    real.parent.mkdir()
    disk.mkdir()
    (disk / journal.name).symlink_to(real)
    return functools.partial(power_cut_mount, disk, journal.parent, record), real


def main(argv: list[str]) -> None:
    backing, mount_point, record = argv
    mfusepy.FUSE(
        Recording(backing, record),
        mount_point,
        foreground=True,
        nothreads=True,
        direct_io=True,
        attr_timeout=0,
        entry_timeout=0,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
