"""The reconciler's rules for files: what to fetch, place, delete on put.io and tidy in staging.

A file's life: fetched into staging → verified in staging → placed in the download
folder (journaled with its path) → optionally deleted on put.io. Each rule here is pure
(``reconcile.py`` calls them in order): it pairs put.io's files with the journal's
records and the staging folder's entries by file id, never by name.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import chain

from putio_mirror.core.building import fast_constructor
from putio_mirror.core.naming import collision_key, local_paths
from putio_mirror.core.plan import (
    Action,
    AdoptLocal,
    DeleteRemote,
    Download,
    Note,
    PlaceItem,
    TidyStaging,
)
from putio_mirror.core.selection import wanted_files
from putio_mirror.core.state import (
    FINISHED_STATUSES,
    DownloadRecord,
    LocalFacts,
    Policy,
    RemoteFile,
    Snapshot,
    StagedEntry,
)


@dataclass(frozen=True, slots=True)
class RemoteTree:
    """Indexes over the remote files that several rules need."""

    by_id: Mapping[int, RemoteFile]
    children: Mapping[int, tuple[int, ...]]
    paths: Mapping[int, str]
    #: files that are mirrored: under the root, regular, and kept by the filters
    wanted: frozenset[int]

    def all_named(self, item_id: int) -> bool:
        """Whether the item and everything in it is in the mirrored tree (a shared folder
        inside it is not: deleting the item would delete what was never mirrored)."""
        pending = [item_id]
        while pending:
            current = pending.pop()
            if current not in self.paths:
                return False
            pending.extend(self.children.get(current, ()))
        return True

    def files_under(self, item_id: int) -> list[RemoteFile]:
        """Given an item id, return every wanted file in it (the item itself if a file)."""
        found: list[RemoteFile] = []
        pending = [item_id]
        while pending:
            current = self.by_id.get(pending.pop())
            if current is None:
                continue
            if current.is_folder:
                pending.extend(self.children.get(current.id, ()))
            elif current.id in self.wanted:
                found.append(current)
        return found


@dataclass(frozen=True, slots=True)
class Pending:
    """What this plan will verify: file id -> action key, and which stay staged."""

    keys: Mapping[int, str]
    staged: frozenset[int]

    @classmethod
    def of(cls, fetches: list[Download], adopted: list[AdoptLocal]) -> Pending:
        keys = {action.file_id: action.key for action in fetches}
        keys.update((action.file_id, action.key) for action in adopted)
        return cls(keys, frozenset(action.file_id for action in fetches if action.staged))


def index_tree(
    files: Iterable[RemoteFile],
    policy: Policy,
    names: Mapping[int, str] | None = None,
    downloads: Mapping[int, DownloadRecord] | None = None,
) -> RemoteTree:
    """Index put.io's flat listing; ``names`` are its local paths if already known (else
    they are named here, each item kept where the journal's ``downloads`` placed it)."""
    by_id = {item.id: item for item in files}
    children: defaultdict[int, list[int]] = defaultdict(list)
    for item in by_id.values():
        children[item.parent_id].append(item.id)
    frozen_children = {parent: tuple(sorted(ids)) for parent, ids in children.items()}
    if names is None:
        named = local_paths(list(by_id.values()), policy.remote_root_id)
        names = named if downloads is None else kept_where_placed(named, downloads)
    paths = names
    return RemoteTree(by_id, frozen_children, paths, wanted_files(paths, by_id, policy.filters))


def kept_where_placed(
    paths: Mapping[int, str], downloads: Mapping[int, DownloadRecord]
) -> Mapping[int, str]:
    """Given the local paths of put.io's tree, return them with every folder item that
    put.io renamed after files of it were placed kept under the name it was placed with:
    an item is never split across two folders, and a media manager that knows it (or
    imports it) finds its new files where it is. An item keeps today's name if a file of
    it is placed under that name already, or if another item has taken its old one."""
    renamed = _renamed_items(paths, downloads)
    if not renamed:
        return paths  # (nearly every run: one pass over the placed files, nothing made)
    taken = {collision_key(path) for path in paths.values() if "/" not in path}
    keep: dict[str, str] = {}
    for today, placed in sorted(renamed.items()):
        if collision_key(placed) in taken:
            continue  # another item goes by that name now
        taken.add(collision_key(placed))
        keep[today] = placed
    if not keep:
        return paths
    kept = dict(paths)
    for file_id, path in paths.items():
        top, separator, rest = path.partition("/")
        name = keep.get(top)
        if name is not None:
            kept[file_id] = f"{name}{separator}{rest}"
    return kept


