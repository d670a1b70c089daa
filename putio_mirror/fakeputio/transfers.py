"""Transfer records, their deterministic state machine, and what completion produces.

A transfer moves one state per tick through ``ACTIVE`` and then to its final
status: SEEDING (or another configured status) for torrents, COMPLETED for URL
transfers. Completion creates the transfer's files in the fake file tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from putio_mirror.fakeputio.files import ROOT_ID, FileTree
from putio_mirror.fakeputio.torrent import FileLayout

ACTIVE = ("IN_QUEUE", "WAITING", "PREPARING_DOWNLOAD", "DOWNLOADING", "COMPLETING")
MAX_GENERATED_FILE = 1 << 20
_STATUS_MESSAGES = {
    "IN_QUEUE": "In queue...",
    "WAITING": "Waiting...",
    "PREPARING_DOWNLOAD": "Preparing download...",
    "DOWNLOADING": "Downloading...",
    "COMPLETING": "Completing...",
    "SEEDING": "Seeding",
    "COMPLETED": "Completed",
    "ERROR": "Error",
}


@dataclass
class TransferRecord:
    """One put.io transfer; ``layout`` is what completion will create (None: generate)."""

    id: int
    name: str
    type: str
    status: str
    source: str | None
    hash: str | None
    save_parent_id: int
    created_at: str
    layout: FileLayout | None = None
    single_file: bool = False
    file_id: int | None = None
    size: int | None = None
    percent_done: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    seconds_seeding: int | None = None
    current_ratio: float | None = None
    error_message: str | None = None
    callback_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


def advance(record: TransferRecord, final_status: str, stamp: str) -> bool:
    """Given an active transfer, move it one state on; return True if it just finished."""
    position = ACTIVE.index(record.status)
    if position + 1 < len(ACTIVE):
        record.status = ACTIVE[position + 1]
        if record.status == "DOWNLOADING":
            record.started_at = record.started_at or stamp
            record.percent_done = 50
        return False
    record.status = final_status if record.type == "TORRENT" else "COMPLETED"
    record.finished_at = stamp
    record.percent_done = 100
    if record.status == "SEEDING":
        record.seconds_seeding = record.seconds_seeding or 0
        record.current_ratio = record.current_ratio or 0.0
    return True


def produce_files(record: TransferRecord, tree: FileTree, prefix: str, stamp: str) -> int:
    """Given a finished transfer, create its files in the tree and return the top item's id."""
    parent = record.save_parent_id if _is_folder(tree, record.save_parent_id) else ROOT_ID
    layout = record.layout or generated_layout(record)
    top_name = prefix + record.name
    if record.single_file or (record.layout is None and record.type != "TORRENT"):
        return _add_generated(tree, top_name, parent, layout[0][1], stamp)
    top = tree.add(safe_name(top_name), parent, None, "REGULAR", stamp)
    folders: dict[tuple[str, ...], int] = {(): top}
    for path, length in layout:
        folder = _ensure_folders(tree, folders, path[:-1], stamp)
        _add_generated(tree, path[-1], folder, length, stamp)
    return top


def generated_layout(record: TransferRecord) -> FileLayout:
    """Given a transfer without a known file list, return 1-3 small deterministic files."""
    if record.type != "TORRENT":
        return (((record.name,), 2048 + record.id % 997),)
    count = 1 + record.id % 3
    return tuple(((f"{record.name} - part {n + 1}.mkv",), 3000 + 1024 * n) for n in range(count))


def transfer_json(record: TransferRecord, file_exists: bool) -> dict[str, Any]:
    """Given a transfer and whether its file still exists, return a put.io transfer object."""
    finished = not record.active and record.status != "ERROR"
    size = record.size if record.size is not None else _layout_size(record)
    downloaded = None if size is None else size * record.percent_done // 100
    return {
        "id": record.id,
        "name": record.name,
        "type": record.type,
        "status": record.status,
        "status_message": _STATUS_MESSAGES.get(record.status, record.status),
        "source": record.source,
        "magneturi": record.source if (record.source or "").startswith("magnet:") else None,
        "hash": record.hash,
        "save_parent_id": record.save_parent_id,
        "file_id": record.file_id,
        "size": size,
        "downloaded": downloaded,
        "uploaded": 0 if finished else None,
        "percent_done": record.percent_done,
        "completion_percent": record.percent_done,
        "down_speed": 1_048_576 if record.status == "DOWNLOADING" else 0,
        "up_speed": 0,
        "estimated_time": None,
        "availability": 100 if record.status == "DOWNLOADING" else None,
        "peers_connected": 0,
        "peers_getting_from_us": 0,
        "peers_sending_to_us": 0,
        "current_ratio": record.current_ratio,
        "seconds_seeding": record.seconds_seeding,
        "error_message": record.error_message,
        "tracker_message": None,
        "tracker": None,
        "created_at": record.created_at,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "callback_url": record.callback_url,
        "client_ip": None,
        "created_torrent": False,
        "download_id": None,
        "is_private": False,
        "simulated": False,
        "subscription_id": None,
        "torrent_link": f"/v2/transfers/{record.id}/torrent",
        "links": [],
        "userfile_exists": file_exists,
        **record.extra,
    }


def _layout_size(record: TransferRecord) -> int | None:
    if record.layout is None:
        return None
    return sum(min(length, MAX_GENERATED_FILE) for _, length in record.layout)


def _is_folder(tree: FileTree, item_id: int) -> bool:
    item = tree.get(item_id)
    return item is not None and item.is_folder


def _add_generated(tree: FileTree, name: str, parent: int, length: int, stamp: str) -> int:
    size = max(0, min(length, MAX_GENERATED_FILE))
    return tree.add_generated(safe_name(name), parent, size, stamp)


def safe_name(name: str) -> str:
    """Given a name from a torrent or URL, return it without the two characters put.io refuses."""
    return name.replace("/", "_").replace("\0", "_")


def _ensure_folders(
    tree: FileTree, folders: dict[tuple[str, ...], int], path: tuple[str, ...], stamp: str
) -> int:
    if path not in folders:
        parent = _ensure_folders(tree, folders, path[:-1], stamp)
        folders[path] = tree.add(safe_name(path[-1]), parent, None, "REGULAR", stamp)
    return folders[path]
