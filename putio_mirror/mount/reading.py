"""Reading a put.io file that is not mirrored: blocks from the cache, or from its node.

A read asks for the blocks it covers: blocks landed lately are taken from memory,
cached ones read from disk, one being fetched already is waited for, missing ones
are fetched at once in this thread (one Range request for the run). A fetch reads
the socket straight into the block's buffer; the reader copies from there into the
kernel's (``pieces``), so a streamed byte is copied twice in this process, not four
times. While a stream's reads follow each other, read-ahead
fetches the next blocks in the background, its window doubling with each sequential
read up to a cap (rclone's chunk doubling), split over up to ``connections``
parallel Range requests run by kept worker threads; a seek starts the window again
(a read a few blocks off, as the kernel's concurrent reads arrive, is no seek). Only
slow connections are worth many: once a stream's last read-ahead request (of 4 MiB or
more) came at ``fast_rate`` or more, its window goes over ``fast_connections`` (two)
bigger requests, as one connection is then not what limits the stream but the CPU,
which more connections only take more of (a 512 MiB read over loopback, six alternating rounds:
488 MB/s for 0.56 CPU s this way, 460 MB/s for 0.68 s over four; capped at 20 MB/s a
connection, all four are kept).
Every block is fetched by one request however many readers want it, and a failure
reaches each of its waiters as ``Unavailable`` (``EIO``) within the outage limit.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from putio_mirror.mount.blocks import BLOCK_SIZE, BlockCache, BlockKey, MemoryBlocks
from putio_mirror.mount.node import FileRef, NodeFetcher, Unavailable
from putio_mirror.mount.workers import Workers

logger = logging.getLogger(__name__)

#: The read-ahead window after the first sequential read, in blocks.
FIRST_WINDOW = 2
#: How far from where the last read ended a read still counts as sequential: the kernel's
#: own read-ahead asks for a few reads at once, over several FUSE threads, and they
#: arrive out of order (seen: 1.5 MiB ahead, then the read before it). An exact match
#: took half of a `dd`'s reads for seeks, each one starting the window again.
NEARBY = 4 * BLOCK_SIZE


#: A connection delivering this many bytes a second is no bottleneck (see above).
FAST_RATE = 100e6
FAST_CONNECTIONS = 2
#: The shortest request whose rate counts, in blocks: a node's first bytes come at once
#: whatever its cap (nginx's limit_rate sends a socket buffer full, about 2 MiB over
#: loopback, before it paces), so a short request looks fast on any node.
MEASURED_BLOCKS = 4
#: The most blocks one request of a slow stream asks for: a capped connection delivers a
#: long request's last blocks late, and the stream's next request waits for a whole
#: chunk missing (128 MiB capped at 20 MB/s a connection, 32-block window over four:
#: 91 MB/s with requests of eight blocks, 149 MB/s with four).
SLOW_REQUEST_BLOCKS = 4


@dataclass(frozen=True)
class ReadAheadPolicy:
    """The window's cap in blocks, and how many requests may fetch one stream's window:
    ``connections``, or ``fast_connections`` while its requests come at ``fast_rate``."""

    max_blocks: int
    connections: int
    fast_rate: float = FAST_RATE
    fast_connections: int = FAST_CONNECTIONS

    @classmethod
    def within(cls, read_ahead_bytes: int, cache_bytes: int, connections: int) -> ReadAheadPolicy:
        """Given ``mount.read_ahead_max_mb`` and ``mount.cache_max_mb`` in bytes and the
        connections, return the policy. The window lands in memory; only read-ahead pushed
        out of memory unread (streams crowding each other) goes to the cache, so the window
        is held to half the cache, not to the quarter it was when every block went through
        the cache: a 64 MiB cache held it to 16 MiB, and a 2 GiB read then waited for its
        blocks a quarter of its time (two runs each: 0.5-0.9 s waited; at 32 MiB, 0.06-0.17 s)."""
        blocks = min(read_ahead_bytes, cache_bytes // 2) // BLOCK_SIZE
        return cls(max_blocks=max(1, blocks), connections=connections)

    def request_blocks(self, window: int, rate: float | None) -> int:
        """Given a stream's window and rate, return the most blocks one request asks for:
        the window over the connections, at most ``SLOW_REQUEST_BLOCKS`` unless fast."""
        chunk = max(1, window // self.connections_for(rate))
        fast = rate is not None and rate >= self.fast_rate
        return chunk if fast else min(chunk, SLOW_REQUEST_BLOCKS)

    def connections_for(self, rate: float | None) -> int:
        """Given the bytes a second of a stream's last request (None: not known yet),
        return how many requests may fetch its window at once."""
        if rate is not None and rate >= self.fast_rate:
            return min(self.connections, self.fast_connections)
        return self.connections


@dataclass
class Stream:
    """One open file's reading pattern: where the next sequential read starts, the window."""

    next_offset: int = 0
    window: int = 0
    pending: int = 0
    #: bytes a second of its last read-ahead request, None until one came
    rate: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Flight:
    """A block being fetched: waiters wait on ``done``; ``error`` says why it failed."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: str | None = None


_LANDED = _Flight()
_LANDED.done.set()

#: Bytes of one block, as ``pieces`` hands them out.
Piece = bytes | memoryview


class RemoteReads:
    """Given the block cache, a node fetcher and the read-ahead policy, serve reads."""

    def __init__(
        self,
        cache: BlockCache,
        fetcher: NodeFetcher,
        policy: ReadAheadPolicy,
        max_wait: float,
        clock: Callable[[], float],
    ) -> None:
        self._cache = cache
        self._fetcher = fetcher
        self._policy = policy
        self._max_wait = max_wait
        self._clock = clock
        self._flights: dict[BlockKey, _Flight] = {}
        self._lock = threading.Lock()
        self._workers = Workers()
        # Room for the window ahead, the block being read and one it has read.
        self._memory = MemoryBlocks(policy.max_blocks + 2)

    def close(self) -> None:
        """The mount is ending: every read waiting on a node fails now (``Unavailable``)."""
        self._fetcher.close()

    def forget(self, file_id: int) -> None:
        """Drop the file's blocks held and cached: they were found wrong."""
        self._memory.forget(file_id)
        self._cache.forget(file_id)

    def read(self, ref: FileRef, offset: int, size: int, stream: Stream) -> bytes:
        """Given a file, a byte range and the stream's state, return those bytes (fewer at
        the end of the file); raise Unavailable if the node cannot deliver them in time."""
        return b"".join(self.pieces(ref, offset, size, stream))

    def pieces(self, ref: FileRef, offset: int, size: int, stream: Stream) -> list[Piece]:
        """Like ``read``, but return the bytes as pieces, one a block, not copied together
        (the caller copies them once, where they go; it must not change them)."""
        end = min(offset + size, ref.size)
        if offset >= end:
            return []
        first, last = offset // BLOCK_SIZE, (end - 1) // BLOCK_SIZE
        streamed = self._read_ahead(ref, stream, offset, end, last + 1)
        parts = []
        for index in range(first, last + 1):
            base = index * BLOCK_SIZE
            start, stop = max(offset, base) - base, min(end, base + BLOCK_SIZE) - base
            parts.append(self._block_part(ref, index, start, stop, streamed))
        return parts

    def _block_part(self, ref: FileRef, index: int, start: int, stop: int, streamed: bool) -> Piece:
        """Return bytes [start, stop) of one block: held, cached, awaited, or fetched now."""
        key = (ref.id, index)
        deadline = self._clock() + self._max_wait
        while True:
            held = self._memory.get(key, streamed=streamed)
            if held is not None:
                return memoryview(held)[start:stop]
            data = self._cache.read(key, start, stop - start)
            if data is not None and len(data) == stop - start:
                return data
            flight, mine = self._claim(key)
            if mine:
                block = self._fetch_run(ref, index, index + 1, keep=True)[index]
                return memoryview(block)[start:stop]
            if not flight.done.wait(max(0.0, deadline - self._clock())):
                raise Unavailable(f"put.io file {ref.id}: block {index} did not arrive in time")
            if flight.error is not None:
                raise Unavailable(flight.error)

    def _claim(self, key: BlockKey) -> tuple[_Flight, bool]:
        """Return the block's flight, and whether this caller just started it."""
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            if self._memory.has(key) or self._cache.has(key):
                return _LANDED, False  # it landed since the caller looked: look again
            flight = self._flights[key] = _Flight()
            return flight, True

    def _read_ahead(self, ref: FileRef, stream: Stream, offset: int, end: int, start: int) -> bool:
        """Grow or reset the stream's window, and fetch the missing blocks ahead of it;
        return whether the read is sequential."""
        count = -(-ref.size // BLOCK_SIZE)
        with stream.lock:
            # A first read proves nothing: a media scanner reads a file's head, then its
            # tail, and read-ahead of every file it probes would download the library.
            sequential = offset > 0 and abs(offset - stream.next_offset) <= NEARBY
            stream.next_offset = max(stream.next_offset, end) if sequential else end
            if not sequential:
                stream.window = 0
                return False
            stream.window = min(max(stream.window * 2, FIRST_WINDOW), self._policy.max_blocks)
            stop = min(start + stream.window, count)
            connections = self._policy.connections_for(stream.rate)
            chunk = self._policy.request_blocks(stream.window, stream.rate)
            if self._fetcher.ignores_range(ref.id):
                # Its node sends the whole file whatever is asked: the window in order, over
                # one connection, each request reading on where the last one stopped.
                connections, chunk = 1, stream.window
            missing = [i for i in range(start, stop) if not self._known((ref.id, i))]
            if not missing or (missing[0] != start and len(missing) < chunk):
                return True  # only worthwhile requests: the next block, or a whole chunk
            free = connections - stream.pending
            runs = self._claim_runs(ref.id, missing, chunk, free) if free > 0 else []
            stream.pending += len(runs)
        for first, stop_index in runs:
            self._workers.submit(functools.partial(self._prefetch, ref, first, stop_index, stream))
        return True

    def _known(self, key: BlockKey) -> bool:
        with self._lock:
            return key in self._flights or self._memory.has(key) or self._cache.has(key)

    def _claim_runs(
        self, file_id: int, indexes: list[int], chunk: int, most: int
    ) -> list[tuple[int, int]]:
        """Claim blocks nobody fetches yet, as at most ``most`` runs of at most ``chunk``
        blocks; return the runs (every claimed block is in one: its caller fetches them)."""
        runs: list[tuple[int, int]] = []
        with self._lock:
            for index in indexes:
                key = (file_id, index)
                if key in self._flights or self._memory.has(key) or self._cache.has(key):
                    continue
                if runs and runs[-1][1] == index and runs[-1][1] - runs[-1][0] < chunk:
                    runs[-1] = (runs[-1][0], index + 1)
                elif len(runs) < most:
                    runs.append((index, index + 1))
                else:
                    break
                self._flights[key] = _Flight()
        return runs

    def _prefetch(self, ref: FileRef, first: int, stop: int, stream: Stream) -> None:
        started = self._clock()
        try:
            self._fetch_run(ref, first, stop, keep=False)
            took = self._clock() - started
            size = min(stop * BLOCK_SIZE, ref.size) - first * BLOCK_SIZE
            if size >= MEASURED_BLOCKS * BLOCK_SIZE:
                with stream.lock:
                    stream.rate = size / took if took > 0 else float("inf")
        except Unavailable as error:
            logger.info("read-ahead stopped: %s", error)
        except OSError as error:  # the cache's disk: the readers fetch what they need
            logger.warning("read-ahead of put.io file %d failed: %s", ref.id, error)
        finally:
            with stream.lock:
                stream.pending -= 1

    def _fetch_run(
        self, ref: FileRef, first: int, stop: int, *, keep: bool
    ) -> dict[int, bytearray]:
        """Fetch claimed blocks [first, stop) with one request, landing each as it completes;
        return them if ``keep``. Raise Unavailable (each unlanded block's waiters hear too)."""
        kept: dict[int, bytearray] = {}

        def landed(index: int, block: bytearray) -> None:
            if keep:
                kept[index] = block
            spilled = self._memory.add((ref.id, index), block)
            self._land((ref.id, index), None)
            for key, data in spilled:  # after the waiters were woken: they need not wait
                self._cache.put(key, data)
                self._memory.recycle(data)

        landing = _Landing(ref, first, stop, landed, self._memory.take)
        end = min(stop * BLOCK_SIZE, ref.size)
        try:
            self._fetcher.fetch(ref, first * BLOCK_SIZE, end, landing)
        except BaseException as error:
            reason = (
                str(error) if isinstance(error, Unavailable) else f"the fetch failed ({error!r})"
            )
            for index in range(landing.index, stop):
                self._land((ref.id, index), reason)
            raise
        return kept

    def _land(self, key: BlockKey, error: str | None) -> None:
        with self._lock:
            flight = self._flights.pop(key, None)
        if flight is not None:
            flight.error = error
            flight.done.set()


class _Landing:
    """A run of blocks being received: each is read straight into a buffer ``take`` gives
    (none a reader still holds) and handed to ``landed`` once whole."""

    def __init__(
        self,
        ref: FileRef,
        first: int,
        stop: int,
        landed: Callable[[int, bytearray], None],
        take: Callable[[int], bytearray],
    ) -> None:
        self.index = first
        self._ref = ref
        self._landed = landed
        self._take = take
        self._block = bytearray(0)
        self._filled = 0

    def space(self) -> memoryview:
        if not self._block:
            self._block = self._take(min(BLOCK_SIZE, self._ref.size - self.index * BLOCK_SIZE))
        return memoryview(self._block)[self._filled :]

    def filled(self, count: int) -> None:
        self._filled += count
        if self._filled == len(self._block):
            block, self._block, self._filled = self._block, bytearray(0), 0
            self.index += 1
            self._landed(self.index - 1, block)
