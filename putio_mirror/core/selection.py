"""Which remote files are wanted locally: the download filters, as one pure predicate."""

from __future__ import annotations

from fnmatch import fnmatchcase

from putio_mirror.core.state import EXTRAS_FOLDERS, Filters


def is_wanted(relative_path: str, size: int, filters: Filters) -> bool:
    """Given a file's local relative path and size, return whether the filters keep it.

    Globs match the whole relative path, case-insensitively (``*`` also
    crosses ``/``, so ``*.nfo`` matches at any depth).
    """
    if size < filters.min_size:
        return False
    if not (filters.include or filters.exclude or filters.skip_extras):
        return True  # no path rule: the usual set-up, asked for every file of the account
    lowered = relative_path.lower()
    if filters.include and not any(fnmatchcase(lowered, glob.lower()) for glob in filters.include):
        return False
    if any(fnmatchcase(lowered, glob.lower()) for glob in filters.exclude):
        return False
    folders = lowered.split("/")[:-1]
    return not (filters.skip_extras and not EXTRAS_FOLDERS.isdisjoint(folders))
