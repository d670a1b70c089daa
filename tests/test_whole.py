"""A file of at most four chunks (and a MiB) is fetched in one request (``fetch/whole.py``):
its bytes are synced before they count, it stops between chunks when told, keeping what
came, and every trouble is the usual path's to wait on and retry, from what came."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from putio_mirror.core.errors import (
    ChecksumMismatchError,
    NoSpaceError,
    TransientError,
    UnsafePathError,
)
from putio_mirror.fakeputio import FakePutio
from putio_mirror.fetch.segments import sidecar_path
from putio_mirror.fetch.values import Fetched, FileToFetch
from putio_mirror.putio.client import PutioClient
from tests import small_disks, test_download
from tests.fetching import node_requests, remote_file
from tests.test_download import FIRST_PAUSE, Clock, MakeDownloader, _outage, _url_requests

SMALL = 3_000
CHUNK = 16 * 1024
ONE_CHUNK = {"chunk_size": 256 * 1024}
#: a file of four chunks: the most fetched whole
FOUR_CHUNKS = {"chunk_size": CHUNK}


# the same Fetcher on a virtual clock as test_download's; every test here asks for one chunk
clock = test_download.clock
make_downloader = test_download.make_downloader


def syncs_seen(item: FileToFetch) -> tuple[list[bytes], Callable[[int], None]]:
    """Given a file to fetch, return what its part held at each sync, and the sync that
    notes it (a real ``fdatasync`` first)."""
    seen: list[bytes] = []

    def sync(fd: int) -> None:
        os.fdatasync(fd)
        seen.append(item.part_path.read_bytes())

    return seen, sync


def _small(fake: FakePutio, tmp_path: Path) -> tuple[FileToFetch, bytes]:
    return remote_file(fake, tmp_path, SMALL)


def test_a_small_file_is_fetched_in_one_request_and_synced_before_it_counts(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = _small(fake_putio, tmp_path)
    on_disk_at_sync, sync = syncs_seen(item)
    progress: list[tuple[int, list[bytes]]] = []
    downloader = make_downloader(sync=sync, **ONE_CHUNK)
    fetched = downloader.fetch(item, on_progress=lambda n: progress.append((n, on_disk_at_sync)))
    assert fetched == Fetched(True, SMALL)
    assert on_disk_at_sync == [content]  # one sync, of the whole file
    assert progress == [(SMALL, [content])]  # counted once synced
    (node,) = node_requests(fake_putio)
    assert "Range" not in node.headers
    assert not sidecar_path(item.part_path).exists()


def test_a_file_of_four_chunks_is_fetched_in_one_request_and_synced_once(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = remote_file(fake_putio, tmp_path, 4 * CHUNK)
    syncs, sync = syncs_seen(item)
    progress: list[int] = []
    downloader = make_downloader(sync=sync, **FOUR_CHUNKS)
    assert downloader.fetch(item, on_progress=progress.append) == Fetched(True, 4 * CHUNK)
    assert syncs == [content]
    assert progress == [4 * CHUNK]  # counted once, whole: no chunk's bookkeeping
    (node,) = node_requests(fake_putio)
    assert "Range" not in node.headers


def test_a_file_of_five_chunks_takes_the_usual_path(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    # held in memory until its one write, a file fetched whole is lost to a kill -9: one
    # of more chunks is written as it comes
    item, content = remote_file(fake_putio, tmp_path, 5 * CHUNK)
    progress: list[int] = []
    downloader = make_downloader(**FOUR_CHUNKS)
    assert downloader.fetch(item, on_progress=progress.append) == Fetched(True, 5 * CHUNK)
    assert item.part_path.read_bytes() == content
    assert len(progress) > 1


def test_a_file_fetched_whole_stops_between_chunks_when_told_keeping_them(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    # a window that closes mid-file: asked before the request, then after each chunk
    item, content = remote_file(fake_putio, tmp_path, 4 * CHUNK)
    answers = iter([True, True, False])
    synced, sync = syncs_seen(item)
    downloader = make_downloader(sync=sync, **FOUR_CHUNKS)
    stopped = downloader.fetch(item, may_continue=lambda: next(answers))
    assert stopped == Fetched(False, 2 * CHUNK)
    assert synced == [content[: 2 * CHUNK]]  # kept durably: the next window goes on from it
    assert not sidecar_path(item.part_path).exists()  # written in order: its length tells
    assert downloader.fetch(item) == Fetched(True, 4 * CHUNK)
    assert item.part_path.read_bytes() == content
    assert node_requests(fake_putio)[-1].headers["Range"] == f"bytes={2 * CHUNK}-"


def test_a_file_put_io_replaced_after_a_whole_fetch_stopped_never_passes_as_the_mix(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    # put.io replaces the file's bytes (same id, same size) between a window's end and the
    # next: the kept chunks are the old file's, the rest the new one's; the mix never
    # passes, and fetched again from zero it is the new file
    item, _ = remote_file(fake_putio, tmp_path, 4 * CHUNK)
    answers = iter([True, True, False])
    downloader = make_downloader(**FOUR_CHUNKS)
    assert downloader.fetch(item, may_continue=lambda: next(answers)) == Fetched(False, 2 * CHUNK)
    other = fake_putio.add_file("Other.mkv", size=4 * CHUNK)
    replaced, new = fake_putio.world.tree.get(item.file_id), fake_putio.world.tree.get(other)
    assert replaced is not None and new is not None
    replaced.content, replaced.crc32 = new.content, new.crc32
    now = FileToFetch(item.file_id, item.size, new.crc32, item.part_path)
    with pytest.raises(ChecksumMismatchError):
        downloader.fetch(now)
    downloader.discard(now.part_path)
    assert downloader.fetch(now) == Fetched(True, 4 * CHUNK)
    assert now.part_path.read_bytes() == fake_putio.file_content(other)


def test_a_file_fetched_whole_reset_midway_goes_on_from_what_came(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader, clock: Clock
) -> None:
    item, content = remote_file(fake_putio, tmp_path, 4 * CHUNK)
    fake_putio.node_fault(item.file_id, reset_after=CHUNK + CHUNK // 2)
    assert make_downloader(**FOUR_CHUNKS).fetch(item) == Fetched(True, 4 * CHUNK)
    assert item.part_path.read_bytes() == content
    first, second = node_requests(fake_putio)
    assert "Range" not in first.headers
    kept = int(second.headers["Range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < kept <= CHUNK + CHUNK // 2  # what came before the reset was kept
    assert clock.pauses() == [FIRST_PAUSE]


def test_a_file_fetched_whole_onto_a_disk_too_small_keeps_what_fitted_and_resumes(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    # a real full disk (a tmpfs smaller than the file): its one write stops short
    item, content = remote_file(fake_putio, tmp_path, 4 * CHUNK)
    staging = item.part_path.parent
    staging.mkdir()
    small_disks.mount_tmpfs(staging, "40k")
    try:
        with pytest.raises(NoSpaceError) as full:
            make_downloader(**FOUR_CHUNKS).fetch(item)
        assert str(staging) in full.value.hint
        kept = item.part_path.read_bytes()
        assert 0 < len(kept) < 4 * CHUNK and content.startswith(kept)  # what fitted, intact
        small_disks.mount("-o", "remount,size=1m", str(staging))  # room made
        assert make_downloader(**FOUR_CHUNKS).fetch(item) == Fetched(True, 4 * CHUNK)
        assert item.part_path.read_bytes() == content
        assert node_requests(fake_putio)[-1].headers["Range"] == f"bytes={len(kept)}-"
    finally:
        small_disks.unmount(staging)


def test_a_small_file_whose_node_answers_503_waits_and_asks_a_fresh_link(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader, clock: Clock
) -> None:
    item, content = _small(fake_putio, tmp_path)
    fake_putio.node_fault(item.file_id, status=503, times=2)
    assert make_downloader(**ONE_CHUNK).fetch(item) == Fetched(True, SMALL)
    assert item.part_path.read_bytes() == content
    assert [logged.status for logged in node_requests(fake_putio)] == [503, 503, 200]
    assert clock.pauses() == [FIRST_PAUSE, 2 * FIRST_PAUSE]  # the backoff, doubling
    assert len(_url_requests(fake_putio, item.file_id)) == 3


def test_a_small_file_whose_link_is_refused_with_429_waits_as_put_io_asks(
    fake_putio: FakePutio,
    tmp_path: Path,
    make_downloader: MakeDownloader,
    client: PutioClient,
    clock: Clock,
) -> None:
    item, content = _small(fake_putio, tmp_path)
    fake_putio.inject(f"/v2/files/{item.file_id}/url", status=429, retry_after="7")
    downloader = make_downloader(lambda n: client.download_url(n, retry=False), **ONE_CHUNK)
    assert downloader.fetch(item) == Fetched(True, SMALL)
    assert item.part_path.read_bytes() == content
    assert clock.pauses() and clock.pauses()[0] >= 7.0
    assert len(node_requests(fake_putio)) == 1


def test_a_small_file_reset_mid_body_is_fetched_again_from_zero(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader, clock: Clock
) -> None:
    item, content = _small(fake_putio, tmp_path)
    fake_putio.node_fault(item.file_id, reset_after=1_000)
    assert make_downloader(**ONE_CHUNK).fetch(item) == Fetched(True, SMALL)
    assert item.part_path.read_bytes() == content
    first, second = node_requests(fake_putio)
    assert "Range" not in first.headers and "Range" not in second.headers  # nothing was kept
    assert clock.pauses() == [FIRST_PAUSE]


def test_a_small_file_that_stalls_is_asked_again(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = _small(fake_putio, tmp_path)
    fake_putio.node_fault(item.file_id, stall_after=1_000)
    downloader = make_downloader(read_timeout=0.3, **ONE_CHUNK)
    assert downloader.fetch(item) == Fetched(True, SMALL)
    assert item.part_path.read_bytes() == content
    assert len(node_requests(fake_putio)) == 2


def test_a_small_file_gives_up_after_max_outage_counted_from_its_first_request(
    fake_putio: FakePutio,
    tmp_path: Path,
    make_downloader: MakeDownloader,
    client: PutioClient,
    clock: Clock,
) -> None:
    item, _ = _small(fake_putio, tmp_path)
    url_for = _outage(clock, 10_000.0, client.download_url, "raise")
    with pytest.raises(TransientError):
        make_downloader(url_for, max_outage=300.0, **ONE_CHUNK).fetch(item)
    assert clock.now == pytest.approx(300.0)


@pytest.mark.parametrize("size", [SMALL, 4 * CHUNK], ids=["one chunk", "four chunks"])
def test_a_file_with_other_bytes_never_passes_and_is_fetched_once(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader, size: int
) -> None:
    # the caller fetches it once more from zero (a damaged copy on put.io sends the same
    # bytes twice): fetched again here first, a corrupt file cost four fetches, not two
    item, content = remote_file(fake_putio, tmp_path, size)
    wrong = FileToFetch(item.file_id, item.size, "deadbeef", item.part_path)
    with pytest.raises(ChecksumMismatchError):
        make_downloader(**FOUR_CHUNKS).fetch(wrong)
    assert len(node_requests(fake_putio)) == 1
    assert item.part_path.read_bytes() == content  # kept, as the usual path keeps it


def test_a_small_file_with_a_part_already_there_is_resumed(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = _small(fake_putio, tmp_path)
    item.part_path.parent.mkdir(parents=True)
    item.part_path.write_bytes(content[:1_000])
    assert make_downloader(**ONE_CHUNK).fetch(item) == Fetched(True, SMALL)
    assert item.part_path.read_bytes() == content
    (node,) = node_requests(fake_putio)
    assert node.headers["Range"] == "bytes=1000-"


def test_a_symlink_in_place_of_a_small_files_part_is_refused(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, _ = _small(fake_putio, tmp_path)
    item.part_path.parent.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"keep")
    item.part_path.symlink_to(elsewhere)
    with pytest.raises(UnsafePathError):
        make_downloader(**ONE_CHUNK).fetch(item)
    assert elsewhere.read_bytes() == b"keep"
    assert node_requests(fake_putio) == []


def _another(fake: FakePutio, item: FileToFetch, name: str) -> tuple[FileToFetch, bytes]:
    file_id = fake.add_file(name, size=SMALL)
    other = FileToFetch(file_id, SMALL, fake.file_crc32(file_id), item.part_path.with_name(name))
    return other, fake.file_content(file_id)


def test_a_staging_folder_swapped_for_a_symlink_gets_no_part_through_it(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    # small files' parts are made in their folder as opened once, never through a link
    item, _ = _small(fake_putio, tmp_path)
    downloader = make_downloader(**ONE_CHUNK)
    assert downloader.fetch(item) == Fetched(True, SMALL)
    staging, elsewhere = item.part_path.parent, tmp_path / "elsewhere"
    elsewhere.mkdir()
    staging.rename(tmp_path / "old-staging")
    staging.symlink_to(elsewhere)
    second, second_content = _another(fake_putio, item, "y.part")
    assert downloader.fetch(second) == Fetched(True, SMALL)
    assert list(elsewhere.iterdir()) == []
    assert (tmp_path / "old-staging" / "y.part").read_bytes() == second_content


def test_a_staging_folder_that_is_a_symlink_from_the_start_is_refused(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, _ = _small(fake_putio, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    item.part_path.parent.symlink_to(elsewhere)
    with pytest.raises(UnsafePathError, match="symlink"):
        make_downloader(**ONE_CHUNK).fetch(item)
    assert list(elsewhere.iterdir()) == []
    assert node_requests(fake_putio) == []


def test_a_staging_folder_removed_between_small_files_is_made_again(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, _ = _small(fake_putio, tmp_path)
    downloader = make_downloader(**ONE_CHUNK)
    assert downloader.fetch(item) == Fetched(True, SMALL)
    item.part_path.unlink()
    item.part_path.parent.rmdir()
    second, second_content = _another(fake_putio, item, "y.part")
    assert downloader.fetch(second) == Fetched(True, SMALL)
    assert second.part_path.read_bytes() == second_content


def test_files_fetched_whole_on_several_threads_each_keep_their_own_bytes(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    # each thread reads its files' answers into a buffer of its own, reused file after
    # file: one thread's next file never lands in another's body, nor a longer file's
    # bytes in a shorter one's
    downloader = make_downloader(**ONE_CHUNK)
    sizes = [200_000, 70_000, SMALL, 150_000, 9, 100_000]
    work: list[list[tuple[FileToFetch, bytes]]] = []
    for thread in range(4):
        files = []
        for number, size in enumerate(sizes):
            file_id = fake_putio.add_file(f"{thread}-{number}.bin", size=size)
            part = tmp_path / "staging" / f"{file_id}.part"
            crc = fake_putio.file_crc32(file_id)
            files.append((FileToFetch(file_id, size, crc, part), fake_putio.file_content(file_id)))
        work.append(files)
    failures: list[BaseException] = []

    def fetch_all(files: list[tuple[FileToFetch, bytes]]) -> None:
        try:
            for item, _ in files:
                assert downloader.fetch(item) == Fetched(True, item.size)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=fetch_all, args=(files,)) for files in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    for files in work:
        for item, content in files:
            assert item.part_path.read_bytes() == content
    assert len(node_requests(fake_putio)) == len(sizes) * len(work)  # none fetched twice
