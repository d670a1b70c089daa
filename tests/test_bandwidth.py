from __future__ import annotations

from datetime import UTC, datetime

import pytest

from putio_mirror.core.bandwidth import Entry, Timetable, describe_rate, parse_rate, parse_timetable

K, M, G = 1024, 1024**2, 1024**3


def _at(day: str, clock: str) -> datetime:
    """Given a weekday name and HH:MM, return that moment in the week of Mon 2024-01-01."""
    days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    hour, minute = map(int, clock.split(":"))
    return datetime(2024, 1, 1 + days.index(day), hour, minute)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100B", 100),
        ("512K", 512 * K),
        ("512k", 512 * K),
        ("512KB", 512 * K),
        ("512KiB", 512 * K),
        ("2M", 2 * M),
        ("2MiB", 2 * M),
        ("1.5M", int(1.5 * M)),
        ("1G", G),
        ("off", None),
        ("OFF", None),
        # a bare number is KiB, as rclone reads it
        ("10", 10 * K),
        ("1.5", int(1.5 * K)),
    ],
)
def test_a_rate_is_read_in_powers_of_1024(text: str, expected: int | None) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("2X", "not a rate"),
        ("fast", "not a rate"),
        ("2MB/s", "not a rate"),
        ("-1M", "not a rate"),
        ("0M", "'off'"),
        ("1M:2M", "upload:download"),
        ("08:00,2M 10M", "TIME,RATE"),
        ("08:00,2M,3M", "TIME,RATE"),
        ("08:00", "TIME,RATE"),
        ("25:00,1M", "time of day"),
        ("08:60,1M", "time of day"),
        ("8h,1M", "not a time"),
        ("Xyz-08:00,1M", "day of the week"),
        ("08:00,1M 08:00,off", "two entries for 08:00"),
        ("Mon-08:00,1M monday-08:00,2M", "two entries for Mon 08:00"),
        ("08:00,lots", "not a rate"),
    ],
)
def test_garbage_is_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_timetable(text)


@pytest.mark.parametrize(
    ("text", "day", "clock", "expected"),
    [
        ("10M", "Wed", "13:37", 10 * M),
        ("off", "Sun", "00:00", None),
        ("08:00,2M 23:00,off", "Mon", "08:00", 2 * M),
        ("08:00,2M 23:00,off", "Mon", "22:59", 2 * M),
        ("08:00,2M 23:00,off", "Mon", "23:00", None),
        ("08:00,2M 23:00,off", "Tue", "07:59", None),
        # before the day's first entry, the previous day's last entry holds
        ("08:00,2M 12:00,1M", "Tue", "03:00", 1 * M),
        ("08:00,2M 12:00,1M", "Mon", "00:00", 1 * M),
        ("12:00,1M 08:00,2M", "Mon", "09:00", 2 * M),
        ("Mon-08:00,512K Sat-00:00,off", "Mon", "07:59", None),
        ("Mon-08:00,512K Sat-00:00,off", "Mon", "08:00", 512 * K),
        ("Mon-08:00,512K Sat-00:00,off", "Fri", "23:59", 512 * K),
        ("Mon-08:00,512K Sat-00:00,off", "Sat", "00:00", None),
        ("Mon-08:00,512K Sat-00:00,off", "Sun", "12:00", None),
        # before the week's first entry, last week's last entry holds
        ("Wed-10:00,1M Fri-10:00,2M", "Mon", "00:00", 2 * M),
        ("Wed-10:00,1M Fri-10:00,2M", "Wed", "09:59", 2 * M),
        ("Wed-10:00,1M Fri-10:00,2M", "Thu", "12:00", 1 * M),
        ("monday-08:00,1M", "Thu", "12:00", 1 * M),
        # every-day and weekday entries mix; a weekday's own entry wins on the same minute
        ("Mon-00:00,512K 12:00,1M Sun-20:00,off", "Mon", "08:00", 512 * K),
        ("Mon-00:00,512K 12:00,1M Sun-20:00,off", "Tue", "08:00", 1 * M),
        ("Mon-00:00,512K 12:00,1M Sun-20:00,off", "Sun", "21:00", None),
        ("12:00,1M Sat-12:00,off", "Sat", "13:00", None),
        ("12:00,1M Sat-12:00,off", "Sun", "13:00", 1 * M),
    ],
)
def test_the_limit_at_a_moment_follows_the_timetable(
    text: str, day: str, clock: str, expected: int | None
) -> None:
    assert parse_timetable(text).limit_at(_at(day, clock)) == expected


def test_an_aware_moment_is_read_in_its_own_zone() -> None:
    table = parse_timetable("08:00,2M 23:00,off")
    assert table.limit_at(datetime(2024, 1, 1, 9, 0, tzinfo=UTC)) == 2 * M


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("10M", "10 MiB/s at all times"),
        ("off", "no limit at all times"),
        ("1.5M", "1.5 MiB/s at all times"),
        ("100B", "100 B/s at all times"),
        ("23:00,off 08:00,2M", "from 08:00: 2 MiB/s; from 23:00: no limit"),
        ("Sat-00:00,off Mon-08:00,512K", "from Mon 08:00: 512 KiB/s; from Sat 00:00: no limit"),
    ],
)
def test_a_timetable_describes_itself_in_order(text: str, words: str) -> None:
    assert parse_timetable(text).describe() == words


def test_a_timetable_needs_an_entry() -> None:
    with pytest.raises(ValueError, match="at least one entry"):
        Timetable(())


def test_a_single_timed_entry_holds_all_week() -> None:
    table = parse_timetable("13:00,3G")
    assert table == Timetable((Entry(None, 13 * 60, 3 * G),))
    assert {table.limit_at(_at(day, "00:00")) for day in ("Mon", "Thu", "Sun")} == {3 * G}


def test_describe_rate_rounds_odd_limits() -> None:
    assert describe_rate(1000) == "1000 B/s"
    assert describe_rate(1536) == "1.5 KiB/s"
    assert describe_rate(G + 1) == "1 GiB/s"


def test_off_is_unlimited_and_any_limit_is_not() -> None:
    assert parse_timetable("off").unlimited
    assert not parse_timetable("10M").unlimited
    assert not parse_timetable("08:00,2M 23:00,off").unlimited
