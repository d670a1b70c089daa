"""One integrity model for both engines: what a fetch claims is on disk, and proved.

A power cut loses what the page cache held: every byte written after the last
completed sync. The child fetch here records what the disk holds with its sync
function (a copy of the part, taken after each real ``fdatasync``), so the test can
put the part back to exactly that after a kill -9, keep the latest sidecar, and
resume. A failing disk is a sync function that raises; symlinks are planted in staging.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from putio_mirror.core.errors import ExitCode, ItemError, NoSpaceError, UnsafePathError
from putio_mirror.core.retry import Backoff
from putio_mirror.fakeputio import FakePutio
from putio_mirror.fetch.engine import Fetcher
from putio_mirror.fetch.partfile import sync_data
from putio_mirror.fetch.segments import sidecar_path
from putio_mirror.fetch.values import Fetched, FileToFetch
from putio_mirror.local.staging import part_path
from putio_mirror.putio.client import PutioClient
from tests.fetching import remote_file
from tests.mirror_env import Mirror

MIB = 1024 * 1024
SIZE = 16 * MIB
QUARTER = SIZE // 4
STARTS = [0, QUARTER, 2 * QUARTER, 3 * QUARTER]
CHUNK = 16 * 1024
SYNC_EVERY = 256 * 1024
PROVED_WRONG = "differ from what its sidecar recorded"

MakeDownloader = Callable[..., Fetcher]


@pytest.fixture
def make_downloader(client: PutioClient) -> Iterator[MakeDownloader]:
    made: list[Fetcher] = []

    def make(**options: Any) -> Fetcher:
        options.setdefault("connections", 4)
        options.setdefault("min_segment_size", QUARTER)
        options.setdefault("chunk_size", CHUNK)
        options.setdefault("read_timeout", 5.0)
        options.setdefault("backoff", Backoff(base=0.01, cap=0.05, max_attempts=1000))
        options.setdefault("sync_every", SYNC_EVERY)
        downloader = Fetcher(client.download_url, **options)
        made.append(downloader)
        return downloader

    yield make
    for downloader in made:
        downloader.close()


def _remote(fake: FakePutio, tmp_path: Path, size: int = SIZE) -> tuple[FileToFetch, bytes]:
    return remote_file(fake, tmp_path, size)


def _rows(item: FileToFetch) -> list[list[int]]:
    rows: list[list[int]] = json.loads(sidecar_path(item.part_path).read_text())["segments"]
    return rows


def _node_starts(fake: FakePutio) -> list[int]:
    starts = []
    for logged in fake.requests:
        if logged.host == "node":
            starts.append(int(logged.headers["Range"].removeprefix("bytes=").split("-")[0]))
    return sorted(starts)


def _crc_of(path: Path) -> str:
    return f"{zlib.crc32(path.read_bytes()):08x}"


# -- a power cut: only what a completed sync covered survives ---------------------------------

# A segmented fetch whose sync function records what the disk holds: after each real
# fdatasync it copies the part to <part>.synced (and syncs the copy). Before its third
# sync it says so on stdout and waits for ever: the test kills it there, with bytes
# written since the last sync (the sync was due because of them).
_FETCH_RECORDING_SYNCS = """
import os, shutil, sys
from pathlib import Path
from putio_mirror.fetch.values import FileToFetch
from putio_mirror.fetch.partfile import sync_data
from putio_mirror.putio.client import PutioClient
from putio_mirror.fetch.engine import Fetcher
from putio_mirror.fetch.throttle import RateLimiter

api, token, file_id, size, crc, part, segment, every = sys.argv[1:]
synced, scratch = Path(part + ".synced"), Path(part + ".synced.tmp")
syncs = 0

def recording_sync(fd):
    global syncs
    syncs += 1
    if syncs == 3:
        print("syncing", flush=True)
        sys.stdin.readline()  # never answered: killed here
    sync_data(fd)
    shutil.copyfile(part, scratch)
    with open(scratch, "rb+") as copy:
        os.fsync(copy.fileno())
    scratch.replace(synced)

with PutioClient(token, api) as client:
    downloader = Fetcher(
        client.download_url,
        min_segment_size=int(segment),
        chunk_size=16384,
        limiter=RateLimiter(lambda: 4 * 1024 * 1024),
        sync=recording_sync,
        sync_every=int(every),
    )
    downloader.fetch(FileToFetch(int(file_id), int(size), crc, Path(part)))
