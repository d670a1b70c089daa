"""The executor: perform a Plan's actions in order, inside the download window, journaling each.

Before every action, and between download chunks, it asks whether it may go
on (the window is open, no stop was requested). When the window closes it
stops at a chunk boundary; the ``.part`` file and the journal keep the offset
for the next run. An action whose ``requires`` did not succeed in this run is
skipped. Per-item errors are recorded and the run goes on; a transient
outage that outlasted the retries ends the run; a fatal error is journaled and
raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from putio_mirror.blackhole import REJECTED_DIR, SUBMITTED_DIR, file_away
from putio_mirror.download import Fetched, FileToFetch
from putio_mirror.errors import (
    ChecksumMismatchError,
    ExitCode,
    FatalError,
    ItemError,
    TransientError,
)
from putio_mirror.journal import Journal
from putio_mirror.localfs import (
    crc32_of,
    ensure_room,
    local_size,
    move_item,
    part_path,
    place_atomically,
    resolve_inside,
    staged_items_dir,
)
from putio_mirror.plan import (
    Action,
    AdoptLocal,
    ArchiveDuplicate,
    CancelTransfer,
    CleanTransfers,
    DeleteRemote,
    Download,
    PlaceItem,
    Plan,
    RejectBlackholeFile,
    SubmitMagnet,
    SubmitTorrent,
)
from putio_mirror.state import Transfer
from putio_mirror.window import Schedule

log = logging.getLogger(__name__)

WINDOWED_KINDS = frozenset({"download", "adopt", "place"})
GROOMING_KINDS = frozenset({"cancel", "clean", "delete"})


class RemoteWriter(Protocol):
    """The mutating part of the put.io client."""

    def upload_torrent(
        self, filename: str, data: bytes, parent_id: int | None = None
    ) -> Transfer: ...

    def add_transfer(self, url: str, save_parent_id: int | None = None) -> Transfer: ...

    def cancel_transfers(self, ids: list[int]) -> None: ...

    def clean_transfers(self, ids: list[int] | None = None) -> tuple[int, ...]: ...

    def delete_files(self, ids: list[int]) -> None: ...


class Fetcher(Protocol):
    def fetch(
        self,
        item: FileToFetch,
        *,
        may_continue: Callable[[], bool] = ...,
        on_progress: Callable[[int], None] = ...,
    ) -> Fetched: ...


class Progress(Protocol):
    """Where download progress goes: a terminal bar, log lines, or nowhere."""

    def begin(self, key: str, label: str, total: int, done: int) -> None: ...

    def advance(self, key: str, amount: int) -> None: ...

    def end(self, key: str) -> None: ...


class NoProgress:
    def begin(self, key: str, label: str, total: int, done: int) -> None:
        pass

    def advance(self, key: str, amount: int) -> None:
        pass

    def end(self, key: str) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Places:
    blackhole: Path
    downloads: Path
    staging: Path


@dataclass(frozen=True, slots=True)
class Rules:
    """How the executor behaves around the window and the disk."""

    schedule: Schedule = field(default_factory=Schedule)
    groom_outside_window: bool = True
    save_parent_id: int | None = None
    free_space_margin: int = 100 * 1024 * 1024


@dataclass
class RunReport:
    """What happened to the plan: the executor's answer, and the source of the exit code."""

    done: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    deferred: int = 0
    window_closed: bool = False
    interrupted: bool = False
    aborted: str | None = None
    bytes_downloaded: int = 0

    @property
    def exit_code(self) -> ExitCode:
        if self.failed or self.aborted:
            return ExitCode.ITEMS_FAILED
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if self.window_closed:
            return ExitCode.WINDOW_CLOSED
        return ExitCode.OK

    def summary(self) -> str:
        parts = [f"{len(self.done)} done", f"{len(self.failed)} failed"]
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        if self.deferred:
            parts.append(f"{self.deferred} deferred to the next window")
        if self.window_closed:
            parts.append("download window closed")
        if self.interrupted:
            parts.append("stopped on request")
        if self.aborted:
            parts.append(f"aborted: {self.aborted}")
        return ", ".join(parts)


