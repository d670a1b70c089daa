"""Notifications through Apprise (one library for 100+ services: ntfy, Gotify, Pushover,
Telegram, Discord, e-mail, a JSON POST…): what each event says, and sending it.

Apprise is imported on the first message, never at start-up: it costs ~130 ms, which a
timer's idle run should not pay when nothing happens (``bench/startup.py``).
"""

from __future__ import annotations

import logging

from putio_mirror.notify.values import DiskFull, Event, ItemFailed, ItemPlaced, More, TokenRefused

log = logging.getLogger(__name__)

APP = "putio-mirror"


#: the most names a message of several items lists
NAMES_LISTED = 30


def wording(event: Event | More) -> tuple[str, str, str]:
    """Given an event, return its title, body and Apprise type (success, warning, failure)."""
    if isinstance(event, More):
        return _several(event)
    if isinstance(event, ItemPlaced):
        return f"{APP}: {event.name} is ready", f"Placed in {event.path}", "success"
    if isinstance(event, ItemFailed):
        body = _with_hint(event.message, event.hint)
        return f"{APP}: {event.name} failed", body, "warning"
    if isinstance(event, DiskFull):
        body = _with_hint(event.message, event.hint)
        return f"{APP}: the disk is full", body, "failure"
    assert isinstance(event, TokenRefused)
    body = _with_hint(event.message, event.hint)
    return f"{APP}: put.io refused the token", body, "failure"


def _several(more: More) -> tuple[str, str, str]:
    count, listed = len(more.names), list(more.names[:NAMES_LISTED])
    if count > NAMES_LISTED:
        listed.append(f"… and {count - NAMES_LISTED} more")
    body = "\n".join(listed)
    if more.event == "item_placed":
        return f"{APP}: {count} more items are ready", body, "success"
    return (
        f"{APP}: {count} more items failed",
        f"{body}\n\n`putio-mirror status` says why",
        "warning",
    )


def _with_hint(message: str, hint: str) -> str:
    return f"{message}\n\n{hint}" if hint else message


def service_name(url: str) -> str:
    """Given an Apprise URL, return what may be said of it in a log (its scheme: the rest
    of the URL usually holds a token or password)."""
    scheme, separator, _ = url.partition("://")
    return f"{scheme}://…" if separator else "a URL that is not one"


def send(urls: tuple[str, ...], event: Event | More, timeout: float) -> list[str]:
    """Given Apprise URLs, send the event to each; return the problems (never raise)."""
    import apprise

    _quieter_apprise()
    title, body, kind = wording(event)
    problems = []
    for url in urls:  # one by one: a failure names its service, and one cannot stop another
        box = apprise.Apprise(asset=apprise.AppriseAsset(app_id=APP, service_timeout=timeout))
        if not box.add(url):
            problems.append(f"{service_name(url)}: Apprise does not understand this URL")
            continue
        try:
            sent = box.notify(body=body, title=title, notify_type=apprise.NotifyType(kind))
        except Exception as error:  # a plugin's bug must not end the run
            problems.append(f"{service_name(url)}: {type(error).__name__}: {error}")
            continue
        if not sent:
            problems.append(f"{service_name(url)}: not delivered (Apprise's log says why)")
    return problems


def _quieter_apprise() -> None:
    """Apprise says "Notifying 1 service(s)" at INFO for every message: only at -vv (our
    DEBUG) is that wanted; its warnings (why a message failed) always are."""
    ours = logging.getLogger("putio_mirror").getEffectiveLevel()
    theirs = logging.getLogger("apprise")
    if theirs.level == logging.NOTSET and ours > logging.DEBUG:
        theirs.setLevel(logging.WARNING)
