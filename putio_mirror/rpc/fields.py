"""One RPC item as Transmission's torrent fields: pure, from the journal and the last snapshot.

Progress is combined: put.io's transfer is the first half, the bytes safely on the local
disk the second, so ``percentDone`` reaches 1, ``leftUntilDone`` 0 and the status
"complete" only when every file is verified and placed. ``downloadDir``/``name`` are then
exactly the placed item's parent and name, which is where Sonarr and Radarr import from.
"""

from __future__ import annotations

import functools
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from putio_mirror.core.naming import safe_component
from putio_mirror.core.state import FINISHED_STATUSES, Desire, Transfer

# Transmission's status numbers (libtransmission tr_torrent_activity).
STOPPED, CHECK_WAIT, CHECK, DOWNLOAD_WAIT, DOWNLOADING, SEED_WAIT, SEEDING = range(7)
#: Transmission's ``error`` numbers: none, a (tracker) warning, and a local error. Sonarr
#: and Radarr read only ``errorString`` (any text: a warning shown, and they keep waiting);
#: the number tells other clients whether it passes by itself (1) or needs someone (3).
NO_ERROR, WARNING, LOCAL_ERROR = 0, 1, 3
_WAITING_STATUSES = frozenset({"IN_QUEUE", "WAITING", "UNKNOWN"})


@dataclass(frozen=True, slots=True)
class Failing:
    """A file of an item whose last tries failed, as the journal says."""

    #: its path relative to the download folder
    path: str
    #: failed tries in a row
    failures: int
    last_error: str | None
    #: when it is tried again (None: at the next run)
    retry_at: datetime | None


@dataclass(frozen=True, slots=True)
class LocalItem:
    """Where an item lives locally and how far its files got, as the journal says."""

    #: the item's path relative to the download folder (from put.io's tree, sanitised)
    relative_path: str
    #: (file id, path relative to the download folder, size) of every mirrored file of it
    files: tuple[tuple[int, str, int], ...]
    bytes_done: int = 0
    placed: bool = False
    #: its files that failed their last tries (none once placed)
    failing: tuple[Failing, ...] = ()


@dataclass(frozen=True, slots=True)
class Blocked:
    """What the last run to try an item's file journaled that holds it up and only a
    person can solve: a local file not ours in the way, or a full disk."""

    #: what the run said (the file and what is in the way; the room wanted and free)
    message: str
    #: what to do about it
    hint: str


@dataclass(frozen=True, slots=True)
class Outage:
    """put.io has not answered the board's looks (or the journal's runs) for long: since
    when, and why not."""

    #: the board's last look that put.io answered; before one, the start of the outage the
    #: journal's runs tell of, or serve's start
    since: datetime
    #: the last failed look's trouble, or the last run's that ended for put.io's silence
    #: ("" if none has said yet)
    why: str


#: what holds items up beside their own journal rows: what blocks each (by info-hash), and
#: put.io's outage if the board's looks have gone unanswered for long (``Board.troubles``)
Troubles = tuple[Mapping[str, Blocked], Outage | None]
#: the command of the runs this door journals for ``torrent-remove``: they ask put.io nothing
REMOVAL_COMMAND = "rpc torrent-remove"


@dataclass(frozen=True, slots=True)
class ItemView:
    """Everything known about one RPC item at one moment."""

    desire: Desire
    transfer: Transfer | None
    local: LocalItem | None
    downloads: str  # the download folder, absolute
    blocked: Blocked | None = None
    outage: Outage | None = None


def torrent_fields(view: ItemView, wanted: Iterable[str], now: datetime) -> dict[str, object]:
    """Given an item and the field names a client asked for, return those fields; a name
    this door does not know is answered 0, as Transmission 3 does."""
    return torrent_rows([view], wanted, now)[0]


def torrent_rows(
    views: Iterable[ItemView], wanted: Iterable[str], now: datetime
) -> list[dict[str, object]]:
    """Given items and the field names asked for, return each item's fields (a poll of
    1,000 items looks the names up once, not 1,000 times)."""
    names = list(wanted)
    rows = []
    for view in views:
        row = item_fields(view, names)
        rows.append(row | clock_fields(view.desire, row, now))
    return rows


