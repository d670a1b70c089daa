"""put.io's JSON → our frozen values, leniently (numerics may be null or strings,
timestamps come in three spellings, statuses may be new). Pure: no I/O."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from putio_mirror.core.building import fast_constructor
from putio_mirror.core.errors import TorrentRefusedError, TransientError
from putio_mirror.core.state import REGULAR_FOLDER, RemoteFile, Transfer

TRANSIENT_HINT = "put.io or the network is having trouble; the next run will try again"
_FOLDER_CONTENT_TYPE = "application/x-directory"
# parse_file builds one for every file of the account on every run
_remote_file = fast_constructor(RemoteFile)


def parse_timestamp(value: object) -> datetime | None:
    """Given put.io's ``YYYY-MM-DDTHH:MM:SS`` (or with a space, or a trailing Z),
    return an aware UTC datetime; return None for null or anything unreadable."""
    if not isinstance(value, str):
        return None
    try:
        # put.io's usual naive UTC spelling in one C call, ~0.15 µs: an account lists
        # 100,000 files, and ``replace(tzinfo=UTC)`` alone costs ten times that.
        when = datetime.fromisoformat(value + "+00:00")
        if when.tzinfo is not None:  # a date alone would come back naive
            return when
    except ValueError:
        pass
    try:
        # Python 3.11 reads all three spellings (and lower-case z, and surrounding blanks
        # stripped).
        when = datetime.fromisoformat(value.strip().upper())
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def parse_int(value: object) -> int | None:
    """Given a JSON number or numeric string, return it as an int; None if not a number."""
    if type(value) is int:  # what put.io sends nearly always: no float round trip
        return value
    number = parse_float(value)
    return None if number is None else int(number)


def parse_float(value: object) -> float | None:
    """Given a JSON number or numeric string (``current_ratio`` is either), return a
    float; None for null, booleans and garbage."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _required_id(item: Mapping[str, object]) -> int:
    value = parse_int(item.get("id"))
    if value is None:
        raise TransientError("put.io sent an item without an id", TRANSIENT_HINT)
    return value


def parse_transfer(item: Mapping[str, object]) -> Transfer:
    """Given a put.io transfer object, return a Transfer (unknown statuses kept as given)."""
    info_hash = _text(item.get("hash"))
    return Transfer(
        id=_required_id(item),
        name=_text(item.get("name")) or "",
        status=_text(item.get("status")) or "UNKNOWN",
        hash=info_hash.lower() if info_hash else None,
        source=_text(item.get("source")) or _text(item.get("magneturi")),
        file_id=parse_int(item.get("file_id")),
        save_parent_id=parse_int(item.get("save_parent_id")),
        seconds_seeding=parse_int(item.get("seconds_seeding")),
        current_ratio=parse_float(item.get("current_ratio")),
        finished_at=parse_timestamp(item.get("finished_at")),
        error_message=_text(item.get("error_message")),
        size=parse_int(item.get("size")),
        percent_done=parse_int(item.get("percent_done")),
        down_speed=parse_int(item.get("down_speed")) or 0,
    )


def parse_file(item: Mapping[str, object]) -> RemoteFile:
    """Given a put.io file object, return a RemoteFile (a null parent is the root, 0)."""
    # Each value is taken as it comes when it has the usual type, and read leniently
    # otherwise: this runs for every file of the account on every run.
    file_id, parent_id, size = item.get("id"), item.get("parent_id"), item.get("size")
    name, crc32, folder_type = item.get("name"), item.get("crc32"), item.get("folder_type")
    return _remote_file(
        file_id if type(file_id) is int else _required_id(item),
        name if isinstance(name, str) else "",
        parent_id if type(parent_id) is int else parse_int(parent_id) or 0,
        size if type(size) is int else parse_int(size) or 0,
        item.get("content_type") == _FOLDER_CONTENT_TYPE or item.get("file_type") == "FOLDER",
        crc32.lower() if isinstance(crc32, str) and crc32 else None,
        folder_type if isinstance(folder_type, str) and folder_type else REGULAR_FOLDER,
        parse_timestamp(item.get("updated_at")),
    )


def join_ids(ids: Sequence[int]) -> str:
    """Given ids, return them as put.io takes a list: ``1,2,3``."""
    return ",".join(str(int(item)) for item in ids)


def refused_torrent(what: str, reason: str) -> TorrentRefusedError:
    """Given what was submitted and put.io's reason, return the error of its refusal."""
    return TorrentRefusedError(
        f"put.io refused {what}: {reason}",
        "put.io will refuse it again as it is: fetch the .torrent or magnet again, "
        "or ask its source for another one",
        reason,
    )


@dataclass(frozen=True)
class Account:
    """The put.io account a token belongs to: who, and how much room it has (bytes)."""

    username: str
    mail: str | None
    disk_avail: int | None
    disk_size: int | None


def parse_account(info: Mapping[str, object]) -> Account:
    """Given the ``info`` object of ``account/info``, return the Account."""
    disk = info.get("disk")
    disk = disk if isinstance(disk, Mapping) else {}
    return Account(
        username=_text(info.get("username")) or "?",
        mail=_text(info.get("mail")),
        disk_avail=parse_int(disk.get("avail")),
        disk_size=parse_int(disk.get("size")),
    )
