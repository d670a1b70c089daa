"""Every way a file is placed journals which file it was (schema 6): its inode number
and modification time, as the filesystem tells them.

Real syncs of the fake put.io over loopback, a real journal.
"""

from __future__ import annotations

from pathlib import Path

from putio_mirror.fakeputio import FakePutio
from putio_mirror.journal.reader import JournalReader
from tests.mirror_env import Mirror


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
