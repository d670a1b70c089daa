"""The fake account's state: file tree, transfers, cursors and download links.

Every route and every test helper works on the world while holding
``world.lock``; the world's own methods assume the caller holds it.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime
from typing import Any

from putio_mirror.fakeputio.content import Content
from putio_mirror.fakeputio.files import FileTree, item_json
from putio_mirror.fakeputio.replies import ApiError
from putio_mirror.fakeputio.transfers import (
    TransferRecord,
    advance,
    produce_files,
    transfer_json,
)

FIRST_TRANSFER_ID = 700
_RECORD_FIELDS = frozenset(field.name for field in dataclass_fields(TransferRecord)) - {
    "id",
    "extra",
}


class Settings:
    """Switches a test flips on the fake; read by the routes on every request."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.token_revoked = False
        self.url_max_uses: int | None = None
        self.folder_name_prefix = ""
        self.torrent_final_status = "SEEDING"
        self.clean_statuses: tuple[str, ...] = ("COMPLETED", "ERROR")
        self.upload_unauthorized_text = False
        self.not_torrent_error_type = "NOT_TORRENT"
        # info-hash -> (error_type, error_message) of a torrent put.io refuses with a 400,
        # every time it is uploaded or added as a magnet
        self.refused_torrents: dict[str, tuple[str, str]] = {}
        self.end_cursor: str | None = None
        self.stall_release_seconds = 30.0
        # None: the node sends as fast as the client reads. A number caps every node
        # connection at that many bytes per second (slow enough to kill a client mid-file).
        self.node_bytes_per_second: float | None = None
        # None: links point at the fake's own node. A base URL (e.g. an nginx serving files
        # named "<file id>.bin") makes links "<base>/<file id>.bin?u=…", for benchmarks.
        self.node_base_url: str | None = None
        # Distance: every answer of every host (API, upload, node) waits this long before
        # its first byte, as put.io's ~100 ms away would (benchmarks show what it costs).
        self.latency_seconds = 0.0
        # True: the node answers every Range request with the whole file (HTTP 200), as
        # some proxies and mirrors do.
        self.node_ignores_range = False
        # the files whose links point at a node that never answers a connection
        # (``FakePutio.node_unanswering``): the address is the world's ``unanswering_url``
        self.unanswering_files: set[int] = set()
        # None: a device code is linked only when told. A number: it links itself at that poll.
        self.oob_link_after_polls: int | None = None


@dataclass
class Link:
    """A self-authenticating download URL for one file, and how often it was used."""

    file_id: int
    uses: int = 0


@dataclass
class DeviceCode:
    """One device-login code: for which app, how often it was polled, whether it is linked."""

    app_id: int
    client_name: str
    polls: int = 0
    linked: bool = False
    expired: bool = False


@dataclass(frozen=True)
class Cursor:
    """Where a paged listing goes on: the ids still to list and the page size."""

    kind: str
    #: the whole listing, shared by its cursors, and where the next page starts in it
    ids: tuple[int, ...]
    start: int
    per_page: int


