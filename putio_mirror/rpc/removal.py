"""``torrent-remove`` with ``delete-local-data``: remove a placed item, journaled.

Only the files this door placed, as Transmission deletes only a torrent's own files: each
one still at its place with the size it was placed with, only inside the download folder
(no ``..``, no way out through a symlink); then the item's folders they leave empty. A
file someone else put in the item (an unpacker's, the user's) or one replaced since stays,
and the journal says so. Each removal is a run with one action in the journal, so
``history`` tells who removed what. The journal keeps the item's files as placed, so
the mirror does not fetch them again; the put.io transfer is cleaned by the next sync.

A torrent added again after its removal must come down again (``bring_back``): the
files of it that were placed and are gone from the disk since (or are not the very files
placed any more) are fetched again from put.io, or, when put.io has nothing of it any
more, it is submitted again.
"""

from __future__ import annotations

import contextlib
import os
import stat
from datetime import datetime
from pathlib import Path

from putio_mirror.core.errors import ExitCode, UnsafePathError
from putio_mirror.core.state import Desire, FileIdentity
from putio_mirror.journal.store import Journal
from putio_mirror.local.files import identity_at, identity_of
from putio_mirror.local.paths import resolve_inside
from putio_mirror.rpc.fields import REMOVAL_COMMAND


def remove_local(
    journal: Journal, downloads: Path, desire: Desire, item_path: str, now: datetime
) -> str:
    """Given a desire and its item's path (relative to the download folder), delete the
    files of it that were placed (all, or those placed so far) and journal it; return what
    was done ("" if none was placed). Raise UnsafePathError if a path would leave the folder."""
    progress = journal.desires.progress_of([file_id for file_id, _, _ in desire.item_files])
    placed = [
        (file_id, found.placed_path, size)
        for file_id, _, size in desire.item_files
        if (found := progress.get(file_id)) is not None and found.placed_path
    ]
    if not placed:
        return ""
    identities = journal.placed_identities([file_id for file_id, _, _ in placed])
    run_id = journal.start_run(REMOVAL_COMMAND, now)
    key = f"remove-local:{desire.info_hash}"
    action_id = journal.action_started(run_id, "remove-local", key, item_path, now)
    outcome, detail, error = "done", "", None
    try:
        item = resolve_inside(downloads, item_path)
        ours = [
            (resolve_inside(downloads, path), size, identities.get(file_id))
            for file_id, path, size in placed
        ]
        detail = _delete_placed(item, ours)
    except (OSError, UnsafePathError) as failure:
        outcome, error = "failed", getattr(failure, "message", None) or str(failure)
        raise
    finally:
        journal.action_finished(action_id, outcome, now, error=error, detail=detail or None)
        code = ExitCode.OK if outcome == "done" else ExitCode.ITEMS_FAILED
        journal.finish_run(run_id, now, int(code), f"1 {outcome}")
    return detail


def bring_back(
    journal: Journal, downloads: Path, desire: Desire, purged: bool, remote_purged: bool
) -> bool:
    """Given a desire just added again, as it was when removed, whether it was removed with
    its data, and whether such a removal deletes put.io's copy: have what is gone of it come
    down again; return whether files of it are to be fetched again (a sync is wanted)."""
    if not desire.item_path or (purged and remote_purged):
        # Never located (its transfer was cancelled), or put.io's copy went with it.
        journal.desires.bring_back(desire.info_hash, (), resubmit=True)
        return False
    file_ids = [file_id for file_id, _, _ in desire.item_files]
    progress = journal.desires.progress_of(file_ids)
    placed = journal.placed_identities(file_ids)
    # Copied or hard-linked by the importer, it is still whole: complete as it is. Any
    # other file at a placed file's path, even of its size (a stranger's; ours touched;
    # ours placed before the journal kept identities), is not taken for it here: the
    # next sync looks at it as at any file found where put.io's goes (adopted if it has
    # put.io's CRC32, else left alone and told), never reading it in this request.
    gone = [
        file_id
        for file_id, file in progress.items()
        if file.placed_path is not None
        and not _still_placed(downloads / file.placed_path, placed.get(file_id))
    ]
    if gone:
        journal.desires.bring_back(desire.info_hash, gone)
    return bool(gone)


def _still_placed(path: Path, placed: FileIdentity | None) -> bool:
    """Whether the file at ``path`` is the very file placed there (``placed``: which it
    was; None, not known)."""
    return placed is not None and identity_at(path) == placed


def _delete_placed(item: Path, files: list[tuple[Path, int, FileIdentity | None]]) -> str:
    """Given an item's path and its files as placed (path, size, which file it was if
    known), delete each still there as placed, then the item's folders left empty; return
    what was done."""
    deleted = 0
    for path, size, identity in files:
        if _is_as_placed(path, size, identity):
            path.unlink()
            deleted += 1
    for folder in _folders_deepest_first(item, [path for path, _, _ in files]):
        with contextlib.suppress(FileNotFoundError, OSError):  # not empty: someone's files
            folder.rmdir()
    done = f"deleted {deleted} file(s) placed in {item}"
    left = _count_files(item)
    if left:
        done += f"; {left} file(s) not placed by putio-mirror {'was' if left == 1 else 'were'} left"
    return done


def _is_as_placed(path: Path, size: int, identity: FileIdentity | None) -> bool:
    """Say whether the file placed is still at ``path``: a regular file (no symlink) of
    the size placed, and the very file placed where the journal knows which it was (a
    media manager's hard link of it is; a file put in its place is not)."""
    try:
        status = path.lstat()
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(status.st_mode) or status.st_size != size:
        return False
    return identity is None or identity_of(status) == identity


def _folders_deepest_first(item: Path, files: list[Path]) -> list[Path]:
    """Given an item's path and its files' paths, return the folders from each file up to
    the item's own (when it is a folder), deepest first."""
    folders = {item}
    for path in files:
        folders.update(parent for parent in path.parents if parent.is_relative_to(item))
    return sorted(folders - {path for path in files}, key=lambda f: len(f.parts), reverse=True)


def _count_files(item: Path) -> int:
    """Return how many files (of any kind) are at or under ``item`` now."""
    if item.is_symlink() or item.is_file():
        return 1
    return sum(len(names) for _, _, names in os.walk(item)) if item.is_dir() else 0
