"""A part a stopped fetch kept outlives a power cut right after the stop.

The part's bytes were synced, and so must be its name (and a segmented part's sidecar):
else the next window starts the file again from byte 0, on a filesystem that keeps only
what POSIX promises (``tests/power_cut_fs.py``). Its bytes are proved by the final CRC32
either way; what a power cut must not take is the progress.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from putio_mirror.fakeputio import FakePutio
from putio_mirror.fetch.partfile import WriteBehind
from putio_mirror.fetch.segments import fresh_table, load_table, sidecar_path
from putio_mirror.fetch.values import Fetched, FileToFetch
from tests import test_download
from tests.fetching import node_requests
from tests.power_cut_fs import power_cut_mount
from tests.test_download import MakeDownloader

CHUNK = 16 * 1024

# the same Fetcher on a virtual clock as test_download's
clock = test_download.clock
make_downloader = test_download.make_downloader

Powered = Callable[[], AbstractContextManager[Path]]


def on_a_power_cut_disk(
    fake: FakePutio, tmp_path: Path, size: int
) -> tuple[Powered, FileToFetch, bytes]:
    """Given a fake and a size, add a file of that size; return how to mount a disk whose
    unsynced changes vanish at unmount, the file as fetched into that mount's staging
    folder (there, made and durable, before the first mount), and its bytes."""
    disk, mounted = tmp_path / "disk", tmp_path / "mounted"
    (disk / "staging").mkdir(parents=True)

    def powered() -> AbstractContextManager[Path]:
        return power_cut_mount(disk, mounted, tmp_path / "record")

    file_id = fake.add_file("Movie.mkv", size=size)
    item = FileToFetch(file_id, size, fake.file_crc32(file_id), mounted / "staging" / "x.part")
    return powered, item, fake.file_content(file_id)


def stopping_after(chunks: int) -> Callable[[], bool]:
    """Return a ``may_continue`` that says yes ``chunks`` times, then no."""
    answers: Iterator[bool] = iter([True] * chunks)
    return lambda: next(answers, False)


def resumed_ranges(fake: FakePutio, before: int) -> list[str]:
    return [request.headers.get("Range", "") for request in node_requests(fake)[before:]]


@pytest.mark.parametrize(
    ("chunks", "options"),
    [
        (4, {"chunk_size": CHUNK}),  # fetched whole: kept as the part when told to stop
        # too large to fetch whole, too small to split: one connection, no sidecar
        (12, {"chunk_size": CHUNK, "sync_every": 4 * CHUNK}),
    ],
    ids=["whole", "in order"],
)
def test_a_file_stopped_midway_keeps_its_part_through_a_power_cut(
    fake_putio: FakePutio,
    tmp_path: Path,
    make_downloader: MakeDownloader,
    chunks: int,
    options: dict[str, int],
) -> None:
    size = chunks * CHUNK
    powered, item, content = on_a_power_cut_disk(fake_putio, tmp_path, size)
    with powered():
        stopped = make_downloader(**options).fetch(item, may_continue=stopping_after(chunks // 2))
    assert not stopped.complete and 0 < stopped.bytes_done < size
    before = len(node_requests(fake_putio))
    with powered():  # the next run, its own fetcher: the folders it opened are gone
        assert make_downloader(**options).fetch(item) == Fetched(True, size)
        assert item.part_path.read_bytes() == content
    assert resumed_ranges(fake_putio, before) == [f"bytes={stopped.bytes_done}-"]


def test_a_segmented_part_and_its_sidecar_outlive_a_power_cut_after_a_stop(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    size = 16 * CHUNK
    powered, item, content = on_a_power_cut_disk(fake_putio, tmp_path, size)
    options = {
        "chunk_size": CHUNK,
        "connections": 2,
        "min_segment_size": 4 * CHUNK,
        "sync_every": 2 * CHUNK,
    }
    downloader = make_downloader(**options)
    with powered():
        stopped = downloader.fetch(item, may_continue=stopping_after(8))
        assert sidecar_path(item.part_path).exists()
    assert not stopped.complete and stopped.bytes_done > 0
    before = len(node_requests(fake_putio))
    with powered():  # the next run, its own fetcher: the folders it opened are gone
        assert make_downloader(**options).fetch(item) == Fetched(True, size)
        assert item.part_path.read_bytes() == content
    ranges = resumed_ranges(fake_putio, before)
    assert ranges and all(ranges), ranges
    assert "bytes=0-" not in {r.split("-")[0] + "-" for r in ranges}, ranges


def test_a_sidecar_rewritten_as_a_segment_is_split_outlives_a_power_cut_right_after(
    fake_putio: FakePutio, tmp_path: Path
) -> None:
    # A worker free early takes over half of a segment: the sidecar is rewritten whole
    # (a scratch renamed over it). The power goes right after: the sidecar the next run
    # reads must be that one, whole, with the progress the last sync covered.
    size = 16 * CHUNK
    powered, item, content = on_a_power_cut_disk(fake_putio, tmp_path, size)
    with powered():
        fd = os.open(item.part_path, os.O_RDWR | os.O_CREAT)
        table = fresh_table(item, 0, 0, 2, 2)
        table.save()
        os.ftruncate(fd, size)  # stretched to its size, as the crew does
        WriteBehind(fd, item.part_path).finish()  # the part's name made durable
        first = table.segments[0]
        os.pwrite(fd, content[: 3 * CHUNK], 0)
        first.done, first.crc = 3 * CHUNK, zlib.crc32(content[: 3 * CHUNK])
        WriteBehind(fd, item.part_path, on_sync=table.mark).finish()
        os.close(fd)
        for segment in table.segments:
            segment.owned = True  # both at work: a third worker splits the second
        assert table.claim(2 * CHUNK) is not None
        table.save()
        table.close()
    with powered():
        table = load_table(item, 2)
        assert table is not None, "the sidecar did not outlive the power cut"
        assert len(table.rows()) == 3 and table.done() == 3 * CHUNK
        table.close()
