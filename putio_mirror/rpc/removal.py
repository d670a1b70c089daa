"""``torrent-remove`` with ``delete-local-data``: remove a placed item, journaled.

Only an item this door placed, only inside the download folder (no ``..``, no way out
through a symlink), and each removal is a run with one action in the journal, so
``history`` tells who removed what. The journal keeps the item's files as placed, so
the mirror does not fetch them again; the put.io transfer is cleaned by the next sync.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

from putio_mirror.core.errors import ExitCode, UnsafePathError
from putio_mirror.core.state import Desire
from putio_mirror.journal.store import Journal
from putio_mirror.local.paths import resolve_inside


def remove_local(journal: Journal, downloads: Path, desire: Desire, now: datetime) -> str:
    """Given a placed desire, delete its item from the download folder and journal it;
    return what was done. Raise UnsafePathError if its path would leave the folder."""
    run_id = journal.start_run("rpc torrent-remove", now)
    key = f"remove-local:{desire.info_hash}"
    action_id = journal.action_started(run_id, "remove-local", key, desire.item_path, now)
    outcome, detail, error = "done", "", None
    try:
        detail = _delete(resolve_inside(downloads, desire.item_path))
    except (OSError, UnsafePathError) as failure:
        outcome, error = "failed", getattr(failure, "message", None) or str(failure)
        raise
    finally:
        journal.action_finished(action_id, outcome, now, error=error, detail=detail or None)
        code = ExitCode.OK if outcome == "done" else ExitCode.ITEMS_FAILED
        journal.finish_run(run_id, now, int(code), f"1 {outcome}")
    return detail


def _delete(path: Path) -> str:
    if path.is_symlink() or path.is_file():
        path.unlink()
        return f"deleted {path}"
    if path.is_dir():
        shutil.rmtree(path)
        return f"deleted folder {path}"
    return f"{path} was gone already"
