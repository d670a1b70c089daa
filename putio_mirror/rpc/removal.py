"""``torrent-remove`` with ``delete-local-data``: remove a placed item, journaled.

Only an item this door placed, only inside the download folder (no ``..``, no way out
through a symlink), and each removal is a run with one action in the journal, so
``history`` tells who removed what. The journal keeps the item's files as placed, so
the mirror does not fetch them again; the put.io transfer is cleaned by the next sync.

A torrent added again after its removal must come down again (``bring_back``): the
files of it that were placed and are gone from the disk since (or are not the very files
placed any more) are fetched again from put.io, or, when put.io has nothing of it any
more, it is submitted again.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

from putio_mirror.core.errors import ExitCode, UnsafePathError
from putio_mirror.core.state import Desire, FileIdentity
from putio_mirror.journal.store import Journal
from putio_mirror.local.files import identity_at
from putio_mirror.local.paths import resolve_inside
from putio_mirror.rpc.fields import REMOVAL_COMMAND


def remove_local(
    journal: Journal, downloads: Path, desire: Desire, item_path: str, now: datetime
) -> str:
    """Given a placed desire and its item's path as placed (relative to the download
    folder), delete the item and journal it; return what was done. Raise UnsafePathError
    if its path would leave the folder."""
    run_id = journal.start_run(REMOVAL_COMMAND, now)
    key = f"remove-local:{desire.info_hash}"
    action_id = journal.action_started(run_id, "remove-local", key, item_path, now)
    outcome, detail, error = "done", "", None
    try:
        detail = _delete(resolve_inside(downloads, item_path))
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


def _delete(path: Path) -> str:
    if path.is_symlink() or path.is_file():
        path.unlink()
        return f"deleted {path}"
    if path.is_dir():
        shutil.rmtree(path)
        return f"deleted folder {path}"
    return f"{path} was gone already"
