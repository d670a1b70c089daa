from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from putio_mirror.core.retry import Backoff, retry_after_seconds

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def test_backoff_doubles_the_delay_with_each_attempt() -> None:
    backoff = Backoff(base=1.0, factor=2.0, cap=1000.0)
    delays = [backoff.delay(attempt, jitter=0.999999) for attempt in range(5)]
    assert delays == pytest.approx([1.0, 2.0, 4.0, 8.0, 16.0], rel=1e-5)


def test_backoff_never_exceeds_its_cap() -> None:
    backoff = Backoff(base=1.0, factor=2.0, cap=60.0)
    assert backoff.delay(6, jitter=0.999999) == pytest.approx(60.0, rel=1e-5)
    assert backoff.delay(10_000, jitter=0.999999) <= 60.0


@pytest.mark.parametrize("jitter", [0.0, 0.25, 0.5, 0.999999])
@pytest.mark.parametrize("attempt", [0, 3, 7])
def test_backoff_jitter_keeps_the_delay_between_half_and_all_of_the_step(
    attempt: int, jitter: float
) -> None:
    backoff = Backoff(base=0.5, factor=3.0, cap=30.0)
    step = min(30.0, 0.5 * 3.0**attempt)
    assert step / 2 <= backoff.delay(attempt, jitter) <= step


def test_backoff_jitter_spreads_the_delays() -> None:
    backoff = Backoff()
    assert backoff.delay(2, 0.0) < backoff.delay(2, 0.5) < backoff.delay(2, 0.99)


def test_backoff_clamps_jitter_outside_zero_to_one() -> None:
    backoff = Backoff(base=2.0)
    assert backoff.delay(0, -5.0) == pytest.approx(1.0)
    assert backoff.delay(0, 7.0) == pytest.approx(2.0)


@pytest.mark.parametrize(("header", "seconds"), [("2", 2.0), (" 120 ", 120.0), ("1.5", 1.5)])
def test_retry_after_reads_seconds(header: str, seconds: float) -> None:
    assert retry_after_seconds(header, NOW) == seconds


def test_retry_after_reads_an_http_date() -> None:
    header = "Sat, 01 Mar 2025 12:00:30 GMT"
    assert retry_after_seconds(header, NOW) == pytest.approx(30.0)


def test_retry_after_treats_a_naive_now_as_utc() -> None:
    header = "Sat, 01 Mar 2025 12:01:00 GMT"
    assert retry_after_seconds(header, NOW.replace(tzinfo=None)) == pytest.approx(60.0)


def test_retry_after_of_a_past_date_is_zero() -> None:
    past = (NOW - timedelta(hours=1)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert retry_after_seconds(past, NOW) == 0.0


def test_retry_after_of_negative_seconds_is_zero() -> None:
    assert retry_after_seconds("-5", NOW) == 0.0


@pytest.mark.parametrize("header", [None, "", "   ", "soon", "nan", "inf", "Sat, 99 Foo"])
def test_retry_after_is_none_when_absent_or_garbage(header: str | None) -> None:
    assert retry_after_seconds(header, NOW) is None
