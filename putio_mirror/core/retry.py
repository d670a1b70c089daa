"""How long to wait before trying again: exponential backoff and ``Retry-After``.

Pure arithmetic: the caller supplies the attempt number, the jitter and the
current time, so nothing here reads a clock or sleeps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with "equal jitter": half the delay fixed, half random.

    Equal jitter (rather than full jitter) keeps a floor under every delay, so
    a burst of failures never turns into a burst of immediate retries.
    ``max_attempts`` counts every try, the first one included.
    """

    base: float = 1.0
    factor: float = 2.0
    cap: float = 60.0
    max_attempts: int = 8

    def delay(self, attempt: int, jitter: float) -> float:
        """Given the attempt number (0 for the first retry) and a jitter in [0, 1),
        return the seconds to wait, between half the capped delay and the capped delay."""
        ceiling = self._ceiling(max(attempt, 0))
        jitter = min(max(jitter, 0.0), 1.0)
        return ceiling / 2 + ceiling / 2 * jitter

    def _ceiling(self, attempt: int) -> float:
        # Compare exponents rather than computing factor**attempt, which
        # overflows a float for large attempt numbers.
        if self.base <= 0:
            return 0.0
        if self.factor > 1 and attempt * math.log(self.factor) > math.log(self.cap / self.base):
            return self.cap
        return min(self.cap, self.base * self.factor**attempt)


def retry_after_seconds(header: str | None, now: datetime) -> float | None:
    """Given a ``Retry-After`` header value and the current time, return the seconds
    it asks to wait (never negative); return None if it is absent or unreadable."""
    if header is None or not header.strip():
        return None
    text = header.strip()
    seconds = _as_seconds(text)
    if seconds is not None:
        return seconds
    when = _as_http_date(text)
    if when is None:
        return None
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _as_seconds(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    return max(0.0, value)


def _as_http_date(text: str) -> datetime | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # RFC 9110 dates are GMT; "-0000" parses as naive.
        when = when.replace(tzinfo=UTC)
    return when
