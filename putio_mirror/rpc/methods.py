"""The method table: each Transmission RPC method as a function of the door and arguments.

Every method reads or writes the journal and the board only; none talks to put.io.
A method raises RpcError with the text the client should show; ``answer`` turns a
request into a reply and never lets an error out.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from putio_mirror import __version__
from putio_mirror.config.rpc import RpcSettings
from putio_mirror.core.errors import MirrorError
from putio_mirror.core.state import Desire, Policy
from putio_mirror.journal.store import Journal
from putio_mirror.local.space import free_bytes
from putio_mirror.rpc import ids
from putio_mirror.rpc.adding import RpcError, labels_of, parse_add
from putio_mirror.rpc.board import Board
from putio_mirror.rpc.fetching import URL_TIMEOUT, fetch_torrent, is_url
from putio_mirror.rpc.fields import STOPPED, ItemView, LocalItem
from putio_mirror.rpc.queue import Move, moved
from putio_mirror.rpc.removal import bring_back, remove_local
from putio_mirror.rpc.rows import Progress, RowCache, local_item
from putio_mirror.rpc.wire import JsonText

log = logging.getLogger(__name__)

#: Sonarr reads the first dotted number outside parentheses and wants at least 2.40
VERSION = f"3.00 (putio-mirror {__version__})"
RPC_VERSION = 16
MAX_FIELDS = 200

Arguments = dict[str, Any]


@dataclass
class Door:
    """What the methods work with: the journal, the board, the folders and a clock."""

    journal: Journal
    board: Board
    downloads: Path
    rpc: RpcSettings
    policy: Policy
    #: ask the watcher for a pass soon (a new or resumed desire waits for no sync)
    wake: Callable[[], None]
    clock: Callable[[], datetime]
    #: ask the watcher for a sync now (an item removed with its data leaves put.io soon)
    sync_soon: Callable[[], None] = lambda: None
    #: ask the watcher for a sync now, stopping a running one first (its plan is stale)
    replan: Callable[[], None] = lambda: None
    #: seconds ``torrent-add`` may spend fetching a .torrent from a URL
    url_timeout: float = URL_TIMEOUT
    #: ``torrent-get``'s rows kept between polls
    row_cache: RowCache = field(init=False)

    def __post_init__(self) -> None:
        self.row_cache = RowCache(str(self.downloads), self.policy)

    def views(self, desires: list[Desire]) -> list[ItemView]:
        progress = self.progress(desires)
        downloads, transfers = str(self.downloads), self.board.transfers()
        blocked, outage = self.board.troubles(self.clock())
        return [
            ItemView(
                desire,
                transfers.get(desire.info_hash),
                _local(desire, progress, self.policy),
                downloads,
                blocked.get(desire.info_hash),
                outage,
            )
            for desire in desires
        ]

    def rows(self, desires: list[Desire], wanted: list[str], every: Collection[str]) -> JsonText:
        """Given the items asked about, the fields wanted and the info-hashes of every item,
        return ``torrent-get``'s rows (worked out again only for items that changed)."""
        progress = self.progress(desires)
        transfers, now = self.board.transfers(), self.clock()
        troubles = self.board.troubles(now)
        return self.row_cache.rows(desires, transfers, progress, wanted, now, every, troubles)

    def progress(self, desires: list[Desire]) -> dict[int, Progress]:
        file_ids = [file_id for desire in desires for file_id, _, _ in desire.item_files]
        return self.journal.desires.progress_of(file_ids)


def _local(desire: Desire, progress: Mapping[int, Progress], policy: Policy) -> LocalItem | None:
    files = [progress.get(file_id, Progress(0, False, None)) for file_id, _, _ in desire.item_files]
    return local_item(desire, files, policy)


def answer(door: Door, request: object) -> dict[str, Any]:
    """Given a decoded request body, return the reply (``result`` is "success" or why not)."""
    if not isinstance(request, dict):
        return {"result": "the request should be a JSON object", "arguments": {}}
    tag = request.get("tag")
    method = request.get("method")
    arguments = request.get("arguments", {}) or {}
    handler = METHODS.get(method) if isinstance(method, str) else None
    result, values = "success", {}
    try:
        if handler is None:
            raise RpcError("method name not recognized")
        if not isinstance(arguments, dict):
            raise RpcError("'arguments' should be an object")
        values = handler(door, arguments)
    except RpcError as error:
        result = str(error)
    except MirrorError as error:
        log.warning("rpc %s: %s", method, error.message)
        result = error.message
    reply: dict[str, Any] = {"result": result, "arguments": values}
    if tag is not None:
        reply["tag"] = tag
    return reply


# -- session ---------------------------------------------------------------------------


