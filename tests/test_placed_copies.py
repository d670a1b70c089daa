"""A placed copy is read as put.io's file only while it is still the file the mirror placed.

The journal keeps each placed file's identity as the filesystem tells it (its inode number
and modification time; its size is the record's). The mount reads a local copy only while
the file at its path has that identity: a file of the same size put in its place, or one
rewritten in place, is streamed from put.io. A copy whose identity is not known (placed
before the journal kept it) or changed with its bytes the same (touched, restored from a
backup) is streamed while its CRC32 is checked once, then read locally.

Real FUSE mounts of the fake put.io over loopback, a real journal (skipped without FUSE,
as tests/test_mount.py is).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from putio_mirror.fakeputio import FakePutio
from putio_mirror.journal.reader import JournalReader
from tests.mirror_env import Mirror
from tests.mount_env import mounted, node_requests

MIB = 1024 * 1024


def mirrored_at(path: Path) -> str:
    return os.getxattr(path, "user.putio.mirrored").decode()


def wait_for(check: Callable[[], bool], seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.1)
    return check()


def put_in_place(path: Path, data: bytes) -> None:
    """Put another file at ``path`` as a person or a tool does: written beside, renamed over."""
    beside = path.with_name(path.name + ".new")
    beside.write_bytes(data)
    beside.replace(path)


def forget_identities(mirror: Mirror) -> None:
    """Leave the journal's placed files as schema 6's upgrade leaves those placed before:
    their identity unknown."""
    with closing(sqlite3.connect(mirror.journal)) as db, db:
        db.execute("UPDATE downloads SET placed_inode = NULL, placed_mtime_ns = NULL")


def test_a_file_of_the_same_size_put_at_a_placed_copys_path_is_streamed_not_served(
    mirror: Mirror, fake_putio: FakePutio
) -> None:
    file_id = fake_putio.add_file("show.mkv", 0, size=2 * MIB)
    assert mirror.run("sync").code == 0
    local = mirror.downloads / "show.mkv"
    put_in_place(local, b"\xee" * (2 * MIB))
    with mounted(mirror) as mount:
        fake_putio.clear_requests()
        path = mount.mount_point / "show.mkv"
        assert mirrored_at(path) == ""
        assert path.read_bytes() == fake_putio.file_content(file_id)
        assert node_requests(fake_putio, file_id)
        # Its CRC32, checked once, says it is not put.io's file: it stays streamed.
        assert wait_for(lambda: "is not put.io's file" in mount.output()), mount.output()
        assert mirrored_at(path) == ""
        assert path.read_bytes() == fake_putio.file_content(file_id)


def test_a_placed_copy_rewritten_in_place_with_as_many_other_bytes_is_streamed(
    mirror: Mirror, fake_putio: FakePutio
) -> None:
    # A tag editor, mkvpropedit: the same file (inode), the same size, other bytes.
    file_id = fake_putio.add_file("show.mkv", 0, size=2 * MIB)
    assert mirror.run("sync").code == 0
    local = mirror.downloads / "show.mkv"
    placed = local.stat()
    time.sleep(0.05)  # past the kernel's coarse clock: a tool rewrites it later than this
    with local.open("r+b") as stream:
        stream.write(b"\xee" * 4096)
    assert (local.stat().st_ino, local.stat().st_size) == (placed.st_ino, placed.st_size)
    with mounted(mirror) as mount:
        path = mount.mount_point / "show.mkv"
        assert mirrored_at(path) == ""
        assert path.read_bytes() == fake_putio.file_content(file_id)
        assert wait_for(lambda: "is not put.io's file" in mount.output()), mount.output()
        assert mirrored_at(path) == ""


def test_a_placed_copy_a_media_manager_hard_linked_into_its_library_is_read_locally(
    mirror: Mirror, fake_putio: FakePutio, tmp_path: Path
) -> None:
    # Sonarr's import by hard link: the copy is where it was placed, the very same file.
    file_id = fake_putio.add_file("show.mkv", 0, size=2 * MIB)
    assert mirror.run("sync").code == 0
    local = mirror.downloads / "show.mkv"
    library = tmp_path / "library"
    library.mkdir()
    os.link(local, library / "Show - S01E01.mkv")
    with mounted(mirror) as mount:
        fake_putio.clear_requests()
        path = mount.mount_point / "show.mkv"
        assert mirrored_at(path) == str(local)
        assert path.read_bytes() == fake_putio.file_content(file_id)
        assert node_requests(fake_putio) == []


def test_a_touched_copy_is_streamed_until_its_crc32_is_checked_then_read_locally(
    mirror: Mirror, fake_putio: FakePutio
) -> None:
    # Sonarr's "change file date" through its hard link, `touch`, a backup restored: the
    # bytes placed, under another modification time or inode.
    file_id = fake_putio.add_file("show.mkv", 0, size=2 * MIB)
    assert mirror.run("sync").code == 0
    local = mirror.downloads / "show.mkv"
    aired = 1_500_000_000 * 1_000_000_000
    os.utime(local, ns=(aired, aired))
    with mounted(mirror) as mount:
        path = mount.mount_point / "show.mkv"
        fake_putio.clear_requests()
        assert path.read_bytes() == fake_putio.file_content(file_id)
        assert wait_for(lambda: mirrored_at(path) == str(local)), mount.output()
        fake_putio.clear_requests()
        assert path.read_bytes() == fake_putio.file_content(file_id)
        assert node_requests(fake_putio) == []


def test_copies_placed_before_identities_were_journaled_are_checked_once_each(
    mirror: Mirror, fake_putio: FakePutio
) -> None:
    ours = fake_putio.add_file("ours.mkv", 0, size=2 * MIB)
    swapped = fake_putio.add_file("swapped.mkv", 0, size=2 * MIB)
    assert mirror.run("sync").code == 0
    forget_identities(mirror)
    put_in_place(mirror.downloads / "swapped.mkv", b"\xee" * (2 * MIB))
    with mounted(mirror) as mount:
        ours_path, swapped_path = mount.mount_point / "ours.mkv", mount.mount_point / "swapped.mkv"
        assert swapped_path.read_bytes() == fake_putio.file_content(swapped)
        assert ours_path.read_bytes() == fake_putio.file_content(ours)
        assert wait_for(lambda: mirrored_at(ours_path) == str(mirror.downloads / "ours.mkv"))
        assert wait_for(lambda: "is not put.io's file" in mount.output()), mount.output()
        fake_putio.clear_requests()
        assert ours_path.read_bytes() == fake_putio.file_content(ours)
        assert node_requests(fake_putio, ours) == []
        assert mirrored_at(swapped_path) == ""  # (its bytes read before are kept in memory)
        assert swapped_path.read_bytes() == fake_putio.file_content(swapped)


def identity_at(path: Path) -> tuple[int, int]:
    found = path.lstat()
    return found.st_ino, found.st_mtime_ns


def test_every_way_a_file_is_placed_journals_its_identity(
    mirror: Mirror, fake_putio: FakePutio
) -> None:
    # A file of its own, a folder item built whole, a file adopted where it already was,
    # and one put.io replaced under a new id, put in place of the one placed.
    alone = fake_putio.add_file("alone.mkv", 0, size=3000)
    folder = fake_putio.add_folder("Show")
    first = fake_putio.add_file("e01.mkv", folder, size=4000)
    second = fake_putio.add_file("e02.mkv", folder, size=5000)
    adopted = fake_putio.add_file("adopted.bin", 0, b"already here")
    mirror.downloads.mkdir(parents=True, exist_ok=True)
    (mirror.downloads / "adopted.bin").write_bytes(b"already here")
    old = fake_putio.add_file("replaced.mkv", 0, b"old bytes")
    assert mirror.run("sync").code == 0
    fake_putio.delete_file(old)
    new = fake_putio.add_file("replaced.mkv", 0, b"new bytes, more")
    assert mirror.run("sync").code == 0
    reader = JournalReader.open(f"sqlite:///{mirror.journal}")
    assert reader is not None
    with reader:
        downloads = reader.downloads()
    placed = {
        alone: "alone.mkv",
        first: "Show/e01.mkv",
        second: "Show/e02.mkv",
        adopted: "adopted.bin",
        new: "replaced.mkv",
    }
    for file_id, relative in placed.items():
        record = downloads[file_id]
        assert record.placed_path == relative
        found = (record.placed_inode, record.placed_mtime_ns)
        assert found == identity_at(mirror.downloads / relative), relative