def item_fields(view: ItemView, wanted: Iterable[str]) -> dict[str, object]:
    """Given an item and field names, return the fields that depend on the item alone, in
    the order asked; a field of ``CLOCK_FIELDS`` is there with None (``clock_fields`` fills
    it), so a row kept while its item is unchanged keeps the order of the names."""
    item = _Item.of(view)
    return {
        name: None if name in CLOCK_FIELDS else _FIELDS.get(name, _zero)(item) for name in wanted
    }


def clock_fields(desire: Desire, wanted: Iterable[str], now: datetime) -> dict[str, object]:
    """Given an item's desire, field names and the time, return those of the names that
    change with the clock alone."""
    return {name: clock_field(name, desire, now) for name in wanted if name in CLOCK_FIELDS}


def clock_field(name: str, desire: Desire, now: datetime) -> object:
    """Given a name of ``CLOCK_FIELDS``, an item's desire and the time, return the field."""
    return _CLOCK[name](desire, now)


def _zero(item: _Item) -> object:
    return 0


def _seconds_downloading(desire: Desire, now: datetime) -> int:
    return max(0, int((now - desire.added_at).total_seconds()))


_CLOCK: dict[str, Callable[[Desire, datetime], object]] = {
    "secondsDownloading": _seconds_downloading,
    "activityDate": lambda desire, now: int(now.timestamp()),
}
#: the fields that change with the clock; every other one changes only with its item
CLOCK_FIELDS = frozenset(_CLOCK)


@dataclass(frozen=True, slots=True)
class _Item:
    """The figures several fields share, worked out once per item."""

    view: ItemView
    desire: Desire
    total: int
    done: float
    left: int
    status: int
    folder: str
    name: str
    finished: bool
    file_count: int
    #: (Transmission's error number, the text a client shows)
    trouble: tuple[int, str]

    @classmethod
    def of(cls, view: ItemView) -> _Item:
        total = _total_size(view)
        done = _percent_done(view)
        status = _status(view)
        folder, name = _placement(view)
        finished = _is_placed(view) and status == STOPPED
        files = len(view.local.files) if view.local is not None else 0
        left = _left_until_done(view, total, done)
        trouble = _trouble(view)
        return cls(
            view, view.desire, total, done, left, status, folder, name, finished, files, trouble
        )

    @property
    def rate(self) -> int:
        transfer = self.view.transfer
        return transfer.down_speed if transfer is not None and self.status == DOWNLOADING else 0


_FIELDS: dict[str, Callable[[_Item], object]] = {
    "id": lambda item: item.desire.rpc_id,
    "hashString": lambda item: item.desire.info_hash,
    "name": lambda item: item.name,
    "downloadDir": lambda item: item.folder,
    "totalSize": lambda item: item.total,
    "sizeWhenDone": lambda item: item.total,
    "leftUntilDone": lambda item: item.left,
    "haveValid": lambda item: item.total - item.left,
    "haveUnchecked": lambda item: 0,
    "downloadedEver": lambda item: item.total - item.left,
    "percentDone": lambda item: item.done,
    "metadataPercentComplete": lambda item: 1 if item.total else 0,
    "isFinished": lambda item: item.finished,
    "isStalled": lambda item: False,
    "status": lambda item: item.status,
    "eta": lambda item: 0 if _is_placed(item.view) else -1,
    "rateDownload": lambda item: item.rate,
    "error": lambda item: item.trouble[0],
    "errorString": lambda item: item.trouble[1],
    "addedDate": lambda item: int(item.desire.added_at.timestamp()),
    "startDate": lambda item: int(item.desire.added_at.timestamp()),
    "secondsSeeding": lambda item: _seconds_seeding(item.view, item.finished),
    "uploadedEver": lambda item: int(_ratio(item.view, item.finished) * item.total),
    "uploadRatio": lambda item: _ratio(item.view, item.finished),
    "seedRatioLimit": lambda item: _integral(item.desire.seed_ratio_limit or 0),
    "seedRatioMode": lambda item: 1 if item.desire.seed_ratio_limit is not None else 0,
    "seedIdleLimit": lambda item: item.desire.seed_idle_minutes or 0,
    "seedIdleMode": lambda item: 1 if item.desire.seed_idle_minutes is not None else 0,
    "fileCount": lambda item: item.file_count,
    "file-count": lambda item: item.file_count,
    "files": lambda item: _files(item.view),
    "fileStats": lambda item: [
        {"bytesCompleted": file["bytesCompleted"], "wanted": True, "priority": 0}
        for file in _files(item.view)
    ],
    "priorities": lambda item: [0] * item.file_count,
    "wanted": lambda item: [1] * item.file_count,
    "labels": lambda item: list(item.desire.labels),
    "magnetLink": lambda item: item.desire.magnet_uri,
    "queuePosition": lambda item: item.desire.queue_position,
    "isPrivate": lambda item: False,
    "creator": lambda item: "putio-mirror",
    "comment": lambda item: "",
    "torrentFile": lambda item: "",
    "trackers": lambda item: [],
    "trackerStats": lambda item: [],
    "peers": lambda item: [],
    "honorsSessionLimits": lambda item: True,
}


