"""A file fetched in order (too small to split) whose part is not there yet: the part is
made new in its folder as opened once (``PartFolders.new_part``), with no look for a part
or its folder first; a part already there is the usual path's to resume or refuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from putio_mirror.core.errors import UnsafePathError
from putio_mirror.fakeputio import FakePutio
from putio_mirror.fetch.segments import sidecar_path
from putio_mirror.fetch.values import Fetched, FileToFetch
from tests import test_download
from tests.fetching import node_requests, remote_file
from tests.test_download import CHUNK, MakeDownloader

SIZE = 3 * CHUNK + 100  # more than one chunk: not fetched whole, not split

clock = test_download.clock
make_downloader = test_download.make_downloader


def _another(fake: FakePutio, item: FileToFetch, name: str) -> tuple[FileToFetch, bytes]:
    file_id = fake.add_file(name, size=SIZE)
    another = FileToFetch(file_id, SIZE, fake.file_crc32(file_id), item.part_path.with_name(name))
    return another, fake.file_content(file_id)


def test_a_part_folder_swapped_for_a_symlink_gets_no_part_through_it(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = remote_file(fake_putio, tmp_path, SIZE)
    downloader = make_downloader()
    assert downloader.fetch(item) == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content
    staging, elsewhere = item.part_path.parent, tmp_path / "elsewhere"
    elsewhere.mkdir()
    staging.rename(tmp_path / "old-staging")
    staging.symlink_to(elsewhere)
    second, second_content = _another(fake_putio, item, "y.part")
    assert downloader.fetch(second) == Fetched(True, SIZE)
    assert list(elsewhere.iterdir()) == []
    assert (tmp_path / "old-staging" / "y.part").read_bytes() == second_content


def test_a_symlink_in_place_of_the_part_is_refused(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, _ = remote_file(fake_putio, tmp_path, SIZE)
    target = tmp_path / "target"
    target.write_bytes(b"keep")
    item.part_path.parent.mkdir()
    item.part_path.symlink_to(target)
    with pytest.raises(UnsafePathError):
        make_downloader().fetch(item)
    assert target.read_bytes() == b"keep"


def test_a_sidecar_left_without_its_part_is_never_believed_by_the_new_part(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    # a new part does not look for a sidecar (a run tidies one left alone: tests/
    # test_reconcile); one that claims bytes the part holds is proven before they count
    item, content = remote_file(fake_putio, tmp_path, SIZE)
    item.part_path.parent.mkdir()
    orphan = sidecar_path(item.part_path)
    claims = {"size": SIZE, "crc32": item.crc32, "segments": [[0, SIZE, CHUNK, 0]]}
    orphan.write_text(json.dumps(claims))  # the first chunk done, by a CRC32 not its own
    downloader = make_downloader()
    calls = iter([True])  # on after the first chunk, then stop
    stopped = downloader.fetch(item, may_continue=lambda: next(calls, False))
    assert not stopped.complete and stopped.bytes_done >= CHUNK
    assert downloader.fetch(item) == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content
    assert "Range" not in node_requests(fake_putio)[-1].headers  # fetched again from zero


def _symlinked_sidecar(part: Path, tmp_path: Path) -> Path:
    """Given a part not made yet, plant a symlink at its sidecar's name; return its
    target (holding ``b"keep"``)."""
    part.parent.mkdir()
    target = tmp_path / "target"
    target.write_bytes(b"keep")
    sidecar_path(part).symlink_to(target)
    return target


def test_a_symlink_in_place_of_a_new_parts_sidecar_is_never_written_through(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    # a new part no longer unlinks whatever is at its sidecar's name: a symlink planted
    # there stays (never ours: staging's listing leaves it out), and its target is untouched
    item, content = remote_file(fake_putio, tmp_path, SIZE)
    target = _symlinked_sidecar(item.part_path, tmp_path)
    assert make_downloader().fetch(item) == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content
    assert target.read_bytes() == b"keep"


def test_a_part_resumed_beside_a_symlinked_sidecar_is_refused(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, _ = remote_file(fake_putio, tmp_path, SIZE)
    target = _symlinked_sidecar(item.part_path, tmp_path)
    downloader = make_downloader()
    calls = iter([True])  # on after the first chunk, then stop
    assert not downloader.fetch(item, may_continue=lambda: next(calls, False)).complete
    with pytest.raises(UnsafePathError):
        downloader.fetch(item)  # as a symlink in place of the part is
    assert target.read_bytes() == b"keep"


def test_a_fetch_stopped_before_its_first_byte_resumes_from_the_new_part(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = remote_file(fake_putio, tmp_path, SIZE)
    downloader = make_downloader()
    assert downloader.fetch(item, may_continue=lambda: False) == Fetched(False, 0)
    assert node_requests(fake_putio) == []
    assert downloader.fetch(item) == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content


def test_parts_fetched_one_after_another_get_only_their_own_bytes(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    # one chunk buffer serves every request of a thread: a shorter file after a longer
    # one must get none of the longer one's bytes
    downloader = make_downloader()
    longer, longer_content = remote_file(fake_putio, tmp_path, SIZE)
    assert downloader.fetch(longer) == Fetched(True, SIZE)
    file_id = fake_putio.add_file("short.mkv", size=CHUNK + 10)
    shorter = FileToFetch(
        file_id, CHUNK + 10, fake_putio.file_crc32(file_id), longer.part_path.with_name("s")
    )
    assert downloader.fetch(shorter) == Fetched(True, CHUNK + 10)
    assert shorter.part_path.read_bytes() == fake_putio.file_content(file_id)
    assert longer.part_path.read_bytes() == longer_content
