"""The part file on disk, as the engine promises it: opened safely, synced, verified.

The promise: the final CRC32 proves the bytes on disk. Bytes found in a part when a
fetch resumes are read back and checked (``measure`` for a sequential part, the
sidecar's per-segment CRC32s for a segmented one); bytes fetched
now are CRC'd from the buffer they were written from and count as kept only once a
sync covering them succeeded (``WriteBehind``). A failed sync fails the file: the
kernel reports a write-back error once, and a later fsync returns 0.

Part files and sidecars are opened with ``O_NOFOLLOW`` in a folder that is no symlink:
a symlink planted in staging is refused (``UnsafePathError``), never written through.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from putio_mirror.core.errors import ChecksumMismatchError, ItemError, NoSpaceError, UnsafePathError
from putio_mirror.fetch.crc import crc32
from putio_mirror.fetch.values import FileToFetch, expected_crc

logger = logging.getLogger(__name__)

_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
#: puts a file's written bytes on disk; raises OSError if the disk refuses
SyncFunction = Callable[[int], None]
#: bytes written between two background syncs: what a kill -9 or power cut may cost
SYNC_EVERY = 16 * 1024 * 1024
#: a part that got fewer new bytes is left in the page cache: dropping them would cost a
#: system call for each small file and spare the cache nothing worth it
DROP_FROM = 1024 * 1024


def sync_data(fd: int) -> None:
    """Given a descriptor, put the file's written bytes (and its length) on disk; raise
    OSError if the disk refuses."""
    if hasattr(os, "fdatasync"):  # not on macOS
        os.fdatasync(fd)
    else:
        os.fsync(fd)


# fsync(2) refusals of a folder that mean "this filesystem cannot sync a folder" (some
# network filesystems): the data itself was synced. Anything else (EIO: the disk failed to
# write it back) means the move may not last, and is raised.
FOLDER_SYNC_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})


def fsync_folder(path: Path) -> None:
    """Make a name made, renamed or removed in ``path`` durable; raise OSError if the disk
    could not. A folder that cannot be opened to sync (no read permission) or a filesystem
    that cannot sync folders is let be."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except PermissionError:
        return
    try:
        fsync_folder_descriptor(descriptor)
    finally:
        os.close(descriptor)


def fsync_folder_descriptor(descriptor: int) -> None:
    """Given a folder's open descriptor, make the renames in it durable; raise OSError if
    the disk could not (a filesystem that cannot sync folders is let be)."""
    try:
        os.fsync(descriptor)
    except OSError as error:
        if error.errno not in FOLDER_SYNC_UNSUPPORTED:
            raise


def make_folders(folder: Path, made: Callable[[Path], None] = lambda _: None) -> None:
    """Given a folder, make it and any missing parents (``made`` is told of each as it is
    made), each one's name made durable in the folder above it: a power cut that takes a
    folder's name takes all that was synced into it (a stopped fetch's part, a verified or
    placed file). Raise OSError if one cannot be made or the disk could not make it last."""
    missing: list[Path] = []
    while (status := lstat_or_none(folder)) is None:
        missing.append(folder)
        folder = folder.parent
    _make_name_durable(folder, status)
    for new in reversed(missing):
        new.mkdir(exist_ok=True)
        made(new)
        fsync_folder(new.parent)
        _DURABLE_NAMES.add(_identity(new, new.lstat()))


#: folders whose names this process made durable (or that are a filesystem's top), by
#: path and inode: a folder found already there may be one a killed run made and never
#: synced the name of
_DURABLE_NAMES: set[tuple[Path, int, int]] = set()


def _identity(folder: Path, status: os.stat_result) -> tuple[Path, int, int]:
    return folder, status.st_dev, status.st_ino


