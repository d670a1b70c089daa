"""One RPC item as Transmission's torrent fields: pure, from the journal and the last snapshot.

Progress is combined: put.io's transfer is the first half, the bytes safely on the local
disk the second, so ``percentDone`` reaches 1, ``leftUntilDone`` 0 and the status
"complete" only when every file is verified and placed. ``downloadDir``/``name`` are then
exactly the placed item's parent and name, which is where Sonarr and Radarr import from.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from putio_mirror.core.naming import safe_component
from putio_mirror.core.state import FINISHED_STATUSES, Desire, Transfer

# Transmission's status numbers (libtransmission tr_torrent_activity).
STOPPED, CHECK_WAIT, CHECK, DOWNLOAD_WAIT, DOWNLOADING, SEED_WAIT, SEEDING = range(7)
#: Transmission's ``error`` numbers: none, and a local error
NO_ERROR, LOCAL_ERROR = 0, 3
_WAITING_STATUSES = frozenset({"IN_QUEUE", "WAITING", "UNKNOWN"})


@dataclass(frozen=True, slots=True)
class LocalItem:
    """Where an item lives locally and how far its files got, as the journal says."""

    #: the item's path relative to the download folder (from put.io's tree, sanitised)
    relative_path: str
    #: (file id, path relative to the download folder, size) of every mirrored file of it
    files: tuple[tuple[int, str, int], ...]
    bytes_done: int = 0
    placed: bool = False


@dataclass(frozen=True, slots=True)
class ItemView:
    """Everything known about one RPC item at one moment."""

    desire: Desire
    transfer: Transfer | None
    local: LocalItem | None
    downloads: str  # the download folder, absolute


def torrent_fields(view: ItemView, wanted: Iterable[str], now: datetime) -> dict[str, object]:
    """Given an item and the field names a client asked for, return those fields; a name
    this door does not know is answered 0, as Transmission 3 does."""
    values = _all_fields(view, now)
    return {name: values[name]() if name in values else 0 for name in wanted}


def _all_fields(view: ItemView, now: datetime) -> Mapping[str, Callable[[], object]]:
    desire, transfer = view.desire, view.transfer
    total = _total_size(view)
    done = _percent_done(view)
    left = _left_until_done(view, total, done)
    status = _status(view)
    folder, name = _placement(view)
    seconds = max(0, int((now - desire.added_at).total_seconds()))
    files = _files(view)
    finished = _is_placed(view) and status == STOPPED
    return {
        "id": lambda: desire.rpc_id,
        "hashString": lambda: desire.info_hash,
        "name": lambda: name,
        "downloadDir": lambda: folder,
        "totalSize": lambda: total,
        "sizeWhenDone": lambda: total,
        "leftUntilDone": lambda: left,
        "haveValid": lambda: total - left,
        "downloadedEver": lambda: total - left,
        "percentDone": lambda: done,
        "recheckProgress": lambda: 0,
        "metadataPercentComplete": lambda: 1 if total else 0,
        "isFinished": lambda: finished,
        "isStalled": lambda: False,
        "status": lambda: status,
        "eta": lambda: 0 if _is_placed(view) else -1,
        "rateDownload": lambda: transfer.down_speed if transfer and status == DOWNLOADING else 0,
        "rateUpload": lambda: 0,
        "error": lambda: LOCAL_ERROR if _error(view) else NO_ERROR,
        "errorString": lambda: _error(view),
        "addedDate": lambda: int(desire.added_at.timestamp()),
        "activityDate": lambda: int(now.timestamp()),
        "doneDate": lambda: 0,
        "secondsDownloading": lambda: seconds,
        "secondsSeeding": lambda: _seconds_seeding(view, finished),
        "uploadedEver": lambda: int(_ratio(view, finished) * total),
        "uploadRatio": lambda: _ratio(view, finished),
        "seedRatioLimit": lambda: _integral(desire.seed_ratio_limit or 0),
        "seedRatioMode": lambda: 1 if desire.seed_ratio_limit is not None else 0,
        "seedIdleLimit": lambda: desire.seed_idle_minutes or 0,
        "seedIdleMode": lambda: 1 if desire.seed_idle_minutes is not None else 0,
        "fileCount": lambda: len(files),
        "file-count": lambda: len(files),
        "files": lambda: files,
        "fileStats": lambda: [{"bytesCompleted": 0, "wanted": True, "priority": 0}] * len(files),
        "labels": lambda: list(desire.labels),
        "magnetLink": lambda: desire.magnet_uri,
        "queuePosition": lambda: desire.rpc_id,
        "peersConnected": lambda: 0,
        "peersGettingFromUs": lambda: 0,
        "peersSendingToUs": lambda: 0,
        "isPrivate": lambda: False,
        "comment": lambda: "",
        "creator": lambda: "putio-mirror",
        "torrentFile": lambda: "",
        "pieceCount": lambda: 0,
        "pieceSize": lambda: 0,
        "trackers": lambda: [],
        "trackerStats": lambda: [],
        "peers": lambda: [],
        "priorities": lambda: [0] * len(files),
        "wanted": lambda: [1] * len(files),
        "bandwidthPriority": lambda: 0,
        "honorsSessionLimits": lambda: True,
        "dateCreated": lambda: 0,
        "startDate": lambda: int(desire.added_at.timestamp()),
        "manualAnnounceTime": lambda: 0,
        "corruptEver": lambda: 0,
        "desiredAvailable": lambda: 0,
        "webseedsSendingToUs": lambda: 0,
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


def _error(view: ItemView) -> str:
    if view.desire.error:
        return view.desire.error
    transfer = view.transfer
    if transfer is not None and transfer.status == "ERROR":
        return f"put.io: {transfer.error_message or 'the transfer failed'}"
    return ""


def _placement(view: ItemView) -> tuple[str, str]:
    """Return (downloadDir, name): the placed item's parent and name once its path is
    known, else the category folder and the torrent's name as it will be sanitised."""
    if view.local is not None and view.local.relative_path:
        parent, name = posixpath.split(view.local.relative_path)
        return posixpath.join(view.downloads, parent) if parent else view.downloads, name
    category = view.desire.category
    folder = posixpath.join(view.downloads, category) if category else view.downloads
    return folder, safe_component(view.desire.name or view.desire.info_hash)


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
