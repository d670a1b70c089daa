"""``torrent-add``: read what a client sent into a desire, hashed here, checked here.

The info-hash is computed with the blackhole's own code (``parse_torrent``,
``parse_magnet``), so a torrent dropped in the blackhole and the same torrent added
over RPC are one transfer. Nothing is sent to put.io here: the desire goes to the
journal and the next pass submits it.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from putio_mirror.core.errors import CorruptTorrentError
from putio_mirror.core.naming import safe_component
from putio_mirror.core.state import Desire
from putio_mirror.local.blackhole import MAX_TORRENT_BYTES, parse_torrent, torrent_size
from putio_mirror.local.magnet import parse_magnet

#: how many labels, and how long each, a client may attach
MAX_LABELS, MAX_LABEL_CHARS = 32, 128


class RpcError(Exception):
    """A request the door cannot carry out: its message is the ``result`` the client sees."""


@dataclass(frozen=True)
class Addition:
    """What a ``torrent-add`` asked for: the desire and the .torrent bytes (None: magnet)."""

    desire: Desire
    data: bytes | None


def parse_add(
    arguments: dict[str, Any],
    downloads: str,
    categories: tuple[str, ...],
    now: datetime,
    fetched: tuple[str, bytes] | None = None,
) -> Addition:
    """Given ``torrent-add``'s arguments (and, when ``filename`` was a URL, the URL and the
    bytes fetched from it), return the desire they describe; raise RpcError saying what is
    wrong with them."""
    category = parse_category(arguments.get("download-dir"), downloads, categories)
    labels = labels_of(arguments.get("labels", []))
    paused = arguments.get("paused", False)
    if not isinstance(paused, bool | int):
        raise RpcError("'paused' should be true or false")
    base = Desire("", 0, "", "torrent", now, category=category, labels=labels, paused=bool(paused))
    metainfo, filename = arguments.get("metainfo"), arguments.get("filename")
    if fetched is not None:
        try:
            return _torrent(base, fetched[1])
        except CorruptTorrentError as error:
            raise RpcError(f"{fetched[0]}: not a torrent ({error.message})") from None
    try:
        if isinstance(metainfo, str) and metainfo:
            return _torrent(base, _decode_metainfo(metainfo))
        if isinstance(filename, str) and filename.lower().startswith("magnet:"):
            info_hash, name, uri = parse_magnet(filename)
            desire = replace(
                base, info_hash=info_hash, name=name or info_hash, kind="magnet", magnet_uri=uri
            )
            return Addition(desire, None)
    except CorruptTorrentError as error:
        raise RpcError(f"invalid or corrupt torrent file: {error.message}") from None
    if isinstance(filename, str) and filename:
        raise RpcError(
            "only magnet links, http(s) URLs and 'metainfo' (the .torrent, base64) are "
            "taken; a path on this machine is not read"
        )
    raise RpcError("torrent-add needs 'metainfo' or 'filename'")


def _torrent(base: Desire, data: bytes) -> Addition:
    """Given the desire so far and .torrent bytes, return the addition; raise
    CorruptTorrentError if they are not a usable torrent."""
    info_hash, name = parse_torrent(data)
    desire = replace(base, info_hash=info_hash, name=name, size=torrent_size(data))
    return Addition(desire, data)


def _decode_metainfo(text: str) -> bytes:
    # base64 grows data by a third: refuse early what cannot be a torrent we take.
    if len(text) > MAX_TORRENT_BYTES * 4 // 3 + 8:
        raise RpcError(f"invalid or corrupt torrent file: over {MAX_TORRENT_BYTES} bytes")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise RpcError("invalid or corrupt torrent file: 'metainfo' is not base64") from None


def parse_category(value: object, downloads: str, categories: tuple[str, ...]) -> str:
    """Given a client's ``download-dir``, return the category folder it means ("" for the
    download folder itself); raise RpcError if it is not one this door may write into.

    A folder inside the download folder is taken if it is one plain name deep; one
    outside (another client's path) is read as ``<downloads>/<its last name>``.
    """
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or not value.startswith("/"):
        raise RpcError("'download-dir' should be an absolute path")
    path = PurePosixPath(posixpath.normpath(value))
    root = PurePosixPath(posixpath.normpath(downloads))
    if path == root:
        return ""
    parts = path.relative_to(root).parts if path.is_relative_to(root) else (path.name,)
    if len(parts) != 1 or not _is_plain(parts[0]):
        raise RpcError(
            f"download-dir {value!r}: use {downloads} or one folder inside it, such as "
            f"{posixpath.join(downloads, 'tv-sonarr')}"
        )
    if categories and parts[0] not in categories:
        raise RpcError(f"download-dir {value!r}: the category must be one of {list(categories)}")
    return parts[0]


def _is_plain(name: str) -> bool:
    return bool(name) and safe_component(name) == name and not name.startswith(".")


def labels_of(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_LABELS:
        raise RpcError(f"'labels' should be a list of at most {MAX_LABELS} strings")
    labels = tuple(label for label in value if isinstance(label, str))
    if len(labels) != len(value) or any(len(label) > MAX_LABEL_CHARS for label in labels):
        raise RpcError(f"each label should be a string of at most {MAX_LABEL_CHARS} characters")
    return labels
