"""Which items a request names: ``ids`` in every form Transmission clients send.

A bare number, a bare hash (``transmission-remote -t``), a list of hashes (Sonarr),
upper-case hashes, mixed lists, ``"recently-active"``, or nothing (all). Unknown ids
simply match nothing, as in Transmission.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from putio_mirror.core.state import Desire
from putio_mirror.rpc.adding import RpcError

#: more ids than this in one request is not a client but an attack or a bug
MAX_IDS = 10_000
RECENTLY_ACTIVE = "recently-active"
_HASH = re.compile(r"[0-9a-fA-F]{40}")


def select(value: object, desires: Iterable[Desire]) -> list[Desire]:
    """Given the ``ids`` argument (or None) and every desire, return those it names in
    id order; raise RpcError if it is not a form of ids."""
    ordered = sorted(desires, key=lambda desire: desire.rpc_id)
    if value is None or value == RECENTLY_ACTIVE:
        return ordered
    wanted = value if isinstance(value, list) else [value]
    if len(wanted) > MAX_IDS:
        raise RpcError(f"too many ids (at most {MAX_IDS})")
    numbers: set[int] = set()
    hashes: set[str] = set()
    for item in wanted:
        if isinstance(item, bool):
            raise RpcError("ids should be numbers or info-hashes")
        if isinstance(item, int):
            numbers.add(item)
        elif isinstance(item, str) and _HASH.fullmatch(item):
            hashes.add(item.lower())
        elif isinstance(item, str) and item.isdigit():
            numbers.add(int(item))
        else:
            raise RpcError(f"invalid id {str(item)[:60]!r}: use numbers or info-hashes")
    return [d for d in ordered if d.rpc_id in numbers or d.info_hash in hashes]
