"""Bandwidth timetables in rclone's notation: how fast downloads may go, and when.

``"10M"`` or ``"off"`` is one limit at all times. ``"08:00,2M 23:00,off"`` changes
the limit every day at those times; ``"Mon-08:00,512K Sat-00:00,off"`` on those days
of the week; both kinds may be mixed (on the same minute, a day's own entry beats an
every-day one). Each entry holds until the next one, and the table wraps around:
before the day's (or the week's) first entry, the last entry before it still applies.

Limits are bytes per second with a unit B, K, M or G (powers of 1024); ``KB`` and
``KiB`` mean ``K``. A bare number is KiB per second, as rclone reads it (``10`` is
10 KiB/s), so rclone users' timetables mean here what they meant there; the run
prints the limit in words, so nobody is left guessing. Pure: the caller passes the
moment to ``limit_at``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from putio_mirror.core.units import human_rate
from putio_mirror.core.weekdays import DAY_NAMES, MINUTES_PER_DAY, parse_weekday

_UNITS = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_RATE = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(b|[kmg](?:i?b)?)", re.IGNORECASE)
_BARE_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_TIME = re.compile(r"(?:([A-Za-z]+)-)?(\d{1,2}):(\d{2})")
_EXAMPLE = "e.g. '10M', 'off' or '08:00,2M 23:00,off'"


@dataclass(frozen=True)
class Entry:
    """From ``minute`` after midnight on ``weekday`` (0 = Monday; None = every day),
    allow ``limit`` bytes per second (None = no limit)."""

    weekday: int | None
    minute: int
    limit: int | None

    def when(self) -> str:
        """Return when the entry starts, e.g. ``08:00`` or ``Mon 08:00``."""
        clock = f"{self.minute // 60:02d}:{self.minute % 60:02d}"
        return clock if self.weekday is None else f"{DAY_NAMES[self.weekday]} {clock}"

    def describe(self) -> str:
        return f"from {self.when()}: {describe_rate(self.limit)}"


@dataclass(frozen=True)
class Timetable:
    """A week of bandwidth limits: each entry holds until the next one, wrapping around."""

    entries: tuple[Entry, ...]

    def __post_init__(self) -> None:
        if not self.entries:
            raise ValueError(f"a bandwidth timetable needs at least one entry ({_EXAMPLE})")

    def limit_at(self, moment: datetime) -> int | None:
        """Given a local time, return the limit in bytes per second then (None: no limit)."""
        now = moment.weekday() * MINUTES_PER_DAY + moment.hour * 60 + moment.minute
        points = self._points()
        earlier = [limit for start, limit in points if start <= now]
        return earlier[-1] if earlier else points[-1][1]

    @property
    def unlimited(self) -> bool:
        """True if no entry ever limits (``off``): then nothing needs to meter the bytes."""
        return all(entry.limit is None for entry in self.entries)

    def describe(self) -> str:
        """Return the timetable in words, e.g. ``from 08:00: 2 MiB/s; from 23:00: no limit``."""
        if len(self.entries) == 1 and self.entries[0].weekday is None:
            return f"{describe_rate(self.entries[0].limit)} at all times"
        return "; ".join(entry.describe() for entry in self.entries)

    def _points(self) -> list[tuple[int, int | None]]:
        """Return (minute of the week, limit) for every change, in order; a day's own
        entry replaces an every-day entry at the same minute."""
        points: dict[int, int | None] = {}
        for entry in sorted(self.entries, key=lambda entry: entry.weekday is not None):
            days = range(7) if entry.weekday is None else (entry.weekday,)
            for day in days:
                points[day * MINUTES_PER_DAY + entry.minute] = entry.limit
        return sorted(points.items())


def parse_timetable(text: str) -> Timetable:
    """Given a rate (``10M``, ``off``) or entries like ``Mon-08:00,512K 23:00,off``,
    return the timetable; raise ValueError naming the entry and what is wrong with it."""
    tokens = text.split()
    if not tokens:
        raise ValueError(f"the bandwidth timetable is empty; give a limit ({_EXAMPLE})")
    if len(tokens) == 1 and "," not in tokens[0]:
        if _TIME.fullmatch(tokens[0]):
            raise ValueError(f"{tokens[0]!r} has no rate; entries are TIME,RATE ({_EXAMPLE})")
        return Timetable((Entry(None, 0, parse_rate(tokens[0])),))
    entries = [_parse_entry(token) for token in tokens]
    _refuse_duplicates(entries)
    return Timetable(tuple(sorted(entries, key=_entry_order)))


def parse_rate(text: str) -> int | None:
    """Given ``off``, a number with a unit (``512K``, ``2MiB``, ``1.5G``, ``100B``) or a
    bare number of KiB (``10``, rclone's reading), return bytes per second (None for
    ``off``); raise ValueError if it is not one."""
    if text.lower() == "off":
        return None
    if ":" in text:
        raise ValueError(
            f"{text!r}: separate upload:download limits are not supported; give one rate"
        )
    match = _RATE.fullmatch(f"{text}K" if _BARE_NUMBER.fullmatch(text) else text)
    if match is None:
        raise ValueError(
            f"{text!r} is not a rate: give a number with a unit B, K, M or G "
            "(e.g. 512K, 2M), or 'off'"
        )
    rate = int(float(match[1]) * _UNITS[match[2][0].lower()])
    if rate < 1:
        raise ValueError(f"{text!r} would stop downloads altogether; write 'off' for no limit")
    return rate


def describe_rate(limit: int | None) -> str:
    """Given bytes per second (None: no limit), return it in words, e.g. ``1.5 MiB/s``."""
    return "no limit" if limit is None else human_rate(limit)


def _parse_entry(token: str) -> Entry:
    parts = token.split(",")
    if len(parts) != 2:
        raise ValueError(
            f"{token!r}: with more than one entry, each must be TIME,RATE ({_EXAMPLE})"
        )
    weekday, minute = _parse_time(parts[0])
    return Entry(weekday, minute, parse_rate(parts[1]))


def _parse_time(text: str) -> tuple[int | None, int]:
    """Given ``HH:MM`` or ``Day-HH:MM``, return the weekday (None: every day) and minute."""
    match = _TIME.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a time: write HH:MM or Day-HH:MM (e.g. Mon-08:00)")
    hour, minute = int(match[2]), int(match[3])
    if hour > 23 or minute > 59:
        raise ValueError(f"{text!r} is not a time of day (00:00 to 23:59)")
    return None if match[1] is None else parse_weekday(match[1]), hour * 60 + minute


def _refuse_duplicates(entries: list[Entry]) -> None:
    seen: set[tuple[int | None, int]] = set()
    for entry in entries:
        key = (entry.weekday, entry.minute)
        if key in seen:
            raise ValueError(f"the timetable has two entries for {entry.when()}; keep one")
        seen.add(key)


def _entry_order(entry: Entry) -> tuple[int, int]:
    return (-1 if entry.weekday is None else entry.weekday, entry.minute)