def _renamed_items(
    paths: Mapping[int, str], downloads: Mapping[int, DownloadRecord]
) -> dict[str, str]:
    """Return today's name -> the name placed under, of each folder item whose placed
    files all lie under one other top-level name."""
    placed_under: defaultdict[str, set[str]] = defaultdict(set)
    for file_id, record in downloads.items():
        placed_path = record.placed_path
        if placed_path is None or record.placed_at is None:
            continue
        path = paths.get(file_id)
        if path is None or path == placed_path:
            continue
        top, separator, _ = path.partition("/")
        placed_top, placed_separator, _ = placed_path.partition("/")
        if separator and placed_separator and placed_top != top:
            placed_under[top].add(placed_top)
    if not placed_under:
        return {}
    # an item with a file placed under today's name is there already (or split before)
    for file_id, record in downloads.items():
        path = paths.get(file_id)
        if record.placed_path is not None and path is not None and path == record.placed_path:
            placed_under.pop(path.partition("/")[0], None)
    return {today: tops.pop() for today, tops in placed_under.items() if len(tops) == 1}


# plan_downloads makes one for every file of a new account
_download = fast_constructor(Download)


def plan_downloads(
    snapshot: Snapshot, policy: Policy, tree: RemoteTree, notes: list[Note], now: datetime
) -> tuple[list[Download], list[AdoptLocal]]:
    """Return (downloads, adoptions) for every mirrored file not yet verified, or verified
    but neither placed nor waiting in staging (its verified bytes were lost)."""
    downloads, local = snapshot.journal.downloads, snapshot.local
    fetches: list[Download] = []
    adopted: list[AdoptLocal] = []
    replaced = Replaced(downloads, tree)
    # Left out before the sort by path: the files mirrored, or verified and waiting in
    # staging for their placement (on most runs, nearly every file of the account).
    unfinished = [
        file_id
        for file_id in tree.wanted
        if (record := downloads.get(file_id)) is None
        or not (record.is_placed or (record.is_verified and file_id in local.verified))
    ]
    for file_id in sorted(unfinished, key=tree.paths.__getitem__):
        record = downloads.get(file_id)
        remote, relative = tree.by_id[file_id], tree.paths[file_id]
        retry_at = next_retry(record, policy)
        if record is not None and retry_at is not None and now < retry_at:
            notes.append(_backing_off(relative, record, retry_at))
            continue
        staged = _staged(relative, policy, local)
        present = None if staged else local.present.get(relative)
        before = None if present is None else replaced.of(relative, present)
        if before is None and file_id in local.verified:
            present = None  # its verified bytes wait in staging: placed as ever
        if present is None or (before is not None and not _same_bytes(before, remote)):
            resume = local.verified.get(file_id) or local.partial.get(file_id, 0)
            again = record is not None and record.is_verified
            fetches.append(
                _download(
                    file_id,
                    relative,
                    remote.size,
                    remote.crc32,
                    resume,
                    staged=staged,
                    again=again,
                    why="replaced on put.io" if before else "not yet mirrored",
                    replaces=before,
                )
            )
        elif before is not None:
            why = "the very bytes placed there, under a new id on put.io"
            adopted.append(AdoptLocal(file_id, relative, remote.size, remote.crc32, why))
        elif present == remote.size:
            adopted.append(AdoptLocal(file_id, relative, remote.size, remote.crc32))
        else:
            notes.append(in_the_way(relative))
    return fetches, adopted


def in_the_way(relative: str) -> Note:
    """Given a file's relative path where a local file not ours stands, return the note
    that says so (the RPC door finds it in the journal by this very text)."""
    return Note(
        "needs_you",
        f"{relative}: a different local file is in the way; not overwriting",
        "move or rename it: the next run mirrors put.io's copy there (a file "
        "putio-mirror did not place is never overwritten)",
    )


def _same_bytes(record: DownloadRecord, remote: RemoteFile) -> bool:
    return record.size == remote.size and record.crc32 == remote.crc32


class Replaced:
    """The files placed at a path whose put.io id is gone from the mirrored tree: a file
    put.io replaced by one of the same name (a transfer fetched again, a better release).

    Indexed by placed path only when a path is found taken (rare), not on every run.
    """

    def __init__(self, downloads: Mapping[int, DownloadRecord], tree: RemoteTree) -> None:
        self._downloads, self._tree = downloads, tree
        self._by_path: dict[str, DownloadRecord] | None = None

    def of(self, relative: str, present: int) -> DownloadRecord | None:
        """Given a path taken by a local file of ``present`` bytes, return the record of
        the file we placed there last if that file's id is gone and the size still fits
        (the executor checks its CRC32 before touching it); None: a stranger's file."""
        if self._by_path is None:
            self._by_path = self._index()
        record = self._by_path.get(relative)
        if record is None or record.size != present or record.crc32 is None:
            return None  # not provably ours: never replaced
        return record

    def _index(self) -> dict[str, DownloadRecord]:
        latest: dict[str, DownloadRecord] = {}
        wanted = self._tree.wanted
        for record in self._downloads.values():
            path, placed_at = record.placed_path, record.placed_at
            if path is None or placed_at is None or record.file_id in wanted:
                continue  # (a file put.io still has is never taken for a replaced one)
            known = latest.get(path)
            if known is None or (known.placed_at is not None and known.placed_at < placed_at):
                latest[path] = record
        return latest


