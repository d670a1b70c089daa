"""The mirror's local copies as the mount reads them: opened one name at a time beneath
their folder, never through a symlink; a placed one only while it is still the file the
mirror placed.

The journal keeps which file each placed copy was (``FileIdentity``: its inode number and
modification time, schema 6). A file at the copy's path with that identity is the copy:
read locally, for the cost of an ``fstat``. Any other file there, even of put.io's size,
is not known to be: a stranger's put in its place, the copy rewritten in place (a tag
editor), or the copy with another time (``touch``, Sonarr's "change file date" through
its hard link) or inode (a backup restored); and so is every copy placed before schema 6.
Reading its bytes at each open would cost a whole file's read, so such a copy is streamed
from put.io while one thread checks its CRC32 against put.io's, once: a copy of put.io's
bytes is read locally from then on (while it keeps the identity it was checked under),
any other never. What was checked is kept in memory only (the mount never writes the
journal): a mount started again checks again, on first open.

A file moved in that kept the copy's inode number and time, or rewritten in place with
its time set back, is taken for the copy: only reading it whole would tell.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from putio_mirror.core.state import FileIdentity
from putio_mirror.fetch.crc import crc32
from putio_mirror.local.files import identity_of

logger = logging.getLogger(__name__)

#: how much of a copy one read of its check takes
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Copy:
    """A verified copy the journal names: ``relative`` beneath ``base`` (the download
    folder or the staging folder: a link the user named as either is followed, none
    beneath), and the CRC32 its bytes were verified with. A ``placed`` one (in the
    download folder, where others put files too) is read only while it is the file
    placed: ``identity`` as journaled (None: not known)."""

    base: Path
    relative: str
    crc32: str | None
    placed: bool = False
    identity: FileIdentity | None = None

    @property
    def path(self) -> Path:
        return self.base / self.relative


@dataclass(frozen=True)
class _Verdict:
    """What a check found: the identity and CRC32 it was made under, and whether the
    file held those bytes."""

    identity: FileIdentity
    crc32: str
    ours: bool


@dataclass(frozen=True)
class _Asked:
    copy: Copy
    crc32: str
    identity: FileIdentity


class Checks:
    """Which placed copies whose identity is not the one journaled hold put.io's bytes:
    each checked once, on a thread of its own (started at the first), while it is
    streamed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._verdicts: dict[int, _Verdict] = {}
        #: by file id, in the order asked; a check's stays until it is done
        self._asked: dict[int, _Asked] = {}
        self._stopped = False
        self._thread: threading.Thread | None = None

    def ours(self, file_id: int, copy: Copy, crc32: str | None, found: os.stat_result) -> bool:
        """Given a placed copy, the CRC32 of put.io's bytes (None: listed by neither put.io
        nor the journal) and the ``fstat`` of the file opened at its path, say whether it
        may be read as put.io's file; if that is not known, have it checked."""
        identity = identity_of(found)
        if identity == copy.identity:
            return True
        if not crc32:
            return False  # nothing to check it against: never read as put.io's
        expected = crc32.lower()
        with self._lock:
            verdict = self._verdicts.get(file_id)
            if verdict is not None and (verdict.identity, verdict.crc32) == (identity, expected):
                return verdict.ours
            if file_id not in self._asked and not self._stopped:
                self._asked[file_id] = _Asked(copy, expected, identity)
                self._start()
                self._wake.notify()
        return False

    def stop(self) -> None:
        """Stop checking (a check under way ends at its next read)."""
        with self._lock:
            self._stopped = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=5)

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mount-checks", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._asked and not self._stopped:
                    self._wake.wait()
                if self._stopped:
                    return
                file_id, asked = next(iter(self._asked.items()))
            ours = self._check(file_id, asked)
            with self._lock:
                del self._asked[file_id]
                if ours is not None:
                    self._verdicts[file_id] = _Verdict(asked.identity, asked.crc32, ours)

    def _check(self, file_id: int, asked: _Asked) -> bool | None:
        """Read the copy whole: whether it holds the bytes of the CRC32 asked about; None
        if it could not be read, or is another file than the one asked about by now (it
        is asked about again at its next open)."""
        path = asked.copy.path
        try:
            descriptor = open_beneath(asked.copy.base, asked.copy.relative)
        except OSError as error:
            logger.debug("mount: could not open %s to check it (%s)", path, error)
            return None
        try:
            if identity_of(os.fstat(descriptor)) != asked.identity:
                return None
            value = self._crc32(descriptor)
            if value is None or identity_of(os.fstat(descriptor)) != asked.identity:
                return None  # stopped, or written to while it was read
        except OSError as error:
            logger.warning("mount: could not read %s to check it (%s)", path, error)
            return None
        finally:
            os.close(descriptor)
        if value != asked.crc32:
            logger.warning(
                "mount: %s is not put.io's file %d (its CRC32 is %s, put.io's %s): "
                "put.io's is streamed instead",
                path,
                file_id,
                value,
                asked.crc32,
            )
            return False
        logger.info("mount: %s is put.io's file %d (CRC32 checked): read locally", path, file_id)
        return True

    def _crc32(self, descriptor: int) -> str | None:
        """The CRC32 of an open file's bytes; None if stopped before the last."""
        value = 0
        while chunk := os.read(descriptor, _CHUNK):
            if self._stopped:
                return None
            value = crc32(chunk, value)
        return f"{value:08x}"


def is_copy_of(info: os.stat_result, size: int) -> bool:
    """Given a local file's ``lstat`` and put.io's size of a file, say whether it may be
    served as its bytes: a regular file of its size. Never a symlink: the mount does not
    follow one (it could lead anywhere; with allow_other, anyone reads what it leads to)."""
    return stat.S_ISREG(info.st_mode) and info.st_size == size


#: A folder beneath the base, and the file: never through a symlink. O_NONBLOCK: a FIFO
#: put there must not hang the open (a regular file's reads ignore it).
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC


def open_beneath(base: Path, relative: str) -> int:
    """Given a folder and a normal relative path, open the regular file there read-only,
    one name at a time; raise OSError if it is none, or if any name beneath ``base`` is a
    symlink (O_NOFOLLOW on the last name alone let a folder swapped for a link lead the
    read anywhere)."""
    *folders, name = relative.split("/")
    folder = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in folders:
            inner = os.open(part, _FOLDER, dir_fd=folder)
            os.close(folder)
            folder = inner
        # Only a regular file is opened: opening a device put there may do anything.
        if not stat.S_ISREG(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", name)
        return os.open(name, _FILE, dir_fd=folder)
    finally:
        os.close(folder)