class World:
    """Given settings and a UTC clock, hold the whole fake account."""

    def __init__(self, settings: Settings, now: Callable[[], datetime]) -> None:
        self.lock = threading.RLock()
        self.settings = settings
        self._now = now
        self.tree = FileTree(self.stamp())
        self.transfers: dict[int, TransferRecord] = {}
        self.node_url = ""
        self.unanswering_url = ""
        self._next_transfer_id = FIRST_TRANSFER_ID
        self._cursors: dict[str, Cursor] = {}
        self._links: dict[str, Link] = {}
        self._texts: dict[int, tuple[tuple[object, ...], str]] = {}
        self.device_codes: dict[str, DeviceCode] = {}

    def stamp(self) -> str:
        """Return the current time as put.io writes it: naive UTC, second precision."""
        return self._now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")

    def add_item(
        self, name: str, parent_id: int, content: Content | None, folder_type: str = "REGULAR"
    ) -> int:
        return self.tree.add(name, parent_id, content, folder_type, self.stamp())

    def file_json(self, item_id: int) -> dict[str, Any]:
        """Given an item id, return its file object; raise a 404 ApiError if it is unknown."""
        return self.files_json([self._item_id(item_id)])[0]

    def files_json(self, item_ids: list[int]) -> list[dict[str, Any]]:
        """Given item ids, return file objects of those that still exist, in the given order."""
        sizes = self.tree.sizes()
        items = [self.tree.get(item_id) for item_id in item_ids]
        return [item_json(item, sizes) for item in items if item is not None]

    def files_texts(self, item_ids: list[int]) -> list[str]:
        """``files_json`` as JSON texts, each kept until its item or its size changes:
        benchmarks time the product against 100,000-file listings of a fake on the same
        cores, and only the product's work should count."""
        sizes, texts = self.tree.sizes(), []
        for item_id in item_ids:
            item = self.tree.get(item_id)
            if item is None:
                continue
            # Everything item_json reads: a rename, a hiding or a new size misses the cache.
            key = (
                item.name,
                item.parent_id,
                item.is_folder,
                item.folder_type,
                item.created_at,
                item.crc32,
                item.hidden,
                sizes.get(item_id, 0),
            )
            kept = self._texts.get(item_id)
            if kept is None or kept[0] != key:
                text = json.dumps(item_json(item, sizes), ensure_ascii=False)
                kept = self._texts[item_id] = (key, text)
            texts.append(kept[1])
        return texts

    def _item_id(self, item_id: int) -> int:
        if self.tree.get(item_id) is None:
            raise ApiError(404, "NotFound", "File not found")
        return item_id

    def new_transfer(self, **fields: Any) -> TransferRecord:
        """Given transfer fields, create and keep a transfer record with a fresh id.

        Fields that the record does not know are kept in ``extra`` and appear in its JSON.
        """
        known = {key: value for key, value in fields.items() if key in _RECORD_FIELDS}
        extra = {key: value for key, value in fields.items() if key not in _RECORD_FIELDS}
        record = TransferRecord(
            id=self._next_transfer_id, created_at=self.stamp(), **known, extra=extra
        )
        self._next_transfer_id += 1
        self.transfers[record.id] = record
        return record

    def transfer(self, transfer_id: int) -> TransferRecord:
        """Given a transfer id, return it; raise a 404 ApiError if it is unknown."""
        record = self.transfers.get(transfer_id)
        if record is None:
            raise ApiError(404, "TRANSFER_NOT_FOUND", "Transfer not found")
        return record

    def transfer_json(self, record: TransferRecord) -> dict[str, Any]:
        exists = record.file_id is not None and self.tree.get(record.file_id) is not None
        return transfer_json(record, exists)

    def tick(self) -> None:
        """Move every active transfer one state on, producing files for those that finish."""
        for record in list(self.transfers.values()):
            if record.active and advance(record, self.settings.torrent_final_status, self.stamp()):
                self._complete(record)

    def _complete(self, record: TransferRecord) -> None:
        prefix = self.settings.folder_name_prefix
        record.file_id = produce_files(record, self.tree, prefix, self.stamp())
        record.size = self.tree.sizes()[record.file_id]

    def first_page(self, kind: str, ids: list[int], per_page: int) -> tuple[list[int], str | None]:
        """Given a listing's ids and page size, return the first page and the next cursor."""
        return self._page(kind, tuple(ids), 0, per_page)

    def next_page(
        self, kind: str, token: str, per_page: int | None
    ) -> tuple[list[int], str | None]:
        """Given a cursor from an earlier page, return the next page; raise 400 if it is bad."""
        cursor = self._cursors.get(token)
        if cursor is None or cursor.kind != kind:
            raise ApiError(400, "INVALID_CURSOR", "Invalid cursor")
        return self._page(kind, cursor.ids, cursor.start, per_page or cursor.per_page)

    def _page(
        self, kind: str, ids: tuple[int, ...], start: int, per_page: int
    ) -> tuple[list[int], str | None]:
        # Pages are slices of one tuple: a 100-page listing copies each id once, not 50 times.
        if per_page < 1:
            raise ApiError(400, "INVALID_PER_PAGE", "per_page must be at least 1")
        end = start + per_page
        if end >= len(ids):
            return list(ids[start:]), self.settings.end_cursor
        token = secrets.token_urlsafe(12)
        self._cursors[token] = Cursor(kind, ids, end, per_page)
        return list(ids[start:end]), token

    def new_link(self, file_id: int) -> str:
        """Given a file id, return the URL of a fresh self-authenticating download link."""
        token = secrets.token_urlsafe(16)
        self._links[token] = Link(file_id)
        if file_id in self.settings.unanswering_files:
            return f"{self.unanswering_url}/download/{file_id}?u={token}"
        base = self.settings.node_base_url
        if base is not None:
            return f"{base.rstrip('/')}/{file_id}.bin?u={token}"
        return f"{self.node_url}/download/{file_id}?u={token}"

    def link(self, token: str) -> Link | None:
        return self._links.get(token)
