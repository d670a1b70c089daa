"""The files endpoints of the fake API host: list, get, delete, create-folder, url, download."""

from __future__ import annotations

import re

from putio_mirror.fakeputio.files import ROOT_ID
from putio_mirror.fakeputio.forms import Form
from putio_mirror.fakeputio.paging import first_page_reply, next_page_reply
from putio_mirror.fakeputio.replies import ApiError, Reply, ok_reply
from putio_mirror.fakeputio.routing import Route, route
from putio_mirror.fakeputio.world import World

FLAT_LISTING = -1
MAX_NAME_BYTES = 255


def list_files(world: World, form: Form, match: re.Match[str]) -> Reply:
    """Answer ``GET /v2/files/list``: one page of a folder's children, or of every item."""
    parent_id = form.integer("parent_id", ROOT_ID)
    per_page = form.integer("per_page", 1000)
    shown = form.flag("hidden")  # put.io lists hidden files only when asked
    if parent_id == FLAT_LISTING:
        items, parent = world.tree.every_item(), world.file_json(ROOT_ID)
    else:
        parent = world.file_json(parent_id)
        items = world.tree.children(parent_id)
    ids = [item.id for item in items if shown or not item.hidden]
    ids = _filter_types(world, ids, form.get("file_type"))
    return first_page_reply(world, "files", ids, per_page, form, World.files_texts, parent=parent)


def continue_files(world: World, form: Form, match: re.Match[str]) -> Reply:
    """Answer ``POST /v2/files/list/continue`` with the page after ``cursor``."""
    return next_page_reply(world, "files", form, World.files_texts)


def get_file(world: World, form: Form, match: re.Match[str]) -> Reply:
    return ok_reply(file=world.file_json(int(match[1])))


def get_child(world: World, form: Form, match: re.Match[str]) -> Reply:
    """Answer ``GET /v2/files/{id}/child?name=``: the first child of that exact name."""
    world.file_json(int(match[1]))
    name = form.get("name") or ""
    for child in world.tree.children(int(match[1])):
        if child.name == name:
            return ok_reply(file=world.file_json(child.id))
    raise ApiError(404, "NotFound", "File not found")


def delete_files(world: World, form: Form, match: re.Match[str]) -> Reply:
    """Answer ``POST /v2/files/delete``: remove each item and its subtree; count the rest.

    An unknown id is a 404 unless ``skip_nonexistents`` is set in the query string, where
    put.io's own clients send it (a body field of that name is not read)."""
    ids = form.ids("file_ids") or form.ids("file_id")
    missing = [key for key in ids if key == ROOT_ID or world.tree.get(key) is None]
    skip = Form(dict(form.query), {}).flag("skip_nonexistents")
    if missing and not skip:
        raise ApiError(404, "NotFound", f"File not found: {missing[0]}")
    for item_id in ids:
        if item_id not in missing and world.tree.get(item_id) is not None:
            world.tree.delete(item_id)  # (a child listed after its folder went with it)
    skipped = len(missing)
    return ok_reply(skipped=skipped, cursor=None)


def create_folder(world: World, form: Form, match: re.Match[str]) -> Reply:
    """Answer ``POST /v2/files/create-folder`` with put.io's name checks."""
    name = form.get("name") or ""
    parent_id = form.integer("parent_id", ROOT_ID)
    _check_new_name(world, name, parent_id)
    return ok_reply(file=world.file_json(world.add_item(name, parent_id, None)))


def file_url(world: World, form: Form, match: re.Match[str]) -> Reply:
    """Answer ``GET /v2/files/{id}/url`` with a fresh self-authenticating node URL."""
    return ok_reply(url=world.new_link(_downloadable(world, int(match[1]))))


def file_download(world: World, form: Form, match: re.Match[str]) -> Reply:
    """Answer ``GET|HEAD /v2/files/{id}/download`` with a redirect to a fresh node URL."""
    location = world.new_link(_downloadable(world, int(match[1])))
    return Reply(302, headers=[("Location", location)])


def _downloadable(world: World, file_id: int) -> int:
    item = world.tree.get(file_id)
    if item is None:
        raise ApiError(404, "NotFound", "File not found")
    if item.is_folder:
        raise ApiError(400, "NotFile", "Folders cannot be downloaded")
    return file_id


def _check_new_name(world: World, name: str, parent_id: int) -> None:
    if not name.strip():
        raise ApiError(400, "EMPTY_NAME", "Name cannot be empty")
    if "/" in name or "\0" in name:
        raise ApiError(400, "SLASH_IN_NAME", "Name cannot contain a slash")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise ApiError(400, "NAME_TOO_LONG", "Name is too long")
    parent = world.tree.get(parent_id)
    if parent is None or not parent.is_folder:
        raise ApiError(404, "NotFound", "Parent folder not found")
    if any(child.name == name for child in world.tree.children(parent_id)):
        raise ApiError(400, "NAME_ALREADY_EXIST", "Name already exist")


def _filter_types(world: World, ids: list[int], file_types: str | None) -> list[int]:
    if not file_types:
        return ids
    wanted = set(file_types.upper().split(","))
    return [entry["id"] for entry in world.files_json(ids) if entry["file_type"] in wanted]


ROUTES: tuple[Route, ...] = (
    route("GET", r"/v2/files/list", list_files),
    route("POST", r"/v2/files/list/continue", continue_files),
    route("GET", r"/v2/files/(\d+)", get_file),
    route("GET", r"/v2/files/(\d+)/child", get_child),
    route("GET", r"/v2/files/(\d+)/url", file_url),
    route("GET|HEAD", r"/v2/files/(\d+)/download", file_download),
    route("POST", r"/v2/files/delete", delete_files),
    route("POST", r"/v2/files/create-folder", create_folder),
)
