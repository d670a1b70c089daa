"""Replies as JSON text, with parts encoded beforehand going in as they are.

``torrent-get``'s rows are kept encoded between polls (``rows.py``): encoding 1,000 rows
afresh cost a poll about as much as working them out. A ``JsonText`` value in a reply
is such a part; everything else is encoded as ``json.dumps`` would, with the same
settings, so a reply reads the same either way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

#: UTF-8 as it is (Transmission writes it so), no spaces; one encoder for every call
#: (``json.dumps`` with options builds a new one each time)
dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class JsonText(str):
    """A value already encoded as JSON."""

    __slots__ = ()


def encode_reply(reply: Mapping[str, object]) -> bytes:
    """Given a reply, return its JSON as UTF-8; ``JsonText`` values go in unchanged."""
    return _encode(reply).encode("utf-8")


def _encode(value: object) -> str:
    if isinstance(value, JsonText):
        return str(value)
    if isinstance(value, Mapping) and any(
        isinstance(inner, JsonText | Mapping) for inner in value.values()
    ):
        return (
            "{"
            + ",".join(f"{dumps(str(key))}:{_encode(inner)}" for key, inner in value.items())
            + "}"
        )
    return dumps(value)
