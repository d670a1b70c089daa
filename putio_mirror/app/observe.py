"""Observe the world, read-only: build a Snapshot from put.io, the folders and the journal.

Nothing here changes anything; a dry run is exactly observe + reconcile + render.
Remote listing costs a handful of requests whatever the account's size
(the flat ``parent_id=-1`` listing, 1,000 items a page).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from putio_mirror.core.errors import ConfigError, MirrorError
from putio_mirror.core.mirroring import kept_where_placed
from putio_mirror.core.naming import MIN_PATH_BYTES, PATH_MAX_BYTES, collision_key, local_paths
from putio_mirror.core.state import (
    JournalFacts,
    LocalFacts,
    RemoteFile,
    Snapshot,
    StagedEntry,
    Transfer,
)
from putio_mirror.fetch.segments import bytes_done
from putio_mirror.local.blackhole import Scan, scan
from putio_mirror.local.files import local_size
from putio_mirror.local.mounts import why_not_mounted
from putio_mirror.local.paths import Places
from putio_mirror.local.staging import NameRoom, list_staging, name_room, part_path
from putio_mirror.net.cutting import Cutter, cut_by

#: how long a run's end waits for a listing it cut short to end: a read or a connect cut
#: ends at once, a pause before the next try at its next nap (a quarter of a second); a
#: name still being looked up is left to end on its own, quietly
CUT_GRACE_SECONDS = 1.0


class RemoteReader(Protocol):
    """The read-only part of the put.io client that observing needs."""

    def list_transfers(self) -> tuple[Transfer, ...]: ...

    def list_all_files(self) -> tuple[RemoteFile, ...]: ...


class Observing:
    """An observation under way: the blackhole scanned, then put.io's transfers and files
    asked for at once on threads of their own, as soon as the run knows its token (and
    holds its lock), and awaited only when the snapshot needs them: their round trips
    (~50-100 ms each from a home) pass while SQLAlchemy is imported, the journal opened
    and its facts read, instead of one after the other before the first download.

    The blackhole (a few local files) is scanned before put.io is asked, so that put.io's
    first request comes after the scan, as ever. A context manager: leaving it (a failure,
    Ctrl-C, the other listing failed first) waits for no answer still to come: a listing
    still under way is cut short (its connection shut, a pause before its next try ended;
    ``net/cutting.Cutter``) and awaited only while it ends (``CUT_GRACE_SECONDS`` at
    most), so that it neither logs nor tries again once the run is over (``serve`` and
    ``watch`` run the next one meanwhile). A refused token is met by both requests, which
    are not retried.
    """

    def __init__(
        self,
        remote: RemoteReader,
        places: Places,
        *,
        now_epoch: float,
        want_blackhole: bool = True,
        want_files: bool = True,
    ) -> None:
        """``want_files=False`` skips listing the remote tree (a blackhole-only run needs
        just the transfers, to recognise torrents already on put.io)."""
        self._scan = Scan()
        self._unscanned: MirrorError | None = None
        try:
            if want_blackhole:
                self._scan = _scan(places, now_epoch)
        except MirrorError as error:  # raised when observed: the run is then recorded
            self._unscanned = error
        self._cutter = Cutter()
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="observe")
        cutters = (self._cutter,)
        self._transfers = self._pool.submit(cut_by, cutters, remote.list_transfers)
        self._files = (
            self._pool.submit(cut_by, cutters, remote.list_all_files) if want_files else None
        )

    def __enter__(self) -> Observing:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._cutter.cut()  # nothing, once both were read
        try:
            wait(self._listings(), timeout=CUT_GRACE_SECONDS)
        finally:  # (a second Ctrl-C meanwhile)
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _listings(self) -> list[Future[Any]]:
        """put.io's listings under way (or done): the transfers, and the files if wanted."""
        futures: list[Future[Any]] = [self._transfers]
        if self._files is not None:
            futures.append(self._files)
        return futures

    def scanned(self) -> Scan:
        """Return what the blackhole's scan found; raise what it met (a folder that cannot
        be listed)."""
        if self._unscanned is not None:
            raise self._unscanned
        return self._scan

    def listed(self) -> tuple[tuple[Transfer, ...], tuple[RemoteFile, ...]]:
        """Return put.io's transfers and files (none if not wanted); raise the first failure
        as soon as it is known (the transfers' if both failed), waiting for no other."""
        futures = self._listings()
        wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            if future.done() and (error := future.exception()) is not None:
                raise error
        return self._transfers.result(), self._files.result() if self._files else ()


def observe(
    observing: Observing,
    read_facts: Callable[[], JournalFacts],
    places: Places,
    *,
    remote_root_id: int,
) -> Snapshot:
    """Given an observation under way and the other collaborators, return a frozen
    Snapshot of the world as it is now.

    The journal's facts are read on this thread while put.io answers: a 100,000-file
    account is 100 pages that put.io takes its time to answer, and a journal of as many
    rows takes a while to read.
    """
    found = observing.scanned()
    facts = read_facts()
    transfers, files = observing.listed()
    # names fit beneath the folders' paths as they are now (a NAS share's may be long)
    room = name_room(places.downloads, places.staging)
    if files and room.room < MIN_PATH_BYTES:
        raise _too_long(room)
    named = local_paths(files, remote_root_id, room=room.room)
    # an item put.io renamed after placing files of it stays where it is
    names = kept_where_placed(named, facts.downloads)
    local = _local_facts(files, names, facts, places)
    return Snapshot(
        found.items,
        transfers,
        files,
        facts,
        local,
        names,
        found.later,
        found.too_deep,
        found.skipped,
    )


