"""Cursor paging as put.io does it for ``files/list`` and ``transfers/list`` (and their
``/continue``): the same dance for both, told apart by ``kind`` and how a page is shown."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from putio_mirror.fakeputio.forms import Form
from putio_mirror.fakeputio.replies import Reply, listing_reply
from putio_mirror.fakeputio.world import World

#: Given the world and a page of ids, return the objects of that page as JSON texts.
Render = Callable[[World, list[int]], list[str]]


def first_page_reply(
    world: World,
    kind: str,
    ids: list[int],
    per_page: int,
    form: Form,
    render: Render,
    **extra: Any,
) -> Reply:
    """Answer the first page of ``ids`` under the key ``kind`` (with ``extra`` fields),
    and ``total`` when asked."""
    page, cursor = world.first_page(kind, ids, per_page)
    payload: dict[str, Any] = {**extra, "cursor": cursor}
    if form.flag("total"):
        payload["total"] = len(ids)
    return listing_reply(kind, render(world, page), **payload)


def next_page_reply(world: World, kind: str, form: Form, render: Render) -> Reply:
    """Answer ``POST /v2/<kind>/list/continue`` with the page after ``cursor``."""
    per_page = form.integer("per_page", 0) or None
    page, cursor = world.next_page(kind, form.get("cursor") or "", per_page)
    return listing_reply(kind, render(world, page), cursor=cursor)
