"""A real filesystem that fails reads on demand, for tests: a FUSE passthrough of a folder
whose reads of the files named in a control file fail with EIO, as a failing disk's
sectors or a NAS share that lost its server do. Root reads any file whatever its mode,
so an unreadable file needs a filesystem that says so.

``python -m tests.faulty_fs BACKING MOUNT_POINT CONTROL [SUBTYPE [cached]]`` serves it in
the foreground; ``faulty_mount`` starts it in a process of its own (the test's process
reads through it) and always unmounts it. A subtype names it as a FUSE daemon does its
own (``fuse.mergerfs`` in mountinfo); ``cached`` pages its files through the kernel's
cache, as mergerfs with ``cache.files`` on does, where a shared ``mmap`` works (a
SQLite journal's WAL); without it every read and write goes to the daemon
(``direct_io``), as mergerfs's default does, where no such ``mmap`` can be made.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mfusepy

from tests.mount_env import require_fuse, unmount

_STAT_KEYS = (
    "st_atime",
    "st_ctime",
    "st_gid",
    "st_mode",
    "st_mtime",
    "st_nlink",
    "st_size",
    "st_uid",
    "st_ino",
    "st_blocks",
)


#: a line of the control file that makes the whole filesystem refuse every change with
#: EROFS, as ext4 does once it remounts itself read-only after an error (errors=remount-ro)
READ_ONLY = "*read-only*"


class Faulty(mfusepy.Operations):  # type: ignore[misc]
    """Every call passed through to ``backing``; a read of a path listed in ``control``
    (one a line, as ``/folder/name``) fails with EIO, and every change fails with EROFS
    while ``READ_ONLY`` is listed."""

    def __init__(self, backing: str, control: str) -> None:
        self._backing = backing
        self._control = control

    def _full(self, path: str) -> str:
        return os.path.join(self._backing, path.lstrip("/"))

    def _failing(self, path: str) -> bool:
        try:
            with open(self._control, encoding="utf-8") as listed:
                return path in listed.read().splitlines()
        except FileNotFoundError:
            return False

    def _writable(self) -> None:
        if self._failing(READ_ONLY):
            raise mfusepy.FuseOSError(errno.EROFS)

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        found = os.lstat(self._full(path))
        return {key: getattr(found, key) for key in _STAT_KEYS}

    def access(self, path: str, amode: int) -> int:
        return 0

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *os.listdir(self._full(path))]

    def readlink(self, path: str) -> str:
        return os.readlink(self._full(path))

    def mknod(self, path: str, mode: int, dev: int) -> int:
        self._writable()
        os.mknod(self._full(path), mode, dev)
        return 0

    def mkdir(self, path: str, mode: int) -> int:
        self._writable()
        os.mkdir(self._full(path), mode)
        return 0

    def rmdir(self, path: str) -> int:
        self._writable()
        os.rmdir(self._full(path))
        return 0

    def unlink(self, path: str) -> int:
        self._writable()
        os.unlink(self._full(path))
        return 0

    def symlink(self, target: str, source: str) -> int:
        self._writable()
        os.symlink(source, self._full(target))
        return 0

    def link(self, target: str, source: str) -> int:
        self._writable()
        os.link(self._full(source), self._full(target))
        return 0

    def rename(self, old: str, new: str) -> int:
        self._writable()
        os.rename(self._full(old), self._full(new))
        return 0

    def chmod(self, path: str, mode: int) -> int:
        self._writable()
        os.chmod(self._full(path), mode)
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        self._writable()
        os.chown(self._full(path), uid, gid)
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        self._writable()
        os.utime(self._full(path), ns=times) if times else os.utime(self._full(path))
        return 0

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        self._writable()
        os.truncate(self._full(path), length)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        found = os.statvfs(self._full(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files")
        return {key: getattr(found, key) for key in (*keys, "f_frsize", "f_namemax")}

    def open(self, path: str, flags: int) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC):
            self._writable()
        return os.open(self._full(path), flags)

    def create(self, path: str, mode: int, flags: int) -> int:
        self._writable()
        return os.open(self._full(path), flags | os.O_CREAT, mode)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        if self._failing(path):
            raise mfusepy.FuseOSError(errno.EIO)
        return os.pread(fh, size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        self._writable()
        return os.pwrite(fh, data, offset)

    def flush(self, path: str, fh: int) -> int:
        return 0

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        self._writable()
        os.fsync(fh)
        return 0

    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        return 0

    def release(self, path: str, fh: int) -> int:
        os.close(fh)
        return 0


@contextmanager
def faulty_mount(
    backing: Path,
    mount_point: Path,
    control: Path,
    *,
    subtype: str = "",
    cached: bool = False,
) -> Iterator[Path]:
    """Serve ``backing`` at ``mount_point`` (made) until the block ends; a read of a path
    listed in ``control`` fails with EIO. ``subtype``: its type is ``fuse.<subtype>``
    (else ``fuse``); ``cached``: through the kernel's page cache. Skips where FUSE is
    missing."""
    args = [str(backing), str(mount_point), str(control), subtype, "cached" if cached else "direct"]
    with served("tests.faulty_fs", args, backing, mount_point):
        yield mount_point


@contextmanager
def served(module: str, args: list[str], backing: Path, mount_point: Path) -> Iterator[None]:
    """Run ``python -m module *args``, a FUSE filesystem of ``backing`` at ``mount_point``
    (both made), until the block ends, then unmount it. Skips where FUSE is missing."""
    require_fuse()
    backing.mkdir(parents=True, exist_ok=True)
    mount_point.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", module, *args]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not os.path.ismount(mount_point):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{module} did not mount: {_errors(process)}")
            time.sleep(0.05)
        yield
    finally:
        unmount(mount_point)
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=15)
        if process.stderr is not None:
            process.stderr.close()


def _errors(process: subprocess.Popen[bytes]) -> str:
    if process.poll() is None or process.stderr is None:
        return "still starting"
    return process.stderr.read().decode(errors="replace")


def main(argv: list[str]) -> None:
    backing, mount_point, control, *more = argv
    subtype, caching = (*more, "", "direct")[:2]
    named = {"subtype": subtype} if subtype else {}
    mfusepy.FUSE(
        Faulty(backing, control),
        mount_point,
        foreground=True,
        nothreads=True,
        # every read reaches ``read``: none is served from the page cache
        direct_io=caching != "cached",
        attr_timeout=0,
        entry_timeout=0,
        **named,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