def _too_long(room: NameRoom) -> ConfigError:
    """The error of a folder whose path leaves too little of PATH_MAX for put.io's names:
    nothing is fetched, placed or deleted; the next run with a shorter one mirrors all."""
    length = len(os.fsencode(room.folder))
    return ConfigError(
        f"the path of {room.folder} is too long ({length:,} bytes): it leaves "
        f"{max(room.room, 0):,} of the {PATH_MAX_BYTES:,} bytes the kernel takes in a path "
        f"for put.io's names, and at least {MIN_PATH_BYTES:,} are needed",
        "set paths.downloads (and paths.staging) to a folder of a shorter path (a short "
        "link to this one is not enough: files are written under the folder it leads to); "
        "nothing was downloaded, placed or deleted",
    )


@contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Pause the cyclic garbage collector inside: while a run starts (SQLAlchemy imported,
    the journal opened) and its snapshot and plan are built; then keep them (and every
    object made so far) out of its walks until ``thawed_after`` ends.

    They are hundreds of thousands of small objects without cycles (a 100,000-file
    account's files, journal records, paths and actions), which the collector would walk
    again and again for nothing: ~10 collections, 0.2-0.35 s of such a dry run. Left in
    its youngest generation, they would all be walked once the collector resumes, just as
    the first downloads start (a 15-35 ms pause of every thread with 300 files; another
    while SQLAlchemy is imported). Reference counting frees them as ever.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        if enabled:
            gc.enable()


@contextmanager
def thawed_after(*, collect: bool) -> Iterator[None]:
    """Hand what ``no_cycle_collection`` kept out of the collector's walks back to it (its
    oldest generation) on leaving; ``collect``: then collect that generation, for a
    process that runs again (``serve``, ``watch``).

    CPython walks its oldest generation only once what survived younger collections
    since its last walk is a quarter of what it holds, and what is thawed does not count:
    the cycles of every run stayed in a ``serve`` for as long as it ran (~1 MB for every
    item Sonarr sent through). A run that ends the process leaves them to the exit."""
    try:
        yield
    finally:
        gc.unfreeze()
        if collect:
            gc.collect()


def _scan(places: Places, now_epoch: float) -> Scan:
    """The blackhole's files; never those of the download folder or staging inside it."""
    if not places.blackhole.is_dir():
        return Scan()
    return scan(places.blackhole, now=now_epoch, keep_out=(places.downloads, places.staging))


def _local_facts(
    files: Iterable[RemoteFile], paths: Mapping[int, str], facts: JournalFacts, places: Places
) -> LocalFacts:
    """Stat only the paths the plan could write: files the journal has not placed, under
    a top-level entry that the download folder has (a new account's 100,000 files would
    be as many failed stats otherwise). Entries are compared by collision key, as a
    case-insensitive or normalising filesystem would find them."""
    placed = {fid for fid, record in facts.downloads.items() if record.is_placed}
    unplaced = [item for item in files if not item.is_folder and item.id not in placed]
    items = _names(places.downloads)
    tops = {collision_key(name) for name in items}
    present: dict[str, int] = {}
    for item in unplaced if tops else ():  # an empty folder has none of them (a new account)
        relative = paths.get(item.id)
        if relative is None or collision_key(relative.partition("/")[0]) not in tops:
            continue
        size = local_size(places.downloads / relative)
        if size is not None:
            present[relative] = size
    staging = list_staging(places.staging)
    return LocalFacts(
        present=MappingProxyType(present),
        partial=_partials(places.staging, staging),
        verified=MappingProxyType(
            {entry.remote_id: entry.size for entry in staging if entry.kind == "verified"}
        ),
        present_items=items,
        staging=staging,
        not_mounted=_not_mounted(places, items, facts),
    )


def _not_mounted(places: Places, items: frozenset[str], facts: JournalFacts) -> str | None:
    """Given the download folder's entries, say why it looks like a disk not mounted
    (``local/mounts.why_not_mounted``); None if it does not (a first run makes it)."""

    def kept_before() -> bool:  # (a shared journal's files may be another host's)
        return not facts.shared and any(r.is_verified for r in facts.downloads.values())

    return why_not_mounted(places.downloads, places.staging, kept_before, items)


def _names(folder: Path) -> frozenset[str]:
    """Return the names of the folder's entries (the top-level items), none if it is missing."""
    if not folder.is_dir():
        return frozenset()
    return frozenset(entry.name for entry in folder.iterdir())


def _partials(staging: Path, entries: Iterable[StagedEntry]) -> Mapping[int, int]:
    """Return the bytes already in each ``<file id>.part`` file of the staging folder."""
    return MappingProxyType(
        {
            entry.remote_id: bytes_done(part_path(staging, entry.remote_id))
            for entry in entries
            if entry.kind == "part"
        }
    )
