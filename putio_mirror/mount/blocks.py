"""The mount's block cache: fixed-size blocks of streamed files, on disk, least recently
used evicted first.

A block is ``BLOCK_SIZE`` bytes of one put.io file (the last one shorter), kept as
``<cache>/<file id>-<block index>``, written to a temporary name and renamed, so a
reader never sees half a block. The cache lives in the staging filesystem (the
staging folder's ``mount-cache/``), never in memory: read-ahead of many streams
costs disk, not RSS. Its size never exceeds ``max_bytes``; it is emptied when the
mount starts (its index lives in memory only). put.io never changes a file's bytes
under its id, so a block stays valid for as long as it is kept.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections import OrderedDict
from pathlib import Path

BLOCK_SIZE = 1024 * 1024
CACHE_DIR_NAME = "mount-cache"

BlockKey = tuple[int, int]


class BlockCache:
    """Given a folder and a byte budget, keep blocks there, evicting the least recently used."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self._folder = folder
        self._max_bytes = max_bytes
        self._sizes: OrderedDict[BlockKey, int] = OrderedDict()
        self._used = 0
        self._lock = threading.Lock()
        self._serial = 0

    @property
    def folder(self) -> Path:
        return self._folder

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    def open(self) -> BlockCache:
        """Start empty: remove what an earlier mount left, then create the folder."""
        shutil.rmtree(self._folder, ignore_errors=True)
        self._folder.mkdir(parents=True, exist_ok=True)
        return self

    def close(self) -> None:
        shutil.rmtree(self._folder, ignore_errors=True)

    def used_bytes(self) -> int:
        with self._lock:
            return self._used

    def has(self, key: BlockKey) -> bool:
        with self._lock:
            return key in self._sizes

    def read(self, key: BlockKey, start: int, length: int) -> bytes | None:
        """Given a block and a range inside it, return those bytes (None if not cached)."""
        with self._lock:
            if key not in self._sizes:
                return None
            self._sizes.move_to_end(key)
        try:
            descriptor = os.open(self._path(key), os.O_RDONLY)
        except FileNotFoundError:  # evicted between the look-up and the open
            return None
        try:
            return os.pread(descriptor, length, start)
        finally:
            os.close(descriptor)

    def put(self, key: BlockKey, data: bytes) -> None:
        """Given a whole block, keep it (evicting older blocks to stay within budget)."""
        if len(data) > self._max_bytes:
            return
        with self._lock:
            self._serial += 1
            temporary = self._folder / f".{self._serial}.tmp"
        temporary.write_bytes(data)
        with self._lock:
            temporary.replace(self._path(key))
            self._used += len(data) - self._sizes.pop(key, 0)
            self._sizes[key] = len(data)
            # Under the lock: a block put again meanwhile must not lose its new file.
            self._evict()

    def _evict(self) -> None:
        """Drop the least recently used blocks until within budget."""
        while self._used > self._max_bytes and self._sizes:
            key, size = self._sizes.popitem(last=False)
            self._used -= size
            with contextlib.suppress(FileNotFoundError):
                self._path(key).unlink()

    def _path(self, key: BlockKey) -> Path:
        return self._folder / f"{key[0]}-{key[1]}"