def next_retry(record: DownloadRecord | None, policy: Policy) -> datetime | None:
    """When a file that failed may be tried again: the wait doubles with each failure."""
    if record is None or record.failures <= 0 or record.last_failure_at is None:
        return None
    minutes = policy.retry_after_failure_minutes * 2 ** min(record.failures - 1, 20)
    wait = min(timedelta(minutes=minutes), timedelta(hours=policy.retry_after_failure_cap_hours))
    return record.last_failure_at + wait


def _backing_off(relative: str, record: DownloadRecord, retry_at: datetime) -> Note:
    error = f": {record.last_error}" if record.last_error else ""
    return Note(
        "reminder",  # the run that failed told it, with its hint
        f"{relative}: failed {record.failures} time(s){error}; "
        f"next try after {retry_at:%Y-%m-%d %H:%M} UTC",
    )


def _staged(relative: str, policy: Policy, local: LocalFacts) -> bool:
    """Files of a folder item not yet in the download folder wait in staging for the item."""
    item, separator, _ = relative.partition("/")
    return policy.item_placement and bool(separator) and item not in local.present_items


def _unfinished_items(snapshot: Snapshot, tree: RemoteTree, root_id: int) -> frozenset[int]:
    """The top-level items that a transfer still works on (e.g. COMPLETING): put.io may
    not list all their files yet, so they are neither placed nor deleted."""
    items: set[int] = set()
    for transfer in snapshot.transfers:
        if transfer.file_id is None or transfer.status in FINISHED_STATUSES:
            continue
        current = tree.by_id.get(transfer.file_id)
        while current is not None and current.parent_id != root_id:
            current = tree.by_id.get(current.parent_id)
        if current is not None:
            items.add(current.id)
    return frozenset(items)


def _items_holding(file_ids: Iterable[int], tree: RemoteTree, policy: Policy) -> set[int]:
    """Given the files that can wait for placement (staged by this plan, or verified in
    staging), return the top-level items that hold a wanted one: only those can have files
    to place, and finding them so spares walking every file of every item (an account
    mirrored whole has none waiting)."""
    top_ids = tree.children.get(policy.remote_root_id, ())
    tops = {tree.paths[item]: item for item in top_ids if item in tree.paths}
    paths, wanted = tree.paths, tree.wanted
    # a path begins with its top-level item's name, unique among them
    names = {paths[file_id].partition("/")[0] for file_id in file_ids if file_id in wanted}
    return {tops[name] for name in names if name in tops}


def plan_placements(
    snapshot: Snapshot, policy: Policy, tree: RemoteTree, pending: Pending
) -> list[PlaceItem]:
    """Place the verified files waiting in staging, item by item.

    A folder item that does not exist yet waits until every wanted file of it is
    verified or verified in this plan, then appears whole; one that exists already
    (or with item placement off) takes whatever is verified, file by file.
    """
    unfinished = _unfinished_items(snapshot, tree, policy.remote_root_id)
    holding = _items_holding(chain(pending.staged, snapshot.local.verified), tree, policy)
    actions: list[PlaceItem] = []
    for item_id in tree.children.get(policy.remote_root_id, ()):
        name = tree.paths.get(item_id)
        if name is None or item_id in unfinished or item_id not in holding:
            continue
        waiting, requires, whole = _waiting_files(item_id, tree, pending, snapshot)
        if not waiting:
            continue
        as_folder = tree.by_id[item_id].is_folder and policy.item_placement
        if as_folder and name not in snapshot.local.present_items and not whole:
            continue  # the item appears whole or not at all
        folder = as_folder and name not in snapshot.local.present_items
        actions.append(
            PlaceItem(name, item_id, tuple(waiting), folder, requires=tuple(sorted(requires)))
        )
    return actions


def _waiting_files(
    item_id: int, tree: RemoteTree, pending: Pending, snapshot: Snapshot
) -> tuple[list[tuple[int, str]], set[str], bool]:
    """Return an item's files to place (id, path), the keys they wait on, and whether
    every wanted file of the item is placed or coming."""
    waiting: list[tuple[int, str]] = []
    requires: set[str] = set()
    whole = True
    for remote in tree.files_under(item_id):
        record = snapshot.journal.downloads.get(remote.id)
        if record is not None and record.is_placed:
            continue
        if remote.id in pending.staged:
            requires.add(pending.keys[remote.id])
        elif not (
            record is not None and record.is_verified and remote.id in snapshot.local.verified
        ):
            whole = whole and remote.id in pending.keys  # a direct download places itself
            continue
        waiting.append((remote.id, tree.paths[remote.id]))
    return sorted(waiting, key=lambda pair: pair[1]), requires, whole


