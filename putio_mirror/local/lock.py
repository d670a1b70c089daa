"""One run at a time per journal: the run lock."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from putio_mirror.core.errors import AlreadyRunningError, JournalError


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