"""


def _kill_before_third_sync(fake: FakePutio, item: FileToFetch, stderr: Path) -> None:
    args = [fake.api_url, fake.token, str(item.file_id), str(item.size), str(item.crc32)]
    args += [str(item.part_path), str(QUARTER), str(SYNC_EVERY)]
    argv = [sys.executable, "-c", _FETCH_RECORDING_SYNCS, *args]
    pipe = subprocess.PIPE
    with (
        stderr.open("wb") as errors,
        subprocess.Popen(argv, stdin=pipe, stdout=pipe, stderr=errors) as child,
    ):
        try:
            assert child.stdout is not None
            said = child.stdout.readline()  # blocks until the child is at its third sync
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
    assert said == b"syncing\n", stderr.read_text()


def _power_cut(part: Path) -> None:
    """Leave in the part what the disk holds after a power cut: the bytes of the last
    completed sync; its length (metadata) survives, the bytes past them read as zeros."""
    synced = part.with_name(part.name + ".synced")
    length = part.stat().st_size
    kept = synced.read_bytes() if synced.exists() else b""
    part.write_bytes(kept[:length].ljust(length, b"\0"))


def test_a_power_cut_mid_fetch_loses_only_unclaimed_bytes_and_the_resumed_file_is_put_ios(
    fake_putio: FakePutio,
    tmp_path: Path,
    make_downloader: MakeDownloader,
    caplog: pytest.LogCaptureFixture,
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    _kill_before_third_sync(fake_putio, item, tmp_path / "stderr.txt")
    claimed = sum(row[2] for row in _rows(item))
    assert 0 < claimed < SIZE
    _power_cut(item.part_path)
    with caplog.at_level(logging.WARNING):
        assert make_downloader().fetch(item) == Fetched(True, SIZE)
    assert _crc_of(item.part_path) == item.crc32
    assert item.part_path.read_bytes() == content
    # The sidecar claimed only synced bytes: the resume found every claim true.
    assert PROVED_WRONG not in caplog.text


# -- the repro: claimed bytes lost behind the sidecar's back ---------------------------


def _stop_midway(make_downloader: MakeDownloader, item: FileToFetch) -> list[list[int]]:
    """Stop a four-segment fetch once each segment's worker has asked to go on 150 times
    (of 256 chunks): no worker stops before all four are midway, however they are scheduled."""
    asked: Counter[int] = Counter()
    all_midway = threading.Barrier(4, timeout=30)

    def may_continue() -> bool:
        me = threading.get_ident()
        asked[me] += 1
        if asked[me] < 150:
            return True
        if asked[me] == 150:
            with contextlib.suppress(threading.BrokenBarrierError):
                all_midway.wait()
        return False

    stopped = make_downloader().fetch(item, may_continue=may_continue)
    assert not stopped.complete
    rows = _rows(item)
    assert all(0 < row[2] < row[1] - row[0] for row in rows), rows
    return rows


def _zero_claimed_tail(part: Path, start: int, done: int) -> None:
    """Zero the last MiB a segment claims (all of its claim if shorter)."""
    lost = min(MIB, done)
    with part.open("r+b") as data:
        data.seek(start + done - lost)
        data.write(bytes(lost))


def test_zeroing_the_last_mib_each_segment_claims_is_caught_on_resume_and_refetched(
    fake_putio: FakePutio,
    tmp_path: Path,
    make_downloader: MakeDownloader,
    caplog: pytest.LogCaptureFixture,
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    rows = _stop_midway(make_downloader, item)
    for start, _, done, _ in rows:
        _zero_claimed_tail(item.part_path, start, done)
    fake_putio.clear_requests()
    with caplog.at_level(logging.WARNING):
        assert make_downloader().fetch(item) == Fetched(True, SIZE)
    assert _crc_of(item.part_path) == item.crc32
    assert item.part_path.read_bytes() == content
    assert caplog.text.count(PROVED_WRONG) == 4
    assert _node_starts(fake_putio) == STARTS  # every segment from its start


def test_a_segment_whose_claimed_bytes_differ_on_disk_restarts_alone(
    fake_putio: FakePutio,
    tmp_path: Path,
    make_downloader: MakeDownloader,
    caplog: pytest.LogCaptureFixture,
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    rows = _stop_midway(make_downloader, item)
    start, _, done, _ = rows[2]
    _zero_claimed_tail(item.part_path, start, done)
    fake_putio.clear_requests()
    with caplog.at_level(logging.WARNING):
        assert make_downloader().fetch(item) == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content
    assert caplog.text.count(PROVED_WRONG) == 1
    others = [row[0] + row[2] for number, row in enumerate(rows) if number != 2]
    assert _node_starts(fake_putio) == sorted([start, *others])


# -- a disk that fails a sync ------------------------------------------------------------------


def _failing_on(call: int, error: int) -> Callable[[int], None]:
    """A sync function that syncs for real, except that call number ``call`` fails."""
    calls = iter(range(1, 1_000_000))

    def sync(fd: int) -> None:
        if next(calls) == call:
            raise OSError(error, os.strerror(error))
        sync_data(fd)

    return sync


@pytest.mark.parametrize("connections", [4, 1], ids=["segmented", "one-segment"])
@pytest.mark.parametrize(
    ("error", "raised"), [(errno.EIO, ItemError), (errno.ENOSPC, NoSpaceError)], ids=["eio", "full"]
)
def test_a_failed_background_sync_fails_the_file_and_a_later_fetch_completes_it(
    fake_putio: FakePutio,
    tmp_path: Path,
    make_downloader: MakeDownloader,
    connections: int,
    error: int,
    raised: type[ItemError],
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    failing = make_downloader(connections=connections, sync=_failing_on(2, error))
    with pytest.raises(raised) as caught:
        failing.fetch(item)
    assert type(caught.value) is raised and caught.value.hint
    if connections > 1:  # the sidecar claims only what the first sync covered
        assert 0 < sum(row[2] for row in _rows(item)) < SIZE
    assert make_downloader(connections=connections).fetch(item) == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content


@pytest.mark.parametrize("connections", [4, 1], ids=["segmented", "one-segment"])
def test_a_failed_final_sync_fails_the_file(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader, connections: int
) -> None:
    item, _ = _remote(fake_putio, tmp_path, size=2 * MIB)
    downloader = make_downloader(
        connections=connections,
        min_segment_size=MIB // 2,
        sync_every=SIZE,  # no background sync: only the final one
        sync=_failing_on(1, errno.EIO),
    )
    with pytest.raises(ItemError, match="disk failed"):
        downloader.fetch(item)


# -- symlinks in staging -----------------------------------------------------------------------


def _outside(tmp_path: Path) -> tuple[Path, bytes]:
    victim = tmp_path / "outside" / "precious.bin"
    victim.parent.mkdir()
    victim.write_bytes(b"keep me" * 1000)
    return victim, victim.read_bytes()


@pytest.mark.parametrize("connections", [4, 1], ids=["segmented", "one-segment"])
def test_a_symlink_at_the_part_path_is_refused_and_its_target_left_untouched(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader, connections: int
) -> None:
    item, _ = _remote(fake_putio, tmp_path)
    other, other_content = _remote(fake_putio, tmp_path / "other")
    victim, before = _outside(tmp_path)
    item.part_path.parent.mkdir(parents=True)
    item.part_path.symlink_to(victim)
    downloader = make_downloader(connections=connections)
    with pytest.raises(UnsafePathError) as caught:
        downloader.fetch(item)
    assert str(item.part_path) in caught.value.message and caught.value.hint
    assert victim.read_bytes() == before
    assert item.part_path.is_symlink()
    # Only that file fails: the same downloader fetches the next one.
    assert downloader.fetch(other) == Fetched(True, SIZE)
    assert other.part_path.read_bytes() == other_content


def test_a_symlink_at_the_sidecar_path_is_refused_and_its_target_left_untouched(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, _ = _remote(fake_putio, tmp_path)
    victim, before = _outside(tmp_path)
    item.part_path.parent.mkdir(parents=True)
    sidecar_path(item.part_path).symlink_to(victim)
    with pytest.raises(UnsafePathError, match="symlink"):
        make_downloader().fetch(item)
    assert victim.read_bytes() == before


@pytest.mark.parametrize("connections", [4, 1], ids=["segmented", "one-segment"])
def test_a_part_folder_that_is_a_symlink_is_refused(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader, connections: int
) -> None:
    item, _ = _remote(fake_putio, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    item.part_path.parent.symlink_to(elsewhere)
    with pytest.raises(UnsafePathError, match="symlink"):
        make_downloader(connections=connections).fetch(item)
    assert list(elsewhere.iterdir()) == []


# -- no CRC32 from put.io ----------------------------------------------------------------------


@pytest.mark.parametrize("connections", [4, 1], ids=["segmented", "one-segment"])
def test_a_file_put_io_lists_without_crc32_is_verified_on_size_with_one_warning(
    fake_putio: FakePutio,
    tmp_path: Path,
    make_downloader: MakeDownloader,
    caplog: pytest.LogCaptureFixture,
    connections: int,
) -> None:
    listed, content = _remote(fake_putio, tmp_path)
    item = FileToFetch(listed.file_id, listed.size, None, listed.part_path)
    with caplog.at_level(logging.WARNING):
        assert make_downloader(connections=connections).fetch(item) == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content
    warnings = [record.getMessage() for record in caplog.records]
    assert len([text for text in warnings if "no CRC32" in text]) == 1
    assert f"file {item.file_id}" in warnings[0] and "size alone" in warnings[0]


def test_a_sync_refuses_a_symlinked_part_failing_that_file_alone(
    mirror: Mirror, tmp_path: Path
) -> None:
    planted = mirror.fake.add_file("planted.mkv", size=300_000)
    fine = mirror.fake.add_file("fine.mkv", size=300_000)
    victim, before = _outside(tmp_path)
    staging = mirror.downloads / ".putio-mirror-staging"
    staging.mkdir(parents=True)
    part_path(staging, planted).symlink_to(victim)
    result = mirror.run("sync")
    assert result.code == ExitCode.ITEMS_FAILED, result.err
    assert "symlink" in result.err
    assert victim.read_bytes() == before
    assert mirror.local_files() == {"fine.mkv": mirror.fake.file_content(fine)}