def _make_name_durable(folder: Path, status: os.stat_result) -> None:
    """Given a folder found there, sync the folders above it, once a process, up to the
    top of its filesystem: a run killed between a ``mkdir`` and the sync of the folder
    above it leaves a name a power cut would take with all synced into it since."""
    while (identity := _identity(folder, status)) not in _DURABLE_NAMES:
        top = folder.parent == folder or os.path.ismount(folder)
        if not top:
            fsync_folder(folder.parent)  # (raises, not remembered, if the disk could not)
        _DURABLE_NAMES.add(identity)
        if top:
            return
        folder = folder.parent
        status = os.lstat(folder)


def check_whole(item: FileToFetch, length: int, crc: int) -> None:
    """Given a part's length and the CRC32 of its bytes, return if they are put.io's file
    (on the size alone, with a warning, if put.io lists no CRC32); raise
    ChecksumMismatchError if not."""
    actual, expected = f"{crc:08x}", expected_crc(item)
    if length == item.size and expected is None:
        logger.warning(
            "put.io lists no CRC32 for file %d: %s verified on its size alone",
            item.file_id,
            item.part_path.name,
        )
        return
    if length == item.size and expected == actual:
        return
    raise ChecksumMismatchError(
        f"put.io file {item.file_id}: expected {item.size} bytes with CRC32 {expected}, "
        f"got {length} bytes with CRC32 {actual}",
        "the bytes fetched are not put.io's file: it is fetched again from zero",
        got=(length, actual),
    )


def refuse_symlink(path: Path) -> None:
    """Given a staging path, raise UnsafePathError if it is a symlink."""
    if path.is_symlink():
        raise _symlink_refused(path)


