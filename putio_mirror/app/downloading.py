"""The executor's local steps: fetch into staging, verify, place; adopt; place items; tidy.

Separated from the executor's loop because these steps run on several worker
threads at once (``parallel_files``): each thread gets its own fetcher
(HTTP sessions are not shared between threads), and everything they report
goes through thread-safe callbacks.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from putio_mirror.core.errors import (
    ChecksumMismatchError,
    InTheWay,
    ItemError,
    LinkLeadsOutError,
    NodesDownError,
    NodesSilentError,
    NoSpaceError,
    TransientError,
    read_only_disk,
)
from putio_mirror.core.mirroring import in_the_way
from putio_mirror.core.plan import AdoptLocal, Download, PlaceItem, TidyStaging
from putio_mirror.core.state import FileIdentity, StagedEntry
from putio_mirror.core.units import human_bytes
from putio_mirror.fetch.values import Fetched, FileToFetch
from putio_mirror.journal.store import Journal
from putio_mirror.local.durable import FoldersToSync, make_durable
from putio_mirror.local.files import allocated_bytes, crc32_of, identity_at, local_size
from putio_mirror.local.keeping import VerifiedMoves
from putio_mirror.local.paths import Inside, Places, named_inside
from putio_mirror.local.space import RoomKeeper
from putio_mirror.local.staging import (
    VERIFIED_DIR,
    CannotReplace,
    Placed,
    PlacedBefore,
    ToPlace,
    building_path,
    keep_verified,
    part_path,
    place_file,
    place_item,
    remove_entry,
    replace_placed,
    verified_path,
)
from putio_mirror.notify.values import ItemPlaced

log = logging.getLogger(__name__)


class AnyFetcher(Protocol):
    """Fetches one file into its ``.part``: ``fetch.engine.Fetcher``, or a test's stand-in."""

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


class Withdrawn(Paused):
    """A download not placed: an RPC client removed its item since the plan, on another
    host sharing the journal (this host's own removals stop its sync before)."""


class RemovedFiles:
    """Which put.io files belong to items RPC clients removed, looked at in the journal at
    most once a second: asked before each placement, and small files are placed by the
    hundred a second. The set itself is read again only when a cheap mark of the removed
    desires changed: a long Sonarr history (5,000 removed items of 20 files) costs 90 ms a
    read here. Safe to call from worker threads."""

    def __init__(self, journal: Journal, clock: Callable[[], float] = time.monotonic) -> None:
        self._journal, self._clock = journal, clock
        self._lock = threading.Lock()
        self._read: tuple[float, tuple[int, int, int], frozenset[int]] | None = None

    def among(self, file_ids: list[int]) -> frozenset[int]:
        """Given file ids, return those of removed items (as of a second ago at most)."""
        now = self._clock()
        with self._lock:
            read = self._read
        if read is None or now - read[0] >= 1.0:
            # the mark before the set: a removal between the two is read again next time
            mark = self._journal.desires.removed_mark()
            unchanged = read is not None and read[1] == mark
            files = read[2] if read and unchanged else self._journal.desires.removed_files()
            read = (now, mark, files)
            with self._lock:
                self._read = read
        return read[2].intersection(file_ids)


@dataclass(frozen=True, slots=True)
class Verified:
    """A download that succeeded: what to report, and the journal write that says so,
    for the executor to fold into the transaction that ends the action (its bytes are
    durable already: a crash before that commit finds them verified, or placed, next run).
    """

    detail: str
    record: Callable[[], None]
    #: what must be done before ``record`` (once for many files: ``Journal.together``)
    first: Callable[[], None] | None = None