def _seconds_seeding(view: ItemView, finished: bool) -> int:
    """put.io's seeding time; once placed and no longer seeding, at least the item's own
    idle limit, so Sonarr's "seed limit reached" test lets it remove the item."""
    seconds = (view.transfer.seconds_seeding or 0) if view.transfer else 0
    limit = view.desire.seed_idle_minutes
    if finished and limit is not None:
        return max(seconds, (limit + 1) * 60)
    return seconds


def _ratio(view: ItemView, finished: bool) -> float:
    """put.io's ratio; once placed and no longer seeding, at least the item's ratio limit
    (put.io's seeding ended by the mirror's rule, which is the limit that counts)."""
    ratio = (view.transfer.current_ratio or 0.0) if view.transfer else 0.0
    limit = view.desire.seed_ratio_limit
    if finished and limit is not None:
        return max(ratio, limit)
    return ratio


def _integral(number: float) -> float | int:
    """Whole-number decimals go out as integers, as Transmission writes them."""
    return int(number) if float(number).is_integer() else number


def _is_placed(view: ItemView) -> bool:
    return view.local is not None and view.local.placed


def _total_size(view: ItemView) -> int:
    if view.local is not None and view.local.files:
        return sum(size for _, _, size in view.local.files)
    if view.transfer is not None and view.transfer.size:
        return view.transfer.size
    return (
        view.desire.size
    )  # a magnet whose metadata put.io has not fetched yet: Sonarr reads "queued"


def _putio_fraction(transfer: Transfer | None) -> float:
    if transfer is None:
        return 0.0
    if transfer.status in FINISHED_STATUSES:
        return 1.0
    return min(max(transfer.percent_done or 0, 0), 100) / 100


def _local_fraction(view: ItemView) -> float:
    local = view.local
    if local is None or not local.files:
        return 0.0
    if local.placed:
        return 1.0
    total = sum(size for _, _, size in local.files)
    # Verified bytes still waiting in staging are not "done" for the media manager yet.
    return min(local.bytes_done / total, 0.99) if total else 0.0


def _percent_done(view: ItemView) -> float:
    if _is_placed(view):
        return 1
    combined = (_putio_fraction(view.transfer) + _local_fraction(view)) / 2
    return round(min(combined, 0.999), 4)


def _left_until_done(view: ItemView, total: int, done: float) -> int:
    if _is_placed(view):
        return 0
    # Never 0 before placement: Sonarr would import a half-written item.
    return max(1, total - int(total * done)) if total else 0


def _status(view: ItemView) -> int:
    transfer = view.transfer
    if view.desire.paused:
        return STOPPED
    if _is_placed(view):
        return SEEDING if transfer is not None and transfer.is_seeding else STOPPED
    if transfer is None or transfer.status in _WAITING_STATUSES:
        return DOWNLOAD_WAIT
    return DOWNLOADING


#: what a client shows for an item whose every file the mirror's filters leave out
LEFT_OUT = (
    "put.io has it, but none of its files is mirrored: download.include, exclude, "
    "min_size_mb or skip_extras leave every one out"
)


def is_left_out(desire: Desire, transfer: Transfer | None) -> bool:
    """Given a desire and its put.io transfer, say whether put.io's tree showed its whole
    item and no file of it passes the filters: it never comes down, so it never completes."""
    finished = transfer is None or transfer.status in FINISHED_STATUSES
    return finished and bool(desire.item_path) and not desire.item_files