def open_nofollow(path: Path, flags: int, mode: int = 0o644) -> int:
    """Given a part or sidecar path, return a descriptor opened with ``O_NOFOLLOW``;
    raise UnsafePathError if the path is a symlink, OSError for any other trouble."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW, mode)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise _symlink_refused(path) from exc


def _symlink_refused(path: Path) -> UnsafePathError:
    return UnsafePathError(
        f"{path} is a symlink; putio-mirror does not write through one",
        f"staging holds only putio-mirror's own files: remove {path}, the next run "
        "downloads the file again",
    )


def prepare(item: FileToFetch, *, look_for_part: bool = True) -> bool:
    """Given a file to fetch, make its folder; empty its part if it is longer than the
    file; return whether the part exists; raise UnsafePathError if the folder or the part
    is a symlink. ``look_for_part=False``: only the folder (the part is said absent).

    One ``lstat`` each for the folder and the part in the usual case (the folder is there,
    the part is not): many small files pay for every call that releases the GIL."""
    _make_folder(item.part_path.parent)
    if not look_for_part:
        return False
    status = lstat_or_none(item.part_path)
    if status is None:
        return False
    if stat.S_ISLNK(status.st_mode):
        raise _symlink_refused(item.part_path)
    if status.st_size > item.size:
        fd = open_nofollow(item.part_path, os.O_WRONLY)
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)
    return True


def _make_folder(folder: Path) -> None:
    """Given a part's folder, make it unless it is there; raise UnsafePathError if it is a
    symlink (OSError if something else is in the way)."""
    status = lstat_or_none(folder)
    if status is not None and stat.S_ISDIR(status.st_mode):
        return
    if status is None:
        try:
            make_folders(folder)
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            raise disk_error(folder, exc) from exc  # made, or not, the disk failed it
    elif not stat.S_ISLNK(status.st_mode):
        folder.mkdir(parents=True, exist_ok=True)  # something else is in the way: raises
    refuse_symlink(folder)


class PartFolders:
    """The folders parts are made in, each opened once (made if need be, a symlink
    refused) and kept open: a part is made relative to the folder itself (``openat``), so
    never through a symlink planted since, and with no ``lstat`` of its folder a file (each
    system call costs a small file a GIL handoff: issue 14). One fetcher's, one thread's."""

    def __init__(self) -> None:
        self._open: dict[Path, int] = {}

    def create(self, part: Path, flags: int) -> int:
        """Given a part path and ``os.open`` flags, open the part in its folder; raise
        UnsafePathError if the folder is a symlink, OSError as ``os.open`` does."""
        folder = part.parent
        descriptor = self._open.get(folder)
        if descriptor is None:
            descriptor = self._opened(folder)
        try:
            return os.open(part.name, flags, 0o644, dir_fd=descriptor)
        except FileNotFoundError:  # the folder was removed since: made and opened again
            del self._open[folder]
            os.close(descriptor)
            return os.open(part.name, flags, 0o644, dir_fd=self._opened(folder))

    def new_part(self, part: Path, flags: int = os.O_RDWR) -> int | None:
        """Given a part path, return a descriptor of a new, empty part there (``flags`` and
        ``O_CREAT | O_EXCL | O_NOFOLLOW``); None if anything is there already (a part to
        resume, a symlink to refuse: the usual path's cases, ``prepare``). Raise
        NoSpaceError if the disk is full, UnsafePathError if the folder is a symlink."""
        with no_space_is_item_error(part):
            try:
                return self.create(part, flags | _NEW)
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ELOOP):
                    return None
                raise

    def sync_folder(self, part: Path) -> None:
        """Given a part made here, make its name durable; raise ItemError (NoSpaceError)
        if the disk could not."""
        try:
            fsync_folder_descriptor(self._open[part.parent])
        except OSError as exc:
            raise disk_error(part, exc) from exc

    def close(self) -> None:
        opened, self._open = self._open, {}
        for descriptor in opened.values():
            os.close(descriptor)

    def _opened(self, folder: Path) -> int:
        _make_folder(folder)
        descriptor = self._open[folder] = open_folder(folder)
        return descriptor


def open_folder(folder: Path, within: int | None = None) -> int:
    """Given a folder (relative to the folder open as ``within``, if given), return a
    descriptor of it, kept for ``openat``-style calls; raise UnsafePathError if it is a
    symlink, OSError for any other trouble."""
    try:
        return os.open(folder, _FOLDER, dir_fd=within)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        raise _symlink_refused(folder) from exc


_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_NEW = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def lstat_or_none(path: Path) -> os.stat_result | None:
    """Given a path, return its ``lstat``; None if nothing is there."""
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def measure(path: Path, chunk_size: int = 1024 * 1024) -> tuple[int, int]:
    """Given a part file, return its length and the CRC32 of its bytes as read from it
    (0, 0 if absent); raise UnsafePathError if it is a symlink."""
    try:
        fd = open_nofollow(path, os.O_RDONLY)
    except FileNotFoundError:
        return 0, 0
    length, crc = 0, 0
    with os.fdopen(fd, "rb") as existing:
        while block := existing.read(chunk_size):
            length += len(block)
            crc = crc32(block, crc)
    return length, crc


def size_of(path: Path) -> int | None:
    """Given a path, return the length of its file, not following a symlink (None if
    there is none)."""
    try:
        return path.lstat().st_size
    except FileNotFoundError:
        return None


@contextmanager
def no_space_is_item_error(path: Path) -> Iterator[None]:
    """Within this block, turn a full disk or quota into NoSpaceError naming the folder."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _NO_SPACE:
            raise
        raise disk_error(path, exc) from exc


def pwrite_all(path: Path, fd: int, view: memoryview, offset: int) -> None:
    """Given a part's descriptor, write all of ``view`` at ``offset``; raise NoSpaceError
    if the disk is full."""
    with no_space_is_item_error(path):
        while view:
            written = os.pwrite(fd, view, offset)
            view, offset = view[written:], offset + written


def disk_error(path: Path, exc: OSError) -> ItemError:
    """Given a write or sync of ``path`` the disk refused, return the error that fails
    the file: NoSpaceError for a full disk or quota, else an ItemError (an I/O error)."""
    if exc.errno in _NO_SPACE:
        return NoSpaceError(
            f"no room left to write {path.name}",
            f"free some space in {path.parent} (or raise the quota); the download resumes",
        )
    return ItemError(
        f"the disk failed to store {path} ({exc.strerror or exc})",
        "check the disk (dmesg, SMART); the next run fetches again whatever was not "
        "on disk for sure",
    )


def _nothing_to_promote() -> Callable[[], None]:
    return lambda: None


class WriteBehind:
    """Put written bytes on disk early, on a helper thread, and then out of the page cache.

    Without it a large download sits in the page cache until the sync before
    placement, which then writes everything at once (half a second per GiB here).
    Every ``every`` bytes ``sync`` (``fdatasync``) runs in the background, overlapping
    the disk with the network, so ``finish`` has little left to do. Bytes on disk are
    dropped from the page cache (``POSIX_FADV_DONTNEED``): a 50 GB download does not
    push out what the machine's other services keep cached, and the kernel recycles a
    few pages instead of finding new ones (2 GiB download here: system time 1.9 s →
    1.45 s). It never blocks the writer.

    ``on_sync`` is called as each sync starts, and what it returns once that sync
    succeeded: so a caller records as safe only progress made before a sync began.
    The first sync to succeed also syncs the part's folder: synced bytes under a name a
    power cut may take are no progress (the next window would start from byte 0).
    A failed sync is raised by the next ``wrote`` and by ``finish``, never dropped:
    Linux reports a write-back error once, and a later fsync returns 0.
    """

    def __init__(
        self,
        fd: int,
        path: Path,
        *,
        every: int = SYNC_EVERY,
        sync: SyncFunction = sync_data,
        on_sync: Callable[[], Callable[[], None]] = _nothing_to_promote,
    ) -> None:
        self._fd = fd
        self._path = path
        self._every = every
        self._sync = sync
        self._on_sync = on_sync
        self._pending = 0
        self._written = 0
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._failure: BaseException | None = None
        self._named = False  # whether the part's name is durable (its folder synced)

    def wrote(self, amount: int) -> None:
        """Count bytes just written; raise the error of a failed background sync."""
        with self._lock:
            if self._failure is not None:
                raise self._failure
            self._pending += amount
            self._written += amount
            if self._pending < self._every or (self._thread and self._thread.is_alive()):
                return
            self._pending = 0
            self._thread = threading.Thread(target=self._flush, daemon=True)
            self._thread.start()

    def _flush(self) -> None:
        try:
            self._sync_and_promote()
        except BaseException as error:  # kept for the writer: it fails the file
            with self._lock:
                self._failure = error
            return
        with contextlib.suppress(OSError):  # only advice: the bytes are safe already
            drop_cached(self._fd)

    def _sync_and_promote(self) -> None:
        promote = self._on_sync()  # before the sync: it covers only bytes written by now
        try:
            self._sync(self._fd)
            if not self._named:
                fsync_folder(self._path.parent)
                self._named = True
        except OSError as exc:
            raise disk_error(self._path, exc) from exc
        promote()

    def join(self) -> None:
        """Wait for a flush under way; call before closing the file descriptor."""
        thread = self._thread
        if thread is not None:
            thread.join()

    def finish(self) -> None:
        """Put every written byte on disk and drop it from the page cache (if it got
        ``DROP_FROM`` new bytes or more); raise NoSpaceError or ItemError if the disk
        refused, now or in a background sync."""
        self.join()
        if self._failure is not None:
            raise self._failure
        self._sync_and_promote()
        if self._written >= DROP_FROM:
            with contextlib.suppress(OSError):
                drop_cached(self._fd)


def drop_cached(fd: int) -> None:
    """Given a file's descriptor, advise the kernel to drop its clean pages from the cache."""
    if hasattr(os, "posix_fadvise"):  # not on macOS
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
