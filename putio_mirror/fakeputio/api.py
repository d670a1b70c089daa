"""The API and upload hosts: authentication, routing, and the account endpoints."""

from __future__ import annotations

import re

from putio_mirror.fakeputio import routes_files, routes_oauth, routes_transfers
from putio_mirror.fakeputio.forms import Form, read_form
from putio_mirror.fakeputio.replies import (
    ApiError,
    Reply,
    error_reply,
    ok_reply,
    text_reply,
    unauthorized_reply,
)
from putio_mirror.fakeputio.routing import Route, RouteTable, route
from putio_mirror.fakeputio.wire import Incoming
from putio_mirror.fakeputio.world import World

USER_ID = 1
DISK_SIZE = 10 * 1024**4
_AUTH_SCHEMES = ("token", "bearer")
_UNAUTHORIZED_TEXT = (
    "The server could not verify that you are authorized to access the URL requested. "
    "You either supplied the wrong credentials (e.g. a bad password), or your browser "
    "doesn't understand how to supply the credentials required."
)


def account_info(world: World, form: Form, match: re.Match[str]) -> Reply:
    """Answer ``GET /v2/account/info`` with the fields a mirror reads."""
    used = world.tree.sizes()[0]
    info = {
        "user_id": USER_ID,
        "username": "fakeputio",
        "mail": "fake@example.invalid",
        "account_active": True,
        "account_status": "active",
        "disk": {"avail": DISK_SIZE - used, "size": DISK_SIZE, "used": used},
        "files_will_be_deleted_at": None,
        "trash_size": 0,
        "settings": {
            "default_download_folder": 0,
            "trash_enabled": False,
            "history_enabled": True,
            "callback_url": None,
            "sort_by": "NAME_ASC",
        },
    }
    return ok_reply(info=info)


def validate_token(world: World, form: Form, match: re.Match[str]) -> Reply:
    """Answer ``GET /v2/oauth2/validate``; an unknown or revoked token gives ``result: false``."""
    valid = form.authorized
    return ok_reply(
        result=valid,
        token_id=1 if valid else None,
        token_scope="default" if valid else None,
        user_id=USER_ID if valid else None,
    )


API_ROUTES: tuple[Route, ...] = (
    route("GET", r"/v2/account/info", account_info),
    route("GET", r"/v2/oauth2/validate", validate_token, auth=False),
    *routes_oauth.ROUTES,
    *routes_transfers.ROUTES,
    *routes_files.ROUTES,
)
_TABLES = {
    "api": RouteTable(API_ROUTES),
    "upload": RouteTable(routes_transfers.UPLOAD_ROUTES),
}


def respond(world: World, incoming: Incoming) -> Reply:
    """Given a request to the API or upload host, return put.io's answer."""
    found = _find(_TABLES["upload" if incoming.host == "upload" else "api"], incoming)
    if isinstance(found, Reply):
        return found
    route_, match = found
    authorized = _authorized(world, incoming)
    if route_.auth and not authorized:
        if incoming.host == "upload" and world.settings.upload_unauthorized_text:
            return text_reply(401, _UNAUTHORIZED_TEXT)
        return unauthorized_reply()
    try:
        form = read_form(incoming, authorized)
        with world.lock:
            return route_.handler(world, form, match)
    except ApiError as error:
        return error_reply(error.status, error.error_type, error.message)


def _find(table: RouteTable, incoming: Incoming) -> tuple[Route, re.Match[str]] | Reply:
    wrong_method = False
    for candidate, match in table.matching(incoming.path):
        if incoming.method in candidate.methods:
            return candidate, match
        wrong_method = True
    if wrong_method:
        return error_reply(405, "MethodNotAllowed", "Method not allowed")
    return error_reply(404, "NotFound", "Not found")


def _authorized(world: World, incoming: Incoming) -> bool:
    if world.settings.token_revoked:
        return False
    return _presented_token(incoming) == world.settings.token


def _presented_token(incoming: Incoming) -> str | None:
    header = incoming.headers.get("Authorization", "")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() in _AUTH_SCHEMES and value.strip():
        return value.strip()
    return incoming.query.get("oauth_token")
