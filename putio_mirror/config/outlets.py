"""The ``notify:``, ``hooks:`` and ``arr:`` sections → ``Outlets`` (where a run's events go)."""

from __future__ import annotations

from putio_mirror.config.schema import MirrorFile
from putio_mirror.notify.values import ArrServer, Outlets


def outlets(model: MirrorFile) -> Outlets:
    """Given the file's model, return where events go (nothing, unless configured)."""
    return Outlets(
        urls=model.notify.urls,
        events=frozenset(model.notify.events),
        on_item_placed=model.hooks.on_item_placed,
        hook_timeout=model.hooks.timeout_seconds,
        arr=tuple(ArrServer(entry.url, entry.kind, entry.api_key) for entry in model.arr),
    )