def _trouble(view: ItemView) -> tuple[int, str]:
    """Given an item, return (Transmission's error number, why it does not come): the
    most telling reason first; (0, "") if nothing holds it up."""
    if view.desire.error:
        return LOCAL_ERROR, view.desire.error
    transfer = view.transfer
    if is_left_out(view.desire, transfer):
        return LOCAL_ERROR, LEFT_OUT
    if transfer is not None and transfer.status == "ERROR":
        return LOCAL_ERROR, f"put.io: {transfer.error_message or 'the transfer failed'}"
    failing = view.local.failing if view.local is not None else ()
    if failing and (trouble := _failing_trouble(failing))[0] == LOCAL_ERROR:
        return trouble
    # Never on a placed item: Sonarr imports no item that carries a message. Nor on a
    # paused one, which waits for its client, not for the disk or put.io.
    waits = not (_is_placed(view) or view.desire.paused)
    if waits and view.blocked is not None:
        return LOCAL_ERROR, f"{view.blocked.message}; {view.blocked.hint}"
    if waits and view.outage is not None:
        return WARNING, _outage_text(view.outage)
    if failing:
        return _failing_trouble(failing)
    return NO_ERROR, ""


def _outage_text(outage: Outage) -> str:
    """An outage as a warning: it passes by itself, so Sonarr should wait, never give up."""
    why = f" ({outage.why})" if outage.why else ""
    return (
        f"put.io has not answered since {outage.since:%Y-%m-%d %H:%M} UTC{why}; retrying "
        "(nothing to do: the item comes once put.io is back)"
    )


#: the journal's text of a file whose bytes are not what put.io's CRC32 says
_MISMATCH = re.compile(r"expected \d+ bytes with CRC32 \w+, got \d+ bytes with CRC32")
#: what a Sonarr or Radarr user can do about a release that cannot come
_ANOTHER_RELEASE = "to have another release instead, remove it from the queue with blocklisting"


def _failing_trouble(failing: tuple[Failing, ...]) -> tuple[int, str]:
    """The files that keep failing, worst first: one fetched from zero twice or more and
    wrong each time (put.io's copy looks damaged: waiting cures nothing) is an error; any
    other is a warning (it is tried again after a pause, and may well come)."""
    damaged = [file for file in failing if file.failures >= 2 and _is_mismatch(file)]
    if damaged:
        file = damaged[0]
        return LOCAL_ERROR, (
            f"{file.path}: put.io's copy looks damaged: its bytes do not match put.io's "
            f"CRC32 ({file.failures} tries); fetch the item again on put.io, or, "
            f"{_ANOTHER_RELEASE}{_next_try(file)}"
        )
    file = max(failing, key=lambda entry: entry.failures)
    why = f": {file.last_error}" if file.last_error else ""
    return WARNING, f"{file.path} failed {file.failures} time(s){why}{_next_try(file)}"


def _is_mismatch(file: Failing) -> bool:
    return file.last_error is not None and _MISMATCH.search(file.last_error) is not None


def _next_try(file: Failing) -> str:
    if file.retry_at is None:
        return ""
    return f"; tried again after {file.retry_at:%Y-%m-%d %H:%M} UTC"


def _placement(view: ItemView) -> tuple[str, str]:
    """Return (downloadDir, name): the placed item's parent and name once its path is
    known, else the category folder and the torrent's name as it will be sanitised."""
    if view.local is not None and view.local.relative_path:
        parent, name = posixpath.split(view.local.relative_path)
        return posixpath.join(view.downloads, parent) if parent else view.downloads, name
    category = view.desire.category
    folder = posixpath.join(view.downloads, category) if category else view.downloads
    return folder, _safe_name(view.desire.name or view.desire.info_hash)


@functools.lru_cache(maxsize=4096)
def _safe_name(name: str) -> str:
    return safe_component(name)  # the same name on every poll: worked out once


def _files(view: ItemView) -> list[dict[str, object]]:
    if view.local is None:
        return []
    parent = posixpath.dirname(view.local.relative_path)
    placed = view.local.placed
    return [
        {
            "name": posixpath.relpath(path, parent) if parent else path,
            "length": size,
            "bytesCompleted": size if placed else 0,
        }
        for _, path, size in view.local.files
    ]
