"""A folder's mark: a random name written once into the folder itself, so every host that
mounts the folder (a network share) reads the same one, under whatever path it mounts it.
Hosts sharing a journal tell by it whether they place files into one download folder
(``app/sharing``): paths cannot tell, one share is ``/mnt/nas`` here and ``/media`` there.
"""

from __future__ import annotations

import logging
import os
import secrets
import string
from pathlib import Path

from putio_mirror.core.naming import OWN_PREFIX

log = logging.getLogger(__name__)

#: the mark's file, in the folder it marks (a name of ours: never one of put.io's items)
MARK_NAME = f"{OWN_PREFIX}-folder"
_MARK_LENGTH = 32


def folder_mark(folder: Path, *, make: bool) -> str | None:
    """Given a folder, return its mark, made first if it has none and ``make``; None if
    there is no folder (nothing is made in its place: an unmounted share's mount point must
    stay empty), it has no mark and none is made, or it cannot be read or written."""
    path = folder / MARK_NAME
    try:
        return _read(path)
    except FileNotFoundError:
        if not make or not folder.is_dir():
            return None
    except OSError as error:
        log.warning("cannot read %s (%s)", path, error.strerror)
        return None
    return _made(path)


def _read(path: Path) -> str | None:
    """Given a mark's file, return its mark; None if it holds none (one being written by
    another host this very moment reads empty)."""
    text = path.read_text(encoding="ascii", errors="replace").strip()
    well_formed = len(text) == _MARK_LENGTH and all(c in string.hexdigits for c in text)
    return text if well_formed else None


def _made(path: Path) -> str | None:
    """Given a folder's mark's path, make a new mark there unless another host made one
    first (O_EXCL: two hosts never end with two marks of one folder); return the mark."""
    mark = secrets.token_hex(_MARK_LENGTH // 2)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return folder_mark(path.parent, make=False)
    except OSError as error:
        log.warning("cannot write %s (%s)", path, error.strerror)
        return None
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(mark + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        log.warning("cannot write %s (%s)", path, error.strerror)
        return None
    return mark
