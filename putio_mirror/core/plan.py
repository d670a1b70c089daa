"""Actions as values, and the Plan that orders them.

An action says what to do, never how. Each has a stable ``key`` (used by the
journal and for de-duplication), a ``kind`` (what sort of action it is: a
command such as ``transfers groom`` runs only some kinds), and a ``why`` for humans.
``requires`` names the keys that must succeed first in the same run; the
executor skips an action whose requirements did not.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import takewhile
from typing import ClassVar, Literal

from putio_mirror.core.state import DownloadRecord, StagedKind

ActionKind = Literal[
    "submit",
    "record",
    "reject",
    "archive",
    "cancel",
    "clean",
    "download",
    "adopt",
    "place",
    "delete",
    "tidy",
]
#: The kinds that use bandwidth, so wait for the download window: a complete item is
#: placed, and staging tidied, even after the window closed.
WINDOWED_KINDS: frozenset[ActionKind] = frozenset({"download", "adopt"})


@dataclass(frozen=True, slots=True)
class SubmitTorrent:
    """Upload a blackhole ``.torrent`` to put.io, then move it to ``.submitted/``.
    ``replaces``: the transfer of its magnet (ours, submitted in an earlier pass), which
    put.io has not started, cancelled first, as for ``SubmitDesired``; ``replaced_uri``
    its magnet, added again if put.io refuses the .torrent."""

    kind: ClassVar[ActionKind] = "submit"
    path: str
    name: str
    info_hash: str
    why: str = "new torrent in the blackhole"
    requires: tuple[str, ...] = ()
    replaces: int | None = None
    replaced_uri: str = ""

    @property
    def key(self) -> str:
        return f"upload:{self.info_hash}"

    @property
    def target(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class SubmitMagnet:
    """Add a blackhole ``.magnet``'s URI as a transfer, then move the file to ``.submitted/``."""

    kind: ClassVar[ActionKind] = "submit"
    path: str
    name: str
    info_hash: str
    uri: str
    why: str = "new magnet in the blackhole"
    requires: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"magnet:{self.info_hash}"

    @property
    def target(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class SubmitDesired:
    """Submit a torrent an RPC client asked for (its bytes or magnet are in the journal),
    into its category's folder on put.io; the key is the blackhole's, so once by info-hash.
    ``replaces``: the transfer of its magnet, which put.io has not started, cancelled first
    (its .torrent came later), and ``replaced_uri`` its magnet, added again if put.io
    refuses the .torrent. ``dropped``: a .torrent of it in the blackhole (path, name)
    that the desire, a magnet, takes first: journaled as its torrent, the file filed away
    as submitted; the desire then submits that."""

    kind: ClassVar[ActionKind] = "submit"
    name: str
    info_hash: str
    magnet_uri: str = ""
    category: str = ""
    replaces: int | None = None
    why: str = "asked for over RPC"
    requires: tuple[str, ...] = ()
    dropped: tuple[str, str] | None = None
    replaced_uri: str = ""

    @property
    def key(self) -> str:
        return f"{'magnet' if self.magnet_uri else 'upload'}:{self.info_hash}"

    @property
    def target(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class RecordTransfer:
    """Journal the transfer put.io made of a submission whose answer was lost (found on
    put.io by its info-hash): else, once that transfer is cleaned, the torrent (dropped
    again, or still asked for over RPC) would be submitted, and downloaded, a second time."""

    kind: ClassVar[ActionKind] = "record"
    info_hash: str
    transfer_id: int
    name: str
    why: str = "put.io made it of a submission whose answer was lost"
    requires: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"record:{self.info_hash}"

    @property
    def target(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class RejectBlackholeFile:
    """Move an unusable blackhole file to ``.rejected/`` with a note saying why."""

    kind: ClassVar[ActionKind] = "reject"
    path: str
    name: str
    why: str
    requires: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"reject:{self.name}"

    @property
    def target(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class ArchiveDuplicate:
    """A torrent dropped again after it was submitted: file it away, submit nothing."""

    kind: ClassVar[ActionKind] = "archive"
    path: str
    name: str
    info_hash: str
    why: str = "already submitted earlier"
    requires: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"archive:{self.name}"

    @property
    def target(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class CancelTransfer:
    """Cancel a transfer on put.io (stops seeding; its files stay)."""

    kind: ClassVar[ActionKind] = "cancel"
    transfer_id: int
    name: str
    why: str = "seeding"
    requires: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"cancel:{self.transfer_id}"

    @property
    def target(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class CleanTransfers:
    """Remove these finished transfers from put.io's list (their files stay)."""

    kind: ClassVar[ActionKind] = "clean"
    transfer_ids: tuple[int, ...]
    names: tuple[str, ...] = ()
    why: str = "finished and mirrored"
    requires: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return "clean"

    @property
    def target(self) -> str:
        return f"{len(self.transfer_ids)} transfer(s)"


@dataclass(frozen=True, slots=True)
class Download:
    """Fetch a remote file into staging and verify it; place it at ``relative_path`` unless
    it is ``staged`` (then it waits in staging for its item's ``PlaceItem``)."""

    kind: ClassVar[ActionKind] = "download"
    file_id: int
    relative_path: str
    size: int
    crc32: str | None
    resume_from: int = 0
    #: kept in staging once verified, to be moved in with its whole item (``PlaceItem``)
    staged: bool = False
    #: verified once already, but its verified bytes are gone from staging unplaced
    again: bool = False
    why: str = "not yet mirrored"
    requires: tuple[str, ...] = ()
    #: the journal's record of the file placed at ``relative_path`` before, gone from
    #: put.io since (replaced by this one): replaced if it is still those very bytes
    replaces: DownloadRecord | None = None

    @property
    def key(self) -> str:
        return f"download:{self.file_id}"

    @property
    def target(self) -> str:
        return self.relative_path


@dataclass(frozen=True, slots=True)
class AdoptLocal:
    """A file already sits at its local path: verify it and journal it, never fetch it again."""

    kind: ClassVar[ActionKind] = "adopt"
    file_id: int
    relative_path: str
    size: int
    crc32: str | None
    why: str = "already present locally"
    requires: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        # The file's key, as its download's: hosts sharing a journal claim a file by it,
        # whether one fetches it and another finds it in place (a run killed after placing
        # it, before journaling it), so never both.
        return f"download:{self.file_id}"

    @property
    def target(self) -> str:
        return self.relative_path


@dataclass(frozen=True, slots=True)
class PlaceItem:
    """Move an item's verified files from staging into the download folder.

    ``files`` are the (file id, relative path) pairs still to place. A folder item
    whose folder does not exist yet appears whole with one rename; otherwise the
    files move in one by one, never overwriting.
    """

    kind: ClassVar[ActionKind] = "place"
    name: str
    item_id: int
    files: tuple[tuple[int, str], ...]
    folder: bool = True
    why: str = "every file verified"
    requires: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"place:{self.item_id}"

    @property
    def target(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class DeleteRemote:
    """Delete a remote item once everything in it is mirrored and verified."""

    kind: ClassVar[ActionKind] = "delete"
    file_id: int
    name: str
    why: str = "mirrored and verified"
    requires: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"delete-remote:{self.file_id}"

    @property
    def target(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class TidyStaging:
    """Remove a leftover of ours from staging: a part, verified bytes or a build folder of a
    put.io id that is no longer wanted (deleted on put.io, filtered out, placed already)."""

    kind: ClassVar[ActionKind] = "tidy"
    entry_kind: StagedKind
    remote_id: int
    size: int
    why: str = "no longer wanted"
    requires: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"tidy:{self.entry_kind}:{self.remote_id}"

    @property
    def target(self) -> str:
        return f"staging {self.entry_kind} {self.remote_id}"


Action = (
    SubmitTorrent
    | SubmitMagnet
    | SubmitDesired
    | RecordTransfer
    | RejectBlackholeFile
    | ArchiveDuplicate
    | CancelTransfer
    | CleanTransfers
    | Download
    | AdoptLocal
    | PlaceItem
    | DeleteRemote
    | TidyStaging
)


@dataclass(frozen=True, slots=True)
class Note:
    """Something the user should hear about that is not an action. ``level``: "info" (the
    log), "warning" (said once, by the run that finds it), "reminder" (what an earlier run
    told, said again only to a person running by hand: never mailed by a quiet timer run),
    "needs_you" (only a person can solve it: said by every run, with ``hint``, even quiet)."""

    level: Literal["info", "warning", "reminder", "needs_you"]
    message: str
    hint: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    """An ordered tuple of actions plus notes; immutable, comparable, printable."""

    actions: tuple[Action, ...] = ()
    notes: tuple[Note, ...] = field(default=())
    #: blackhole files left for the next run: changed a moment ago, perhaps still written
    settling: int = 0

    def __iter__(self) -> Iterator[Action]:
        return iter(self.actions)

    def __len__(self) -> int:
        return len(self.actions)

    def downloads_from(self, start: int) -> list[Download]:
        """Given an index, return the run of consecutive downloads starting there (the ones
        that may go side by side)."""
        run = takewhile(_is_download, self.actions[start:])
        return [action for action in run if isinstance(action, Download)]

    def only(self, kinds: Iterable[ActionKind], limit_downloads: int | None = None) -> Plan:
        """Given some kinds, return the plan of just those actions (what a command
        that runs only part of the plan, such as ``transfers groom``, executes).

        ``limit_downloads`` keeps only the first N downloads
        (``files download --limit N``).
        """
        wanted = set(kinds)
        kept: list[Action] = []
        downloads = 0
        for action in self.actions:
            if action.kind not in wanted:
                continue
            if action.kind == "download" and limit_downloads is not None:
                if downloads >= limit_downloads:
                    continue
                downloads += 1
            kept.append(action)
        return Plan(tuple(kept), self.notes, self.settling)

    def count(self, kind: ActionKind) -> int:
        return sum(1 for action in self.actions if action.kind == kind)


def _is_download(action: Action) -> bool:
    return isinstance(action, Download)
