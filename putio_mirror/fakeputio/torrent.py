"""Reading what a client hands to put.io: .torrent bytes and magnet URIs.

The info-hash is the SHA-1 of the info dictionary exactly as it appears in the
uploaded bytes (as put.io computes it), not of a re-encoding.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastbencode import bdecode, bencode  # type: ignore[attr-defined]

FileLayout = tuple[tuple[tuple[str, ...], int], ...]


@dataclass(frozen=True)
class TorrentInfo:
    """What a transfer needs from a torrent: its name, hash and file layout."""

    name: str
    info_hash: str
    files: FileLayout
    single_file: bool


def parse_torrent(data: bytes) -> TorrentInfo | None:
    """Given uploaded bytes, return the torrent they describe, or None if not a torrent."""
    try:
        decoded = bdecode(data)
    except Exception:
        return None
    if not isinstance(decoded, dict) or not isinstance(decoded.get(b"info"), dict):
        return None
    info: dict[bytes, Any] = decoded[b"info"]
    name = _text(info.get(b"name", b"")) or "torrent"
    files, single = _layout(info, name)
    return TorrentInfo(name, _info_hash(data, info), files, single)


def parse_magnet(uri: str) -> tuple[str, str] | None:
    """Given a magnet URI, return (lowercase hex btih, name); None if it has no btih."""
    query = parse_qs(urlsplit(uri).query)
    for topic in query.get("xt", []):
        if topic.lower().startswith("urn:btih:"):
            info_hash = _btih_hex(topic[len("urn:btih:") :])
            if info_hash:
                names = query.get("dn", [])
                return info_hash, names[0] if names else f"magnet-{info_hash[:8]}"
    return None


def _btih_hex(value: str) -> str | None:
    """Given a btih in hex (40 chars) or base32 (32 chars), return lowercase hex."""
    if len(value) == 40:
        try:
            return bytes.fromhex(value).hex()
        except ValueError:
            return None
    if len(value) == 32:
        try:
            return base64.b32decode(value.upper()).hex()
        except binascii.Error:
            return None
    return None


def _layout(info: dict[bytes, Any], name: str) -> tuple[FileLayout, bool]:
    if isinstance(info.get(b"files"), list):
        entries = []
        for entry in info[b"files"]:
            path = tuple(_text(part) for part in entry.get(b"path", [])) or ("file",)
            entries.append((path, int(entry.get(b"length", 0))))
        return tuple(entries), False
    return (((name,), int(info.get(b"length", 0))),), True


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _info_hash(data: bytes, info: dict[bytes, Any]) -> str:
    span = _info_span(data)
    raw = data[span[0] : span[1]] if span else bencode(info)
    return hashlib.sha1(raw, usedforsecurity=False).hexdigest()


def _info_span(data: bytes) -> tuple[int, int] | None:
    """Given a valid bencoded dict, return where its ``info`` value starts and ends."""
    position = 1
    while data[position : position + 1] != b"e":
        key_end = _value_end(data, position)
        key = data[data.index(b":", position) + 1 : key_end]
        value_end = _value_end(data, key_end)
        if key == b"info":
            return key_end, value_end
        position = value_end
    return None


def _value_end(data: bytes, position: int) -> int:
    """Given the start of a bencoded value, return the index just past it."""
    marker = data[position : position + 1]
    if marker == b"i":
        return data.index(b"e", position) + 1
    if marker in (b"l", b"d"):
        position += 1
        while data[position : position + 1] != b"e":
            position = _value_end(data, position)
        return position + 1
    colon = data.index(b":", position)
    return colon + 1 + int(data[position:colon])
