"""Frozen values that describe the world: what put.io, the folders and the journal say.

These are the nouns shared by every layer. They hold data only; the pure core
reasons about them, the adapters build them. Paths are plain strings here so
the core never needs ``pathlib`` or ``os``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Literal

#: put.io's ``folder_type`` of the user's own folders; others (shared) are skipped.
REGULAR_FOLDER = "REGULAR"

#: Transfer statuses in which put.io has produced the files (``file_id`` is set).
FINISHED_STATUSES = frozenset({"COMPLETED", "SEEDING", "PREPARING_SEED"})
SEEDING_STATUSES = frozenset({"SEEDING", "PREPARING_SEED"})


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """One file or folder of the put.io tree (``parent_id`` 0 is the root)."""

    id: int
    name: str
    parent_id: int
    size: int
    is_folder: bool
    crc32: str | None = None
    folder_type: str = REGULAR_FOLDER
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Transfer:
    """One put.io transfer; ``status`` keeps unknown strings as they came."""

    id: int
    name: str
    status: str
    hash: str | None = None
    source: str | None = None
    file_id: int | None = None
    save_parent_id: int | None = None
    seconds_seeding: int | None = None
    current_ratio: float | None = None
    finished_at: datetime | None = None
    error_message: str | None = None
    #: how big it is and how far put.io got (for the RPC door's progress), when put.io says
    size: int | None = None
    percent_done: int | None = None
    down_speed: int = 0

    @property
    def is_seeding(self) -> bool:
        return self.status in SEEDING_STATUSES


BlackholeKind = Literal["torrent", "magnet"]


@dataclass(frozen=True, slots=True)
class BlackholeItem:
    """A ``.torrent`` or ``.magnet`` file found in the blackhole folder.

    ``info_hash`` is the lowercase hex BitTorrent v1 info-hash (the magnet's
    ``btih``), the stable key that makes "submitted exactly once" possible.
    ``problem`` is set, and ``info_hash`` is None, when the file is unusable.
    """

    path: str
    name: str
    kind: BlackholeKind
    size: int
    info_hash: str | None = None
    display_name: str = ""
    magnet_uri: str | None = None
    problem: str | None = None

    @property
    def key(self) -> str | None:
        if self.info_hash is None:
            return None
        prefix = "upload" if self.kind == "torrent" else "magnet"
        return f"{prefix}:{self.info_hash}"


@dataclass(frozen=True, slots=True)
class Submission:
    """The journal's memory that an info-hash was submitted as a transfer."""

    info_hash: str
    transfer_id: int | None
    name: str
    submitted_at: datetime


#: what wraps a number the filesystem tells into a signed 64-bit column
_WORD = 1 << 64
_HALF_WORD = 1 << 63


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """Which file a placed copy is, as the filesystem tells without a byte read: its inode
    number and modification time (its size is the record's).

    Both survive what leaves a copy ours: a media manager's hard link of it (its import),
    a rename in place, a reboot. Either changes when a file is put in its place (a new
    inode; one a filesystem reuses comes with its own time) or rewritten in place (the
    time). The device number is left out: Linux numbers btrfs subvolumes and network and
    FUSE filesystems anew at each mount, so every copy would be a stranger after a
    reboot. Both are kept as signed 64-bit numbers, as the journal's columns hold them
    (``of``): an inode number past 2^63 (NFS, overlayfs) wraps around, still unique.
    """

    inode: int
    mtime_ns: int

    @classmethod
    def of(cls, inode: int, mtime_ns: int) -> FileIdentity:
        """Given an inode number and a time in nanoseconds, as ``stat`` tells them."""
        return cls(_signed(inode), _signed(mtime_ns))


def _signed(number: int) -> int:
    return (number + _HALF_WORD) % _WORD - _HALF_WORD


