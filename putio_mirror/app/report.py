"""What a run did with its plan: the executor's answer, and the source of the exit code."""

from __future__ import annotations

from dataclasses import dataclass, field

from putio_mirror.core.errors import (
    ExitCode,
    InTheWay,
    NodesDownError,
    NodesSilentError,
    NoSpaceError,
    ReadOnlyDiskError,
    TransientError,
)
from putio_mirror.core.plan import Action, Download


@dataclass(frozen=True, slots=True)
class Failure:
    """One action that failed: which, on what, why, and what the user can do."""

    key: str
    target: str
    message: str
    hint: str = ""


@dataclass
class RunReport:
    """What happened to the plan: the executor's answer, and the source of the exit code."""

    done: list[str] = field(default_factory=list)
    #: (kind, target) of each action done, in the order they were, for the run's output
    done_actions: list[tuple[str, str]] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    #: files kept from their place by a local file not ours: needs a person, no failure
    in_the_way: list[Failure] = field(default_factory=list)
    #: downloads refused for room on the disk: the disk's trouble, told once for them all
    no_room: list[Failure] = field(default_factory=list)
    #: actions a read-only disk refused (the first found it): told once, none counted as
    #: failing, and no download starts after it
    disk_refused: list[Failure] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    deferred: int = 0
    #: actions another host sharing the journal holds or has done
    elsewhere: int = 0
    window_closed: bool = False
    interrupted: bool = False
    aborted: str | None = None
    #: downloads that gave up amid silence, until the run tells their fate (``settle``)
    suspects: list[Failure] = field(default_factory=list)
    #: downloads that gave up in an outage of every node (the first found it; suspects
    #: join at ``settle``): none is counted as failing
    silenced: list[Failure] = field(default_factory=list)
    bytes_downloaded: int = 0
    #: files downloaded and verified by this run, their sizes, and the part of
    #: ``bytes_downloaded`` they took (the rest is in staging, to be resumed)
    verified_files: int = 0
    verified_bytes: int = 0
    verified_fetched: int = 0
    #: files this run verified that a local file in the way keeps in staging, and the part
    #: of ``bytes_downloaded`` they took
    waiting_files: int = 0
    waiting_fetched: int = 0

    @property
    def bytes_in_staging(self) -> int:
        """Bytes this run fetched into files it did not finish (a later run resumes them)."""
        return max(0, self.bytes_downloaded - self.verified_fetched - self.waiting_fetched)

    @property
    def exit_code(self) -> ExitCode:
        if self.failed or self.no_room or self.aborted or self.downloads_stopped:
            return ExitCode.ITEMS_FAILED
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if self.window_closed:
            return ExitCode.WINDOW_CLOSED
        if self.in_the_way:  # only a person can move it: the run did its part
            return ExitCode.NEEDS_ATTENTION
        return ExitCode.OK

    @property
    def downloads_stopped(self) -> str | None:
        """Why downloads stopped while the other steps went on: put.io's nodes down, or a
        disk turned read-only."""
        stopped = self.silenced or self.disk_refused
        return stopped[0].message if stopped else None

    def failures_for(self, error: Exception) -> list[Failure]:
        """Given why an action failed, return the list it goes in: a full disk, a disk
        turned read-only and an outage of the nodes are each told once for all their files."""
        if isinstance(error, NoSpaceError):
            return self.no_room
        if isinstance(error, ReadOnlyDiskError):
            return self.disk_refused
        if isinstance(error, NodesDownError):
            return self.silenced
        if isinstance(error, NodesSilentError):
            return self.suspects
        if isinstance(error, InTheWay):
            return self.in_the_way
        return self.failed

    def add_done(self, action: Action) -> None:
        """Given an action done (the journal holds it), count it and its verified bytes."""
        self.done.append(action.key)
        self.done_actions.append((action.kind, action.target))
        if isinstance(action, Download):
            self.verified_files += 1
            self.verified_bytes += action.size
            self.verified_fetched += action.size - action.resume_from

    def add_waiting(self, action: Download) -> None:
        """Given a download verified but kept from its place (a local file in the way)."""
        self.waiting_files += 1
        self.waiting_fetched += action.size - action.resume_from

    def add_failure(self, failure: Failure, error: Exception) -> None:
        """Given a failure and its error, keep it where it is told (``failures_for``); a
        transient outage (not put.io's nodes down, which stop downloads only) ends the run."""
        self.failures_for(error).append(failure)
        if isinstance(error, TransientError) and not isinstance(error, NodesDownError):
            self.aborted = failure.message

    def settle(self, proven: set[str]) -> None:
        """Given the keys of suspects that failed on their own, count those as failed; the
        others gave up in the outage that stopped the downloads, if one did (else nothing
        tells: they failed this run, uncounted in the journal)."""
        for failure in self.suspects:
            outage = bool(self.silenced) and failure.key not in proven
            (self.silenced if outage else self.failed).append(failure)
        self.suspects = []

    def summary(self) -> str:
        failed = len(self.failed) + len(self.suspects)
        parts = [f"{len(self.done)} done", f"{failed} failed"]
        if self.in_the_way:
            parts.append(f"{len(self.in_the_way)} kept out by a local file in the way")
        if self.no_room:
            parts.append(f"{len(self.no_room)} waiting for room on the disk")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        if self.deferred:
            parts.append(f"{self.deferred} deferred to the next window")
        if self.elsewhere:
            parts.append(f"{self.elsewhere} left to other hosts")
        if self.window_closed:
            parts.append("download window closed")
        if self.interrupted:
            parts.append("stopped on request")
        if self.downloads_stopped:
            parts.append(f"downloads stopped: {self.downloads_stopped}")
        if self.aborted:
            parts.append(f"aborted: {self.aborted}")
        return ", ".join(parts)
