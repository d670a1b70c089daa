"""put.io replaced a placed file (same name, new id), and the local copy cannot be read to
prove it is still the one placed: the disk fails its reads (EIO), as a failing disk or a
NAS share that lost its server does. The download folder is a real FUSE filesystem that
fails the reads of the files a test names; real syncs against the local put.io and a real
SQLite journal."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from putio_mirror.core.errors import ExitCode
from tests.faulty_fs import faulty_mount
from tests.mirror_env import Mirror

E1 = "/Show S01/e1.mkv"


@pytest.fixture
def faulty(mirror: Mirror) -> Iterator[Path]:
    """The mirror's download folder served by a filesystem that fails the reads of the
    paths written to the returned control file."""
    control = mirror.root / "failing-reads"
    with faulty_mount(mirror.root / "backing", mirror.downloads, control):
        yield control


def _placed_season(mirror: Mirror) -> tuple[int, int]:
    show = mirror.fake.add_folder("Show S01")
    first = mirror.fake.add_file("e1.mkv", parent_id=show, content=b"the first release")
    mirror.fake.add_file("e2.mkv", parent_id=show, content=b"episode two")
    assert mirror.run("sync").code == 0
    return show, first


def _replace(mirror: Mirror, file_id: int, parent: int, content: bytes) -> int:
    mirror.fake.delete_file(file_id)
    return mirror.fake.add_file("e1.mkv", parent_id=parent, content=content)


def _on_put_io(mirror: Mirror) -> set[int]:
    return {item["id"] for item in mirror.fake.files()}


def _node_gets(mirror: Mirror) -> int:
    return sum(1 for logged in mirror.fake.requests if logged.host == "node")


@pytest.mark.parametrize(
    "content",
    [b"the proper release, longer", b"the other release"],  # (17 bytes: the size placed)
    ids=["another-size", "same-size"],
)
def test_a_replacement_over_a_file_the_disk_cannot_read_waits_and_is_retried_each_run(
    mirror: Mirror, faulty: Path, content: bytes
) -> None:
    show, first = _placed_season(mirror)
    mirror.write_config(download={"delete_remote_after": True})
    faulty.write_text(E1 + "\n")
    replacement = _replace(mirror, first, show, content)
    mirror.fake.clear_requests()
    for _ in range(2):  # the reason each run, the replacement tried again each run
        result = mirror.run("sync")
        assert result.code == ExitCode.ITEMS_FAILED, result.out + result.err
        assert "e1.mkv" in result.err and "Input/output error" in result.err, result.err
        assert "needs you" not in result.err and "in the way" not in result.err, result.err
        assert "the next run tries again" in result.err, result.err
        assert replacement in _on_put_io(mirror), "put.io's copy is kept"
        assert (mirror.root / "backing" / "Show S01" / "e1.mkv").read_bytes() == (
            b"the first release"
        )
    faulty.write_text("")  # the disk reads again
    result = mirror.run("sync")
    assert result.code == ExitCode.OK, result.out + result.err
    assert mirror.local_files()["Show S01/e1.mkv"] == content
    assert _node_gets(mirror) == 1, "fetched once: its verified copy waited in staging"
    assert replacement not in _on_put_io(mirror)
    assert list((mirror.downloads / ".putio-mirror-staging" / "verified").iterdir()) == []
    assert mirror.run("sync").out.startswith("Nothing to do")


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_placed_file_become_a_fifo_or_a_folder_is_never_read_nor_replaced(
    mirror: Mirror, kind: str
) -> None:
    show, first = _placed_season(mirror)
    mirror.write_config(download={"delete_remote_after": True})
    local = mirror.downloads / "Show S01" / "e1.mkv"
    local.unlink()
    if kind == "fifo":
        os.mkfifo(local)  # a read of it would wait for ever for a writer
    else:
        local.mkdir()
    replacement = _replace(mirror, first, show, b"the proper release, longer")
    for _ in range(2):
        result = mirror.run("sync")
        assert result.code == ExitCode.NEEDS_ATTENTION, result.out + result.err
        assert "e1.mkv" in result.err and "not overwriting" in result.err, result.err
        assert "not yet complete" not in result.out, "verified: it waits for its place"
        assert replacement in _on_put_io(mirror), "put.io's copy is kept"
    assert stat.S_ISFIFO(local.lstat().st_mode) if kind == "fifo" else local.is_dir()
