from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from putio_mirror.core.errors import (
    AuthError,
    ChecksumMismatchError,
    NodesSilentError,
    NoSpaceError,
)
from putio_mirror.core.retry import Backoff
from putio_mirror.fakeputio import FakePutio, LoggedRequest
from putio_mirror.fetch.engine import Fetcher
from putio_mirror.fetch.segments import bytes_done, discard, sidecar_path
from putio_mirror.fetch.throttle import RateLimiter
from putio_mirror.fetch.values import Fetched, FileToFetch
from putio_mirror.putio.client import PutioClient
from tests.fetching import node_requests, remote_file

SIZE = 4 * 1024 * 1024
QUARTER = SIZE // 4  # as min_segment_size: four segments, too small to take over
CHUNK = 16 * 1024
STARTS = [0, QUARTER, 2 * QUARTER, 3 * QUARTER]

MakeDownloader = Callable[..., Fetcher]


class Clock:
    """A monotonic clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@pytest.fixture
def make_downloader(client: PutioClient) -> Iterator[MakeDownloader]:
    made: list[Fetcher] = []

    def make(url_for: Callable[[int], str] | None = None, **options: Any) -> Fetcher:
        options.setdefault("connections", 4)
        options.setdefault("min_segment_size", QUARTER)
        options.setdefault("chunk_size", CHUNK)
        options.setdefault("read_timeout", 5.0)
        options.setdefault("backoff", Backoff(base=0.01, cap=0.05, max_attempts=1000))
        options.setdefault("jitter", lambda: 0.5)
        downloader = Fetcher(url_for or client.download_url, **options)
        made.append(downloader)
        return downloader

    yield make
    for downloader in made:
        downloader.close()


def _remote(fake: FakePutio, tmp_path: Path, size: int = SIZE) -> tuple[FileToFetch, bytes]:
    return remote_file(fake, tmp_path, size)


def _url_calls(fake: FakePutio) -> list[LoggedRequest]:
    return [logged for logged in fake.requests if logged.path.endswith("/url")]


def _ranges(fake: FakePutio, size: int = SIZE) -> list[tuple[int, int]]:
    """Return the (first, last) byte of every node request's Range header, in order
    (``bytes=first-`` asks up to the last byte of the file)."""
    found = []
    for logged in node_requests(fake):
        first, last = logged.headers["Range"].removeprefix("bytes=").split("-")
        found.append((int(first), int(last) if last else size - 1))
    return found


def _first_byte(logged: LoggedRequest) -> int:
    """The first byte a node request's Range header asks for."""
    return int(logged.headers["Range"].removeprefix("bytes=").split("-")[0])


def _rows(item: FileToFetch) -> list[list[int]]:
    rows: list[list[int]] = json.loads(sidecar_path(item.part_path).read_text())["segments"]
    return rows


def _unfinished_positions(rows: list[list[int]]) -> list[int]:
    return sorted(start + done for start, end, done, _ in rows if start + done < end)


def _assert_claims_hold(item: FileToFetch, content: bytes) -> None:
    """Every byte the sidecar claims is in the part, and right, and its CRC32 recorded."""
    data = item.part_path.read_bytes()
    for start, _, done, crc in _rows(item):
        assert data[start : start + done] == content[start : start + done]
        assert crc == zlib.crc32(content[start : start + done])


def _segment_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("segment-")]


