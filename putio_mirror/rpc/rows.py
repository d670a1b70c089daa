"""``torrent-get``'s rows, kept between polls: an item's row is worked out again only when
what it is made of changed.

Sonarr asks for the same fields of every item every few seconds, and between two polls
almost nothing changes: a running download moves one item's bytes, a sync replaces the
transfers every ``poll_seconds``. A row depends on the item's desire (a new object
whenever the journal's desires change), its put.io transfer (a new object on every
refresh of the board, equal if put.io said the same), its files' journal progress and
what the board knows holds it up (``fields.Troubles``: a full disk or a file in the way
the runs journaled, put.io's outage); those are the row's key, compared on every poll
(cheap: mostly the same objects).
A row is kept as its JSON, split around the fields that move with the clock alone
(``fields.CLOCK_FIELDS``), which are filled in on every poll: encoding 1,000 rows afresh
cost as much as working them out. The JSON is the same as that of the rows
``fields.torrent_rows`` would return: a test holds it to that.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from putio_mirror.core.mirroring import next_retry
from putio_mirror.core.state import Desire, DownloadRecord, Policy, Transfer
from putio_mirror.journal.rows import FileProgress
from putio_mirror.rpc.fields import (
    CLOCK_FIELDS,
    Failing,
    ItemView,
    LocalItem,
    Troubles,
    clock_field,
    item_fields,
)
from putio_mirror.rpc.wire import JsonText, dumps

#: one file's progress and failures, as ``DesireBook.progress_of`` says
Progress = FileProgress
#: the field lists kept at once (Sonarr, Radarr, transmission-remote each ask their own)
MAX_FIELD_LISTS = 8
_NO_PROGRESS = FileProgress(0, False, None)
_NO_TROUBLES: Troubles = ({}, None)


class RowCache:
    """Thread-safe: request threads share it; a race costs a row worked out twice."""

    def __init__(self, downloads: str, policy: Policy) -> None:
        self._downloads = downloads
        self._policy = policy
        self._lock = threading.Lock()
        # field list -> info-hash -> (key, the row's JSON around its clock fields)
        self._lists: dict[tuple[str, ...], dict[str, tuple[Any, Template]]] = {}

    def rows(
        self,
        desires: Sequence[Desire],
        transfers: Mapping[str, Transfer],
        progress: Mapping[int, Progress],
        wanted: Iterable[str],
        now: datetime,
        live: Collection[str],
        troubles: Troubles = _NO_TROUBLES,
    ) -> JsonText:
        """Given the items asked about, the board's transfers by info-hash, their files'
        progress, the field names, the time, the info-hashes of every item not removed
        and what the board knows holds items up, return the asked-about items' rows as a
        JSON array."""
        blocked, outage = troubles
        names = tuple(wanted)
        kept = self._kept(names)
        rows = []
        for desire in desires:
            transfer = transfers.get(desire.info_hash)
            files = tuple(
                progress.get(file_id, _NO_PROGRESS) for file_id, _, _ in desire.item_files
            )
            held = blocked.get(desire.info_hash)
            key = (desire, transfer, files, held, outage)
            found = kept.get(desire.info_hash)
            if found is None or found[0] != key:
                local = local_item(desire, files, self._policy)
                view = ItemView(desire, transfer, local, self._downloads, held, outage)
                template = _template(item_fields(view, names))
            else:
                template = found[1]
            # Kept with this poll's objects, equal or not: the next poll's comparison then
            # meets the same objects and stops at their identity.
            kept[desire.info_hash] = (key, template)
            rows.append(_fill(template, desire, now))
        if len(kept) > len(live) + 64:  # removed items' rows go at some point
            self._prune(kept, live)
        return JsonText(f"[{','.join(rows)}]")

    def kept_rows(self) -> int:
        """Return how many rows are kept, over every field list."""
        with self._lock:
            return sum(len(kept) for kept in self._lists.values())

    def _kept(self, names: tuple[str, ...]) -> dict[str, tuple[Any, Template]]:
        with self._lock:
            kept = self._lists.pop(names, None)
            if kept is None:
                kept = {}
                while len(self._lists) >= MAX_FIELD_LISTS:
                    del self._lists[next(iter(self._lists))]  # the least recently used
            self._lists[names] = kept
            return kept

    def _prune(self, kept: dict[str, Any], live: Collection[str]) -> None:
        with self._lock:
            # list(): another request thread may add a row meanwhile
            for info_hash in [info_hash for info_hash in list(kept) if info_hash not in live]:
                kept.pop(info_hash, None)


#: a row's JSON: static text at even places, the names of clock fields at odd ones
Template = tuple[str, ...]


def _template(row: Mapping[str, object]) -> Template:
    """Given a row whose clock fields are None, return its template."""
    parts, static = [], "{"
    for name, value in row.items():
        static += f"{',' if static != '{' else ''}{dumps(name)}:"
        if name in CLOCK_FIELDS:
            parts += [static, name]
            static = ""
        else:
            static += dumps(value)
    return (*parts, static + "}")


def _fill(template: Template, desire: Desire, now: datetime) -> str:
    if len(template) == 1:
        return template[0]
    parts = list(template)
    for place in range(1, len(parts), 2):
        value = clock_field(parts[place], desire, now)
        parts[place] = str(value) if type(value) is int else dumps(value)  # ints: 1 µs less
    return "".join(parts)


def local_item(
    desire: Desire, files: Sequence[Progress], policy: Policy | None = None
) -> LocalItem | None:
    """Given a desire and its files' progress (in ``item_files`` order), and the policy
    that says when a failed file is tried again, return where it is locally, how far it
    got and which of its files keep failing; None before put.io's tree has shown it."""
    if not desire.item_path:
        return None
    done = sum(file.bytes_done for file in files)
    if not files or not all(file.placed_path for file in files):
        failing = _failing(desire, files, policy) if policy is not None else ()
        return LocalItem(desire.item_path, desire.item_files, done, False, failing)
    # Placed, it is where its files went: put.io's tree may name it otherwise since (a
    # twin that left put.io gave it the plain name), and the other name is someone else's.
    moved = tuple(
        (file_id, file.placed_path or path, size)
        for (file_id, path, size), file in zip(desire.item_files, files, strict=True)
    )
    return LocalItem(_placed_item_path(desire, moved), moved, done, True)


