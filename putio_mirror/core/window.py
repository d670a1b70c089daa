"""Time windows: when downloads may run. Pure values; the clock is always passed in.

A window is ``HH:MM-HH:MM``, optionally preceded by weekdays
(``Mon-Fri 00:05-05:55``, ``Sat,Sun 10:00-18:00``). A window whose end is
not after its start crosses midnight; its weekdays name the day it starts.
No windows at all means "always open".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from putio_mirror.core.weekdays import MINUTES_PER_DAY, parse_weekday

ALL_DAYS = frozenset(range(7))
_WINDOW = re.compile(
    r"^\s*(?:(?P<days>[A-Za-z,\-]+)\s+)?(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$"
)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """One recurring window; ``start``/``end`` in minutes after midnight."""

    start: int
    end: int
    days: frozenset[int] = ALL_DAYS
    text: str = ""

    def contains(self, now: datetime) -> bool:
        """Given a local time, say whether an occurrence of the window (today's, or one
        that started yesterday and crosses midnight) holds it."""
        for days_back in (0, 1):
            day = (now - timedelta(days=days_back)).date()
            if day.weekday() not in self.days:
                continue
            begin = datetime.combine(day, time()) + timedelta(minutes=self.start)
            length = (self.end - self.start) % MINUTES_PER_DAY or MINUTES_PER_DAY
            if begin <= now.replace(tzinfo=None) < begin + timedelta(minutes=length):
                return True
        return False

    def next_start(self, now: datetime) -> datetime:
        """Given a local time, return when the window next opens after it (same tzinfo)."""
        wall = now.replace(tzinfo=None)
        for days_ahead in range(8):
            day = (wall + timedelta(days=days_ahead)).date()
            begin = datetime.combine(day, time()) + timedelta(minutes=self.start)
            if day.weekday() in self.days and begin > wall:
                return begin.replace(tzinfo=now.tzinfo)
        raise AssertionError("a window has at least one weekday")  # parse_window ensures it


@dataclass(frozen=True, slots=True)
class Schedule:
    """A set of windows; downloads may run while any of them is open."""

    windows: tuple[TimeWindow, ...] = ()

    @property
    def always_open(self) -> bool:
        return not self.windows

    def is_open(self, now: datetime) -> bool:
        return self.always_open or any(window.contains(now) for window in self.windows)

    def next_opening(self, now: datetime) -> datetime:
        """Given a local time, return when downloads may next start: ``now`` if a window is
        open (or there are none), else the earliest next start of a window."""
        if self.is_open(now):
            return now
        return min(window.next_start(now) for window in self.windows)

    def describe(self) -> str:
        return ", ".join(window.text for window in self.windows) or "always"


def parse_window(text: str) -> TimeWindow:
    """Given ``[days ]HH:MM-HH:MM``, return the window; raise ValueError saying what is wrong."""
    match = _WINDOW.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a window like '00:05-05:55' or 'Mon-Fri 01:00-06:00'")
    start = _parse_minutes(match["start"])
    end = _parse_minutes(match["end"])
    if start == end:
        raise ValueError(f"{text!r} starts and ends at the same minute; give a real span")
    days = _parse_days(match["days"]) if match["days"] else ALL_DAYS
    return TimeWindow(start=start, end=end, days=days, text=text.strip())


def parse_schedule(texts: list[str] | tuple[str, ...]) -> Schedule:
    return Schedule(tuple(parse_window(text) for text in texts))


def _parse_minutes(text: str) -> int:
    hours, minutes = (int(part) for part in text.split(":"))
    if hours == 24 and minutes == 0:
        return MINUTES_PER_DAY
    if not (0 <= hours <= 23 and 0 <= minutes <= 59):
        raise ValueError(f"{text!r} is not a time of day (00:00 to 23:59)")
    return hours * 60 + minutes


def _parse_days(text: str) -> frozenset[int]:
    days: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        begin = parse_weekday(first)
        finish = parse_weekday(last) if last else begin
        span = (finish - begin) % 7
        days.update((begin + offset) % 7 for offset in range(span + 1))
    return frozenset(days)
