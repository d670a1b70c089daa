"""Moving many verified parts into staging's ``verified/`` in one run, relative to the
folders themselves (``VerifiedMoves``): the fetch path of many small files (issue 14)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from putio_mirror.core.errors import ItemError, NotDurableError
from putio_mirror.fetch.partfile import fsync_folder_descriptor, open_folder
from putio_mirror.local.durable import DISK_FAILED_HINT
from putio_mirror.local.staging import VERIFIED_DIR, real_folder


class VerifiedMoves:
    """``keep_verified`` and ``sync_verified`` for the many files of one run, relative to
    staging and ``verified/`` themselves: each folder opened once (``O_NOFOLLOW``: a real
    folder, as ``real_folder`` wants it) and kept open. No ``lstat`` of ``verified/`` a
    file (each system call costs a small file a GIL handoff: issue 14), and no move through
    a symlink planted since, not even one in place of staging itself. Thread-safe."""

    def __init__(self, staging: Path) -> None:
        self._staging = staging
        self._lock = threading.Lock()
        self._folders: tuple[int, int] | None = None  # staging's descriptor, verified/'s
        self._retired: list[int] = []  # replaced, still open: a mover may be using them

    def keep(self, part: Path, file_id: int) -> None:
        """Given a verified part in staging, move it to ``verified/<file id>``, durable once
        ``sync`` returned; raise ItemError (UnsafePathError) as ``keep_verified`` does."""
        folders = self._open(None)
        try:
            try:
                os.replace(part.name, str(file_id), src_dir_fd=folders[0], dst_dir_fd=folders[1])
            except FileNotFoundError:  # a folder removed (and made again) since it was opened
                folders = self._open(folders)
                os.replace(part.name, str(file_id), src_dir_fd=folders[0], dst_dir_fd=folders[1])
        except OSError as error:
            raise _not_kept(part.name, self._staging, error) from error

    def sync(self) -> None:
        """Make the moves into ``verified/`` durable; raise NotDurableError if the disk
        failed to."""
        folders = self._folders
        if folders is None:
            return  # nothing moved
        try:
            fsync_folder_descriptor(folders[1])
        except OSError as error:
            raise NotDurableError(
                f"a verified file into {self._staging / VERIFIED_DIR} was moved, but the disk "
                f"failed to make that last: {error.strerror}",
                DISK_FAILED_HINT,
            ) from error

    def close(self) -> None:
        with self._lock:
            folders, self._folders = self._folders, None
            retired, self._retired = self._retired, []
        for descriptor in (*(folders or ()), *retired):
            os.close(descriptor)

    def _open(self, stale: tuple[int, int] | None) -> tuple[int, int]:
        """Return the two folders' descriptors, opened now if not yet (or if they are
        ``stale``); raise UnsafePathError if either is a symlink, ItemError if it cannot be
        opened."""
        folders = self._folders
        if folders is not None and folders is not stale:
            return folders
        with self._lock:
            if self._folders is not None and self._folders is not stale:
                return self._folders
            try:
                staging = open_folder(self._staging)
                try:
                    real_folder(self._staging / VERIFIED_DIR)  # made if need be
                    verified = open_folder(Path(VERIFIED_DIR), staging)
                except BaseException:
                    os.close(staging)
                    raise
            except OSError as error:
                raise _not_kept(VERIFIED_DIR, self._staging, error) from error
            if self._folders is not None:
                self._retired.extend(self._folders)
            self._folders = (staging, verified)
            return self._folders


def _not_kept(name: str, staging: Path, error: OSError) -> ItemError:
    return ItemError(
        f"could not keep the verified {name}: {error.strerror}",
        f"check the permissions of {staging}; the next run verifies the part again",
    )