def test_a_big_file_is_fetched_over_four_ranges_that_tile_it(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    progress: list[int] = []
    fetched = make_downloader().fetch(item, on_progress=progress.append)
    assert fetched == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content
    assert sorted(_ranges(fake_putio)) == [(start, start + QUARTER - 1) for start in STARTS]
    nodes = node_requests(fake_putio)
    # The four opening requests share one URL: put.io is asked once, not once per connection.
    # (Under load a worker may start late and find its segment begun by a faster one,
    # which asked a fresh URL for it: a second URL, never one per connection.)
    assert len({logged.query["u"] for logged in nodes}) <= 2
    assert len(_url_calls(fake_putio)) <= 2
    assert all("Authorization" not in logged.headers for logged in nodes)
    assert sum(progress) == SIZE
    assert not sidecar_path(item.part_path).exists()
    assert _segment_threads() == []


@pytest.mark.parametrize(("size", "connections"), [(QUARTER + QUARTER // 2, 4), (SIZE, 1)])
def test_a_small_file_or_a_single_connection_is_not_split(
    fake_putio: FakePutio,
    tmp_path: Path,
    make_downloader: MakeDownloader,
    size: int,
    connections: int,
) -> None:
    item, content = _remote(fake_putio, tmp_path, size)
    assert make_downloader(connections=connections).fetch(item) == Fetched(True, size)
    assert item.part_path.read_bytes() == content
    (node,) = node_requests(fake_putio)
    assert "Range" not in node.headers
    assert not sidecar_path(item.part_path).exists()


def _assert_one_segment_resumed(fake: FakePutio, cut_after: int) -> None:
    """One request per segment, plus one more from within one segment's first bytes."""
    ranges = _ranges(fake)
    assert len(ranges) == 5
    firsts = sorted(first for first, _ in ranges)
    for start in STARTS:
        firsts.remove(start)
    (extra,) = firsts
    assert any(start <= extra <= start + cut_after for start in STARTS)
    assert {last + 1 for _, last in ranges} == {start + QUARTER for start in STARTS}


def test_a_stalled_segment_is_requested_again_with_a_fresh_url(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    fake_putio.node_fault(item.file_id, stall_after=100_000, times=1)
    # A read timeout well above a loaded machine's pauses: only the stall may meet it.
    assert make_downloader(read_timeout=1.5).fetch(item) == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content
    _assert_one_segment_resumed(fake_putio, 100_000)
    # The retry is the one request that begins no segment; the stalled request began the
    # segment it resumes. Found by their ranges, not their order: under load a worker may
    # start late and find its segment taken by a faster one, which asks a fresh URL for it
    # (``_node_url``: only a worker's first request shares the opening URL), so put.io is
    # then asked three times, not twice, and the requests need not come in that order.
    nodes = node_requests(fake_putio)
    (retry,) = [logged for logged in nodes if _first_byte(logged) not in STARTS]
    began = [logged for logged in nodes if _first_byte(logged) < _first_byte(retry)]
    stalled = max(began, key=_first_byte)  # the last segment start before the retry's byte
    assert retry.query["u"] != stalled.query["u"]
    used = [logged.query["u"] for logged in nodes]
    assert used.count(retry.query["u"]) == 1  # a URL of its own, asked for it
    assert len(_url_calls(fake_putio)) == len(set(used))  # put.io asked once per URL used


def test_a_reset_mid_segment_resumes_that_segment_from_its_offset(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    fake_putio.node_fault(item.file_id, reset_after=100_000, times=1)
    assert make_downloader().fetch(item) == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content
    _assert_one_segment_resumed(fake_putio, 100_000)


@pytest.mark.parametrize("status", [503, 429, 500])
def test_a_segment_retries_an_error_answer_without_writing_its_body(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader, status: int
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    fake_putio.node_fault(item.file_id, status=status, times=2)
    assert make_downloader().fetch(item) == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content
    statuses = [logged.status for logged in node_requests(fake_putio)]
    assert sorted(statuses) == [206] * 4 + [status] * 2


def test_segments_survive_urls_that_work_only_once(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    fake_putio.url_max_uses = 1
    fake_putio.node_fault(item.file_id, reset_after=50_000, times=2)
    assert make_downloader().fetch(item) == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content
    # The shared opening URL serves one connection; the three others are refused (410)
    # and ask for a fresh URL, as does each of the two reset segments.
    nodes = node_requests(fake_putio)
    assert sorted(logged.status for logged in nodes) == [206] * 6 + [410] * 3
    assert len({logged.query["u"] for logged in nodes if logged.status == 206}) == 6


def test_a_finished_segment_takes_over_half_of_a_stalled_one(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    fake_putio.node_fault(item.file_id, stall_after=50_000, times=1)
    downloader = make_downloader(min_segment_size=64 * 1024, read_timeout=0.5)
    assert downloader.fetch(item) == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content
    # Without taking over: four requests and the stalled segment's retry.
    assert len(_ranges(fake_putio)) > 5


def test_a_stop_keeps_a_sidecar_and_the_next_fetch_resumes_every_segment(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    calls = iter(range(1_000_000))
    stopped = make_downloader().fetch(item, may_continue=lambda: next(calls) < 60)
    assert not stopped.complete
    rows = _rows(item)
    assert stopped.bytes_done == sum(row[2] for row in rows)
    assert 0 < stopped.bytes_done < SIZE
    assert bytes_done(item.part_path) == stopped.bytes_done
    assert item.part_path.stat().st_size == SIZE  # sparse: the length says nothing
    _assert_claims_hold(item, content)
    fake_putio.clear_requests()
    progress: list[int] = []
    resumed = make_downloader().fetch(item, on_progress=progress.append)
    assert resumed == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content
    assert sorted(first for first, _ in _ranges(fake_putio)) == _unfinished_positions(rows)
    assert sum(progress) == SIZE - stopped.bytes_done
    assert not sidecar_path(item.part_path).exists()


def test_may_continue_is_asked_before_the_first_request(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, _ = _remote(fake_putio, tmp_path)
    assert make_downloader().fetch(item, may_continue=lambda: False) == Fetched(False, 0)
    assert fake_putio.requests == []


_KILLED_FETCH = """
import sys
from pathlib import Path
from putio_mirror.fetch.values import FileToFetch
from putio_mirror.putio.client import PutioClient
from putio_mirror.fetch.engine import Fetcher
from putio_mirror.fetch.throttle import RateLimiter

api, token, file_id, size, crc, part, segment = sys.argv[1:]
with PutioClient(token, api) as client:
    downloader = Fetcher(
        client.download_url,
        min_segment_size=int(segment),
        chunk_size=16384,
        limiter=RateLimiter(lambda: 1024 * 1024),
        sync_every=64 * 1024,  # the sidecar claims bytes once a sync covered them
    )
    downloader.fetch(FileToFetch(int(file_id), int(size), crc, Path(part)))
"""


def _wait_for_every_segment_to_start(item: FileToFetch, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and process.poll() is None:
        path = sidecar_path(item.part_path)
        if path.exists() and all(row[2] > 0 for row in _rows(item)):
            return
        time.sleep(0.05)
    raise AssertionError("the fetch in the subprocess did not get going")


def test_a_fetch_killed_with_sigkill_resumes_every_segment_from_the_sidecar(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    args = [fake_putio.api_url, fake_putio.token, str(item.file_id), str(SIZE)]
    args += [str(item.crc32), str(item.part_path), str(QUARTER)]
    with (tmp_path / "stderr.txt").open("wb") as stderr:
        process = subprocess.Popen([sys.executable, "-c", _KILLED_FETCH, *args], stderr=stderr)
        try:
            _wait_for_every_segment_to_start(item, process)
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == -signal.SIGKILL, (tmp_path / "stderr.txt").read_text()
    rows = _rows(item)
    _assert_claims_hold(item, content)
    fake_putio.clear_requests()
    assert make_downloader().fetch(item) == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content
    assert sorted(first for first, _ in _ranges(fake_putio)) == _unfinished_positions(rows)


def test_a_sequential_part_without_a_sidecar_is_continued_in_segments(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    have = 300_000
    item.part_path.parent.mkdir(parents=True)
    item.part_path.write_bytes(content[:have])
    progress: list[int] = []
    assert make_downloader().fetch(item, on_progress=progress.append) == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content
    rest = SIZE - have  # room for three segments of at least a quarter each
    expected = [(have + rest * n // 3, have + rest * (n + 1) // 3 - 1) for n in range(3)]
    assert sorted(_ranges(fake_putio)) == expected
    assert sum(progress) == rest


def test_a_node_that_ignores_every_range_still_fills_every_segment_and_takes_none_over(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    # A proxy before the node (or a node) that answers every range with the whole file:
    # a segment after byte 0 reads past the bytes before its own. Asking again instead
    # failed every big file, run after run, and told it as the nodes being silent.
    item, content = _remote(fake_putio, tmp_path)
    fake_putio.node_ignores_range = True
    downloader = make_downloader(min_segment_size=QUARTER // 4, max_outage=5.0)
    assert downloader.fetch(item) == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content
    # Four openings, no half taken over: each would read the file from byte 0 again.
    assert sorted(first for first, _ in _ranges(fake_putio)) == STARTS


def test_a_node_that_ignores_ranges_on_resume_continues_every_segment_from_the_sidecar(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    calls = iter(range(1_000_000))
    stopped = make_downloader().fetch(item, may_continue=lambda: next(calls) < 60)
    assert 0 < stopped.bytes_done < SIZE
    first_done = next(done for start, _, done, _ in _rows(item) if start == 0)
    fake_putio.node_ignores_range = True
    progress: list[int] = []
    resumed = make_downloader(max_outage=5.0).fetch(item, on_progress=progress.append)
    assert resumed == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content
    # The first segment starts over with the whole file; the others go on where they were
    # (bytes read past are no progress).
    assert sum(progress) == SIZE - stopped.bytes_done + first_done


def test_bytes_done_reads_a_sequential_part_or_a_broken_sidecar(tmp_path: Path) -> None:
    part = tmp_path / "1.part"
    assert bytes_done(part) == 0
    part.write_bytes(b"x" * 1234)
    assert bytes_done(part) == 1234
    sidecar_path(part).write_text("{not json")
    assert bytes_done(part) == 0


def test_a_sidecar_for_another_file_version_starts_over(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    item.part_path.parent.mkdir(parents=True)
    item.part_path.write_bytes(b"X" * SIZE)
    stale = {"size": SIZE, "crc32": "deadbeef", "connections": 4, "segments": [[0, SIZE, SIZE]]}
    sidecar_path(item.part_path).write_text(json.dumps(stale))
    assert make_downloader().fetch(item) == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content
    assert sorted(first for first, _ in _ranges(fake_putio)) == STARTS


def test_a_sidecar_without_its_part_starts_over(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    item.part_path.parent.mkdir(parents=True)
    rows = [[start, start + QUARTER, QUARTER] for start in STARTS]
    claims = {"size": SIZE, "crc32": item.crc32, "connections": 4, "segments": rows}
    sidecar_path(item.part_path).write_text(json.dumps(claims))
    assert make_downloader().fetch(item) == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content


def test_a_wrong_crc_raises_checksum_mismatch_and_discard_removes_part_and_sidecar(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    wrong = FileToFetch(item.file_id, item.size, "DEADBEEF", item.part_path)
    with pytest.raises(ChecksumMismatchError) as caught:
        make_downloader().fetch(wrong)
    assert "deadbeef" in str(caught.value) and f"{item.crc32}" in str(caught.value)
    assert item.part_path.read_bytes() == content
    assert sidecar_path(item.part_path).exists()
    discard(item.part_path)
    assert not item.part_path.exists() and not sidecar_path(item.part_path).exists()


def _closed_port_url(file_id: int) -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/download/{file_id}"


def test_a_silent_node_gives_up_after_max_outage_and_ends_every_thread(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    # The one fetch in flight is a suspect (fetch/pulse.py): the next file tells whether
    # put.io's nodes are down or this file's node is broken.
    item, _ = _remote(fake_putio, tmp_path)
    clock = Clock()
    downloader = make_downloader(
        _closed_port_url,
        max_outage=300.0,
        backoff=Backoff(base=1.0, cap=30.0, max_attempts=1000),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )
    with pytest.raises(NodesSilentError) as caught:
        downloader.fetch(item)
    assert "next file" in caught.value.hint
    assert clock.now >= 300.0
    assert _segment_threads() == []
    assert _unfinished_positions(_rows(item)) == STARTS


def test_an_auth_error_from_url_for_is_passed_up(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, _ = _remote(fake_putio, tmp_path)

    def url_for(file_id: int) -> str:
        raise AuthError("put.io refused the token", "log in again")

    with pytest.raises(AuthError):
        make_downloader(url_for).fetch(item)
    assert _segment_threads() == []


def test_a_full_disk_raises_no_space_and_keeps_the_claims_true(
    fake_putio: FakePutio,
    tmp_path: Path,
    make_downloader: MakeDownloader,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    real_pwrite, writes = os.pwrite, iter(range(1_000_000))

    def pwrite(fd: int, data: Any, offset: int) -> int:
        # The part's chunks fail; the sidecar's small in-place updates need no new blocks.
        if len(data) > 64 and next(writes) >= 20:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    with pytest.raises(NoSpaceError):
        make_downloader().fetch(item)
    monkeypatch.undo()
    assert _segment_threads() == []
    assert 0 < sum(row[2] for row in _rows(item)) <= 20 * CHUNK
    _assert_claims_hold(item, content)


def test_a_shared_limiter_paces_all_segments_together(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = _remote(fake_putio, tmp_path, size=1024 * 1024)
    limiter = RateLimiter(lambda: 2 * 1024 * 1024)
    downloader = make_downloader(min_segment_size=64 * 1024, limiter=limiter)
    began = time.monotonic()
    assert downloader.fetch(item) == Fetched(True, 1024 * 1024)
    elapsed = time.monotonic() - began
    assert item.part_path.read_bytes() == content
    assert len(_ranges(fake_putio, 1024 * 1024)) >= 4
    assert 0.45 <= elapsed < 3.0


def test_the_limiter_also_paces_a_file_too_small_to_split(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, _ = _remote(fake_putio, tmp_path, size=200_000)
    clock = Clock()
    limiter = RateLimiter(lambda: 100_000, monotonic=clock.monotonic, sleep=clock.sleep)
    assert make_downloader(limiter=limiter).fetch(item) == Fetched(True, 200_000)
    assert clock.now == pytest.approx(2.0, rel=0.01)


def test_memory_does_not_grow_with_the_file(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    size = 32 * 1024 * 1024
    file_id = fake_putio.add_file("Big.mkv", size=size)
    crc = fake_putio.file_crc32(file_id)  # also builds the node's content block
    item = FileToFetch(file_id, size, crc, tmp_path / "big.part")
    downloader = make_downloader(min_segment_size=1024 * 1024, chunk_size=256 * 1024)
    tracemalloc.start()
    try:
        fetched = downloader.fetch(item)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert fetched == Fetched(True, size)
    assert peak < 8 * 1024 * 1024
