"""Which remote files are wanted locally: the download filters, as one pure predicate."""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase

from putio_mirror.core.state import EXTRAS_FOLDERS, Filters, RemoteFile


def wanted_files(
    paths: Mapping[int, str], items: Mapping[int, RemoteFile], filters: Filters
) -> frozenset[int]:
    """Given the local path of each item by id, the items by id and the filters, return
    the ids of the files (not folders) that the filters keep."""
    if not (filters.include or filters.exclude or filters.skip_extras):
        # The usual set-up: only the size counts, asked of every file of the account.
        return frozenset(
            item_id
            for item_id in paths
            if not (item := items[item_id]).is_folder and item.size >= filters.min_size
        )
    return frozenset(
        item_id
        for item_id, relative in paths.items()
        if not (item := items[item_id]).is_folder and is_wanted(relative, item.size, filters)
    )


def is_wanted(relative_path: str, size: int, filters: Filters) -> bool:
    """Given a file's local relative path and size, return whether the filters keep it.

    Globs match the whole relative path, case-insensitively (``*`` also
    crosses ``/``, so ``*.nfo`` matches at any depth).
    """
    if size < filters.min_size:
        return False
    lowered = relative_path.lower()
    if filters.include and not any(fnmatchcase(lowered, glob.lower()) for glob in filters.include):
        return False
    if any(fnmatchcase(lowered, glob.lower()) for glob in filters.exclude):
        return False
    folders = lowered.split("/")[:-1]
    return not (filters.skip_extras and not EXTRAS_FOLDERS.isdisjoint(folders))
