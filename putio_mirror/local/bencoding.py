"""Bencode walked by hand: where a dictionary's ``info`` value lies, and a canonical form.

fastbencode refuses data out of canonical form (unsorted keys, numbers with leading
zeros), which real-world torrent makers sometimes write; the info-hash must still be
the SHA-1 of the ``info`` bytes exactly as they stand in the file. Pure: no I/O.
"""

from __future__ import annotations

import re

# Real torrents nest five levels deep; this only stops hostile files.
_MAX_DEPTH = 100
_INTEGER = re.compile(rb"i(-?\d+)e")
_LENGTH = re.compile(rb"(\d+):")
# what an integer or a string's length looks like when the data ends inside it
_INTEGER_BEGUN = re.compile(rb"i-?\d*")
_LENGTH_BEGUN = re.compile(rb"\d*")


class EndsMidwayError(ValueError):
    """The data ends before the value it holds does (a file cut short, or still written)."""


def info_span(data: bytes) -> tuple[int, int]:
    """Given a valid bencoded dictionary holding ``info``, return where its value starts
    and ends in ``data``."""
    position = 1
    while data[position : position + 1] != b"e":
        key, position = _string(data, position)
        _, end = canonical(data, position, 1)
        if key == b"info":
            return position, end
        position = end
    raise ValueError("no info key")  # unreachable after _torrent_info


def canonical(data: bytes, position: int, depth: int) -> tuple[bytes, int]:
    """Given bencode starting at ``position``, return (its canonical form, where it ends);
    raise EndsMidwayError if the data ends inside it, ValueError if it is not bencode.

    Canonical means dictionary keys sorted and numbers without leading zeros,
    which is what fastbencode insists on; the bytes in between are kept.
    """
    if depth > _MAX_DEPTH:
        raise ValueError("nested too deeply")
    head = data[position : position + 1]
    if not head:
        raise EndsMidwayError(f"the data ends at {position}, inside a value")
    if head == b"i":
        match = _INTEGER.match(data, position)
        if match is None:
            if _INTEGER_BEGUN.fullmatch(data, position):
                raise EndsMidwayError("the data ends inside an integer")
            raise ValueError("bad integer")
        return b"i%de" % int(match[1]), match.end()
    if head.isdigit():
        text, end = _string(data, position)
        return b"%d:%s" % (len(text), text), end
    if head == b"l":
        return _canonical_list(data, position + 1, depth)
    if head == b"d":
        return _canonical_dict(data, position + 1, depth)
    raise ValueError(f"unexpected {head!r} at {position}")


def _canonical_list(data: bytes, position: int, depth: int) -> tuple[bytes, int]:
    parts = [b"l"]
    while data[position : position + 1] != b"e":
        part, position = canonical(data, position, depth + 1)
        parts.append(part)
    parts.append(b"e")
    return b"".join(parts), position + 1


def _canonical_dict(data: bytes, position: int, depth: int) -> tuple[bytes, int]:
    entries: dict[bytes, bytes] = {}
    while data[position : position + 1] != b"e":
        key, position = _string(data, position)
        if key in entries:
            raise ValueError(f"duplicate key {key!r}")
        entries[key], position = canonical(data, position, depth + 1)
    body = b"".join(b"%d:%s%s" % (len(key), key, value) for key, value in sorted(entries.items()))
    return b"d" + body + b"e", position + 1


def _string(data: bytes, position: int) -> tuple[bytes, int]:
    """Given a bencoded string at ``position``, return (its bytes, where it ends)."""
    match = _LENGTH.match(data, position)
    if match is None:
        if _LENGTH_BEGUN.fullmatch(data, position):
            raise EndsMidwayError("the data ends inside a string's length")
        raise ValueError(f"expected a string at {position}")
    end = match.end() + int(match[1])
    if end > len(data):
        raise EndsMidwayError("string runs past the end")
    return data[match.end() : end], end
