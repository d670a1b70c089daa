"""The device-code ("OOB") login endpoints and token revocation of the fake API host.

A code waits until it is linked: by ``POST /v2/oauth2/oob/code`` (what put.io's own apps
send when the person types the code), by the test hook ``FakePutio.link_device``, or by
itself after ``Settings.oob_link_after_polls`` polls. A linked code answers the fake's
token; an unknown or expired one answers 404 ``code_not_found``, as put.io's clients
expect (putio-api.md section 1.3).
"""

from __future__ import annotations

import re
import secrets

from putio_mirror.fakeputio.forms import Form
from putio_mirror.fakeputio.replies import ApiError, Reply, ok_reply
from putio_mirror.fakeputio.routing import Route, route
from putio_mirror.fakeputio.world import DeviceCode, World

_CODE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_code(world: World, form: Form, match: re.Match[str]) -> Reply:
    """Answer ``GET /v2/oauth2/oob/code?app_id=…``: a fresh code for that app."""
    app_id = form.integer("app_id", 0)
    if app_id <= 0:
        raise ApiError(400, "INVALID_APP_ID", "app_id is required")
    code = "".join(secrets.choice(_CODE_LETTERS) for _ in range(6))
    world.device_codes[code] = DeviceCode(app_id, form.get("client_name") or "")
    return ok_reply(code=code, qr_code_url=f"https://put.io/qr/{code}.png")


def check_code(world: World, form: Form, match: re.Match[str]) -> Reply:
    """Answer ``GET /v2/oauth2/oob/code/{code}``: null until linked, then the token."""
    record = _known(world, match[1])
    record.polls += 1
    after = world.settings.oob_link_after_polls
    if after is not None and record.polls >= after:
        record.linked = True
    return ok_reply(oauth_token=world.settings.token if record.linked else None)


def link_code(world: World, form: Form, match: re.Match[str]) -> Reply:
    """Answer ``POST /v2/oauth2/oob/code`` (form ``code``): the signed-in person links it."""
    record = _known(world, (form.get("code") or "").strip().upper())
    record.linked = True
    return ok_reply(app={"id": record.app_id, "name": record.client_name})


def logout(world: World, form: Form, match: re.Match[str]) -> Reply:
    """Answer ``POST /v2/oauth/grants/logout``: the token presented is revoked."""
    world.settings.token_revoked = True
    return ok_reply()


def _known(world: World, code: str) -> DeviceCode:
    record = world.device_codes.get(code)
    if record is None or record.expired:
        raise ApiError(404, "code_not_found", "Code not found")
    return record


ROUTES: tuple[Route, ...] = (
    route("GET", r"/v2/oauth2/oob/code", new_code, auth=False),
    route("POST", r"/v2/oauth2/oob/code", link_code),
    route("GET", r"/v2/oauth2/oob/code/(\w+)", check_code, auth=False),
    route("POST", r"/v2/oauth/grants/logout", logout),
)
