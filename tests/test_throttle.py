from __future__ import annotations

import threading

import pytest

from putio_mirror.fetch.throttle import RateLimiter


class ConcurrentClock:
    """A fake monotonic clock for several threads: a thread's ``sleep(s)`` ends at its
    last reading plus ``s``, and the clock shows the latest such end. Sleepers thus
    overlap as they would in real time, and nothing really waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()
        self._read = threading.local()

    def monotonic(self) -> float:
        with self._lock:
            self._read.at = self.now
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now = max(self.now, getattr(self._read, "at", self.now) + seconds)


class Limit:
    """A limit a test can change while the limiter runs."""

    def __init__(self, value: int | None) -> None:
        self.value = value

    def __call__(self) -> int | None:
        return self.value


@pytest.fixture
def clock() -> ConcurrentClock:
    return ConcurrentClock()


def _limiter(clock: ConcurrentClock, limit: Limit, burst: float = 0.5) -> RateLimiter:
    return RateLimiter(limit, monotonic=clock.monotonic, sleep=clock.sleep, burst_seconds=burst)


def test_no_limit_never_waits(clock: ConcurrentClock) -> None:
    limiter = _limiter(clock, Limit(None))
    for _ in range(100):
        limiter.consume(10**9)
    assert clock.sleeps == []


def test_one_consumer_is_held_to_the_limit_from_the_first_byte(clock: ConcurrentClock) -> None:
    limiter = _limiter(clock, Limit(100_000))
    for _ in range(20):
        limiter.consume(10_000)
    assert clock.now == pytest.approx(2.0)


def test_several_threads_together_stay_at_the_limit(clock: ConcurrentClock) -> None:
    limit, threads, rounds, chunk = 100_000, 4, 50, 10_000
    limiter = _limiter(clock, Limit(limit))

    def consume() -> None:
        for _ in range(rounds):
            limiter.consume(chunk)

    workers = [threading.Thread(target=consume) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    rate = threads * rounds * chunk / clock.now
    assert rate == pytest.approx(limit, rel=0.10)


def test_an_idle_spell_allows_only_a_short_burst(clock: ConcurrentClock) -> None:
    limiter = _limiter(clock, Limit(1_000_000), burst=0.5)
    limiter.consume(1)
    clock.now += 100.0
    limiter.consume(2_000_000)
    assert clock.now - 100.0 == pytest.approx(1.5, abs=0.01)


def test_a_new_limit_applies_to_the_next_call(clock: ConcurrentClock) -> None:
    limit = Limit(1_000)
    limiter = _limiter(clock, limit)
    limiter.consume(1_000)
    assert clock.now == pytest.approx(1.0)
    limit.value = 1_000_000
    limiter.consume(1_000_000)
    assert clock.now == pytest.approx(2.0)


def test_lifting_the_limit_releases_a_thread_already_waiting(clock: ConcurrentClock) -> None:
    limit = Limit(1_000)

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if len(clock.sleeps) == 3:
            limit.value = None

    limiter = RateLimiter(limit, monotonic=clock.monotonic, sleep=sleep)
    limiter.consume(1_000_000)  # 1000 s at the old limit
    assert clock.now == pytest.approx(3.0)


def test_raising_the_limit_speeds_up_a_thread_already_waiting(clock: ConcurrentClock) -> None:
    limit = Limit(1_000)

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if len(clock.sleeps) == 2:
            limit.value = 1_000_000

    limiter = RateLimiter(limit, monotonic=clock.monotonic, sleep=sleep)
    limiter.consume(1_002_000)
    assert clock.now == pytest.approx(3.0)


def test_a_limit_below_one_byte_per_second_is_refused(clock: ConcurrentClock) -> None:
    with pytest.raises(ValueError, match="at least 1 byte"):
        _limiter(clock, Limit(0)).consume(10)


def test_a_caller_that_gives_up_stops_waiting_within_a_second(clock: ConcurrentClock) -> None:
    # 100 KB at 1 KB/s is 100 s of waiting; the caller's window closes after 3 s of it.
    limiter = _limiter(clock, Limit(1000))
    limiter.consume(100_000, given_up=lambda: clock.now >= 3.0)
    assert 3.0 <= clock.now <= 4.0
