"""Checks of the folders and files a run will write, worded for the config's reader."""

from __future__ import annotations

import os
from pathlib import Path

from putio_mirror.core.naming import OWN_PREFIX, PATH_MAX_BYTES, STAGING_DIR_NAME
from putio_mirror.local.paths import nearest_existing, why_unwritable


def staging_problems(staging: Path, downloads: Path, source: str) -> tuple[str, ...]:
    """Given the staging and download folders, return a problem if staging could be taken
    for a mirrored item or hold the download folder.

    Inside the download folder, staging's top-level name must begin with ``.putio-mirror``:
    naming never gives a put.io item such a name, so no item can land in staging, and
    placement never mistakes staging for an item (the default is such a name).
    """
    staging, downloads = staging.resolve(), downloads.resolve()
    hint = f"leave paths.staging unset (it is then {downloads / STAGING_DIR_NAME})"
    if downloads.is_relative_to(staging):
        return (
            f"{source}: paths.staging: {staging} holds the download folder {downloads}; {hint}, "
            "or use a folder beside the download folder on the same disk",
        )
    if not staging.is_relative_to(downloads):
        return ()
    top = staging.relative_to(downloads).parts[0]
    if top.casefold().startswith(OWN_PREFIX):
        return ()
    return (
        f"{source}: paths.staging: {staging} is inside the download folder, where a put.io "
        f"item named {top!r} would collide with it; {hint}, name it "
        f"{downloads / (OWN_PREFIX + '-' + top)}, or put it outside the download folder "
        "on the same disk",
    )


def sqlite_file(url: str) -> Path | None:
    database = url.split(":///", 1)[1] if url.startswith("sqlite") and ":///" in url else ""
    return Path(database) if database and not database.startswith(":memory:") else None


#: The longest path of a journal file SQLite opens: its Unix VFS takes paths shorter than
#: 512 bytes (MAX_PATHNAME), the name of the journal beside the database ("-journal")
#: included. Longer, every run failed with "unable to open database file" and a hint
#: about permissions, while ``doctor`` found all well.
SQLITE_PATH_MOST = 512 - len("-journal")


def unwritable_reason(path: Path, is_folder: bool) -> str | None:
    """Given a path a run will write, return why it cannot (None if it can, or can be made)."""
    length = len(os.fsencode(path.absolute()))
    if length >= PATH_MAX_BYTES:  # (the kernel refuses it whole: not even looked at)
        return (
            f"{path} is too long ({length:,} bytes; the kernel takes paths shorter than "
            f"{PATH_MAX_BYTES:,}): use a shorter path"
        )
    if path.exists():
        if path.is_dir() != is_folder:
            return f"{path} exists but is {'not ' if is_folder else ''}a folder"
        mode = os.W_OK | (os.X_OK if is_folder else 0)
        return None if os.access(path, mode) else why_unwritable(path)
    ancestor = nearest_existing(path.parent)
    if not ancestor.is_dir():
        return f"cannot create {path}: {ancestor} is not a writable folder"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"cannot create {path}: {why_unwritable(ancestor)}"
    return None


def journal_unwritable_reason(database: Path) -> str | None:
    """Given a SQLite journal's file, return why a run cannot write it (None if it can,
    or can make it): SQLite writes its ``-wal`` and ``-shm`` files, and a run its lock,
    beside it, so a journal one may write in a folder one may not is no use either; and
    SQLite opens no file of a path longer than ``SQLITE_PATH_MOST``."""
    length = len(os.fsencode(database.absolute()))
    if length > SQLITE_PATH_MOST:
        return (
            f"{database} is too long for SQLite ({length:,} bytes; it opens no database "
            f"file of a path longer than {SQLITE_PATH_MOST:,}): put the journal in a "
            "folder of a shorter path"
        )
    reason = unwritable_reason(database, is_folder=False)
    if reason is not None or not database.exists():
        return reason
    folder = database.absolute().parent
    if os.access(folder, os.W_OK | os.X_OK):
        return None
    return f"{why_unwritable(folder)} (SQLite writes the journal's -wal and -shm files there)"
