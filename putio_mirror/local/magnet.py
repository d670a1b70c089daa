"""Magnet links: the one v1 info-hash a link names, its display name, the link itself.

Pure: no I/O. The blackhole reads ``.magnet`` files and hands their text here.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import parse_qsl

from putio_mirror.core.errors import CorruptTorrentError

_HEX_HASH = re.compile(r"[0-9a-fA-F]{40}")
_BASE32_HASH = re.compile(r"[A-Za-z2-7]{32}")
_EXTRA_TOPIC = re.compile(r"xt\.\d+")

MAGNET_HINT = "Copy the magnet link again from where it came from; it should start with 'magnet:?'."


def parse_magnet(text: str) -> tuple[str, str, str]:
    """Given a magnet link (or a file's text whose first non-empty line is one), return
    (btih as lowercase hex, display name or "", the link stripped).

    Raise CorruptTorrentError if there is no link or not exactly one v1 info-hash.
    """
    uri = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if not uri:
        raise CorruptTorrentError("the file holds no magnet link", MAGNET_HINT)
    if not uri.lower().startswith("magnet:?"):
        raise CorruptTorrentError(
            "not a magnet link: it does not start with 'magnet:?'", MAGNET_HINT
        )
    params = parse_qsl(uri[len("magnet:?") :], keep_blank_values=True)
    topics = [value.strip() for key, value in params if key == "xt" or _EXTRA_TOPIC.fullmatch(key)]
    hashes = {_btih_hex(topic[9:]) for topic in topics if topic.lower().startswith("urn:btih:")}
    if not hashes and any(topic.lower().startswith("urn:btmh:") for topic in topics):
        raise CorruptTorrentError(
            "BitTorrent v2-only magnets are not supported by put.io",
            "Ask the source for a v1 or hybrid magnet (one with 'xt=urn:btih:').",
        )
    if len(hashes) != 1:
        problem = "no" if not hashes else "more than one"
        raise CorruptTorrentError(
            f"the magnet link has {problem} BitTorrent info-hash (xt=urn:btih:…)", MAGNET_HINT
        )
    display_name = next((value for key, value in params if key == "dn"), "")
    return hashes.pop(), display_name, uri


def _btih_hex(value: str) -> str:
    """Given the value of ``urn:btih:``, return it as lowercase hex; raise
    CorruptTorrentError if it is neither 40 hex nor 32 base32 characters."""
    if _HEX_HASH.fullmatch(value):
        return value.lower()
    if _BASE32_HASH.fullmatch(value):
        try:
            return base64.b32decode(value.upper()).hex()
        except binascii.Error:
            pass  # falls through to the error below
    raise CorruptTorrentError(f"the magnet link's info-hash {value!r} is not valid", MAGNET_HINT)