def _failing(desire: Desire, files: Sequence[Progress], policy: Policy) -> tuple[Failing, ...]:
    """The files not verified that failed their last tries, and when each is tried again
    (the reconciler's rule: 10 minutes, doubled with each failure)."""
    return tuple(
        Failing(path, file.failures, file.last_error, _retry_at(file_id, file, policy))
        for (file_id, path, _), file in zip(desire.item_files, files, strict=True)
        if file.failures > 0 and not file.verified
    )


def _retry_at(file_id: int, file: Progress, policy: Policy) -> datetime | None:
    record = DownloadRecord(
        file_id, "", 0, None, failures=file.failures, last_failure_at=file.last_failure_at
    )
    return next_retry(record, policy)


def _placed_item_path(desire: Desire, moved: Sequence[tuple[int, str, int]]) -> str:
    """Given a placed desire and its files as placed, return the item's path as placed:
    each file's path inside the item is kept, so the rest of its placed path is the item."""
    for (_, path, _), (_, placed_path, _) in zip(desire.item_files, moved, strict=True):
        inside = path[len(desire.item_path) :]  # "" for an item that is one file
        if (
            path.startswith(desire.item_path)
            and (not inside or inside.startswith("/"))
            and placed_path.endswith(inside)
            and len(placed_path) > len(inside)
        ):
            return placed_path[: len(placed_path) - len(inside)]
    return desire.item_path
