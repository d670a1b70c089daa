"""A token bucket that every connection of every download shares: one limit for all.

``limit_for()`` is asked on every call, so a bandwidth timetable that changes its
limit (or lifts it) takes effect at once, even for a thread already waiting: waits
are taken in slices of at most a second and the limit is read again after each.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

_RECHECK_SECONDS = 1.0


class RateLimiter:
    """Given a callable returning the current limit in bytes per second (None: none),
    let callers ``consume`` bytes no faster than that limit, together.

    The bucket starts empty, so even the first bytes are paced; after an idle spell
    it holds at most ``burst_seconds`` worth of bytes. Callers are served in the
    order they arrive: each reserves its bytes, then waits until the bucket has
    refilled past its reservation.
    """

    def __init__(
        self,
        limit_for: Callable[[], int | None],
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        burst_seconds: float = 0.5,
    ) -> None:
        self._limit_for = limit_for
        self._monotonic = monotonic
        self._sleep = sleep
        self._burst_seconds = burst_seconds
        self._lock = threading.Lock()
        self._reserved = 0.0  # bytes ever asked for
        self._credit = 0.0  # bytes ever allowed; never more than burst ahead of _reserved
        self._stamp: float | None = None
        self._rate: int | None = None  # the limit in force since _stamp

    def consume(self, nbytes: int, given_up: Callable[[], bool] = lambda: False) -> None:
        """Given a number of bytes, return once they are allowed under the current limit,
        or once ``given_up`` (asked before each slice of the wait) says the caller stops
        (a closed window must not wait for a low limit); raise ValueError if ``limit_for``
        gives a limit below 1 byte per second."""
        with self._lock:
            self._settle()  # before reserving: spare bytes from an idle spell stay capped
            self._reserved += nbytes
            mark = self._reserved
        while (wait := self._shortfall(mark)) > 0 and not given_up():
            self._sleep(min(wait, _RECHECK_SECONDS))

    def _shortfall(self, mark: float) -> float:
        """Given a reservation mark, return the seconds until the bucket reaches it
        at the current limit (0 if it has, or if there is no limit now)."""
        with self._lock:
            limit = self._settle()
            if limit is None:
                return 0.0
            return max(0.0, (mark - self._credit) / limit)

    def _settle(self) -> int | None:
        """Read the limit and bring the bucket up to now; return the limit.

        The time since the last call is credited at the limit that was in force then.
        Without a limit every debt is forgiven, so waiting threads go on at once.
        """
        limit = self._limit_for()
        now = self._monotonic()
        if limit is None:
            self._credit = max(self._credit, self._reserved)
        elif limit < 1:
            raise ValueError(f"a bandwidth limit must be at least 1 byte/s, not {limit}")
        else:
            elapsed = 0.0 if self._stamp is None else max(0.0, now - self._stamp)
            rate = limit if self._rate is None else self._rate
            ceiling = self._reserved + limit * self._burst_seconds
            self._credit = max(self._credit, min(self._credit + elapsed * rate, ceiling))
        self._stamp, self._rate = now, limit
        return limit
