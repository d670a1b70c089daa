"""The mount's parts without FUSE: the tree, the block cache, node reads and read-ahead,
against the local put.io over loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from putio_mirror.core.naming import local_paths
from putio_mirror.core.state import RemoteFile
from putio_mirror.fakeputio import FakePutio, LoggedRequest
from putio_mirror.mount.blocks import BLOCK_SIZE, BlockCache, MemoryBlocks
from putio_mirror.mount.kernel import device_of
from putio_mirror.mount.node import FileRef, NodeFetcher, Timing, Unavailable
from putio_mirror.mount.reading import ReadAheadPolicy, RemoteReads, Stream
from putio_mirror.mount.tree import Tree
from putio_mirror.mount.workers import Workers
from putio_mirror.putio.client import PutioClient

MIB = 1024 * 1024


def remote(
    item_id: int, name: str, parent: int = 0, size: int = 0, folder: bool = False
) -> RemoteFile:
    return RemoteFile(
        item_id, name, parent, size, folder, None if folder else "0badf00d",
        updated_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )  # fmt: skip


def test_the_tree_names_items_as_the_mirror_does_and_leaves_out_shared_folders() -> None:
    files = (
        remote(1, "Shows", folder=True),
        remote(2, "a:b.mkv", 1, 10),
        remote(3, "A:B.mkv", 1, 20),
        remote(4, "..", 0, 5),
        RemoteFile(5, "Shared", 0, 0, True, folder_type="SHARED"),
        remote(6, "theirs.txt", 5, 3),
    )
    tree = Tree.build(files, 0)
    paths = local_paths(files, 0)
    for item_id, path in paths.items():
        node = tree.lookup("/" + path)
        assert node is not None and node.id == item_id
    assert tree.lookup("/Shared") is None and tree.lookup("/Shared/theirs.txt") is None
    root = tree.lookup("/")
    assert root is not None and set(root.children) == {"Shows", "_"}
    shows = tree.lookup("/Shows")
    assert shows is not None and sorted(shows.children) == sorted(
        path.split("/")[1] for item_id, path in paths.items() if item_id in (2, 3)
    )
    movie = tree.lookup("Shows/a_b.mkv")
    assert movie is not None and movie.size == 10 and movie.crc32 == "0badf00d"
    assert movie.mtime == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    assert [node.id for node in tree.files()] == sorted([2, 3, 4], key=lambda i: paths[i])


def test_a_subfolder_as_root_shows_only_its_items() -> None:
    files = (remote(1, "Mirror", folder=True), remote(2, "in.txt", 1, 1), remote(3, "out.txt"))
    tree = Tree.build(files, 1)
    root = tree.lookup("/")
    assert root is not None and root.children == ("in.txt",)


def test_the_mount_table_names_the_device_of_the_last_mount_on_a_path(tmp_path: Path) -> None:
    table = tmp_path / "mountinfo"
    table.write_text(
        "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
        "40 22 0:50 / /home/me/put\\040io rw - fuse.putio putio-mirror ro\n"
        "41 40 0:51 / /home/me/put\\040io rw - fuse.putio putio-mirror ro\n"
        "42 22 0:52 / /home/me/put rw - fuse.putio putio-mirror ro\n"
    )
    assert device_of("/home/me/put io", table) == "0:51"
    assert device_of("/home/me/put", table) == "0:52"
    assert device_of("/elsewhere", table) is None
    assert device_of("/home/me/put io", tmp_path / "missing") is None


def test_the_block_cache_never_holds_more_than_its_budget(tmp_path: Path) -> None:
    cache = BlockCache(tmp_path / "cache", 3 * BLOCK_SIZE).open()
    assert cache.own_folder is not None
    for index in range(6):
        cache.put((7, index), bytes([index]) * BLOCK_SIZE)
        on_disk = sum(path.stat().st_size for path in cache.own_folder.iterdir())
        assert on_disk <= 3 * BLOCK_SIZE and cache.used_bytes() <= 3 * BLOCK_SIZE
    assert cache.read((7, 0), 0, 10) is None  # the oldest went first
    assert cache.read((7, 5), 100, 3) == b"\x05\x05\x05"
    assert cache.read((7, 3), BLOCK_SIZE - 2, 5) == b"\x03\x03"


def test_the_block_cache_evicts_the_least_recently_read(tmp_path: Path) -> None:
    cache = BlockCache(tmp_path / "cache", 2 * BLOCK_SIZE).open()
    cache.put((1, 0), b"a" * BLOCK_SIZE)
    cache.put((1, 1), b"b" * BLOCK_SIZE)
    assert cache.read((1, 0), 0, 1) == b"a"
    cache.put((1, 2), b"c" * 10)
    assert cache.has((1, 0)) and not cache.has((1, 1))
    assert cache.read((1, 2), 0, 10) == b"c" * 10  # a short last block
    assert cache.used_bytes() == BLOCK_SIZE + 10


def test_the_block_cache_starts_empty_and_is_removed_at_close(tmp_path: Path) -> None:
    (tmp_path / "cache" / "123-killed").mkdir(parents=True)
    (tmp_path / "cache" / "123-killed" / "blocks").write_bytes(b"stale")  # kill -9 left it
    (tmp_path / "cache" / "blocks").write_bytes(b"stale")  # the layout before folders
    cache = BlockCache(tmp_path / "cache", BLOCK_SIZE).open()
    assert cache.own_folder is not None and not cache.has((9, 0))
    assert list((tmp_path / "cache").iterdir()) == [cache.own_folder]
    cache.close()
    assert not (tmp_path / "cache").exists()


def test_a_block_cache_leaves_another_running_mounts_cache_alone(tmp_path: Path) -> None:
    first = BlockCache(tmp_path / "cache", 2 * BLOCK_SIZE).open()
    first.put((1, 0), b"a" * BLOCK_SIZE)
    second = BlockCache(tmp_path / "cache", 2 * BLOCK_SIZE).open()
    second.put((1, 0), b"b" * BLOCK_SIZE)
    assert first.own_folder != second.own_folder
    assert first.read((1, 0), 0, 3) == b"aaa" and second.read((1, 0), 0, 3) == b"bbb"
    second.close()
    assert first.own_folder is not None and (first.own_folder / "blocks").exists()
    first.close()
    assert not (tmp_path / "cache").exists()


def test_blocks_in_memory_go_to_disk_only_if_no_stream_has_read_them() -> None:
    memory = MemoryBlocks(2)
    for index in range(3):
        memory.add((1, index), bytearray(BLOCK_SIZE))
    assert not memory.has((1, 0)) and memory.has((1, 2))
    assert memory.get((1, 1), streamed=True) is not None
    assert memory.get((1, 2), streamed=False) is not None
    spilled = memory.add((1, 3), bytearray(b"x"))  # the streamed one leaves first, unkept
    assert spilled == [] and not memory.has((1, 1))
    assert [key for key, _ in memory.add((1, 4), bytearray(b"y"))] == [(1, 2)]


def test_a_block_buffer_is_reused_only_once_no_reader_holds_it() -> None:
    memory = MemoryBlocks(1)
    memory.add((1, 0), memory.take(BLOCK_SIZE))
    held = memory.get((1, 0), streamed=True)
    assert held is not None
    view, first = memoryview(held)[10:20], id(held)
    del held
    memory.add((1, 1), memory.take(BLOCK_SIZE))  # (1, 0) leaves, its buffer is spare
    assert id(memory.take(BLOCK_SIZE)) != first  # a reader's view still uses it
    view.release()
    memory.add((1, 2), memory.take(BLOCK_SIZE))
    second = memory.get((1, 2), streamed=True)
    assert second is not None
    ident = id(second)
    del second
    memory.add((1, 3), memory.take(BLOCK_SIZE))
    assert id(memory.take(BLOCK_SIZE)) == ident


@pytest.fixture
def node_session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def fetcher_for(
    fake: FakePutio, session: requests.Session, *, read_timeout: float = 2, outage: float = 10
) -> NodeFetcher:
    client = PutioClient(fake.token, fake.api_url, fake.upload_url, timeout=read_timeout)
    return NodeFetcher(
        session, lambda file_id: client.download_url(file_id, retry=False),
        Timing(read_timeout, outage),
    )  # fmt: skip


class Collected:
    """A receiver with little room at a time: pieces end anywhere."""

    def __init__(self) -> None:
        self.data = bytearray()
        self._buffer = memoryview(bytearray(100_000))

    def space(self) -> memoryview:
        return self._buffer

    def filled(self, count: int) -> None:
        self.data += self._buffer[:count]


def collect(fetcher: NodeFetcher, ref: FileRef, start: int, end: int) -> bytes:
    received = Collected()
    fetcher.fetch(ref, start, end, received)
    return bytes(received.data)


def test_a_node_range_survives_resets_stalls_and_expired_urls(
    fake_putio: FakePutio, node_session: requests.Session
) -> None:
    file_id = fake_putio.add_file("f.bin", size=3 * MIB)
    fake_putio.node_fault(file_id, reset_after=200_000)
    fake_putio.node_fault(file_id, stall_after=300_000)
    fake_putio.url_max_uses = 1
    fetcher = fetcher_for(fake_putio, node_session, read_timeout=0.5)
    data = collect(fetcher, FileRef(file_id, 3 * MIB), 1000, 3 * MIB - 5)
    expected = b"".join(fake_putio.file_pieces(file_id, 1000, 3 * MIB - 5))
    assert data == expected
    ranges = [r.headers.get("Range") for r in fake_putio.requests if r.host == "node"]
    assert ranges[0] == f"bytes=1000-{3 * MIB - 6}"
    assert len(ranges) >= 3 and all(r is not None for r in ranges)  # resumed, never restarted


def test_an_outage_gives_up_after_max_outage(
    fake_putio: FakePutio, node_session: requests.Session
) -> None:
    file_id = fake_putio.add_file("f.bin", size=MIB)
    fetcher = fetcher_for(fake_putio, node_session, read_timeout=0.5, outage=1.5)
    fake_putio.outage(60)
    started = time.monotonic()
    with pytest.raises(Unavailable):
        collect(fetcher, FileRef(file_id, MIB), 0, MIB)
    assert 1.4 < time.monotonic() - started < 1.5 + 1.0


def test_a_dead_nodes_url_is_given_up_for_the_one_put_io_hands_out_next(
    fake_putio: FakePutio, node_session: requests.Session
) -> None:
    # put.io sends a file's readers to another node when one dies: a URL that failed is
    # asked for again, as the downloader does, not tried until the outage ends, and again
    # at every later read of the file.
    file_id = fake_putio.add_file("f.bin", size=MIB)
    fake_putio.node_base_url = f"http://127.0.0.1:{unused_port()}"

    def next_node_works(request: LoggedRequest) -> None:
        if request.host == "api" and request.path.endswith("/url"):
            fake_putio.node_base_url = None  # the link just handed out is the dead one's

    fake_putio.on_request = next_node_works
    fetcher = fetcher_for(fake_putio, node_session, read_timeout=0.5, outage=3)
    assert collect(fetcher, FileRef(file_id, MIB), 0, MIB) == fake_putio.file_content(file_id)


def test_closing_fails_a_fetch_waiting_on_a_silent_node_at_once(
    fake_putio: FakePutio, node_session: requests.Session
) -> None:
    file_id = fake_putio.add_file("f.bin", size=MIB)
    fake_putio.node_fault(file_id, stall_after=1000, times=100)
    fake_putio.stall_release_seconds = 60
    fetcher = fetcher_for(fake_putio, node_session, read_timeout=20, outage=30)
    waiting = threading.Timer(0.5, fetcher.close)
    waiting.start()
    started = time.monotonic()
    with pytest.raises(Unavailable, match="the mount is ending"):
        collect(fetcher, FileRef(file_id, MIB), 0, MIB)
    assert time.monotonic() - started < 2
    with pytest.raises(Unavailable):  # and any fetch after
        collect(fetcher, FileRef(file_id, MIB), 0, MIB)


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_a_file_put_io_no_longer_has_fails_at_once(
    fake_putio: FakePutio, node_session: requests.Session
) -> None:
    file_id = fake_putio.add_file("f.bin", size=MIB)
    fake_putio.delete_file(file_id)
    started = time.monotonic()
    with pytest.raises(Unavailable, match="File not found"):
        collect(fetcher_for(fake_putio, node_session), FileRef(file_id, MIB), 0, MIB)
    assert time.monotonic() - started < 1


def remote_reads(
    fake: FakePutio, session: requests.Session, tmp_path: Path, **policy: float
) -> RemoteReads:
    cache = BlockCache(tmp_path / "cache", 64 * MIB).open()
    settings = {"max_blocks": 16, "connections": 2} | policy
    return RemoteReads(
        cache, fetcher_for(fake, session), ReadAheadPolicy(**settings), 10, time.monotonic
    )


def requested_lengths(fake: FakePutio) -> list[int]:
    lengths = []
    for request in fake.requests:
        if request.host == "node":
            first, last = request.headers["Range"].removeprefix("bytes=").split("-")
            lengths.append(int(last) - int(first) + 1)
    return lengths


def read_through(
    reads: RemoteReads, fake_putio: FakePutio, ref: FileRef, offsets: Iterable[int], step: int
) -> list[int]:
    """Read ``step`` bytes at each offset as one stream, checking each against put.io's
    bytes; return the lengths of the Range requests the node got."""
    stream = Stream()
    for offset in offsets:
        expected = b"".join(fake_putio.file_pieces(ref.id, offset, offset + step))
        assert reads.read(ref, offset, step, stream) == expected
    return requested_lengths(fake_putio)


def test_read_ahead_grows_while_reads_are_sequential(
    fake_putio: FakePutio, node_session: requests.Session, tmp_path: Path
) -> None:
    size = 40 * MIB
    file_id = fake_putio.add_file("movie.mkv", size=size)
    reads = remote_reads(fake_putio, node_session, tmp_path)
    step = 128 * 1024
    lengths = read_through(reads, fake_putio, FileRef(file_id, size), range(0, size, step), step)
    assert lengths[0] == BLOCK_SIZE  # the first read waits for one block only
    assert max(lengths) == 8 * BLOCK_SIZE  # the cap (16 blocks) over two connections
    assert len(lengths) < 15  # not one request per block
    assert sum(lengths) == size  # every byte fetched once


def test_the_read_ahead_window_takes_up_to_half_the_block_cache() -> None:
    # It lands in memory: a 64 MiB cache no longer holds it to 16 MiB (2 GiB reads waited).
    policy = ReadAheadPolicy.within(32 * MIB, 64 * MIB, 4)
    assert policy.max_blocks == 32 and ReadAheadPolicy.within(32 * MIB, 16 * MIB, 4).max_blocks == 8
    # A slow node's requests stay short however wide the window; a fast one's take it all.
    assert (policy.request_blocks(32, None), policy.request_blocks(32, float("inf"))) == (4, 16)


@pytest.mark.parametrize(
    ("cap", "fast_rate", "longest"),
    [
        (16, 0.0, 8),  # fast: the window of 16 blocks over two requests, not four
        (16, float("inf"), 4),  # slow: over four
        (4, 0.0, 1),  # requests of one block say nothing of the node's speed: still four
    ],
)
def test_fast_connections_fetch_the_window_with_fewer_bigger_requests(
    fake_putio: FakePutio,
    node_session: requests.Session,
    tmp_path: Path,
    cap: int,
    fast_rate: float,
    longest: int,
) -> None:
    size = 40 * MIB
    file_id = fake_putio.add_file("movie.mkv", size=size)
    reads = remote_reads(
        fake_putio, node_session, tmp_path, max_blocks=cap, connections=4, fast_rate=fast_rate
    )
    step = 256 * 1024
    lengths = read_through(reads, fake_putio, FileRef(file_id, size), range(0, size, step), step)
    assert max(lengths) == longest * BLOCK_SIZE
    assert sum(lengths) == size


def test_reads_arriving_a_little_out_of_order_keep_the_read_ahead_going(
    fake_putio: FakePutio, node_session: requests.Session, tmp_path: Path
) -> None:
    size = 40 * MIB
    file_id = fake_putio.add_file("movie.mkv", size=size)
    reads = remote_reads(fake_putio, node_session, tmp_path)
    step = 128 * 1024
    offsets = list(range(0, size, step))
    for index in range(1, len(offsets) - 1, 2):  # the kernel's threads answer in pairs, swapped
        offsets[index], offsets[index + 1] = offsets[index + 1], offsets[index]
    lengths = read_through(reads, fake_putio, FileRef(file_id, size), offsets, step)
    assert max(lengths) == 8 * BLOCK_SIZE and len(lengths) < 15  # as if in order
    assert sum(lengths) == size


def test_what_a_stream_has_read_is_not_kept_on_disk(
    fake_putio: FakePutio, node_session: requests.Session, tmp_path: Path
) -> None:
    size = 40 * MIB
    file_id = fake_putio.add_file("movie.mkv", size=size)
    cache = BlockCache(tmp_path / "cache", 64 * MIB).open()
    fetcher = fetcher_for(fake_putio, node_session)
    reads = RemoteReads(cache, fetcher, ReadAheadPolicy(4, 2), 10, time.monotonic)
    stream, ref, step = Stream(), FileRef(file_id, size), MIB
    for offset in range(0, size, step):
        assert (
            reads.read(ref, offset, step, stream)
            == fake_putio.file_content(file_id)[offset : offset + step]
        )
    assert cache.used_bytes() <= MIB  # the first block: read before the stream was one
    for block in (5, 31, 17, 2, 11, 23, 29, 8, 14, 20):  # more than memory holds
        reads.read(ref, block * MIB + 3, 10, Stream())
    assert cache.used_bytes() >= 4 * MIB  # blocks read at random were kept
    fake_putio.clear_requests()
    assert reads.read(ref, 5 * MIB + 3, 10, Stream())
    assert requested_lengths(fake_putio) == []


def test_random_reads_fetch_only_the_blocks_they_touch(
    fake_putio: FakePutio, node_session: requests.Session, tmp_path: Path
) -> None:
    size = 20 * MIB
    file_id = fake_putio.add_file("movie.mkv", size=size)
    reads = remote_reads(fake_putio, node_session, tmp_path)
    stream, ref = Stream(), FileRef(file_id, size)
    for offset in (15 * MIB + 7, 3 * MIB - 10, 11 * MIB):
        expected = b"".join(fake_putio.file_pieces(file_id, offset, offset + 4096))
        assert reads.read(ref, offset, 4096, stream) == expected
    assert requested_lengths(fake_putio) == [BLOCK_SIZE, BLOCK_SIZE, BLOCK_SIZE, BLOCK_SIZE]
    fake_putio.clear_requests()
    assert reads.read(ref, 3 * MIB - 10, 10, stream)  # cached now
    assert requested_lengths(fake_putio) == []


def test_probing_a_files_head_and_tail_fetches_no_read_ahead(
    fake_putio: FakePutio, node_session: requests.Session, tmp_path: Path
) -> None:
    size = 30 * MIB
    file_id = fake_putio.add_file("movie.mkv", size=size)
    reads = remote_reads(fake_putio, node_session, tmp_path)
    stream, ref = Stream(), FileRef(file_id, size)
    assert reads.read(ref, 0, 4096, stream) == b"".join(fake_putio.file_pieces(file_id, 0, 4096))
    tail = b"".join(fake_putio.file_pieces(file_id, size - 100, size))
    assert reads.read(ref, size - 100, 4096, stream) == tail
    time.sleep(0.2)  # read-ahead, had any started, would have asked by now
    assert requested_lengths(fake_putio) == [BLOCK_SIZE, BLOCK_SIZE]


def _workers_since(before: set[threading.Thread]) -> set[threading.Thread]:
    """The read-ahead workers started since ``before`` and alive: this test's own. (Not a
    count of every thread: another test's idle workers end a minute after their last job,
    whenever that falls, and a server's threads when their client lets go.)"""
    return {t for t in set(threading.enumerate()) - before if t.name.endswith("(_work)")}


