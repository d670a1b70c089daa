"""The transfers endpoints of the fake API host, and the upload host's one endpoint."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote, urlsplit

from putio_mirror.fakeputio.content import StoredContent
from putio_mirror.fakeputio.files import ROOT_ID
from putio_mirror.fakeputio.forms import Form
from putio_mirror.fakeputio.paging import first_page_reply, next_page_reply
from putio_mirror.fakeputio.replies import ApiError, Reply, ok_reply
from putio_mirror.fakeputio.routing import Route, route
from putio_mirror.fakeputio.torrent import parse_magnet, parse_torrent
from putio_mirror.fakeputio.transfers import safe_name
from putio_mirror.fakeputio.world import World

MAX_PER_PAGE = 1000


def list_transfers(world: World, form: Form, match: re.Match[str]) -> Reply:
    """Answer ``GET /v2/transfers/list``: everything, or a page when ``per_page`` is given."""
    ids = sorted(world.transfers)
    if form.get("per_page") is None:
        return ok_reply(transfers=_transfers_json(world, ids))
    per_page = form.integer("per_page", MAX_PER_PAGE)
    if per_page > MAX_PER_PAGE:
        raise ApiError(400, "INVALID_PER_PAGE", f"per_page cannot exceed {MAX_PER_PAGE}")
    return first_page_reply(world, "transfers", ids, per_page, form, _transfers_texts)


def continue_transfers(world: World, form: Form, match: re.Match[str]) -> Reply:
    """Answer ``POST /v2/transfers/list/continue`` with the page after ``cursor``."""
    return next_page_reply(world, "transfers", form, _transfers_texts)


def count_transfers(world: World, form: Form, match: re.Match[str]) -> Reply:
    return ok_reply(count=len(world.transfers))


def get_transfer(world: World, form: Form, match: re.Match[str]) -> Reply:
    return ok_reply(transfer=world.transfer_json(world.transfer(int(match[1]))))


def add_transfer(world: World, form: Form, match: re.Match[str]) -> Reply:
    """Answer ``POST /v2/transfers/add`` for a magnet URI or an http(s) URL."""
    url = (form.get("url") or "").strip()
    if not url:
        raise ApiError(400, "EMPTY_URL", "Empty URL")
    save_parent_id = _folder_id(world, form.integer("save_parent_id", ROOT_ID))
    fields = _fields_for_url(url)
    _refuse_if_told(world, fields["hash"])
    record = world.new_transfer(
        status="IN_QUEUE", source=url, save_parent_id=save_parent_id, **fields
    )
    record.callback_url = form.get("callback_url") or None
    return ok_reply(transfer=world.transfer_json(record))


def cancel_transfers(world: World, form: Form, match: re.Match[str]) -> Reply:
    """Answer ``POST /v2/transfers/cancel``: drop the listed transfers; unknown ids are fine."""
    for transfer_id in form.ids("transfer_ids"):
        world.transfers.pop(transfer_id, None)
    return ok_reply()


def clean_transfers(world: World, form: Form, match: re.Match[str]) -> Reply:
    """Answer ``POST /v2/transfers/clean``: drop finished transfers (all, or those listed)."""
    wanted = set(form.ids("transfer_ids")) or set(world.transfers)
    statuses = world.settings.clean_statuses
    deleted = sorted(
        key
        for key, record in world.transfers.items()
        if key in wanted and record.status in statuses
    )
    for transfer_id in deleted:
        del world.transfers[transfer_id]
    return ok_reply(deleted_ids=deleted)


def remove_transfers(world: World, form: Form, match: re.Match[str]) -> Reply:
    """Answer ``POST /v2/transfers/remove`` by ids or by ``remove_filter=all|completed``."""
    ids = set(form.ids("transfer_ids"))
    remove_filter = form.get("remove_filter")
    for key, record in list(world.transfers.items()):
        finished = not record.active
        if key in ids or remove_filter == "all" or (remove_filter == "completed" and finished):
            del world.transfers[key]
    return ok_reply()


def retry_transfer(world: World, form: Form, match: re.Match[str]) -> Reply:
    """Answer ``POST /v2/transfers/retry``: an ERROR transfer goes back to IN_QUEUE."""
    record = world.transfer(form.integer("id", -1))
    if record.status == "ERROR":
        record.status, record.error_message, record.percent_done = "IN_QUEUE", None, 0
    return ok_reply(transfer=world.transfer_json(record))


def upload(world: World, form: Form, match: re.Match[str]) -> Reply:
    """Answer ``POST /v2/files/upload``: a torrent becomes a transfer, anything else a file."""
    part = form.files.get("file")
    if part is None:
        raise ApiError(400, "BadRequest", "A part named 'file' is required")
    parent_id = _folder_id(world, form.integer("parent_id", ROOT_ID))
    torrent = parse_torrent(part.data)
    if torrent is not None:
        _refuse_if_told(world, torrent.info_hash)
        record = world.new_transfer(
            name=torrent.name,
            type="TORRENT",
            status="IN_QUEUE",
            source=None,
            hash=torrent.info_hash,
            save_parent_id=parent_id,
            layout=torrent.files,
            single_file=torrent.single_file,
        )
        return ok_reply(transfer=world.transfer_json(record))
    if form.flag("torrent"):
        raise ApiError(400, world.settings.not_torrent_error_type, "Not a torrent file")
    name = safe_name(form.get("filename") or part.filename or "upload")
    file_id = world.add_item(name, parent_id, StoredContent(part.data))
    return ok_reply(file=world.file_json(file_id))


def _refuse_if_told(world: World, info_hash: str | None) -> None:
    """Given a torrent's info-hash, raise the 400 put.io gives if this torrent is refused."""
    refusal = world.settings.refused_torrents.get(info_hash or "")
    if refusal is not None:
        raise ApiError(400, *refusal)


