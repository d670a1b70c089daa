"""What is on disk for one file: its size, the bytes it really holds, its CRC32.

An ``OSError`` met on the way becomes an ``ItemError`` with a hint.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from putio_mirror.core.errors import ItemError
from putio_mirror.core.state import FileIdentity
from putio_mirror.fetch.crc import crc32


def local_size(path: Path) -> int | None:
    """Given a path, return the size of the regular file there, or None if there is none."""
    try:
        status = path.lstat()  # a symlink is never "the file": nothing is read through it
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        if error.errno == errno.ENAMETOOLONG:
            return None  # a path the kernel refuses whole holds no file
        raise ItemError(
            f"cannot look at {path}: {error.strerror}",
            "Check the permissions of the download folder.",
        ) from error
    return status.st_size if stat.S_ISREG(status.st_mode) else None


def identity_at(path: Path) -> FileIdentity | None:
    """Given where a file was placed, return which file is there (``FileIdentity``), or
    None if no regular file is, or it cannot be looked at (then it is not known)."""
    try:
        found = os.lstat(path)
    except OSError:
        return None
    return identity_of(found) if stat.S_ISREG(found.st_mode) else None


def identity_of(info: os.stat_result) -> FileIdentity:
    """Given a file's ``stat``, return which file it is."""
    return FileIdentity.of(info.st_ino, info.st_mtime_ns)


def allocated_bytes(path: Path) -> int:
    """Given a file, return the bytes really stored in it (a sparse part counts what is written)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return 0
    return min(info.st_size, info.st_blocks * 512)


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


def same_bytes(one: Path, two: Path, chunk_size: int = 1024 * 1024) -> bool:
    """Given two files, say whether they hold the very same bytes (False if one cannot be
    read)."""
    try:
        with open(one, "rb") as first, open(two, "rb") as second:
            while True:
                chunk = first.read(chunk_size)
                if chunk != second.read(chunk_size):
                    return False
                if not chunk:
                    return True
    except OSError:
        return False
