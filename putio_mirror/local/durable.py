"""Putting a finished file in place in one step, and making that step survive a power cut."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import threading
from pathlib import Path

from putio_mirror.core.errors import ConfigError, ItemError, NotDurableError
from putio_mirror.core.naming import OWN_PREFIX
from putio_mirror.fetch.partfile import fsync_folder

# link(2) refusals that mean "this filesystem cannot hard-link", not "no".
LINK_UNSUPPORTED = frozenset(
    {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK}
)
#: beside a file copied in from a staging folder on another filesystem, while it is copied
#: (a name that naming never gives a put.io item: ours to replace)
COPY_PREFIX = f"{OWN_PREFIX}-copy-"


def place_atomically(part: Path, final: Path, later: FoldersToSync | None = None) -> None:
    """Given a complete ``.part`` file, make it appear at ``final`` in one step.

    The data is flushed to disk first; the parent folders are made. The move is made
    durable before this returns, or, given ``later``, left to it (its folder added). Raise
    ItemError if ``final`` exists (it is never overwritten, and the part stays)
    or if the move fails. From a staging folder on another filesystem (EXDEV) the part
    is copied beside ``final``, synced, and that copy moved in; the part is removed
    only once ``final`` is durable (synced now, ``later`` or not).
    """
    copied = False
    try:
        _fsync_file(part)
        try:
            _move_in(part, final)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            _copy_in(part, final)
            copied = True
    except FileExistsError:
        raise ItemError(
            f"would overwrite {final}",
            "A different file is already there; move it away if the put.io copy should win. "
            f"The download is kept in {part}.",
        ) from None
    except OSError as error:
        raise ItemError(
            f"could not move {part} to {final}: {error.strerror}",
            "Check the permissions of the download folder and of the staging folder.",
        ) from error
    if later is None or copied:
        synced_or_raise(final.parent, final)
    else:
        later.add(final.parent)
    if copied:
        part.unlink(missing_ok=True)


def _copy_in(part: Path, final: Path) -> None:
    """Copy part beside final, durably, and move the copy to final (never overwriting)."""
    copy = final.with_name(COPY_PREFIX + part.name)
    copy_durably(part, copy)
    try:
        _link_or_rename(copy, final)
    except BaseException:
        copy.unlink(missing_ok=True)
        raise


def copy_durably(source: Path, target: Path) -> None:
    """Given a file and a new path (on any filesystem), make ``target`` a synced copy of
    it, with its mode (and, where allowed, its owner). What was at ``target`` is unlinked,
    never written through: it may be a link to a placed file."""
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
    with open(source, "rb") as reading:
        status = os.fstat(reading.fileno())
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        descriptor = os.open(target, flags, status.st_mode & 0o7777)
        with os.fdopen(descriptor, "wb") as writing:
            shutil.copyfileobj(reading, writing, 1024 * 1024)
            writing.flush()
            with contextlib.suppress(OSError):  # not ours to give (vfat, not root)
                os.fchown(descriptor, status.st_uid, status.st_gid)
            with contextlib.suppress(OSError):  # the umask took some (vfat has no modes)
                os.fchmod(descriptor, status.st_mode & 0o7777)
            os.fsync(descriptor)


DISK_FAILED_HINT = (
    "the disk reported an error: check it (dmesg, SMART); nothing is counted as placed, "
    "nothing on put.io is deleted, and the next run checks the file again"
)


def make_durable(path: Path) -> None:
    """Given a file found in place (not written by us), make its bytes and its name in
    its folder durable; raise NotDurableError if the disk failed to."""
    try:
        _fsync_file(path)
    except FileNotFoundError:
        raise ItemError(
            f"{path} is gone", "it was moved or deleted meanwhile; the next run looks again"
        ) from None
    except OSError as error:
        raise NotDurableError(
            f"{path}: the disk failed to make it last: {error.strerror}", DISK_FAILED_HINT
        ) from error
    synced_or_raise(path.parent, path)


def synced_or_raise(folder: Path, moved: Path | str) -> None:
    """Given the folder a move went into and what was moved (a path, or words), make the
    move durable; raise NotDurableError if the disk failed to."""
    try:
        fsync_folder(folder)
    except OSError as error:
        raise NotDurableError(
            f"{moved} was moved, but the disk failed to make that last: {error.strerror}",
            DISK_FAILED_HINT,
        ) from error


class FoldersToSync:
    """Folders files were moved into whose new names are made durable together (``sync``)
    where each file's move would sync its folder alone: for the many files of a run placed
    one by one, one ``fsync`` of the download folder for every few files whose journal
    work commits together (``Verified.first``, run before that commit), not one a file.

    A folder is added once a file is moved in, so a ``sync`` after that covers it. One that
    fails leaves its folders due (and raises): no file moved in is taken as durable on a
    sync that did not happen. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._due: dict[Path, None] = {}  # (a dict: in the order added)

    def add(self, folder: Path) -> None:
        """Given a folder a file was just moved into, have the next ``sync`` sync it."""
        with self._lock:
            self._due[folder] = None

    def sync(self) -> None:
        """Make the moves into every folder added since the last sync durable; raise
        NotDurableError if the disk failed to (those not synced stay due)."""
        with self._lock:
            due, self._due = list(self._due), {}
        for count, folder in enumerate(due):
            try:
                synced_or_raise(folder, f"a file into {folder}")
            except BaseException:
                with self._lock:
                    self._due.update(dict.fromkeys(due[count:]))
                raise


def _move_in(part: Path, final: Path) -> None:
    """Move part to final as ``_link_or_rename`` does, its folders made if missing (made
    only then: for all but an item's first file they are there, and trying costs a file
    two system calls)."""
    try:
        _link_or_rename(part, final)
    except FileNotFoundError:
        final.parent.mkdir(parents=True, exist_ok=True)
        _link_or_rename(part, final)  # (the part itself gone: raised again)


def _link_or_rename(part: Path, final: Path) -> None:
    """Move part to final, raising FileExistsError rather than overwriting (the part
    itself is moved, never what it may point to)."""
    try:
        # link(2) refuses an existing target atomically; rename(2) would replace it.
        os.link(part, final, follow_symlinks=False)
    except OSError as error:
        if error.errno not in LINK_UNSUPPORTED:
            raise
        # No hard links here (some NAS shares): check, then rename. One run at a
        # time holds the lock, so nobody else writes our targets in between.
        if final.is_symlink() or final.exists():
            raise FileExistsError(errno.EEXIST, "File exists", str(final)) from None
        part.rename(final)
        return
    part.unlink()


def _fsync_file(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_private_file(path: Path, text: str) -> None:
    """Given a path and text, make ``path`` hold exactly that text, readable by its owner only.

    Atomic and durable (``write_durably``), never a moment of looser mode. Missing folders
    are made (0700). Raise ConfigError if it cannot be written.
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_durably(path, text, 0o600)
    except OSError as error:
        raise ConfigError(
            f"cannot write {path}: {error.strerror or error}",
            f"check that this user may create files in {path.parent}",
        ) from None


def write_durably(path: Path, text: str, mode: int = 0o666) -> None:
    """Given a path and text, make ``path`` hold exactly that text, and make that outlive
    a power cut. Atomic: the text goes to a new file beside it (``mode``, less the
    umask), synced, then renamed over it, and the folder synced, so a reader sees the old
    text or the new, never half, and after a power cut the new one. Raise OSError if it
    cannot be written or made durable (no temporary file is left)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):  # a folder that could not be made holds none
            temporary.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)
