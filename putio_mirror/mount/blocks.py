"""The mount's blocks of streamed files: the last landed in memory (``MemoryBlocks``), a
bounded cache of them on disk (``BlockCache``), least recently used evicted first.

A block is ``BLOCK_SIZE`` bytes of one put.io file (the last one shorter). The cache
is one file in the staging filesystem (``mount-cache/<pid>-<random>/blocks`` in the
staging folder: each mount its own, locked while it runs) cut into
``max_bytes // BLOCK_SIZE`` slots; an index in memory says which
block is in which slot, in least-recently-used order. Read-ahead of many streams
therefore costs disk, not RSS, and the file never grows past the budget. Reusing
slots (``pwrite`` over pages already there) costs about half the CPU of a file per
block, which had to be created, renamed and, on eviction, unlinked (profiled on a
512 MiB read: 20 % of the mount's CPU went to those). A slot being read is pinned,
so it is not overwritten under its reader; a block being written is not in the
index until it is whole. The cache starts empty with each mount. put.io never
changes a file's bytes under its id, so a block stays valid while it is kept.

Two mounts of one config share ``mount-cache``: one folder there was emptied by each
mount's start and removed at its end, so a second mount deleted the first one's cache
(its blocks lived on in a deleted file ``du`` never showed), and two starting at once
wrote slots of one file. Each mount now keeps its own folder, its cache file locked
(``flock``) while it runs; a starting mount removes only the folders whose lock is
free, those of mounts killed before they could remove their own.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

BLOCK_SIZE = 1024 * 1024
CACHE_DIR_NAME = "mount-cache"
CACHE_FILE_NAME = "blocks"

BlockKey = tuple[int, int]
#: A mount's cache folder without its cache file yet is being made, unless this old.
_MAKING_SECONDS = 60.0


class BlockCache:
    """Given a folder (shared by the mounts of one config) and a byte budget, keep blocks
    in slots of one file of this mount's own folder there."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self._folder = folder
        self._own: Path | None = None
        self._slot_count = max(1, max_bytes // BLOCK_SIZE)
        #: block -> (slot, length), least recently used first
        self._index: OrderedDict[BlockKey, tuple[int, int]] = OrderedDict()
        self._free = list(range(self._slot_count))
        self._pins: dict[int, int] = {}
        #: slots of forgotten blocks, free once their readers are done
        self._unpinned_free: set[int] = set()
        self._lock = threading.Lock()
        self._descriptor = -1
        self._unkept = _Unkept()

    @property
    def max_bytes(self) -> int:
        return self._slot_count * BLOCK_SIZE

    @property
    def own_folder(self) -> Path | None:
        """This mount's folder, once open."""
        return self._own

    def open(self) -> BlockCache:
        """Start empty: remove what mounts that ended without closing left, then create
        this mount's folder and its cache file, locked."""
        self._folder.mkdir(parents=True, exist_ok=True)
        sweep(self._folder)
        while self._descriptor < 0:
            own = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=self._folder))
            descriptor = _locked_new(own / CACHE_FILE_NAME)
            if descriptor is not None:
                self._own, self._descriptor = own, descriptor
        return self

    def close(self) -> None:
        self._unkept.summed_up()
        if self._descriptor >= 0:
            os.close(self._descriptor)
            self._descriptor = -1
        if self._own is not None:
            shutil.rmtree(self._own, ignore_errors=True)
        with suppress(OSError):  # the last mount out tidies up; another's is still there
            self._folder.rmdir()

    def used_bytes(self) -> int:
        with self._lock:
            return sum(length for _, length in self._index.values())

    def has(self, key: BlockKey) -> bool:
        with self._lock:
            return key in self._index

    def read(self, key: BlockKey, start: int, length: int) -> bytes | None:
        """Given a block and a range inside it, return those bytes (None if not cached)."""
        with self._lock:
            found = self._index.get(key)
            if found is None:
                return None
            self._index.move_to_end(key)
            slot = found[0]
            self._pins[slot] = self._pins.get(slot, 0) + 1
        try:
            return os.pread(self._descriptor, length, slot * BLOCK_SIZE + start)
        finally:
            self._unpin(slot)

    def put(self, key: BlockKey, data: bytes | bytearray | memoryview) -> None:
        """Given a whole block, keep it in a free slot or the least recently used one's.

        A full disk or a cache whose every slot is being read only means the block is
        not kept: its readers fetch it again. A full disk is told once, not once a block.
        """
        with self._lock:
            if key in self._index:
                return
            slot = self._take_slot()
            if slot is None:
                return
            self._pins[slot] = 1  # being written: no reader can find it, no writer take it
        try:
            os.pwrite(self._descriptor, data, slot * BLOCK_SIZE)
        except OSError as error:
            self._unkept.add(error)
            with self._lock:
                self._free.append(slot)
            self._unpin(slot)
            return
        with self._lock:
            self._index[key] = (slot, len(data))
        self._unpin(slot)
        self._unkept.summed_up()

    def forget(self, file_id: int) -> None:
        """Drop every block of the file; a slot being read is freed once its reader is done."""
        with self._lock:
            for key in [key for key in self._index if key[0] == file_id]:
                slot = self._index.pop(key)[0]
                if self._pins.get(slot):
                    self._unpinned_free.add(slot)
                else:
                    self._free.append(slot)

    def _take_slot(self) -> int | None:
        """Return a free slot, else the least recently used block's that nobody reads."""
        if self._free:
            return self._free.pop()
        for key, (slot, _) in self._index.items():
            if not self._pins.get(slot):
                del self._index[key]
                return slot
        return None

    def _unpin(self, slot: int) -> None:
        with self._lock:
            count = self._pins.pop(slot) - 1
            if count:
                self._pins[slot] = count
            elif slot in self._unpinned_free:
                self._unpinned_free.discard(slot)
                self._free.append(slot)