def _until(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_read_ahead_workers_run_every_job_at_once_and_are_kept() -> None:
    workers = Workers()
    release, started = threading.Event(), threading.Semaphore(0)

    def job() -> None:
        started.release()
        release.wait(5)

    before = set(threading.enumerate())
    for _ in range(3):
        workers.submit(job)
    for _ in range(3):  # none waits for another to end
        assert started.acquire(timeout=5)
    three = _workers_since(before)
    assert len(three) == 3
    release.set()
    assert _until(lambda: workers._idle == 3), "the three are idle now"
    ran_on: list[threading.Thread] = []
    ran = threading.Event()
    workers.submit(lambda: (ran_on.append(threading.current_thread()), ran.set()))
    assert ran.wait(5)
    assert ran_on[0] in three, "an idle worker took it"
    assert _workers_since(before) == three, "and no other was started"


def test_an_idle_read_ahead_worker_ends() -> None:
    workers = Workers(idle_seconds=0.05)
    ran_on: list[threading.Thread] = []
    ran = threading.Event()
    workers.submit(lambda: (ran_on.append(threading.current_thread()), ran.set()))
    assert ran.wait(5)
    (worker,) = ran_on
    worker.join(5)  # (the thread itself: it may have ended already, or any other meanwhile)
    assert not worker.is_alive()


def test_the_links_kept_are_bounded_the_oldest_asked_for_again(
    fake_putio: FakePutio, node_session: requests.Session
) -> None:
    """A mount lives for months while a media scanner reads the head of every file: a link
    kept for each file ever read grew without end (and put.io's links expire anyway)."""
    ids = [fake_putio.add_file(f"f{n}.bin", size=1000) for n in range(4)]
    client = PutioClient(fake_putio.token, fake_putio.api_url, fake_putio.upload_url, timeout=2)
    fetcher = NodeFetcher(
        node_session,
        lambda file_id: client.download_url(file_id, retry=False),
        Timing(2, 10),
        keep_links=3,
    )
    for file_id in ids:
        assert (
            collect(fetcher, FileRef(file_id, 1000), 0, 10) == fake_putio.file_content(file_id)[:10]
        )
    fake_putio.clear_requests()
    collect(fetcher, FileRef(ids[3], 1000), 0, 10)  # among the three newest: kept
    collect(fetcher, FileRef(ids[0], 1000), 0, 10)  # the oldest: let go, asked for again
    asked = [r.path for r in fake_putio.requests if r.host == "api"]
    assert asked == [f"/v2/files/{ids[0]}/url"], asked