def requirements_for_item(
    item_id: int, tree: RemoteTree, pending: Mapping[int, str], snapshot: Snapshot
) -> set[str] | None:
    waits: set[str] = set()
    for remote in tree.files_under(item_id):
        record = snapshot.journal.downloads.get(remote.id)
        if record is not None and record.is_verified:
            continue
        if remote.id not in pending:
            return None
        waits.add(pending[remote.id])
    return waits


def plan_deletes(
    snapshot: Snapshot,
    policy: Policy,
    tree: RemoteTree,
    pending: Pending,
    placements: list[PlaceItem],
) -> list[Action]:
    """Delete each top-level remote item once every wanted file of it is placed locally
    (or is placed by this plan first): never while a copy sits only in staging."""
    unfinished = _unfinished_items(snapshot, tree, policy.remote_root_id)
    placing = {action.item_id: action for action in placements}
    actions: list[Action] = []
    for item_id in tree.children.get(policy.remote_root_id, ()):
        files = tree.files_under(item_id)
        if item_id in unfinished or not files or not tree.all_named(item_id):
            continue  # nothing or not all of it is mirrored (or put.io is still at it): it stays
        waits = _placement_requirements(files, placing.get(item_id), pending, snapshot)
        if waits is not None:
            name = tree.by_id[item_id].name
            actions.append(DeleteRemote(item_id, name, requires=tuple(sorted(waits))))
    return actions


def _placement_requirements(
    files: list[RemoteFile], placing: PlaceItem | None, pending: Pending, snapshot: Snapshot
) -> set[str] | None:
    """Return the keys that must succeed before these files are all placed; None if some
    will not be placed in this run."""
    to_place = {file_id for file_id, _ in placing.files} if placing else set()
    waits: set[str] = set()
    for remote in files:
        record = snapshot.journal.downloads.get(remote.id)
        if record is not None and record.is_placed:
            continue
        if placing is not None and remote.id in to_place:
            waits.add(placing.key)
        elif remote.id in pending.keys and remote.id not in pending.staged:
            waits.add(pending.keys[remote.id])  # a direct download or adoption places it
        else:
            return None
    return waits


def plan_tidy(
    snapshot: Snapshot,
    policy: Policy,
    tree: RemoteTree,
    now: datetime,
    pending: Pending,
    placements: list[PlaceItem],
) -> list[Action]:
    """Remove staging leftovers of ids no longer wanted, once they are older than the
    grace period. When put.io lists nothing at all (an outage may look like that, or an
    account emptied by ``delete_remote_after``) only what is surely a leftover goes: the
    copy of a placed file, a build folder's links."""
    grace = timedelta(hours=policy.orphan_grace_hours)
    building = {action.item_id for action in placements}
    actions: list[Action] = []
    for entry in snapshot.local.staging:
        if now - entry.modified_at < grace or entry.remote_id in pending.keys:
            continue
        if entry.kind == "build" and entry.remote_id in building:
            continue
        if entry.kind != "build" and _still_needed(entry.kind, entry.remote_id, tree, snapshot):
            continue
        if not snapshot.files and not _surely_left_over(entry, snapshot):
            continue
        actions.append(
            TidyStaging(entry.kind, entry.remote_id, entry.size, why=_orphan_reason(entry, tree))
        )
    return actions


def _surely_left_over(entry: StagedEntry, snapshot: Snapshot) -> bool:
    record = snapshot.journal.downloads.get(entry.remote_id)
    return entry.kind == "build" or (
        entry.kind == "verified" and record is not None and record.is_placed
    )


def _still_needed(kind: str, file_id: int, tree: RemoteTree, snapshot: Snapshot) -> bool:
    """A part of a wanted file not yet verified (it may be backing off), or verified bytes
    of a wanted file not yet placed, are still needed; a sidecar left alone is kept as its
    file's part would be (a download of it may be writing a new one)."""
    if file_id not in tree.wanted:
        return False
    record = snapshot.journal.downloads.get(file_id)
    if kind in ("part", "sidecar"):
        return record is None or not record.is_verified
    return record is None or not record.is_placed


def _orphan_reason(entry: StagedEntry, tree: RemoteTree) -> str:
    if entry.kind == "build":
        return "an interrupted placement's links"
    if entry.remote_id not in tree.by_id:
        return "gone from put.io"
    if entry.remote_id not in tree.wanted:
        return "no longer mirrored"
    return "placed already"