class _Unkept:
    """The blocks the cache's disk refused, told once while it refuses, not once a block:
    a full disk under a mount a scanner probes logged hundreds of the same warning a
    minute, for as long as the disk stayed full. The first refusal is told, the count once
    a block is kept again (or at the end)."""

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()

    def add(self, error: OSError) -> None:
        with self._lock:
            self._count += 1
            first = self._count == 1
        if first:
            logger.warning(
                "mount: the block cache could not keep a block: %s; its readers fetch "
                "such blocks from put.io again (told once until a block is kept again)",
                error,
            )

    def summed_up(self) -> None:
        """Tell how many blocks were not kept since the first refusal, if any were."""
        if not self._count:  # (most calls: no lock taken for each block kept)
            return
        with self._lock:
            count, self._count = self._count, 0
        if count:
            logger.warning("mount: %d blocks were not kept in the block cache", count)


def sweep(folder: Path) -> None:
    """Given the mounts' shared cache folder, remove what no running mount holds: the
    folders of mounts that were killed, and a cache file of the layout before folders."""
    for entry in folder.iterdir():
        if entry.is_symlink() or not entry.is_dir():
            if entry.name == CACHE_FILE_NAME:
                entry.unlink(missing_ok=True)
            continue
        if _abandoned(entry):
            shutil.rmtree(entry, ignore_errors=True)


def _abandoned(own: Path) -> bool:
    """Given a mount's cache folder, say whether no running mount holds it: its cache
    file's lock is free (a lock dies with its process, kill -9 included)."""
    try:
        descriptor = os.open(own / CACHE_FILE_NAME, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:  # being made, or its maker died before making the file
        try:
            return time.time() - own.stat().st_mtime > _MAKING_SECONDS
        except OSError:
            return False
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # held: a running mount's
    finally:
        os.close(descriptor)  # the lock, if taken, goes with it
    return True


def _locked_new(path: Path) -> int | None:
    """Create the cache file and lock it; return its descriptor, or None if another
    mount's sweep took it for abandoned between the two (then make another)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(path, flags, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        still = path.stat().st_ino == os.fstat(descriptor).st_ino
    except OSError:  # a sweep holds it this instant, or removed it
        still = False
    if not still:
        os.close(descriptor)
    return descriptor if still else None


class MemoryBlocks:
    """The blocks landed last, in memory, at most ``capacity`` of them, least recently used
    out first.

    Read-ahead lands here, so a streaming reader's bytes take one copy from the socket's
    buffer to the kernel's, instead of a write to the cache file and a read back (those
    two were a fifth of the mount's CPU on a 512 MiB read). A block leaving is worth the
    disk cache unless a sequential reader has had it: such a reader does not come back,
    and keeping what it read would evict what a player's seek or a scanner's probe may
    want again (a 2 GiB film read through would flush the whole cache).
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = max(1, capacity)
        #: least recently used first
        self._blocks: OrderedDict[BlockKey, _Held] = OrderedDict()
        self._spare: list[bytearray] = []
        self._lock = threading.Lock()

    def take(self, length: int) -> bytearray:
        """Return a buffer for a block of ``length`` bytes: one that left, if nobody holds
        it any more, else a new one. A new 1 MiB buffer costs the kernel fresh zeroed
        pages each time (a tenth of the mount's CPU on a 512 MiB read went to that)."""
        with self._lock:
            while self._spare and length == BLOCK_SIZE:
                block = self._spare.pop()
                # A reader still copying from it refers to it (its view does): the only
                # references left must be this frame's and getrefcount's own.
                if sys.getrefcount(block) == _UNSHARED:
                    return block
        return bytearray(length)

    def recycle(self, block: bytearray) -> None:
        """Given a block that left (and went to the disk cache, if worth it), keep it for
        ``take``."""
        if len(block) == BLOCK_SIZE:
            with self._lock:
                if len(self._spare) < _SPARE_MOST:
                    self._spare.append(block)

    def get(self, key: BlockKey, *, streamed: bool) -> bytearray | None:
        """Return the block if held (its reader must not change it); ``streamed``: the
        reader reads sequentially."""
        with self._lock:
            held = self._blocks.get(key)
            if held is None:
                return None
            self._blocks.move_to_end(key)
            held.streamed = held.streamed or streamed
            return held.data

    def has(self, key: BlockKey) -> bool:
        with self._lock:
            return key in self._blocks

    def forget(self, file_id: int) -> None:
        """Drop every block of the file (a reader copying from one keeps its buffer)."""
        with self._lock:
            for key in [key for key in self._blocks if key[0] == file_id]:
                del self._blocks[key]

    def add(self, key: BlockKey, data: bytearray) -> list[tuple[BlockKey, bytearray]]:
        """Hold a whole block; return the blocks it pushed out that are worth the disk."""
        spilled = []
        with self._lock:
            self._blocks[key] = _Held(data)
            while len(self._blocks) > self._capacity:
                # What a stream has read goes first: the rest are read-ahead not read yet.
                victim = next((k for k, held in self._blocks.items() if held.streamed), None)
                old_key = victim if victim is not None else next(iter(self._blocks))
                old = self._blocks.pop(old_key)
                if not old.streamed:
                    spilled.append((old_key, old.data))
                elif len(self._spare) < _SPARE_MOST and len(old.data) == BLOCK_SIZE:
                    self._spare.append(old.data)
        return spilled


#: Buffers kept for reuse at most: about what the fetches in flight take at once.
_SPARE_MOST = 8
#: sys.getrefcount of a buffer only ``take``'s local variable refers to.
_UNSHARED = 2


@dataclass(slots=True)
class _Held:
    data: bytearray
    streamed: bool = False
