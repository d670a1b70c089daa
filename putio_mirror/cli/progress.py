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
    """For timers and pipes: one log line per file every ``interval`` seconds and at the end."""

    interval: float = 30.0
    monotonic: Callable[[], float] = time.monotonic
    _items: dict[str, _Item] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

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
        with self._lock:
            item = self._items.pop(key, None)
        if item is not None:
            self._report(item, self.monotonic())

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
        yield LogProgress()
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
