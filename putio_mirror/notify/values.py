"""What the outlets are (from the config) and the events they hear of, as plain values.

``config`` builds ``Outlets`` from the ``notify:``, ``hooks:`` and ``arr:`` sections; the
executor and ``run_once`` make the events; ``Notifier`` hands each to the outlets that want it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

EventName = Literal["item_placed", "item_failed", "token_refused", "disk_full"]
EVENT_NAMES: tuple[EventName, ...] = ("item_placed", "item_failed", "token_refused", "disk_full")
ArrKind = Literal["sonarr", "radarr"]

#: what a command hook may take before it is killed, unless the config says otherwise
HOOK_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class ArrServer:
    """A Sonarr or Radarr told to import each placed item (its command API, v3)."""

    url: str
    kind: ArrKind
    api_key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Outlets:
    """Where events go: Apprise URLs (for ``events``), a command run after each placed item,
    and the media managers asked to rescan it. URLs and keys hold secrets: never shown."""

    urls: tuple[str, ...] = field(default=(), repr=False)
    events: frozenset[EventName] = frozenset(EVENT_NAMES)
    on_item_placed: tuple[str, ...] = ()
    hook_timeout: float = HOOK_TIMEOUT_SECONDS
    arr: tuple[ArrServer, ...] = ()

    @property
    def any(self) -> bool:
        """Whether anything is configured (else a run sends nothing and imports nothing)."""
        return bool(self.urls or self.on_item_placed or self.arr)


@dataclass(frozen=True, slots=True)
class Trouble:
    """What went wrong handing an event to an outlet; ``silent``: it did not answer (it
    hung, or its server is down), so it is let be for the rest of the run: each event
    would wait out its timeout again, and a run ends only once every event was handed on."""

    text: str
    silent: bool = False


@dataclass(frozen=True, slots=True)
class ItemPlaced:
    """An item (a folder, or a single file) is now in the download folder, whole."""

    name: str
    path: str
    item_id: int
    event: EventName = "item_placed"


@dataclass(frozen=True, slots=True)
class ItemFailed:
    """A failure was recorded for a file; it is tried again later."""

    name: str
    message: str
    hint: str = ""
    event: EventName = "item_failed"


@dataclass(frozen=True, slots=True)
class TokenRefused:
    """put.io refused the token (401): the run ended, and every run will until it is fixed."""

    message: str
    hint: str = ""
    event: EventName = "token_refused"


@dataclass(frozen=True, slots=True)
class DiskFull:
    """A file did not fit on the disk (with the configured margin)."""

    name: str
    message: str
    hint: str = ""
    event: EventName = "disk_full"


@dataclass(frozen=True, slots=True)
class More:
    """The items of one kind of event told together at a run's end, past the first few
    told one by one (a first sync places hundreds: services limit the rate, and people)."""

    event: EventName
    names: tuple[str, ...]


Event = ItemPlaced | ItemFailed | TokenRefused | DiskFull
