"""The download steps of the executor: fetch into staging, verify, place; adopt; place items.

Separated from the executor's loop because these steps run on several worker
threads at once (``parallel_files``): each thread gets its own fetcher
(HTTP sessions are not shared between threads), and everything they report
goes through thread-safe callbacks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Protocol

from putio_mirror.download import Fetched, FileToFetch
from putio_mirror.errors import ChecksumMismatchError, ItemError
from putio_mirror.journal import Journal
from putio_mirror.localfs import (
    Places,
    allocated_bytes,
    crc32_of,
    ensure_room,
    move_item,
    part_path,
    place_atomically,
    resolve_inside,
    staged_items_dir,
)
from putio_mirror.plan import AdoptLocal, Download, PlaceItem

log = logging.getLogger(__name__)


class Fetcher(Protocol):
    """Fetches one file into its ``.part``; ``download.Downloader`` or ``SegmentedDownloader``."""

    def fetch(
        self,
        item: FileToFetch,
        *,
        may_continue: Callable[[], bool] = ...,
        on_progress: Callable[[int], None] = ...,
    ) -> Fetched: ...

    def discard(self, part: Path) -> None: ...

    def close(self) -> None: ...


class Progress(Protocol):
    """Where download progress goes: a terminal bar, log lines, or nowhere (thread-safe)."""

    def expect(self, total: int, done: int) -> None: ...

    def begin(self, key: str, label: str, total: int, done: int) -> None: ...

    def advance(self, key: str, amount: int) -> None: ...

    def end(self, key: str) -> None: ...


class NoProgress:
    def expect(self, total: int, done: int) -> None:
        pass

    def begin(self, key: str, label: str, total: int, done: int) -> None:
        pass

    def advance(self, key: str, amount: int) -> None:
        pass

    def end(self, key: str) -> None:
        pass


class Paused(Exception):
    """A download stopped at a chunk boundary because it may not go on."""


class DownloadSteps:
    """Performs Download, AdoptLocal and PlaceItem actions; safe to call from worker threads."""

    def __init__(
        self,
        new_fetcher: Callable[[], Fetcher],
        journal: Journal,
        places: Places,
        *,
        now: Callable[[], datetime],
        progress: Progress,
        free_space_margin: int,
    ) -> None:
        self._new_fetcher = new_fetcher
        self._journal = journal
        self._places = places
        self._now = now
        self._progress = progress
        self._margin = free_space_margin
        self._local = threading.local()
        self._fetchers: list[Fetcher] = []
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            fetchers, self._fetchers = self._fetchers, []
        for fetcher in fetchers:
            fetcher.close()

    def _fetcher(self) -> Fetcher:
        fetcher: Fetcher | None = getattr(self._local, "fetcher", None)
        if fetcher is None:
            fetcher = self._new_fetcher()
            self._local.fetcher = fetcher
            with self._lock:
                self._fetchers.append(fetcher)
        return fetcher

    def expect(self, total: int, done: int) -> None:
        """Tell the progress display how many bytes the whole run will fetch."""
        self._progress.expect(total, done)

    def target(self, action: Download | AdoptLocal) -> Path:
        """Where a file goes: its final place, or its place inside its item being built."""
        root = staged_items_dir(self._places.staging) if action.staged else self._places.downloads
        return resolve_inside(root, action.relative_path)

    def place(self, action: PlaceItem) -> str:
        source = resolve_inside(staged_items_dir(self._places.staging), action.name)
        move_item(source, resolve_inside(self._places.downloads, action.name))
        return "moved into the download folder"

    def adopt(self, action: AdoptLocal) -> str:
        final = self.target(action)
        if action.crc32 is not None and crc32_of(final) != action.crc32:
            raise ItemError(
                f"{action.relative_path}: the local file differs from put.io's (CRC32); left alone",
                "move or delete the local file if the put.io copy should be downloaded",
            )
        self._journal.mark_verified(
            action.file_id, action.relative_path, action.size, action.crc32, self._now()
        )
        log.warning("%s was already downloaded; recorded it and moved on", action.relative_path)
        return "verified in place"

    def download(
        self, action: Download, may_continue: Callable[[], bool], advance: Callable[[int], None]
    ) -> str:
        """Fetch, verify and place one file; raise Paused when it may not go on."""
        final = self.target(action)
        part = part_path(self._places.staging, action.file_id)
        fetcher = self._fetcher()
        try:
            fetched = self._fetch(fetcher, action, part, may_continue, advance)
        except ChecksumMismatchError as error:
            # A corrupt part is never placed; start once more from zero, then report.
            log.warning("%s: %s; downloading again from zero", action.relative_path, error)
            self._journal.record_failure(action.file_id, self._now(), str(error))
            fetcher.discard(part)
            self._journal.reset_download(action.file_id)
            fetched = self._fetch(fetcher, action, part, may_continue, advance)
        place_atomically(part, final)
        self._journal.mark_verified(
            action.file_id, action.relative_path, action.size, action.crc32, self._now()
        )
        return f"{fetched.bytes_done} bytes verified"

    def _fetch(
        self,
        fetcher: Fetcher,
        action: Download,
        part: Path,
        may_continue: Callable[[], bool],
        advance: Callable[[int], None],
    ) -> Fetched:
        already = allocated_bytes(part)
        ensure_room(self._places.staging, action.size - already, self._margin)
        item = FileToFetch(action.file_id, action.size, action.crc32, part)
        self._progress.begin(action.key, action.relative_path, action.size, already)

        def on_progress(amount: int) -> None:
            advance(amount)
            self._progress.advance(action.key, amount)

        try:
            fetched = fetcher.fetch(item, may_continue=may_continue, on_progress=on_progress)
        finally:
            self._progress.end(action.key)
        if not fetched.complete:
            self._record_progress(action, fetched.bytes_done)
            raise Paused(f"stopped at byte {fetched.bytes_done} of {action.size}")
        return fetched

    def _record_progress(self, action: Download, done: int) -> None:
        self._journal.record_progress(
            action.file_id, action.relative_path, action.size, action.crc32, done, self._now()
        )