class DownloadSteps:
    """Performs Download, AdoptLocal, PlaceItem and TidyStaging actions; safe to call from
    worker threads."""

    def __init__(
        self,
        new_fetcher: Callable[[], AnyFetcher],
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
        # The configured download folder may be a link (a NAS share linked in): placement
        # writes under the folder it leads to, where every folder it makes is a real one;
        # what is placed is told under the path the config names (``shown_path``).
        self._real_downloads = Inside(places.downloads.resolve())
        self._now = now
        self._progress = progress
        self._room = RoomKeeper(free_space_margin)
        self._moves = VerifiedMoves(places.staging)
        # one object for every file: Journal.together runs it once per group
        self._sync_verified = self._moves.sync
        # files placed on their own: their folders synced once per group too
        self._placed_folders = FoldersToSync()
        self._sync_placed = self._placed_folders.sync
        self._local = threading.local()
        self._fetchers: list[AnyFetcher] = []
        self._suspects: list[tuple[Download, NodesSilentError]] = []  # see ``settle``
        self._lock = threading.Lock()
        self.removed = RemovedFiles(journal)

    def settle(self) -> set[str]:
        """Count as failing each file that gave up amid silence if bytes came after it
        (put.io's nodes work: its own node failed it), and return their keys; forget the
        others (an outage, or nothing yet tells)."""
        with self._lock:
            suspects, self._suspects = self._suspects, []
        proven: set[str] = set()
        for action, suspected in suspects:
            if suspected.proven():
                self._journal.record_failure(action.file_id, self._now(), suspected.message)
                proven.add(action.key)
        return proven

    def close(self) -> None:
        with self._lock:
            fetchers, self._fetchers = self._fetchers, []
        for fetcher in fetchers:
            fetcher.close()
        self._moves.close()

    def _fetcher(self) -> AnyFetcher:
        fetcher: AnyFetcher | None = getattr(self._local, "fetcher", None)
        if fetcher is None:
            fetcher = self._new_fetcher()
            self._local.fetcher = fetcher
            with self._lock:
                self._fetchers.append(fetcher)
        return fetcher

    def expect(self, total: int, done: int) -> None:
        """Tell the progress display how many bytes the whole run will fetch."""
        self._progress.expect(total, done)

    def final_path(self, relative_path: str) -> Path:
        """Where a file goes in the download folder (never outside it), to write it."""
        return self._real_downloads.one(relative_path)

    def shown_path(self, relative_path: str) -> Path:
        """Where a file goes, under the download folder as the config names it: what
        hooks, notifications and Sonarr's path mappings know (checked on the disk as it
        was placed, through ``final_path``: not looked at again)."""
        return named_inside(self._places.downloads, relative_path)

    def placed(self, action: object) -> ItemPlaced | None:
        """Given an action that succeeded, return the item it put in the download folder
        whole: a placed item, or a file placed on its own (None: nothing was placed)."""
        if isinstance(action, PlaceItem):
            path = self.shown_path(action.name)
            return ItemPlaced(action.name, str(path), action.item_id)
        if isinstance(action, Download) and not action.staged:
            path = self.shown_path(action.relative_path)
            return ItemPlaced(action.relative_path, str(path), action.file_id)
        return None

    def place(self, action: PlaceItem) -> str:
        """Place an item's verified files; raise ItemError naming the ones that could not
        be placed (the others are placed and journaled all the same)."""
        staging = self._places.staging
        # those an RPC client removed since the plan (on another host) stay in staging,
        # tidied by the next plan
        removed = self.removed.among([file_id for file_id, _ in action.files])
        wanted = [(file_id, path) for file_id, path in action.files if file_id not in removed]
        finals = self._real_downloads.all([path for _, path in wanted])
        files = [
            ToPlace(file_id, verified_path(staging, file_id), final)
            for (file_id, _), final in zip(wanted, finals, strict=True)
        ]
        target = self.final_path(action.name) if action.folder else None
        building = building_path(staging, action.item_id)
        outcome = place_item(files, building, target, self._places.ownership)
        paths = dict(wanted)
        placed = {fid: paths[fid] for fid in outcome.placed}
        self._journal.mark_placed(placed, self._now(), _identities(files, placed))
        if outcome.problems:
            raise _not_placed(action, files, outcome)
        return f"{len(outcome.placed)} file(s) placed"

    def tidy(self, action: TidyStaging) -> str:
        entry = StagedEntry(action.entry_kind, action.remote_id, action.size, self._now())
        remove_entry(self._places.staging, entry)
        return "removed"

    def adopt(self, action: AdoptLocal) -> str:
        final = self.final_path(action.relative_path)
        if action.crc32 is not None:
            self._not_a_stranger(action, final, action.crc32)
        # journaled placed, it may let put.io's copy be deleted: it must last a power cut
        make_durable(final)
        self._verified(action, placed=True, identity=identity_at(final))
        log.warning("%s was already downloaded; recorded it and moved on", action.relative_path)
        return "verified in place"

    def _not_a_stranger(self, action: AdoptLocal, final: Path, crc32: str) -> None:
        """Raise InTheWay if the file found at an adoption's path holds other bytes than
        put.io's, of its size: a file not ours in the way, as one of another size is (the
        plan's note), told as one: needs you, and to Sonarr. Once its CRC32 was found to
        differ, the same file (inode, mtime: as for a placed file) is not read again."""
        found = identity_at(final)
        if found is not None and found == self._journal.judged_stranger(action.file_id):
            why = "its CRC32 differed when a run read it, and it has not changed since"
        elif crc32_of(final) == crc32:
            return
        else:
            why = "its CRC32 differs"
            if found is not None and identity_at(final) == found:  # not changed meanwhile
                self._journal.judge_stranger(action.file_id, found)
        note = in_the_way(action.relative_path)
        raise InTheWay(
            f"{note.message} (of put.io's size, other bytes: {why})",
            note.hint,
            (action.relative_path,),
        )

    def download(
        self, action: Download, may_continue: Callable[[], bool], advance: Callable[[int], None]
    ) -> Verified:
        """Fetch and verify one file, then place it (unless it waits for its item); return
        what to journal; raise Paused when it may not go on, ItemError (journaled as a
        failure of this file) when this file cannot be had now."""
        staging = self._places.staging
        if action.replaces is not None and not action.staged and self._in_place(action):
            identity = identity_at(self.final_path(action.relative_path))
            return Verified(
                "put.io's new bytes were in place already",
                lambda: self._verified(action, placed=True, identity=identity),
            )
        # (a Path only where it is looked at: most small files never are)
        kept = verified_path(staging, action.file_id) if _may_be_kept(action) else None
        if (
            kept is not None
            and local_size(kept) == action.size
            and _crc_matches(kept, action.crc32)
        ):
            # verified in an earlier run that ended before the journal heard of it
            source, done = kept, action.size
        else:
            source = part_path(staging, action.file_id)
            done = self._fetch_verified(action, source, may_continue, advance)
        if action.staged:
            # The move into verified/ is made durable by ``first``, once for the files
            # whose journal work commits together, and before that commit.
            if source is kept:
                keep_verified(source, staging, action.file_id, durable=False)  # there already
            else:
                self._moves.keep(source, action.file_id)
            return Verified(
                f"{human_bytes(done)} verified; waiting in staging for the rest of its item",
                lambda: self._verified(action),
                self._sync_verified,
            )
        if self.removed.among([action.file_id]):
            # its bytes stay in staging, for the next plan to tidy
            raise Withdrawn(f"not placed: its item was removed by its RPC client (at byte {done})")
        try:
            final = self.final_path(action.relative_path)
        except LinkLeadsOutError:
            self._keep(action, source)  # verified: it waits for the link to be replaced
            raise
        try:
            problem = self._place_one(action, ToPlace(action.file_id, source, final))
        except CannotReplace:
            # Kept, not journaled verified: the next run plans this replacement again and
            # finds its bytes here (journaled verified, the file would be placed as any
            # and the file we placed refused for ever as a stranger's).
            keep_verified(source, staging, action.file_id)
            raise
        if problem is not None:
            self._keep(action, source)
            hint = (
                f"the verified copy waits in {staging / VERIFIED_DIR}; "
                "move the file in the way elsewhere and the next run places it"
            )
            if taken := _taken([(action.relative_path, final)]):
                raise InTheWay(problem, hint, taken)
            raise ItemError(problem, hint)
        identity = identity_at(final)  # which file it is, for the mount: not its bytes read
        # Its move in is made durable by ``first``, once for the files whose journal work
        # commits together, and before that commit (as a move into verified/ is).
        return Verified(
            f"{human_bytes(done)} verified",
            lambda: self._verified(action, placed=True, identity=identity),
            self._sync_placed,
        )

    def _in_place(self, action: Download) -> bool:
        """Whether a replacement's final path holds put.io's new bytes already (made
        durable, then): a run killed after moving it in, before journaling it, left it so.
        One read of a file the size of put.io's; only for a replacement, which is rare."""
        final = self.final_path(action.relative_path)
        if action.crc32 is None or local_size(final) != action.size:
            return False
        try:
            if crc32_of(final) != action.crc32:
                return False
        except ItemError:
            return False  # unreadable: not known to be in place (replacing it tells why)
        # journaled placed, it may let put.io's copy be deleted: it must last a power cut
        make_durable(final)
        return True

    def _place_one(self, action: Download, item: ToPlace) -> str | None:
        """Place a downloaded file; in place of the file put.io replaced by it, if the
        plan found one placed there (and it is still ours to the byte)."""
        before = action.replaces
        if before is None or before.crc32 is None:
            return place_file(item, self._places.ownership, self._placed_folders)
        return replace_placed(item, PlacedBefore(before.size, before.crc32), self._places.ownership)

    def _keep(self, action: Download, source: Path) -> None:
        """Keep a verified file in staging for its placement; journal it verified."""
        keep_verified(source, self._places.staging, action.file_id)
        self._verified(action)

    def _fetch_verified(
        self,
        action: Download,
        part: Path,
        may_continue: Callable[[], bool],
        advance: Callable[[int], None],
    ) -> int:
        """Fill the file's ``.part`` and verify it; return its bytes. A corrupt part is
        fetched once more from zero; a failure is journaled for this file."""
        fetcher = self._fetcher()
        try:
            try:
                fresh = action.resume_from == 0
                return self._fetch(fetcher, action, part, fresh, may_continue, advance).bytes_done
            except ChecksumMismatchError as error:
                log.warning("%s: %s; downloading again from zero", action.relative_path, error)
                self._journal.record_failure(action.file_id, self._now(), error.message)
                fetcher.discard(part)
                self._journal.reset_download(action.file_id)
                try:
                    fetched = self._fetch(fetcher, action, part, True, may_continue, advance)
                except ChecksumMismatchError as again:
                    raise _mismatched_twice(error, again) from again
                return fetched.bytes_done
        except ItemError as error:
            # the path too, so ``history`` can name the file that keeps failing
            self._record_progress(action, allocated_bytes(part))
            if isinstance(error, NodesSilentError):
                # counted as failing only once the nodes are seen to work (``settle``)
                with self._lock:
                    self._suspects.append((action, error))
            elif not isinstance(error, NoSpaceError) and read_only_disk(error) is None:
                # (a full or read-only disk is the disk's trouble, not this file's: no
                # failure counted, so no pause before the next try once it is mended)
                self._journal.record_failure(action.file_id, self._now(), error.message)
            raise

    def _verified(
        self,
        action: Download | AdoptLocal,
        *,
        placed: bool = False,
        identity: FileIdentity | None = None,
    ) -> None:
        self._journal.mark_verified(
            action.file_id,
            action.relative_path,
            action.size,
            action.crc32,
            self._now(),
            placed=placed,
            identity=identity,
        )

    def _fetch(
        self,
        fetcher: AnyFetcher,
        action: Download,
        part: Path,
        fresh: bool,
        may_continue: Callable[[], bool],
        advance: Callable[[int], None],
    ) -> Fetched:
        """Given a part and whether none of its bytes is known to be there (``fresh``: no
        ``stat`` then, many small files pay for each system call), fetch it (``Fetched``);
        raise Paused if it may not go on."""
        # A part the plan did not count is measured by the fetcher all the same: only
        # this file's progress line and its room (reserved whole then) do without it.
        already = 0 if fresh else allocated_bytes(part)
        item = FileToFetch(action.file_id, action.size, action.crc32, part)

        def on_progress(amount: int) -> None:
            advance(amount)
            self._progress.advance(action.key, amount)

        try:
            with self._room.reserved(self._places.staging, action.size - already):
                # begun once it has room: a file refused for room is no unfinished download
                self._progress.begin(action.key, action.relative_path, action.size, already)
                fetched = fetcher.fetch(item, may_continue=may_continue, on_progress=on_progress)
        except TransientError as error:
            if not (_api_failed(error) or isinstance(error, NodesDownError)):
                # put.io hands out URLs but this file's node does not answer: it fails alone
                raise ItemError(
                    error.message,
                    "put.io's download node keeps failing for this file; it is tried again "
                    "after a pause that doubles each time (`putio-mirror history` lists it)",
                ) from error
            raise
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


def _identities(files: list[ToPlace], placed: Mapping[int, str]) -> dict[int, FileIdentity]:
    """Given an item's files and those placed, return which file each placed one is now
    (one ``lstat`` each; one that cannot be looked at is left out: not known)."""
    found = {item.file_id: identity_at(item.final) for item in files if item.file_id in placed}
    return {file_id: identity for file_id, identity in found.items() if identity is not None}


def _not_placed(action: PlaceItem, files: list[ToPlace], outcome: Placed) -> ItemError:
    """Given an item placed in part, return the error naming the files not placed: an
    InTheWay if some stand where a file is already (only a person can move it)."""
    message = f"{action.name}: {len(outcome.problems)} file(s) not placed: " + "; ".join(
        outcome.problems
    )
    hint = (
        "move the files in the way elsewhere; the verified copies stay in staging "
        "and the next run places them"
    )
    placed = set(outcome.placed)
    left = zip(action.files, files, strict=True)
    taken = _taken([(path, item.final) for (_, path), item in left if item.file_id not in placed])
    return InTheWay(message, hint, taken) if taken else ItemError(message, hint)


def _taken(files: list[tuple[str, Path]]) -> tuple[str, ...]:
    """Given files not placed (relative path, final path), return the relative paths of
    those something stands at: not ours (placing takes a file of ours found there), so in
    the way; not one whose folder could not be made, say, which moving nothing cures."""
    return tuple(relative for relative, final in files if os.path.lexists(final))


def _api_failed(error: TransientError) -> bool:
    """Whether a download's outage ended on put.io's API (every retry asks it for a fresh
    node URL first, so an API or network outage is what the last try met), not on a node."""
    cause = error.__cause__
    while cause is not None:
        if isinstance(cause, TransientError):
            return True
        cause = cause.__cause__
    return False


def _may_be_kept(action: Download) -> bool:
    """Whether a file's verified bytes may wait in staging: the plan found them (they are
    its ``resume_from``), or the file is empty. Otherwise nothing is looked for (a ``stat``
    less a file): only this action writes ``verified/<its id>`` during the run, and a copy
    there the plan did not see is merely fetched again and replaced by one verified."""
    return action.resume_from > 0 or action.size == 0


def _crc_matches(path: Path, expected: str | None) -> bool:
    return expected is None or crc32_of(path) == expected


def _mismatched_twice(
    first: ChecksumMismatchError, again: ChecksumMismatchError
) -> ChecksumMismatchError:
    """Given the mismatches of a file fetched twice from zero, return the error to tell:
    with the way out the two point to (no retry here cures either)."""
    if again.got is None or first.got is None:
        return again
    if again.got == first.got:
        hint = (
            "put.io sent the same bytes twice and they are not what its CRC32 says: its copy "
            "(or its checksum) looks damaged; fetch the item again on put.io (add the torrent "
            "again). It is tried again after a pause"
        )
    else:
        hint = (
            "put.io sent different bytes each time: something between put.io and this disk "
            "damages data (a proxy, failing memory or disk). It is tried again after a pause"
        )
    return ChecksumMismatchError(again.message, hint, again.got)
