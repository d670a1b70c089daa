"""``queue-move-top``/``-up``/``-down``/``-bottom``: the download order, as Transmission moves it.

Pure: given the order and the items named, return the new order. The journal keeps it
(``DesireBook.reorder``); the reconciler fetches the files of earlier items first.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Literal

Move = Literal["top", "up", "down", "bottom"]


def moved(order: Sequence[str], chosen: Collection[str], move: Move) -> list[str]:
    """Given info-hashes in download order, those a client named and the move, return the
    new order: top and bottom keep the named items' own order; up and down move each one
    place, as long as it does not pass another named item (Transmission's rule)."""
    named = [key for key in order if key in chosen]
    rest = [key for key in order if key not in chosen]
    if move == "top":
        return named + rest
    if move == "bottom":
        return rest + named
    result = list(order)
    places = range(len(result)) if move == "up" else range(len(result) - 1, -1, -1)
    step = -1 if move == "up" else 1
    for place in places:
        other = place + step
        if result[place] in chosen and 0 <= other < len(result) and result[other] not in chosen:
            result[place], result[other] = result[other], result[place]
    return result
