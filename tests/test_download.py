"""The fetch engine on a file too small to split: one segment, one connection, no sidecar."""

from __future__ import annotations

import errno
import http.client
import itertools
import os
import socket
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from putio_mirror.core.errors import (
    ChecksumMismatchError,
    NodesSilentError,
    NoSpaceError,
    TransientError,
)
from putio_mirror.core.retry import Backoff
from putio_mirror.fakeputio import FakePutio, LoggedRequest
from putio_mirror.fetch.engine import Fetcher
from putio_mirror.fetch.nodehttp import body_reader, node_get
from putio_mirror.fetch.segments import sidecar_path
from putio_mirror.fetch.throttle import RateLimiter
from putio_mirror.fetch.values import Fetched, FileToFetch
from putio_mirror.putio.client import PutioClient
from tests.fetching import node_requests, remote_file

CHUNK = 4096
SIZE = 100_000
#: the first pause after a failed request: Backoff(base=1) at a jitter of 0.5
FIRST_PAUSE = 0.75


class Clock:
    """A monotonic clock that moves only when the code under test sleeps; it notes when a
    download link is asked for (each request asks for a fresh one), so a test reads the
    pauses between requests, whatever naps they were taken in."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.asked: list[float] = []

    def pauses(self) -> list[float]:
        """The seconds waited between one link asked for and the next."""
        return [later - earlier for earlier, later in itertools.pairwise(self.asked)]

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


MakeDownloader = Callable[..., Fetcher]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_downloader(client: PutioClient, clock: Clock) -> Iterator[MakeDownloader]:
    made: list[Fetcher] = []

    def make(url_for: Callable[[int], str] | None = None, **options: Any) -> Fetcher:
        options.setdefault("chunk_size", CHUNK)
        options.setdefault("read_timeout", 5.0)
        options.setdefault("backoff", Backoff(base=1.0, cap=30.0, max_attempts=1000))
        link = url_for or client.download_url

        def noted(file_id: int) -> str:
            clock.asked.append(clock.now)
            return link(file_id)

        downloader = Fetcher(
            noted,
            sleep=clock.sleep,
            monotonic=clock.monotonic,
            jitter=lambda: 0.5,
            **options,
        )
        made.append(downloader)
        return downloader

    yield make
    for downloader in made:
        downloader.close()


def _remote(fake: FakePutio, tmp_path: Path, size: int = SIZE) -> tuple[FileToFetch, bytes]:
    return remote_file(fake, tmp_path, size)


def _url_requests(fake: FakePutio, file_id: int) -> list[LoggedRequest]:
    return [logged for logged in fake.requests if logged.path == f"/v2/files/{file_id}/url"]


def test_download_fetches_the_whole_file_and_verifies_its_crc(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    progress: list[int] = []
    fetched = make_downloader().fetch(item, on_progress=progress.append)
    assert fetched == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content
    assert sum(progress) == SIZE
    assert "Range" not in node_requests(fake_putio)[0].headers


def test_download_resumes_from_the_bytes_already_in_the_part_file(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    item.part_path.parent.mkdir(parents=True)
    item.part_path.write_bytes(content[:40_000])
    progress: list[int] = []
    assert make_downloader().fetch(item, on_progress=progress.append) == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content
    assert sum(progress) == SIZE - 40_000
    (node,) = node_requests(fake_putio)
    assert node.headers["Range"] == "bytes=40000-"


def test_a_small_file_is_fetched_in_the_callers_thread_without_a_sidecar(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    seen: list[tuple[threading.Thread, tuple[str, ...], bool]] = []

    def on_progress(amount: int) -> None:
        workers = tuple(t.name for t in threading.enumerate() if t.name.startswith("segment-"))
        seen.append((threading.current_thread(), workers, sidecar_path(item.part_path).exists()))

    assert make_downloader(connections=4).fetch(item, on_progress=on_progress) == Fetched(
        True, SIZE
    )
    assert item.part_path.read_bytes() == content
    assert seen and set(seen) == {(threading.current_thread(), (), False)}


def test_small_files_one_after_another_share_one_node_connection(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    first, _ = _remote(fake_putio, tmp_path / "a")
    second, _ = _remote(fake_putio, tmp_path / "b")
    local_ports: list[int] = []

    def note_port(response: requests.Response, **_: Any) -> None:
        local_ports.append(response.raw.connection.sock.getsockname()[1])

    with requests.Session() as session:
        session.hooks["response"].append(note_port)
        downloader = make_downloader(session=session)
        assert downloader.fetch(first) == Fetched(True, SIZE)
        assert downloader.fetch(second) == Fetched(True, SIZE)
    assert len(local_ports) == 2 and local_ports[0] == local_ports[1]


def test_a_part_left_by_the_old_single_stream_engine_is_resumed_or_fetched_again(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    """Earlier versions fetched small files with a single-stream engine that kept no
    sidecar: its part's length was its progress. Its good bytes are kept; bad ones (a
    power cut after the length, before the data, reached the disk) fail the CRC32, and
    the part is fetched again from zero."""
    good, content = _remote(fake_putio, tmp_path)
    good.part_path.parent.mkdir(parents=True)
    good.part_path.write_bytes(content[:30_000])
    assert make_downloader().fetch(good) == Fetched(True, SIZE)
    assert good.part_path.read_bytes() == content
    (node,) = node_requests(fake_putio)
    assert node.headers["Range"] == "bytes=30000-"

    bad, content = _remote(fake_putio, tmp_path / "bad")
    bad.part_path.parent.mkdir(parents=True)
    bad.part_path.write_bytes(content[:10_000] + bytes(20_000))
    downloader = make_downloader()
    with pytest.raises(ChecksumMismatchError):
        downloader.fetch(bad)
    downloader.discard(bad.part_path)
    assert downloader.fetch(bad) == Fetched(True, SIZE)
    assert bad.part_path.read_bytes() == content


def test_download_resumes_after_connection_reset(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader, clock: Clock
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    fake_putio.node_fault(item.file_id, reset_after=30_000)
    assert make_downloader().fetch(item) == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content
    first, second = node_requests(fake_putio)
    assert "Range" not in first.headers
    assert 0 < int(second.headers["Range"].removeprefix("bytes=").rstrip("-")) <= 30_000
    assert clock.pauses() == [FIRST_PAUSE]  # bytes came: the backoff starts over


def test_download_rerequests_a_stalled_node_with_a_fresh_url(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    fake_putio.node_fault(item.file_id, stall_after=20_000)
    assert make_downloader(read_timeout=0.3).fetch(item) == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content
    assert len(_url_requests(fake_putio, item.file_id)) == 2
    urls = [logged.query["u"] for logged in node_requests(fake_putio)]
    assert len(urls) == 2 and urls[0] != urls[1]


def test_download_survives_urls_that_work_only_once(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    fake_putio.url_max_uses = 1
    fake_putio.node_fault(item.file_id, reset_after=10_000, times=2)
    assert make_downloader().fetch(item) == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content
    statuses = [logged.status for logged in node_requests(fake_putio)]
    assert len(statuses) == 3 and 410 not in statuses


def test_download_asks_for_a_fresh_url_when_the_node_refuses_one(
    fake_putio: FakePutio,
    tmp_path: Path,
    make_downloader: MakeDownloader,
    client: PutioClient,
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    handed: list[str] = []

    def url_for(file_id: int) -> str:
        url = client.download_url(file_id)
        handed.append(url if handed else url.replace("u=", "u=stale"))
        return handed[-1]

    assert make_downloader(url_for).fetch(item) == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content
    assert [logged.status for logged in node_requests(fake_putio)] == [403, 200]
    assert len(handed) == 2


def test_download_retries_503_answers_without_writing_their_body(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader, clock: Clock
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    fake_putio.node_fault(item.file_id, status=503, times=2)
    assert make_downloader().fetch(item) == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content
    assert [logged.status for logged in node_requests(fake_putio)] == [503, 503, 200]
    assert clock.pauses() == [FIRST_PAUSE, 2 * FIRST_PAUSE]  # the backoff, doubling
    assert max(clock.sleeps) <= 0.25, "a pause is taken in naps, to notice a stop"


def test_a_lone_download_waiting_to_retry_stops_within_a_nap_when_told(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader, clock: Clock
) -> None:
    # The window closes (or SIGTERM comes) one second into a pause of six: the fetch
    # must end then, not when the pause is over, and keep what it has for the next run.
    item, content = _remote(fake_putio, tmp_path)
    fake_putio.node_fault(item.file_id, status=503, times=1)
    downloader = make_downloader(backoff=Backoff(base=8.0, cap=30.0, max_attempts=1000))
    stopped = downloader.fetch(item, may_continue=lambda: clock.now < 1.0)
    assert stopped == Fetched(False, 0)
    assert 1.0 <= clock.now <= 1.25
    assert [logged.status for logged in node_requests(fake_putio)] == [503]
    assert downloader.fetch(item) == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content


def test_download_stops_at_a_chunk_boundary_when_told_and_resumes_later(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    answers = iter([True, True, False])
    downloader = make_downloader()
    stopped = downloader.fetch(item, may_continue=lambda: next(answers))
    assert stopped == Fetched(False, 2 * CHUNK)
    assert item.part_path.read_bytes() == content[: 2 * CHUNK]
    assert downloader.fetch(item) == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content
    assert node_requests(fake_putio)[-1].headers["Range"] == f"bytes={2 * CHUNK}-"


def test_download_asks_may_continue_before_the_first_request(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, _ = _remote(fake_putio, tmp_path)
    assert make_downloader().fetch(item, may_continue=lambda: False) == Fetched(False, 0)
    assert fake_putio.requests == []


def test_download_with_a_wrong_crc_raises_checksum_mismatch_and_keeps_the_part(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    wrong = FileToFetch(item.file_id, item.size, "deadbeef", item.part_path)
    with pytest.raises(ChecksumMismatchError) as caught:
        make_downloader().fetch(wrong)
    assert "deadbeef" in str(caught.value) and f"{item.crc32}" in str(caught.value)
    assert item.part_path.read_bytes() == content


def test_a_part_longer_than_the_file_is_started_over(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = _remote(fake_putio, tmp_path, size=10_000)
    item.part_path.parent.mkdir(parents=True)
    item.part_path.write_bytes(b"junk" * 5_000)
    assert make_downloader().fetch(item) == Fetched(True, 10_000)
    assert item.part_path.read_bytes() == content


def test_a_complete_part_is_verified_without_any_request(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    item.part_path.parent.mkdir(parents=True)
    item.part_path.write_bytes(content)
    assert make_downloader().fetch(item) == Fetched(True, SIZE)
    assert fake_putio.requests == []


def test_a_zero_byte_file_is_created_without_any_request(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    file_id = fake_putio.add_file("empty.nfo", content=b"")
    item = FileToFetch(file_id, 0, fake_putio.file_crc32(file_id), tmp_path / "a" / "b.part")
    assert make_downloader().fetch(item) == Fetched(True, 0)
    assert item.part_path.read_bytes() == b""
    assert fake_putio.requests == []


def test_the_node_never_sees_an_authorization_header(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader
) -> None:
    item, _ = _remote(fake_putio, tmp_path)
    with requests.Session() as leaky:
        leaky.headers["Authorization"] = f"token {fake_putio.token}"
        make_downloader(session=leaky).fetch(item)
    (node,) = node_requests(fake_putio)
    assert "Authorization" not in node.headers


class _PartWatchingLimiter(RateLimiter):
    """A real limiter that also notes how long the part file was at each charge."""

    def __init__(self, part: Path, rate: int, clock: Clock) -> None:
        super().__init__(lambda: rate, monotonic=clock.monotonic, sleep=clock.sleep)
        self.part = part
        self.charges: list[tuple[int, int]] = []

    def consume(self, nbytes: int, given_up: Callable[[], bool] = lambda: False) -> None:
        self.charges.append((self.part.stat().st_size, nbytes))
        super().consume(nbytes, given_up)


def test_download_charges_the_limiter_for_each_chunk_before_writing_it(
    fake_putio: FakePutio, tmp_path: Path, make_downloader: MakeDownloader, clock: Clock
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    limiter = _PartWatchingLimiter(item.part_path, 50_000, clock)
    assert make_downloader(limiter=limiter).fetch(item) == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content
    sizes = [size for size, _ in limiter.charges]
    charged = [nbytes for _, nbytes in limiter.charges]
    assert sizes == [sum(charged[:n]) for n in range(len(charged))]
    assert sum(charged) == SIZE
    assert clock.now == pytest.approx(SIZE / 50_000, rel=0.01)


def _closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/download/1"


def _outage(
    clock: Clock, seconds: float, real: Callable[[int], str], how: str
) -> Callable[..., str]:
    def url_for(file_id: int) -> str:
        if clock.now >= seconds:
            return real(file_id)
        if how == "raise":
            raise TransientError("put.io GET files/1/url failed", "later")
        return _closed_port_url()

    return url_for


@pytest.mark.parametrize("how", ["raise", "closed port"])
def test_download_survives_an_outage_shorter_than_max_outage(
    fake_putio: FakePutio,
    tmp_path: Path,
    make_downloader: MakeDownloader,
    client: PutioClient,
    clock: Clock,
    how: str,
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    url_for = _outage(clock, 120.0, client.download_url, how)
    assert make_downloader(url_for, max_outage=300.0).fetch(item) == Fetched(True, SIZE)
    assert item.part_path.read_bytes() == content
    assert 120.0 <= clock.now < 300.0


@pytest.mark.parametrize("how", ["raise", "closed port"])
def test_download_gives_up_after_max_outage_without_data_and_keeps_the_bytes(
    fake_putio: FakePutio,
    tmp_path: Path,
    make_downloader: MakeDownloader,
    client: PutioClient,
    clock: Clock,
    how: str,
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    item.part_path.parent.mkdir(parents=True)
    item.part_path.write_bytes(content[:5_000])
    url_for = _outage(clock, 10_000.0, client.download_url, how)
    # put.io's API down is an outage; a node silent to the one fetch in flight makes it a
    # suspect (fetch/pulse.py): the next file, or a witness, tells which
    expected = TransientError if how == "raise" else NodesSilentError
    with pytest.raises(expected) as caught:
        make_downloader(url_for, max_outage=300.0).fetch(item)
    assert clock.now == pytest.approx(300.0)
    assert ("next run" if how == "raise" else "next file") in caught.value.hint
    assert item.part_path.read_bytes() == content[:5_000]


# ----- odd node answers, staged with responses ---------------------------------------

NODE = "https://node.test/download/1"
BODY = bytes(range(256)) * 40


def _staged(tmp_path: Path, crc: str | None = None) -> FileToFetch:
    expected = crc or f"{zlib.crc32(BODY):08x}"
    return FileToFetch(1, len(BODY), expected, tmp_path / "one.part")


@pytest.fixture
def node() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as mock:
        yield mock


def test_a_200_answer_to_a_range_request_restarts_from_zero(
    tmp_path: Path, node: responses.RequestsMock, make_downloader: MakeDownloader
) -> None:
    item = _staged(tmp_path)
    item.part_path.write_bytes(b"X" * 1000)  # wrong bytes: proves the part was truncated
    node.get(NODE, body=BODY, status=200)
    assert make_downloader(lambda _: NODE).fetch(item) == Fetched(True, len(BODY))
    assert item.part_path.read_bytes() == BODY
    assert node.calls[0].request.headers["Range"] == "bytes=1000-"


def test_a_206_starting_elsewhere_is_not_written(
    tmp_path: Path, node: responses.RequestsMock, make_downloader: MakeDownloader
) -> None:
    item = _staged(tmp_path)
    item.part_path.write_bytes(BODY[:1000])
    wrong = {"Content-Range": f"bytes 0-{len(BODY) - 1}/{len(BODY)}"}
    right = {"Content-Range": f"bytes 1000-{len(BODY) - 1}/{len(BODY)}"}
    node.get(NODE, body=BODY, status=206, headers=wrong)
    node.get(NODE, body=BODY[1000:], status=206, headers=right)
    assert make_downloader(lambda _: NODE).fetch(item) == Fetched(True, len(BODY))
    assert item.part_path.read_bytes() == BODY


def test_a_node_with_another_size_raises_checksum_mismatch(
    tmp_path: Path, node: responses.RequestsMock, make_downloader: MakeDownloader
) -> None:
    item = _staged(tmp_path)
    item.part_path.write_bytes(BODY[:1000])
    node.get(NODE, body=b"", status=416, headers={"Content-Range": "bytes */900"})
    with pytest.raises(ChecksumMismatchError):
        make_downloader(lambda _: NODE).fetch(item)
    assert item.part_path.read_bytes() == BODY[:1000]


def test_a_full_disk_raises_no_space_keeping_the_bytes_written(
    fake_putio: FakePutio,
    tmp_path: Path,
    make_downloader: MakeDownloader,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    item, content = _remote(fake_putio, tmp_path)
    real_pwrite, writes = os.pwrite, iter(range(1_000_000))

    def pwrite(fd: int, data: Any, offset: int) -> int:
        if next(writes) >= 3:  # the disk fills up after three chunks
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    with pytest.raises(NoSpaceError) as caught:
        make_downloader().fetch(item)
    monkeypatch.undo()
    assert str(item.part_path.parent) in caught.value.hint
    assert item.part_path.read_bytes() == content[: 3 * CHUNK]
    assert not sidecar_path(item.part_path).exists()


def test_node_bodies_are_read_straight_into_the_buffer_through_http_client(
    fake_putio: FakePutio, client: PutioClient
) -> None:
    """``nodehttp.body_reader`` reads through urllib3's private ``raw._fp`` (the
    http.client response), which fills our buffer in place instead of copying each
    chunk. If a new urllib3 moves it, downloads stay correct (the decoded path) but lose
    that: this test says so loudly instead of letting it go unnoticed."""
    file_id = fake_putio.add_file("a.bin", content=b"x" * 100_000)
    with (
        requests.Session() as session,
        node_get(session, client.download_url(file_id), None, (5.0, 5.0)) as response,
    ):
        plain = getattr(response.raw, "_fp", None)
        assert isinstance(plain, http.client.HTTPResponse), (
            "urllib3 no longer exposes the http.client response as raw._fp: "
            "nodehttp.body_reader falls back to copying every chunk"
        )
        buffer = memoryview(bytearray(64 * 1024))
        assert body_reader(response)(buffer) > 0