class _Paused(Exception):
    """A download stopped at a chunk boundary because it may not go on."""


class Executor:
    """Performs plans; one instance per run."""

    def __init__(
        self,
        remote: RemoteWriter,
        fetcher: Fetcher,
        journal: Journal,
        places: Places,
        rules: Rules,
        *,
        clock: Callable[[], datetime],
        stop_requested: Callable[[], bool] = lambda: False,
        progress: Progress | None = None,
    ) -> None:
        self._remote = remote
        self._fetcher = fetcher
        self._journal = journal
        self._places = places
        self._rules = rules
        self._clock = clock
        self._stop_requested = stop_requested
        self._progress = progress or NoProgress()
        self._report = RunReport()

    @property
    def report(self) -> RunReport:
        """The report of the current or last run (complete even after an exception)."""
        return self._report

    def run(self, plan: Plan, run_id: int) -> RunReport:
        """Given a plan and the journal's run id, perform it and return what happened."""
        self._report = RunReport()
        succeeded: set[str] = set()
        for action in plan:
            if self._stop_requested():
                self._report.interrupted = True
                break
            if not self._may_start(action):
                continue
            missing = [key for key in action.requires if key not in succeeded]
            if missing:
                self._skip(run_id, action, f"waits for {', '.join(missing)}")
                continue
            if self._perform(run_id, action):
                succeeded.add(action.key)
            if self._report.aborted:
                break
        return self._report

    def _may_start(self, action: Action) -> bool:
        outside = not self._rules.schedule.is_open(self._clock())
        windowed = action.kind in WINDOWED_KINDS or (
            action.kind in GROOMING_KINDS and not self._rules.groom_outside_window
        )
        paused_earlier = self._report.window_closed and action.kind in WINDOWED_KINDS
        if (outside and windowed) or paused_earlier:
            self._report.deferred += 1
            self._report.window_closed = True
            return False
        return True

    def _may_continue(self) -> bool:
        if self._stop_requested():
            return False
        return self._rules.schedule.is_open(self._clock())

    def _now(self) -> datetime:
        return self._clock().astimezone(UTC)

    def _skip(self, run_id: int, action: Action, reason: str) -> None:
        action_id = self._journal.action_started(
            run_id, action.kind, action.key, action.target, self._now()
        )
        self._journal.action_finished(action_id, "skipped", self._now(), detail=reason)
        self._report.skipped.append((action.key, reason))

    def _perform(self, run_id: int, action: Action) -> bool:
        """Perform one action with its journal entries; return True if it succeeded."""
        action_id = self._journal.action_started(
            run_id, action.kind, action.key, action.target, self._now()
        )
        try:
            detail = self._dispatch(action)
        except _Paused as paused:
            self._journal.action_finished(action_id, "paused", self._now(), detail=str(paused))
            if self._stop_requested():
                self._report.interrupted = True
            else:
                self._report.window_closed = True
            return False
        except (ItemError, TransientError, FatalError, OSError) as error:
            self._fail(action_id, action, error)
            if isinstance(error, FatalError):
                raise
            return False
        except BaseException as error:
            self._journal.action_finished(action_id, "failed", self._now(), error=repr(error))
            raise
        self._journal.action_finished(action_id, "done", self._now(), detail=detail)
        self._report.done.append(action.key)
        return True

    def _fail(self, action_id: int, action: Action, error: Exception) -> None:
        message = getattr(error, "message", None) or str(error)
        log.warning("%s failed: %s", action.key, message)
        self._journal.action_finished(action_id, "failed", self._now(), error=message)
        self._report.failed.append((action.key, message))
        if isinstance(error, TransientError):
            self._report.aborted = message

    def _dispatch(self, action: Action) -> str | None:
        if isinstance(action, SubmitTorrent | SubmitMagnet):
            return self._submit(action)
        if isinstance(action, RejectBlackholeFile):
            file_away(Path(action.path), self._places.blackhole, REJECTED_DIR, note=action.why)
            return f"moved to {REJECTED_DIR}/"
        if isinstance(action, ArchiveDuplicate):
            file_away(Path(action.path), self._places.blackhole, SUBMITTED_DIR, note=action.why)
            return f"moved to {SUBMITTED_DIR}/"
        if isinstance(action, CancelTransfer):
            self._remote.cancel_transfers([action.transfer_id])
            return None
        if isinstance(action, CleanTransfers):
            cleaned = self._remote.clean_transfers(list(action.transfer_ids))
            return f"put.io cleaned {len(cleaned)}"
        if isinstance(action, DeleteRemote):
            self._remote.delete_files([action.file_id])
            return None
        if isinstance(action, AdoptLocal):
            return self._adopt(action)
        if isinstance(action, PlaceItem):
            return self._place(action)
        return self._download(action)

    def _target(self, action: Download | AdoptLocal) -> Path:
        """Where a file goes: its final place, or its place inside its item being built."""
        root = staged_items_dir(self._places.staging) if action.staged else self._places.downloads
        return resolve_inside(root, action.relative_path)

    def _place(self, action: PlaceItem) -> str:
        source = resolve_inside(staged_items_dir(self._places.staging), action.name)
        move_item(source, resolve_inside(self._places.downloads, action.name))
        return "moved into the download folder"

    def _submit(self, action: SubmitTorrent | SubmitMagnet) -> str:
        parent = self._rules.save_parent_id
        if isinstance(action, SubmitMagnet):
            transfer = self._remote.add_transfer(action.uri, save_parent_id=parent)
        else:
            data = Path(action.path).read_bytes()
            transfer = self._remote.upload_torrent(action.name, data, parent_id=parent)
        # Journal before filing away: a crash in between leaves a file that the
        # next run recognises as submitted and archives, never re-submits.
        self._journal.record_submission(action.info_hash, transfer.id, action.name, self._now())
        file_away(Path(action.path), self._places.blackhole, SUBMITTED_DIR)
        return f"transfer {transfer.id}"

    def _adopt(self, action: AdoptLocal) -> str:
        final = self._target(action)
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

    def _download(self, action: Download) -> str:
        final = self._target(action)
        part = part_path(self._places.staging, action.file_id)
        try:
            fetched = self._fetch(action, part)
        except ChecksumMismatchError as error:
            # A corrupt part is never placed; start once more from zero, then report.
            log.warning("%s: %s; downloading again from zero", action.relative_path, error)
            self._journal.record_failure(action.file_id)
            part.unlink(missing_ok=True)
            self._journal.reset_download(action.file_id)
            fetched = self._fetch(action, part)
        place_atomically(part, final)
        self._journal.mark_verified(
            action.file_id, action.relative_path, action.size, action.crc32, self._now()
        )
        return f"{fetched.bytes_done} bytes verified"

    def _fetch(self, action: Download, part: Path) -> Fetched:
        already = local_size(part) or 0
        ensure_room(self._places.staging, action.size - already, self._rules.free_space_margin)
        self._record_progress(action, already)
        item = FileToFetch(action.file_id, action.size, action.crc32, part)
        self._progress.begin(action.key, action.relative_path, action.size, already)
        try:
            fetched = self._fetcher.fetch(
                item, may_continue=self._may_continue, on_progress=self._advance(action.key)
            )
        finally:
            self._progress.end(action.key)
        if not fetched.complete:
            self._record_progress(action, fetched.bytes_done)
            raise _Paused(f"stopped at byte {fetched.bytes_done} of {action.size}")
        return fetched

    def _advance(self, key: str) -> Callable[[int], None]:
        def advance(amount: int) -> None:
            self._report.bytes_downloaded += amount
            self._progress.advance(key, amount)

        return advance

    def _record_progress(self, action: Download, done: int) -> None:
        self._journal.record_progress(
            action.file_id, action.relative_path, action.size, action.crc32, done, self._now()
        )
