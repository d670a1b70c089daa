"""One rule for weekdays, wherever a config names them (download windows and bandwidth
timetables): full names and three-letter abbreviations, any case; nothing else."""

from __future__ import annotations

from datetime import datetime

import pytest

from putio_mirror.core.bandwidth import parse_timetable
from putio_mirror.core.weekdays import parse_weekday
from putio_mirror.core.window import parse_window

MONDAY_NOON = datetime(2024, 1, 1, 12, 0)
SPELLINGS = ["Mon", "mon", "MON", "Monday", "monday", "MONDAY"]
NOT_DAYS = ["monkey", "Mo", "M", "Mond", "Mondays", "Fun", "Funday"]


@pytest.mark.parametrize("name", SPELLINGS)
def test_a_day_is_its_full_name_or_its_abbreviation_in_any_case(name: str) -> None:
    assert parse_weekday(name) == 0
    assert parse_window(f"{name} 10:00-18:00").days == frozenset({0})
    assert parse_timetable(f"{name}-08:00,1M Tue-08:00,off").limit_at(MONDAY_NOON) == 1024**2


def test_every_day_has_both_spellings() -> None:
    full = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
    assert [parse_weekday(name) for name in full] == list(range(7))
    assert [parse_weekday(name[:3]) for name in full] == list(range(7))


@pytest.mark.parametrize("name", NOT_DAYS)
def test_anything_else_is_refused_by_windows_and_timetables_alike(name: str) -> None:
    with pytest.raises(ValueError, match="not a day of the week"):
        parse_weekday(name)
    with pytest.raises(ValueError, match="not a day of the week"):
        parse_window(f"{name}-Fri 10:00-18:00")
    with pytest.raises(ValueError, match="not a day of the week"):
        parse_timetable(f"{name}-08:00,1M")


def test_a_near_miss_is_refused_with_the_day_it_looks_like() -> None:
    with pytest.raises(ValueError, match=r"'monkey' is not a day of the week: did you mean Mon\?"):
        parse_window("monkey 10:00-18:00")
