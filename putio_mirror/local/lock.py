"""One run at a time per journal: the run lock."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import socket
import struct
from pathlib import Path
from types import TracebackType

from putio_mirror.core.errors import AlreadyRunningError, JournalError

#: how often a lock file deleted (or replaced) between its opening and its locking is
#: opened again before giving up
_ATTEMPTS = 5


class RunLock:
    """One run at a time per journal: an exclusive ``flock`` on a lock file, and a name
    only a live holder can have.

    The lock is the kernel's, so it vanishes with the process that held it; the
    file stays (removing it would let two runs lock two different files). The
    holder's pid is written into it for the error message of the next comer.

    A person may still delete the file, taking it for a stale one: the holder then
    locks a file that is gone, and the next comer would lock a new one and take the
    running run for a dead one (its claims freed, its runs ended). So the holder also
    binds an abstract Unix socket named after the lock file's folder (its device and
    inode, whatever path names it) and name: nothing on disk to delete, gone with the
    process, and the next comer that cannot bind it is refused (Linux; elsewhere, and
    across network namespaces, the file is the lock alone).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._descriptor: int | None = None
        self._guard: socket.socket | None = None

    def __enter__(self) -> RunLock:
        descriptor = self._locked()
        try:
            self._guard = _bind_guard(self.path)
        except _HeldElsewhere as held:
            os.close(descriptor)
            raise self._already_running(held.pid, deleted=True) from None
        try:
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # only the next comer's message names us: a full disk must not stop us here
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
        if self._guard is not None:
            self._guard.close()
            self._guard = None

    def _locked(self) -> int:
        """Return the lock file, locked: the file its path names once locked (one deleted
        or replaced meanwhile is a lock nobody else would see, so it is opened again)."""
        for _ in range(_ATTEMPTS):
            descriptor = self._open()
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_pid(descriptor)
                os.close(descriptor)
                raise self._already_running(holder) from None
            if _names(self.path, descriptor):
                return descriptor
            os.close(descriptor)
        raise JournalError(
            f"the run lock {self.path} keeps being deleted or replaced",
            "Something removes files in that folder; stop it, then run again.",
        )

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise JournalError(
                f"cannot open the run lock {self.path}: {error.strerror}",
                "The lock file sits beside the journal; check that folder is writable.",
            ) from error

    def _already_running(self, holder: str, *, deleted: bool = False) -> AlreadyRunningError:
        who = f" (pid {holder})" if holder else ""
        gone = (
            " Its lock file was deleted while it ran: never delete it, it is not stale."
            if deleted
            else ""
        )
        return AlreadyRunningError(
            "another putio-mirror run is using this journal",
            f"Another run{who} holds the lock {self.path}. Wait for it to finish, or stop it; "
            f"the lock is released as soon as that process ends.{gone}",
        )


class _HeldElsewhere(Exception):
    """A live process holds the guard of this lock (``pid``: "" if it cannot be told)."""

    def __init__(self, pid: str) -> None:
        super().__init__(pid)
        self.pid = pid


def _bind_guard(path: Path) -> socket.socket | None:
    """Given the lock file (locked), return the abstract socket only its holder may bind,
    listening so that the next comer can ask its pid; None where there is no such thing.
    Raise _HeldElsewhere if a live process has it."""
    if not hasattr(socket, "AF_UNIX") or not hasattr(socket, "SO_PEERCRED"):
        return None  # not Linux: the file is the lock alone
    try:
        folder = path.parent.stat()
    except OSError:
        return None
    key = f"{folder.st_dev}:{folder.st_ino}:{path.name}".encode()
    name = b"\0putio-mirror-run-lock/" + hashlib.sha256(key).hexdigest()[:32].encode()
    guard = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        guard.bind(name)
        guard.listen(1)
    except OSError as error:
        guard.close()
        if error.errno == errno.EADDRINUSE:
            raise _HeldElsewhere(_guard_pid(name)) from None
        return None  # abstract names unsupported here: the file is the lock alone
    return guard


def _guard_pid(name: bytes) -> str:
    """Given a guard's name, return the pid of the process that holds it, or ""."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as asking:
            asking.settimeout(1.0)
            asking.connect(name)
            credentials = asking.getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
            )
    except OSError:
        return ""
    pid, _, _ = struct.unpack("3i", credentials)
    return str(pid) if pid > 0 else ""


def _names(path: Path, descriptor: int) -> bool:
    """Whether ``path`` names the file open as ``descriptor`` (not deleted or replaced)."""
    try:
        named = path.stat()
    except OSError:
        return False
    opened = os.fstat(descriptor)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _read_pid(descriptor: int) -> str:
    """Given the lock file, return the pid its holder wrote, or "" if none can be read."""
    try:
        text = os.pread(descriptor, 32, 0).decode("ascii", errors="replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""
