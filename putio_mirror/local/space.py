"""Free space: checked before bytes are written, so a full disk is a message, not a torn file."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from putio_mirror.core.errors import NoSpaceError
from putio_mirror.core.units import human_bytes
from putio_mirror.local.paths import nearest_existing

#: Free space kept spare on the download disk unless the config says otherwise.
FREE_SPACE_MARGIN = 100 * 1024 * 1024


def free_bytes(path: Path) -> int:
    """Given a path that may not exist yet, return the free bytes of the filesystem that
    would hold it (that of its nearest existing ancestor)."""
    return shutil.disk_usage(nearest_existing(path)).free


def ensure_room(path: Path, needed: int, margin: int = FREE_SPACE_MARGIN) -> None:
    """Given where ``needed`` bytes will be written, return if they fit with ``margin`` to
    spare; raise NoSpaceError otherwise."""
    _refuse_unless_room(path, needed, free_bytes(path), margin)


def _refuse_unless_room(path: Path, needed: int, free: int, margin: int) -> None:
    if free >= needed + margin:
        return
    raise NoSpaceError(
        f"not enough room for {human_bytes(needed)} in {path}: "
        f"{human_bytes(free)} free, {human_bytes(margin)} kept spare",
        "free some space on that disk (or lower download.free_space_margin_mb); each "
        "download resumes where it stopped, the next run, with no pause",
    )


#: how long a measure of the free space may stand in for a new one (see ``RoomKeeper``)
MEASURE_SECONDS = 1.0


class RoomKeeper:
    """Free space shared by downloads running at once: each checks the disk for its own
    bytes plus those the others still have to write (two 40 GB files with 50 GB free do
    not both start).

    The disk is measured again (``statvfs``) only once the last measure is ``MEASURE_SECONDS``
    old, or once the bytes promised since it would take half of the room it left: ten
    thousand small files cost a few measures, not one each under one lock (issue 14). What
    another program writes meanwhile is met as a full disk on write (``NoSpaceError`` too).
    """

    def __init__(
        self,
        margin: int,
        *,
        measure: Callable[[Path], int] = free_bytes,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._margin = margin
        self._measure = measure
        self._clock = clock
        self._promised = 0
        self._lock = threading.Lock()
        self._last: _Measure | None = None

    def reserved(self, folder: Path, needed: int) -> _Reserved:
        """Within this block ``needed`` bytes are promised; raise NoSpaceError (on
        entering) if they do not fit beside the others' promises and the margin."""
        return _Reserved(self, folder, needed)

    def _promise(self, folder: Path, needed: int) -> None:
        with self._lock:
            if not self._fits_last(folder, needed):
                free = self._measure(folder)
                self._last = _Measure(folder, free, self._clock() + MEASURE_SECONDS)
                _refuse_unless_room(folder, needed + self._promised, free, self._margin)
            self._promised += needed
            if self._last is not None:
                self._last.since += needed

    def _release(self, needed: int) -> None:
        with self._lock:
            self._promised -= needed

    def _fits_last(self, folder: Path, needed: int) -> bool:
        """Whether the last measure (of this folder, recent) says ``needed`` more bytes fit
        with half of its room to spare (lock held)."""
        last = self._last
        if last is None or self._clock() >= last.until:
            return False
        if last.folder is not folder and last.folder != folder:  # (a Path's == is slow)
            return False
        room = last.free - self._margin
        return 2 * (last.since + needed) <= room - self._promised


class _Reserved:
    """``RoomKeeper.reserved``'s block: a class, not a generator's context manager (each
    small file enters one: issue 14)."""

    __slots__ = ("_folder", "_keeper", "_needed")

    def __init__(self, keeper: RoomKeeper, folder: Path, needed: int) -> None:
        self._keeper, self._folder, self._needed = keeper, folder, needed

    def __enter__(self) -> None:
        self._keeper._promise(self._folder, self._needed)

    def __exit__(self, *_: object) -> None:
        self._keeper._release(self._needed)


class _Measure:
    __slots__ = ("folder", "free", "since", "until")

    def __init__(self, folder: Path, free: int, until: float) -> None:
        self.folder = folder
        self.free = free
        self.until = until
        self.since = 0  # bytes promised since this measure
