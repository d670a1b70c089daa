"""Time windows: parsing, midnight crossing, weekdays, schedules."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from putio_mirror.core.window import Schedule, parse_schedule, parse_window

FRIDAY = datetime(2026, 11, 27)  # a Friday


def at(day_offset: int, hour: int, minute: int = 0) -> datetime:
    return FRIDAY.replace(day=27 + day_offset, hour=hour, minute=minute)


def test_plain_window_is_open_inside_and_closed_outside() -> None:
    window = parse_window("00:05-05:55")
    assert window.contains(at(0, 3)) and not window.contains(at(0, 6))
    assert not window.contains(at(0, 0, 4)) and window.contains(at(0, 0, 5))
    assert not window.contains(at(0, 5, 55))


def test_window_crossing_midnight_is_open_after_midnight_on_the_next_day() -> None:
    window = parse_window("23:00-02:00")
    assert window.contains(at(0, 23, 30)) and window.contains(at(1, 1, 59))
    assert not window.contains(at(1, 2, 0))


def test_weekday_window_crossing_midnight_belongs_to_the_day_it_starts() -> None:
    window = parse_window("Sat 23:00-02:00")
    assert window.contains(at(1, 23, 30))  # Saturday night
    assert window.contains(at(2, 1))  # early Sunday, still Saturday's window
    assert not window.contains(at(0, 23, 30))  # Friday night
    assert not window.contains(at(2, 23, 30))  # Sunday night


def test_weekday_ranges_and_lists() -> None:
    assert parse_window("Mon-Fri 01:00-06:00").days == frozenset({0, 1, 2, 3, 4})
    assert parse_window("Sat,Sun 10:00-18:00").days == frozenset({5, 6})
    assert parse_window("Fri-Mon 10:00-18:00").days == frozenset({4, 5, 6, 0})


@pytest.mark.parametrize(
    "text", ["25:00-26:00", "00:05", "12:00-12:00", "Funday 01:00-02:00", "1:60-2:00", ""]
)
def test_impossible_windows_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_window(text)


def test_schedule_without_windows_is_always_open() -> None:
    schedule = Schedule()
    assert schedule.always_open and schedule.is_open(at(0, 12))


def test_schedule_is_open_while_any_of_its_windows_is() -> None:
    schedule = parse_schedule(["00:05-05:55", "Sat 10:00-18:00"])
    assert schedule.is_open(at(0, 3)) and not schedule.is_open(at(0, 12))
    assert schedule.is_open(at(1, 12)) and not schedule.is_open(at(2, 12))


def test_window_ending_at_midnight_is_accepted() -> None:
    window = parse_window("22:00-24:00")
    assert window.contains(at(0, 23, 59)) and not window.contains(at(1, 0, 0))


def test_next_opening_is_now_inside_a_window_and_the_next_start_outside() -> None:
    schedule = parse_schedule(["01:00-06:00", "Sat,Sun 10:00-18:00"])
    assert schedule.next_opening(at(0, 3)) == at(0, 3)
    assert schedule.next_opening(at(0, 7)) == at(1, 1)  # Friday 07:00 -> Saturday 01:00
    assert schedule.next_opening(at(1, 7)) == at(1, 10)  # Saturday 07:00 -> 10:00
    assert Schedule().next_opening(at(0, 7)) == at(0, 7)


def test_next_opening_of_a_weekly_window_is_up_to_a_week_ahead() -> None:
    schedule = parse_schedule(["Fri 22:00-23:00"])
    assert schedule.next_opening(at(0, 23, 30)) == at(0, 22) + timedelta(days=7)
    assert schedule.next_opening(at(0, 21, 59)) == at(0, 22)
