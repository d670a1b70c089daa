"""The mount's block cache: fixed-size blocks of streamed files, on disk, least recently
used evicted first.

A block is ``BLOCK_SIZE`` bytes of one put.io file (the last one shorter). The cache
is one file in the staging filesystem (``mount-cache/blocks`` in the staging
folder) cut into ``max_bytes // BLOCK_SIZE`` slots; an index in memory says which
block is in which slot, in least-recently-used order. Read-ahead of many streams
therefore costs disk, not RSS, and the file never grows past the budget. Reusing
slots (``pwrite`` over pages already there) costs about half the CPU of a file per
block, which had to be created, renamed and, on eviction, unlinked (profiled on a
512 MiB read: 20 % of the mount's CPU went to those). A slot being read is pinned,
so it is not overwritten under its reader; a block being written is not in the
index until it is whole. The cache starts empty with each mount. put.io never
changes a file's bytes under its id, so a block stays valid while it is kept.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections import OrderedDict
from pathlib import Path

logger = logging.getLogger(__name__)

BLOCK_SIZE = 1024 * 1024
CACHE_DIR_NAME = "mount-cache"
CACHE_FILE_NAME = "blocks"

BlockKey = tuple[int, int]


class BlockCache:
    """Given a folder and a byte budget, keep blocks in slots of one file there."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self._folder = folder
        self._slot_count = max(1, max_bytes // BLOCK_SIZE)
        #: block -> (slot, length), least recently used first
        self._index: OrderedDict[BlockKey, tuple[int, int]] = OrderedDict()
        self._free = list(range(self._slot_count))
        self._pins: dict[int, int] = {}
        self._lock = threading.Lock()
        self._descriptor = -1

    @property
    def max_bytes(self) -> int:
        return self._slot_count * BLOCK_SIZE

    def open(self) -> BlockCache:
        """Start empty: remove what an earlier mount left, then create the cache file."""
        shutil.rmtree(self._folder, ignore_errors=True)
        self._folder.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        self._descriptor = os.open(self._folder / CACHE_FILE_NAME, flags, 0o600)
        return self

    def close(self) -> None:
        if self._descriptor >= 0:
            os.close(self._descriptor)
            self._descriptor = -1
        shutil.rmtree(self._folder, ignore_errors=True)

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
        not kept: its readers fetch it again.
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
            logger.warning("mount: the block cache could not keep a block: %s", error)
            with self._lock:
                self._free.append(slot)
            self._unpin(slot)
            return
        with self._lock:
            self._index[key] = (slot, len(data))
        self._unpin(slot)

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
