"""A long-running process watched from outside: its memory, descriptors and threads.

Shared by the soaks (``soak.py``: ``serve``; ``mount_soak.py``: ``mount``). A sample is
read from ``/proc`` every ``SAMPLE_EVERY`` seconds with a count of the work done so far;
the growth is the last minute's medians less the first minute's.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common import print_table, verdict

SAMPLE_EVERY = 5.0
#: a few for work in flight at either end
MAX_FD_GROWTH = 4
MAX_THREAD_GROWTH = 4
PER_MINUTE = int(60 / SAMPLE_EVERY)


@dataclass(frozen=True)
class Sample:
    at: float  # seconds since the process came up
    rss_mb: float
    fds: int
    threads: int
    done: int  # the work done by then (items through, reads)


def sample(pid: int, started: float, done: int) -> Sample:
    """Given a process, when it came up (monotonic) and the work done so far, read it."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    rss_kb = int(fields["VmRSS"].split()[0])
    fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    return Sample(time.monotonic() - started, rss_kb / 1024, fds, int(fields["Threads"]), done)


def print_minutes(title: str, done: str, samples: Sequence[Sample]) -> None:
    """Print the last sample of every minute, the work done headed ``done``."""
    rows = [
        [f"{s.at / 60:.0f}", f"{s.rss_mb:.1f}", str(s.fds), str(s.threads), str(s.done)]
        for s in samples[PER_MINUTE - 1 :: PER_MINUTE]
    ]
    print_table(title, ["minute", "RSS MB", "open fds", "threads", done], rows)


@dataclass(frozen=True)
class Growth:
    rss_mb: float
    fds: int
    threads: int
    done: int


def growth(samples: Sequence[Sample]) -> Growth:
    """Given the samples, return the growth from the first minute's medians to the last
    minute's, and the work done in between."""
    first, last = samples[:PER_MINUTE], samples[-PER_MINUTE:]

    def change(value: str) -> float:
        return statistics.median(getattr(s, value) for s in last) - statistics.median(
            getattr(s, value) for s in first
        )

    done = last[-1].done - first[0].done
    return Growth(change("rss_mb"), int(change("fds")), int(change("threads")), done)


def print_verdicts(grown: Growth, rss_limit: float, rss_note: str = "") -> None:
    """Print each growth against its target (memory: ``rss_limit`` MB)."""
    print(f"- memory {grown.rss_mb:+.1f} MB: {verdict(grown.rss_mb, rss_limit, 'MB')}{rss_note}")
    print(f"- descriptors {grown.fds:+d}: {verdict(grown.fds, MAX_FD_GROWTH, '', inclusive=True)}")
    threads = verdict(grown.threads, MAX_THREAD_GROWTH, "", inclusive=True)
    print(f"- threads {grown.threads:+d}: {threads}")
