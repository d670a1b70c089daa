"""Our exception family and the documented exit codes.

Every error we raise carries a message and a hint. Adapters translate the
exceptions of requests, SQLAlchemy and the OS into these; nothing above an
adapter sees a foreign exception. Three families decide what happens next:

- ``TransientError``: the world may be better in a moment (network, 5xx, 429);
  retried with backoff by the adapter, and if it persists the item is left
  for the next run.
- ``ItemError``: this item cannot be done now (corrupt torrent, CRC mismatch,
  no room); recorded, and the run goes on with the next item.
- ``FatalError``: nothing more can be done in this run (revoked token,
  broken config, journal unusable, a safety limit); the run stops.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from enum import IntEnum


class ExitCode(IntEnum):
    """The process exit codes; the README's table is generated from the same values."""

    OK = 0
    ITEMS_FAILED = 1
    USAGE = 2
    BUG = 3
    REMOTE_FATAL = 4
    SAFETY_REFUSED = 5
    ALREADY_RUNNING = 6
    JOURNAL = 7
    #: put.io (or the network to it) stayed unreachable through every retry
    UNREACHABLE = 8
    WINDOW_CLOSED = 10
    #: done, but something only a person can solve was found (``core.attention``)
    NEEDS_ATTENTION = 11
    INTERRUPTED = 130


class MirrorError(Exception):
    """Base of every error we raise: a message for the user and a hint what to do."""

    exit_code: ExitCode = ExitCode.ITEMS_FAILED

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class TransientError(MirrorError):
    """The remote or the network failed in a way that may heal by itself.

    Per item, the executor records it and goes on; one that ends the run (put.io
    unreachable while observing) is exit 8, told apart from items that failed."""

    exit_code = ExitCode.UNREACHABLE

    def __init__(self, message: str, hint: str = "", retry_after: float | None = None) -> None:
        super().__init__(message, hint)
        self.retry_after = retry_after


class NodesDownError(TransientError):
    """A download got no byte for ``max_outage`` seconds while the others in flight got
    none either: put.io's download nodes are down for everyone, not failing one file. The
    run stops, and no file is counted as failing (``fetch.pulse``)."""


class ItemError(MirrorError):
    """One item cannot be processed now; record it and go on with the next."""


class NodesSilentError(ItemError):
    """A download got no byte for ``max_outage`` seconds while the others in flight got
    none either, and none begun since has failed so: put.io's nodes may be down, or these
    files' nodes broken. The file fails this run; it is counted as failing once
    ``proven()`` says bytes came after it gave up (``fetch.pulse``)."""

    def __init__(self, message: str, hint: str, *, proven: Callable[[], bool]) -> None:
        super().__init__(message, hint)
        self.proven = proven


class RemoteError(ItemError):
    """put.io answered with an error that concerns one request (4xx other than 401)."""

    def __init__(self, message: str, hint: str = "", status: int = 0, error_type: str = "") -> None:
        super().__init__(message, hint)
        self.status = status
        self.error_type = error_type


class NotFoundError(RemoteError):
    """The file or transfer does not exist (any more) on put.io."""


class InTheWay(ItemError):
    """Files not placed (or adopted) for a local file not ours at their paths: one that
    appeared after the plan saw the way free, or one of put.io's size and other bytes
    (the plan notes one it sees). ``paths``: the files' relative paths, for the executor
    to note each as the plan would have. Only a person can move it: told as what needs
    one (exit 11), not as a failure."""

    def __init__(self, message: str, hint: str, paths: tuple[str, ...]) -> None:
        super().__init__(message, hint)
        self.paths = paths


class CorruptTorrentError(ItemError):
    """A blackhole file is not a usable .torrent or .magnet."""


class TorrentRefusedError(CorruptTorrentError):
    """put.io refused a torrent or magnet itself (HTTP 400): it will refuse it again,
    so it is never retried; ``reason`` is put.io's own words."""

    def __init__(self, message: str, hint: str = "", reason: str = "") -> None:
        super().__init__(message, hint)
        self.reason = reason


class BlackholeChangedError(ItemError):
    """A blackhole file changed, vanished or became a link between reading and submitting."""


class ChecksumMismatchError(ItemError):
    """A downloaded file's size or CRC32 differs from what put.io says. ``got``: the size
    and CRC32 of the bytes fetched, where known (the same twice: put.io's copy is damaged)."""

    def __init__(self, message: str, hint: str = "", got: tuple[int, str] | None = None) -> None:
        super().__init__(message, hint)
        self.got = got


class NotDurableError(ItemError):
    """A file or folder was moved, but the disk failed to make the move last (fsync of its
    folder: EIO): nothing may take it as placed or verified, so nothing on put.io is
    deleted on its word."""


class NoSpaceError(ItemError):
    """The target filesystem has not enough room for the file."""


class ReadOnlyDiskError(ItemError):
    """A filesystem the run writes to refuses every change (EROFS): ext4 remounts itself
    read-only after a disk error, a NAS share loses its disk. The disk's trouble, not the
    file's: no file is counted as failing, and the run starts no more downloads."""


def read_only_disk(error: BaseException) -> ReadOnlyDiskError | None:
    """Given why an action failed, return it as ReadOnlyDiskError if a read-only
    filesystem (EROFS) is among its causes, else None."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ReadOnlyDiskError):
            return seen
        if isinstance(seen, OSError) and seen.errno == errno.EROFS:
            where = f" ({seen.filename})" if isinstance(seen.filename, str) else ""
            return ReadOnlyDiskError(
                f"the disk turned read-only: it refuses every change{where}",
                "the filesystem refuses all writes, as ext4 does once it remounts itself "
                "read-only after a disk error: check `dmesg` and the disk, then mount it "
                "read-write again; the next run goes on where this one stopped (no file is "
                "counted as failing)",
            )
        seen = seen.__cause__ or seen.__context__
    return None


class UnsafePathError(ItemError):
    """A path would leave the folder it must stay in."""


class LinkLeadsOutError(InTheWay, UnsafePathError):
    """A path would leave its folder through a symbolic link a person made in it (a
    folder or a file of another disk linked in): nothing is written through it, and
    only a person can replace it, as a file in the way."""


class FatalError(MirrorError):
    """Nothing more can be done in this run."""

    exit_code = ExitCode.BUG


class ConfigError(FatalError):
    """The configuration is unusable; ``problems`` lists every problem found."""

    exit_code = ExitCode.USAGE

    def __init__(self, message: str, hint: str = "", problems: tuple[str, ...] = ()) -> None:
        super().__init__(message, hint)
        self.problems = problems


class BlackholeMissingError(ConfigError):
    """The blackhole folder is not there for a run that only submits it (``torrents
    add``): exit 2. The watcher's pass takes it for a folder gone a while (a share
    unmounted), not for a config to fix: it waits for the folder to be back."""


class AuthError(FatalError):
    """put.io refused the token (401): never retried."""

    exit_code = ExitCode.REMOTE_FATAL


class SafetyLimitError(FatalError):
    """The plan would change more than the configured limits allow."""

    exit_code = ExitCode.SAFETY_REFUSED


class AlreadyRunningError(FatalError):
    """Another run holds the lock of this journal."""

    exit_code = ExitCode.ALREADY_RUNNING


class JournalError(FatalError):
    """The journal database cannot be opened, is locked too long, or is corrupt."""

    exit_code = ExitCode.JOURNAL