@dataclass(frozen=True, slots=True)
class DownloadRecord:
    """The journal's memory of one file: fetching → verified in staging → placed; failures.

    ``placed_path`` is where in the download folder it was placed (relative), and
    ``placed_inode``/``placed_mtime_ns`` which file it was there (``placed_identity``;
    None for a file placed before the journal kept it, schema 6). A file the journal knows
    only failures of has ``relative_path`` "" and ``size`` 0.
    """

    file_id: int
    relative_path: str
    size: int
    crc32: str | None
    bytes_done: int = 0
    #: the bytes matched put.io's size and CRC32 (they are in staging or placed)
    verified_at: datetime | None = None
    placed_path: str | None = None
    placed_at: datetime | None = None
    failures: int = 0
    last_failure_at: datetime | None = None
    last_error: str | None = None
    placed_inode: int | None = None
    placed_mtime_ns: int | None = None

    @property
    def is_verified(self) -> bool:
        return self.verified_at is not None

    @property
    def is_placed(self) -> bool:
        return self.placed_at is not None

    @property
    def placed_identity(self) -> FileIdentity | None:
        """Which file was placed (None: not placed, or not known which)."""
        if self.placed_inode is None or self.placed_mtime_ns is None or self.placed_at is None:
            return None
        return FileIdentity(self.placed_inode, self.placed_mtime_ns)


DesireKind = Literal["torrent", "magnet"]


@dataclass(frozen=True, slots=True)
class Desire:
    """A torrent a client asked for over RPC: the journal keeps it until it is removed.

    ``info_hash`` is the key, as for blackhole items, so it is submitted exactly once;
    ``category`` is the sub-folder of the download folder it goes to ("" for the folder
    itself); the seed limits, when set, override the global seeding rule for its transfer.
    """

    info_hash: str
    rpc_id: int
    name: str
    kind: DesireKind
    added_at: datetime
    magnet_uri: str = ""
    #: bytes, from the .torrent (0 until put.io knows a magnet's)
    size: int = 0
    category: str = ""
    labels: tuple[str, ...] = ()
    paused: bool = False
    seed_ratio_limit: float | None = None
    seed_idle_minutes: int | None = None
    error: str | None = None
    #: its item in the download folder (relative), once put.io's tree has shown it
    item_path: str = ""
    #: (file id, relative path, size) of the item's mirrored files
    item_files: tuple[tuple[int, str, int], ...] = ()
    #: its place in the download order (0 first), which ``queue-move-*`` changes
    queue_position: int = 0

    @property
    def key(self) -> str:
        prefix = "upload" if self.kind == "torrent" else "magnet"
        return f"{prefix}:{self.info_hash}"


def _frozen_mapping() -> Mapping[object, object]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class JournalFacts:
    """What the journal remembers, keyed the way the reconciler pairs things."""

    submissions: Mapping[str, Submission] = field(default_factory=_frozen_mapping)  # type: ignore[arg-type]
    downloads: Mapping[int, DownloadRecord] = field(default_factory=_frozen_mapping)  # type: ignore[arg-type]
    #: transfer ids this tool created, for "touch only our own transfers"
    own_transfer_ids: frozenset[int] = frozenset()
    #: what RPC clients asked for, by info-hash (removed ones are forgotten)
    desires: Mapping[str, Desire] = field(default_factory=_frozen_mapping)  # type: ignore[arg-type]
    #: info-hashes RPC clients asked for and removed since: not fetched, their transfer ends
    removed_desires: frozenset[str] = frozenset()
    #: put.io item ids of those removed with their data (``delete-local-data``)
    purged_items: frozenset[int] = frozenset()
    #: put.io ids of the removed ones' items and files, as far as the journal saw them
    removed_ids: frozenset[int] = frozenset()
    #: a database server's journal, which other hosts may share: the files it knows may
    #: have been placed by them, into folders of their own
    shared: bool = False


StagedKind = Literal["part", "sidecar", "verified", "build"]


@dataclass(frozen=True, slots=True)
class StagedEntry:
    """One thing of ours in the staging folder, named by a put.io id: a growing ``.part``
    (file id), a part's segment sidecar left without its part (file id), verified bytes
    waiting to be placed (file id), or an item folder being built for placement (item
    id); ``modified_at`` dates its last change."""

    kind: StagedKind
    remote_id: int
    size: int
    modified_at: datetime


