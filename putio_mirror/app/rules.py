"""What the executor is given: how to behave around the window, the disk, concurrency and
other hosts (``Rules``), and the mutating part of the put.io client (``RemoteWriter``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from putio_mirror.core.pacing import Crowd, files_at_once
from putio_mirror.core.plan import WINDOWED_KINDS, Download
from putio_mirror.core.state import Transfer
from putio_mirror.core.window import Schedule
from putio_mirror.local.space import FREE_SPACE_MARGIN

GROOMING_KINDS = frozenset({"cancel", "clean", "delete"})


class RemoteWriter(Protocol):
    """The mutating part of the put.io client."""

    def upload_torrent(
        self, filename: str, data: bytes, parent_id: int | None = None
    ) -> Transfer: ...

    def add_transfer(self, url: str, save_parent_id: int | None = None) -> Transfer: ...

    def cancel_transfers(self, ids: list[int]) -> None: ...

    def clean_transfers(self, ids: list[int] | None = None) -> tuple[int, ...]: ...

    def delete_files(self, ids: list[int]) -> None: ...

    def folder_named(self, parent_id: int, name: str) -> int: ...


@dataclass(frozen=True, slots=True)
class Rules:
    """How the executor behaves around the window, the disk and concurrency."""

    schedule: Schedule = field(default_factory=Schedule)
    groom_outside_window: bool = True
    save_parent_id: int | None = None
    #: the mirrored put.io folder, where RPC categories get their folders
    remote_root_id: int = 0
    free_space_margin: int = FREE_SPACE_MARGIN
    #: files downloaded at once; None: chosen from their sizes (``core.pacing``)
    parallel_files: int | None = 1
    #: who this run is, for claims when several hosts share one journal
    owner: str = "local"
    #: how long a claim holds without renewal (a host that dies frees its work after this)
    lease: timedelta = timedelta(minutes=10)

    def windowed(self, kind: str) -> bool:
        """Whether an action of this kind waits for the download window."""
        return kind in WINDOWED_KINDS or (kind in GROOMING_KINDS and not self.groom_outside_window)

    def crowd(self, batch: list[Download]) -> Crowd:
        """Given consecutive downloads, return how many to fetch at once: the config's
        number, else as many as put.io's distance calls for (``core/pacing.py``)."""
        if self.parallel_files is None:
            return Crowd(files_at_once([action.size - action.resume_from for action in batch]))
        fixed = min(self.parallel_files, len(batch))
        return Crowd(fixed, fewest=fixed)
