"""Free space: checked before bytes are written, so a full disk is a message, not a torn file."""

from __future__ import annotations

import shutil
from pathlib import Path

from putio_mirror.core.errors import NoSpaceError
from putio_mirror.core.units import human_bytes
from putio_mirror.local.paths import nearest_existing

#: Free space kept spare on the download disk unless the config says otherwise.
FREE_SPACE_MARGIN = 100 * 1024 * 1024


def free_bytes(path: Path) -> int:
    """Given a path that may not exist yet, return the free bytes of the filesystem that
    would hold it (that of its nearest existing ancestor)."""
    return shutil.disk_usage(nearest_existing(path)).free


def ensure_room(path: Path, needed: int, margin: int = FREE_SPACE_MARGIN) -> None:
    """Given where ``needed`` bytes will be written, return if they fit with ``margin`` to
    spare; raise NoSpaceError otherwise."""
    free = free_bytes(path)
    if free >= needed + margin:
        return
    raise NoSpaceError(
        f"not enough room for {human_bytes(needed)} in {path}: "
        f"{human_bytes(free)} free, {human_bytes(margin)} kept spare",
        "Free some space on that disk; the download resumes where it stopped next run.",
    )