@dataclass(frozen=True, slots=True)
class LocalFacts:
    """What the local folders hold that matters for planning.

    ``present`` maps a relative path in the download folder to its size, for
    the paths the plan might write; ``partial`` maps a file id to the bytes
    already in its staging ``.part`` file, and ``verified`` to the size of its
    verified bytes waiting in staging to be placed. ``present_items`` names the
    top-level items that exist in the download folder; ``staging`` lists every
    entry of ours in the staging folder (for tidying orphans).
    """

    present: Mapping[str, int] = field(default_factory=_frozen_mapping)  # type: ignore[arg-type]
    partial: Mapping[int, int] = field(default_factory=_frozen_mapping)  # type: ignore[arg-type]
    verified: Mapping[int, int] = field(default_factory=_frozen_mapping)  # type: ignore[arg-type]
    present_items: frozenset[str] = frozenset()
    staging: tuple[StagedEntry, ...] = ()
    #: why the download folder looks like a disk not mounted (None: it does not): fstab
    #: names its disk and it is not mounted, or files were kept there before and it is
    #: gone, or empty where its staging was
    not_mounted: str | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A frozen picture of the world at one moment; the reconciler's only input."""

    blackhole: tuple[BlackholeItem, ...] = ()
    transfers: tuple[Transfer, ...] = ()
    files: tuple[RemoteFile, ...] = ()
    journal: JournalFacts = JournalFacts()
    local: LocalFacts = LocalFacts()
    #: ``naming.local_paths(files, root)`` when the observer already named the tree (it
    #: needs the names to stat the disk), so the reconciler does not name it twice; each
    #: item put.io renamed after files of it were placed is named as placed
    #: (``mirroring.kept_where_placed``).
    names: Mapping[int, str] | None = None
    #: blackhole files changed a moment ago (perhaps still being written): left for the
    #: next run, and said so
    settling: tuple[str, ...] = ()
    #: blackhole files in a folder inside one of its folders: not taken, and said so
    too_deep: tuple[str, ...] = ()
    #: the blackhole's folders not looked into, and why (a symbolic link, unreadable)
    skipped_folders: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class SafetyLimits:
    """How much one plan may change before it is refused without ``--force``."""

    max_cancels: int = 50
    max_cleans: int = 200
    max_remote_deletes: int = 20
    #: refuse when put.io lists no files while the journal knows at least this many
    vanished_threshold: int = 10


#: folder names put.io items carry that media managers don't want (``skip_extras``)
EXTRAS_FOLDERS = frozenset({"sample", "samples", "extras", "featurettes", "proof"})


@dataclass(frozen=True, slots=True)
class Filters:
    """Which remote files are wanted locally: globs on the relative path, a minimum size."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    min_size: int = 0
    skip_extras: bool = False


@dataclass(frozen=True, slots=True)
class Policy:
    """The desired state, as switches: what the reconciler should make true."""

    submit_blackhole: bool = True
    cancel_seeding: bool = True
    seeding_min_hours: float = 0.0
    seeding_min_ratio: float | None = None
    clean_finished: bool = True
    download: bool = True
    delete_remote_after_download: bool = False
    #: delete an item's put.io files when an RPC client removes it with its data
    delete_remote_on_rpc_remove: bool = False
    manage_foreign_transfers: bool = False
    remote_root_id: int = 0
    #: build each top-level item in staging and move it in whole (False: file by file)
    item_placement: bool = True
    #: staging leftovers of files no longer wanted are removed after this long
    orphan_grace_hours: float = 24.0
    #: a file that failed waits this long before the next try, doubling per failure
    retry_after_failure_minutes: float = 10.0
    retry_after_failure_cap_hours: float = 24.0
    filters: Filters = Filters()
    limits: SafetyLimits = SafetyLimits()
