"""Local filesystem helpers: the run lock, safe paths, atomic placing, free space, CRC32.

Everything here speaks our error family: an ``OSError`` met on the way becomes
an ``ItemError`` (or a fatal error where the run cannot go on) with a hint.
"""

from __future__ import annotations

import errno
import fcntl
import os
import posixpath
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from putio_mirror.core.errors import (
    AlreadyRunningError,
    ConfigError,
    ItemError,
    JournalError,
    NoSpaceError,
    UnsafePathError,
)
from putio_mirror.core.units import human_bytes
from putio_mirror.fetch.crc import crc32

#: Free space kept spare on the download disk unless the config says otherwise.
FREE_SPACE_MARGIN = 100 * 1024 * 1024

# link(2) refusals that mean "this filesystem cannot hard-link", not "no".
_LINK_UNSUPPORTED = frozenset(
    {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK}
)


class RunLock:
    """One run at a time per journal: an exclusive ``flock`` on a lock file.

    The lock is the kernel's, so it vanishes with the process that held it; the
    file stays (removing it would let two runs lock two different files). The
    holder's pid is written into it for the error message of the next comer.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._descriptor: int | None = None

    def __enter__(self) -> RunLock:
        descriptor = self._open()
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(descriptor)
            os.close(descriptor)
            raise self._already_running(holder) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        self._descriptor = descriptor
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._descriptor is not None:
            # Closing releases the flock.
            os.close(self._descriptor)
            self._descriptor = None

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise JournalError(
                f"cannot open the run lock {self.path}: {error.strerror}",
                "The lock file sits beside the journal; check that folder is writable.",
            ) from error

    def _already_running(self, holder: str) -> AlreadyRunningError:
        who = f" (pid {holder})" if holder else ""
        return AlreadyRunningError(
            "another putio-mirror run is using this journal",
            f"Another run{who} holds the lock {self.path}. Wait for it to finish, or stop it; "
            "the lock is released as soon as that process ends.",
        )


def _read_pid(descriptor: int) -> str:
    """Given the lock file, return the pid its holder wrote, or "" if none can be read."""
    try:
        text = os.pread(descriptor, 32, 0).decode("ascii", errors="replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""


@dataclass(frozen=True, slots=True)
class Places:
    """The local folders a run reads and writes."""

    blackhole: Path
    downloads: Path
    staging: Path


def allocated_bytes(path: Path) -> int:
    """Given a file, return the bytes really stored in it (a sparse part counts what is written)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return 0
    return min(info.st_size, info.st_blocks * 512)


def resolve_inside(root: Path, relative: str) -> Path:
    """Given a root and a relative POSIX path, return ``root / relative``.

    Raise UnsafePathError if the path is absolute, names the root itself,
    climbs out with ``..``, or leads out through a symlink that exists inside root.
    """
    normal = posixpath.normpath(relative) if relative else "."
    climbs = normal in (".", "..") or normal.startswith("../")
    if climbs or posixpath.isabs(normal) or "\x00" in normal:
        raise _unsafe(root, relative)
    path = root / normal
    real_root = root.resolve()
    # resolve() follows every symlink that exists (dangling ones too).
    real_path = path.resolve()
    if real_path == real_root or not real_path.is_relative_to(real_root):
        raise _unsafe(root, relative)
    return path


def _unsafe(root: Path, relative: str) -> UnsafePathError:
    return UnsafePathError(
        f"refusing the path {relative!r}: it would leave {root}",
        "This is a bug or a hostile name; nothing was written. Please report it.",
    )


def place_atomically(part: Path, final: Path) -> None:
    """Given a complete ``.part`` file, make it appear at ``final`` in one step.

    The data is flushed to disk first; the parent folders are made. Raise
    ItemError if ``final`` exists (it is never overwritten, and the part stays)
    or if the move fails.
    """
    try:
        _fsync_file(part)
        final.parent.mkdir(parents=True, exist_ok=True)
        _link_or_rename(part, final)
        fsync_folder(final.parent)
    except FileExistsError:
        raise ItemError(
            f"would overwrite {final}",
            "A different file is already there; move it away if the put.io copy should win. "
            f"The download is kept in {part}.",
        ) from None
    except OSError as error:
        raise ItemError(
            f"could not move {part} to {final}: {error.strerror}",
            "Check permissions and that the staging folder is on the same disk as the target.",
        ) from error


def _link_or_rename(part: Path, final: Path) -> None:
    """Move part to final, raising FileExistsError rather than overwriting (the part
    itself is moved, never what it may point to)."""
    try:
        # link(2) refuses an existing target atomically; rename(2) would replace it.
        os.link(part, final, follow_symlinks=False)
    except OSError as error:
        if error.errno not in _LINK_UNSUPPORTED:
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


def fsync_folder(path: Path) -> None:
    """Make a rename in ``path`` durable; filesystems that cannot are let be."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # e.g. EINVAL on some network filesystems: the data itself is synced
    finally:
        os.close(descriptor)


def free_bytes(path: Path) -> int:
    """Given a path that may not exist yet, return the free bytes of the filesystem that
    would hold it (that of its nearest existing ancestor)."""
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return shutil.disk_usage(existing).free


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


def crc32_of(path: Path, chunk_size: int = 1024 * 1024) -> str:
    """Given a file, return its CRC32 as 8 lowercase hex digits; raise ItemError if it
    cannot be read."""
    checksum = 0
    try:
        with open(path, "rb") as stream:
            while chunk := stream.read(chunk_size):
                checksum = crc32(chunk, checksum)
    except OSError as error:
        raise ItemError(
            f"cannot read {path} to verify it: {error.strerror}",
            "Check the file's permissions.",
        ) from error
    return f"{checksum:08x}"


def local_size(path: Path) -> int | None:
    """Given a path, return the size of the regular file there, or None if there is none."""
    try:
        status = path.lstat()  # a symlink is never "the file": nothing is read through it
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        raise ItemError(
            f"cannot look at {path}: {error.strerror}",
            "Check the permissions of the download folder.",
        ) from error
    return status.st_size if stat.S_ISREG(status.st_mode) else None


def write_private_file(path: Path, text: str) -> None:
    """Given a path and text, make ``path`` hold exactly that text, readable by its owner only.

    Atomic: the text goes to a new 0600 file beside it, synced, then renamed over it, so
    a reader sees the old text or the new, never half, and never a moment of looser mode.
    Missing folders are made (0700). Raise ConfigError if it cannot be written.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
        fsync_folder(path.parent)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise ConfigError(
            f"cannot write {path}: {error.strerror or error}",
            f"check that this user may create files in {path.parent}",
        ) from None
