"""Download progress for people: bars on a terminal, periodic log lines elsewhere."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from putio_mirror.core.units import human_bytes, human_rate

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress
    from rich.progress import ProgressColumn, TaskID

log = logging.getLogger(__name__)


@dataclass
class _Item:
    label: str
    total: int
    done: int
    started: float
    last_report: float
    start_done: int = 0


@dataclass
class LogProgress:
    """For timers and pipes: one log line per file every ``interval`` seconds and at the end.

    A file done within ``interval`` of its start gets no line of its own unless it is the
    only one in that interval or ended unfinished: the quick ones are counted, one line per
    ``interval`` says how many (10,000 subtitles would otherwise be 10,000 lines, and their
    formatting a noticeable share of each one's CPU)."""

    interval: float = 30.0
    monotonic: Callable[[], float] = time.monotonic
    _items: dict[str, _Item] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _quick: list[int] = field(default_factory=lambda: [0, 0])  # files, bytes not yet told
    _last_told: float = float("-inf")

    def expect(self, total: int, done: int) -> None:
        if total > done:
            log.info("%s to download", human_bytes(total - done))

    def begin(self, key: str, label: str, total: int, done: int) -> None:
        now = self.monotonic()
        with self._lock:
            self._items[key] = _Item(label, total, done, now, now, done)

    def advance(self, key: str, amount: int) -> None:
        now = self.monotonic()
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return
            item.done += amount
            if now - item.last_report < self.interval:
                return
            item.last_report = now
        self._report(item, now)

    def end(self, key: str) -> None:
        now = self.monotonic()
        with self._lock:
            item = self._items.pop(key, None)
            if item is None:
                return
            if item.done == item.start_done < item.total:
                return  # no byte came: its failure, or the run's stop, tells of it
            long = item.last_report != item.started or now - item.started >= self.interval
            if long or item.done < item.total:
                quick = None  # a long or unfinished file: its own line, as while it ran
            else:
                self._quick[0] += 1
                self._quick[1] += item.done - item.start_done
                if now - self._last_told < self.interval:
                    return
                quick, self._quick, self._last_told = self._quick, [0, 0], now
        if quick is None or quick[0] == 1:
            self._report(item, now)
        else:
            log.info("%d files downloaded (%s)", quick[0], human_bytes(quick[1]))

    def flush(self) -> None:
        """Tell the quick files not told yet (the run is over: no later line will)."""
        with self._lock:
            quick, self._quick = self._quick, [0, 0]
        if quick[0]:
            log.info("%d files downloaded (%s)", quick[0], human_bytes(quick[1]))

    def _report(self, item: _Item, now: float) -> None:
        elapsed = max(now - item.started, 1e-6)
        speed = (item.done - item.start_done) / elapsed
        percent = 100.0 * item.done / item.total if item.total else 100.0
        log.info(
            "%s: %s of %s (%.0f%%) at %s",
            item.label,
            human_bytes(item.done),
            human_bytes(item.total),
            percent,
            human_rate(speed),
        )


class BarProgress:
    """For terminals: one rich bar per active file plus a total."""

    def __init__(self, progress: RichProgress) -> None:
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}
        self._total = progress.add_task("total", total=0)

    def expect(self, total: int, done: int) -> None:
        self._progress.update(self._total, total=total, completed=done)

    def begin(self, key: str, label: str, total: int, done: int) -> None:
        shown = label if len(label) <= 40 else "…" + label[-39:]
        self._tasks[key] = self._progress.add_task(shown, total=total, completed=done)

    def advance(self, key: str, amount: int) -> None:
        task = self._tasks.get(key)
        if task is not None:
            self._progress.advance(task, amount)
            self._progress.advance(self._total, amount)

    def end(self, key: str) -> None:
        task = self._tasks.pop(key, None)
        if task is not None:
            self._progress.remove_task(task)


@contextmanager
def progress_for(stream: TextIO) -> Iterator[LogProgress | BarProgress]:
    """Given the output stream, yield bars if it is a terminal, else log-line progress."""
    if not stream.isatty():
        lines = LogProgress()
        try:
            yield lines
        finally:
            lines.flush()
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        *_byte_columns(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(file=stream), transient=True) as bars:
        yield BarProgress(bars)


def _byte_columns() -> tuple[ProgressColumn, ProgressColumn]:
    """Return rich columns for "done / total" and the speed in this tool's binary units
    (rich's own speed column says MB/s next to a size in MiB)."""
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class Sizes(ProgressColumn):
        def render(self, task: Task) -> Text:
            total = "?" if task.total is None else human_bytes(task.total)
            return Text(f"{human_bytes(task.completed)} / {total}", style="progress.download")

    class Speed(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            shown = "?" if speed is None else human_rate(speed)
            return Text(shown, style="progress.data.speed")

    return Sizes(), Speed()