def session_get(door: Door, arguments: Arguments) -> Arguments:
    policy = door.policy
    ratio = policy.seeding_min_ratio
    return {
        "version": VERSION,
        "rpc-version": RPC_VERSION,
        "rpc-version-minimum": 1,
        "download-dir": str(door.downloads),
        "seedRatioLimit": _integral(ratio or 0),
        "seedRatioLimited": policy.cancel_seeding and ratio is not None,
        "idle-seeding-limit": int(policy.seeding_min_hours * 60),
        # put.io's seeding ends by the mirror's rule: "stopped" means the limit was met.
        "idle-seeding-limit-enabled": policy.cancel_seeding,
        "incomplete-dir-enabled": False,
        "download-queue-enabled": False,
        "download-queue-size": 0,
        "seed-queue-enabled": False,
        "speed-limit-down-enabled": False,
        "speed-limit-up-enabled": False,
        "alt-speed-enabled": False,
        "start-added-torrents": True,
        "rename-partial-files": False,
        "peer-port": 0,
        "encryption": "preferred",
        "config-dir": "",
        "units": {
            "speed-units": ["kB/s", "MB/s", "GB/s", "TB/s"],
            "speed-bytes": 1000,
            "size-units": ["kB", "MB", "GB", "TB"],
            "size-bytes": 1000,
            "memory-units": ["KiB", "MiB", "GiB", "TiB"],
            "memory-bytes": 1024,
        },
    }


def session_set(door: Door, arguments: Arguments) -> Arguments:
    return {}  # the mirror's settings live in its config file


def session_stats(door: Door, arguments: Arguments) -> Arguments:
    views = door.views(list(door.journal.desires.listing().values()))
    paused = sum(1 for view in views if view.desire.paused)
    speed = sum(view.transfer.down_speed for view in views if view.transfer is not None)
    counts = {
        "uploadedBytes": 0,
        "downloadedBytes": 0,
        "filesAdded": 0,
        "sessionCount": 1,
        "secondsActive": 0,
    }
    return {
        "activeTorrentCount": len(views) - paused,
        "pausedTorrentCount": paused,
        "torrentCount": len(views),
        "downloadSpeed": speed,
        "uploadSpeed": 0,
        "cumulative-stats": counts,
        "current-stats": counts,
    }


def free_space(door: Door, arguments: Arguments) -> Arguments:
    path = arguments.get("path")
    if not isinstance(path, str) or not _inside(path, str(door.downloads)):
        raise RpcError(f"free-space: ask about {door.downloads} or a folder in it")
    return {"path": path, "size-bytes": free_bytes(Path(path))}


# -- torrents --------------------------------------------------------------------------


def torrent_add(door: Door, arguments: Arguments) -> Arguments:
    filename, fetched = arguments.get("filename"), None
    if not arguments.get("metainfo") and isinstance(filename, str) and is_url(filename):
        # This request's own thread waits: other clients are answered meanwhile.
        got = fetch_torrent(filename, door.url_timeout)
        if isinstance(got, str):
            arguments = arguments | {"filename": got}  # it led to a magnet link
        else:
            fetched = (filename, got)
    downloads, categories = str(door.downloads), door.rpc.categories
    addition = parse_add(arguments, downloads, categories, door.clock(), fetched)
    removed = door.journal.desires.removed_one(addition.desire.info_hash)
    number, added = door.journal.desires.add(addition.desire, addition.data)
    if added and removed is not None:
        remote_purged = door.policy.delete_remote_on_rpc_remove
        if bring_back(door.journal, door.downloads, *removed, remote_purged):
            door.sync_soon()  # put.io still has it: no transfer to wait for
    if added or addition.data is not None:
        # A .torrent given for a magnet took its place: put.io may be sent it soon.
        door.wake()
    desire = door.journal.desires.listing().get(addition.desire.info_hash, addition.desire)
    item = {"id": number, "name": desire.name, "hashString": desire.info_hash}
    return {"torrent-added" if added else "torrent-duplicate": item}


def torrent_get(door: Door, arguments: Arguments) -> Arguments:
    fields = arguments.get("fields")
    if not isinstance(fields, list) or not all(isinstance(name, str) for name in fields):
        raise RpcError("'fields' should be a list of field names")
    if len(fields) > MAX_FIELDS:
        raise RpcError(f"too many fields (at most {MAX_FIELDS})")
    every = door.journal.desires.listing()
    chosen = ids.select(arguments.get("ids"), every.values())
    reply: Arguments = {"torrents": door.rows(chosen, fields, every.keys())}
    if arguments.get("ids") == ids.RECENTLY_ACTIVE:
        reply["removed"] = []
    return reply