def _fields_for_url(url: str) -> dict[str, Any]:
    if url.lower().startswith("magnet:"):
        parsed = parse_magnet(url)
        if parsed is None:
            raise ApiError(400, "INVALID_URL", "The magnet link has no btih")
        return {"type": "TORRENT", "hash": parsed[0], "name": parsed[1]}
    split = urlsplit(url)
    if split.scheme.lower() not in ("http", "https", "ftp") or not split.netloc:
        raise ApiError(400, "INVALID_URL", "Unsupported URL")
    name = unquote(split.path.rstrip("/").rpartition("/")[2]) or split.netloc
    if name.lower().endswith(".torrent"):
        return {"type": "TORRENT", "hash": None, "name": name[: -len(".torrent")] or name}
    return {"type": "URL", "hash": None, "name": name}


def _folder_id(world: World, folder_id: int) -> int:
    item = world.tree.get(folder_id)
    if item is None or not item.is_folder:
        raise ApiError(404, "NotFound", "Destination folder not found")
    return folder_id


def _transfers_json(world: World, ids: list[int]) -> list[dict[str, Any]]:
    return [world.transfer_json(world.transfers[key]) for key in ids if key in world.transfers]


def _transfers_texts(world: World, ids: list[int]) -> list[str]:
    return [json.dumps(transfer, ensure_ascii=False) for transfer in _transfers_json(world, ids)]


ROUTES: tuple[Route, ...] = (
    route("GET", r"/v2/transfers/list", list_transfers),
    route("POST", r"/v2/transfers/list/continue", continue_transfers),
    route("GET", r"/v2/transfers/count", count_transfers),
    route("GET", r"/v2/transfers/(\d+)", get_transfer),
    route("POST", r"/v2/transfers/add", add_transfer),
    route("POST", r"/v2/transfers/cancel", cancel_transfers),
    route("POST", r"/v2/transfers/clean", clean_transfers),
    route("POST", r"/v2/transfers/remove", remove_transfers),
    route("POST", r"/v2/transfers/retry", retry_transfer),
)
UPLOAD_ROUTES: tuple[Route, ...] = (route("POST", r"/v2/files/upload", upload),)