def torrent_set(door: Door, arguments: Arguments) -> Arguments:
    hashes = [desire.info_hash for desire in _chosen(door, arguments)]
    values: Arguments = {}
    if "seedRatioLimit" in arguments or "seedRatioMode" in arguments:
        limit = _limit(arguments, "seedRatioLimit", "seedRatioMode", float)
        values["seed_ratio_limit"] = limit
    if "seedIdleLimit" in arguments or "seedIdleMode" in arguments:
        values["seed_idle_minutes"] = _limit(arguments, "seedIdleLimit", "seedIdleMode", int)
    if "labels" in arguments:
        values["labels"] = labels_of(arguments["labels"])
    if values:
        door.journal.desires.change(hashes, **values)
    return {}


def torrent_remove(door: Door, arguments: Arguments) -> Arguments:
    chosen = _chosen(door, arguments, required=True)
    delete = arguments.get("delete-local-data", False) is True
    views = door.views(chosen)
    placed = [view for view in views if view.local is not None and view.local.placed]
    if delete:
        # a whole item, or one placed file by file whose rest is still coming down
        for view in views:
            if view.local is not None and (view.local.placed or view.local.bytes_done):
                path = view.local.relative_path  # where it was placed
                remove_local(door.journal, door.downloads, view.desire, path, door.clock())
    hashes = [desire.info_hash for desire in chosen]
    door.journal.desires.remove(hashes, door.clock(), purge=delete)
    if len(placed) < len(views):
        # One may be coming down now: the running sync stops, the next plan holds it
        # and tidies what staging has of it.
        door.replan()
    if delete and hashes and door.policy.delete_remote_on_rpc_remove:
        door.sync_soon()
    return {}


def _pausing(paused: bool) -> Callable[[Door, Arguments], Arguments]:
    def pause_or_resume(door: Door, arguments: Arguments) -> Arguments:
        hashes = [desire.info_hash for desire in _chosen(door, arguments)]
        door.journal.desires.change(hashes, paused=paused)
        if not paused:
            door.wake()
        return {}

    return pause_or_resume


def _queue_move(move: Move) -> Callable[[Door, Arguments], Arguments]:
    def queue_move(door: Door, arguments: Arguments) -> Arguments:
        every = door.journal.desires.listing()  # in download order
        chosen = {desire.info_hash for desire in ids.select(arguments.get("ids"), every.values())}
        order = list(every)
        new_order = moved(order, chosen, move)
        if new_order != order:
            door.journal.desires.reorder(new_order)
        return {}

    return queue_move


def _accepted(door: Door, arguments: Arguments) -> Arguments:
    """Methods with nothing to do here (put.io verifies and announces itself)."""
    _chosen(door, arguments)  # the ids are still checked
    return {}


def _chosen(door: Door, arguments: Arguments, *, required: bool = False) -> list[Desire]:
    if required and "ids" not in arguments:
        raise RpcError("'ids' is required")
    return ids.select(arguments.get("ids"), door.journal.desires.listing().values())


def _limit(arguments: Arguments, limit_key: str, mode_key: str, kind: type) -> Any:
    """Transmission's per-torrent limit: mode 1 uses the number, 0 the global rule, 2 none."""
    mode, value = arguments.get(mode_key, 1), arguments.get(limit_key)
    if not isinstance(mode, int) or mode not in (0, 1, 2):
        raise RpcError(f"'{mode_key}' should be 0, 1 or 2")
    if mode != 1:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise RpcError(f"'{limit_key}' should be a number of at least 0")
    return kind(value)


def _integral(number: float) -> float | int:
    return int(number) if float(number).is_integer() else number


def _inside(path: str, root: str) -> bool:
    normal = posixpath.normpath(path)
    return normal == root or normal.startswith(root.rstrip("/") + "/")


METHODS: dict[str, Callable[[Door, Arguments], Arguments]] = {
    "session-get": session_get,
    "session-set": session_set,
    "session-stats": session_stats,
    "session-close": session_set,
    "free-space": free_space,
    "torrent-add": torrent_add,
    "torrent-get": torrent_get,
    "torrent-set": torrent_set,
    "torrent-remove": torrent_remove,
    "torrent-start": _pausing(False),
    "torrent-start-now": _pausing(False),
    "torrent-stop": _pausing(True),
    "torrent-verify": _accepted,
    "torrent-reannounce": _accepted,
    "queue-move-top": _queue_move("top"),
    "queue-move-up": _queue_move("up"),
    "queue-move-down": _queue_move("down"),
    "queue-move-bottom": _queue_move("bottom"),
}

__all__ = ["METHODS", "STOPPED", "VERSION", "Door", "answer"]
