"""The watcher: a foreground daemon for a supervisor (systemd, launchd, Docker).

watchdog tells us when the blackhole changes; each change arms a short timer
(files must settle before they are read), then the blackhole part of the plan
runs. ``schedule`` runs a full sync every few minutes, which obeys the
download windows like any other sync. SIGTERM finishes the current chunk,
journals, and exits 0.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import schedule
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from putio_mirror.app import BLACKHOLE_KINDS, Request, Runtime, run_once
from putio_mirror.config import Settings
from putio_mirror.errors import AlreadyRunningError, ExitCode, FatalError, MirrorError
from putio_mirror.progress import LogProgress
from putio_mirror.signals import StopFlag

log = logging.getLogger(__name__)

WATCHED_SUFFIXES = (".torrent", ".magnet")
#: how long a file must be left alone before it is read (it may still be written)
SETTLE_SECONDS = 2.0
SETTLE_MARGIN = 0.25
#: how soon to look again while files stay in the blackhole after a failure
RECHECK_SECONDS = 30.0


class _Arm(FileSystemEventHandler):
    """Arms the submit timer whenever a .torrent or .magnet appears or changes."""

    def __init__(self, arm: Callable[[float], None]) -> None:
        self._arm = arm

    def on_any_event(self, event: FileSystemEvent) -> None:
        paths = (event.src_path, getattr(event, "dest_path", ""))
        if any(str(path).lower().endswith(WATCHED_SUFFIXES) for path in paths):
            self._arm(SETTLE_SECONDS + SETTLE_MARGIN)


class _Timer:
    """A single pending deadline on the monotonic clock (the earliest arm wins)."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._due: float | None = None
        self._lock = threading.Lock()

    def arm(self, delay: float) -> None:
        due = self._monotonic() + delay
        with self._lock:
            self._due = due if self._due is None else min(self._due, due)

    def fire_if_due(self) -> bool:
        with self._lock:
            if self._due is None or self._monotonic() < self._due:
                return False
            self._due = None
            return True


def watch_blackhole(
    settings: Settings,
    *,
    add_first: bool,
    periodic_sync: bool,
    stop: StopFlag | None = None,
    poll_seconds: float = 0.5,
    monotonic: Callable[[], float] = time.monotonic,
) -> ExitCode:
    """Given settings, watch until stopped; return the exit code (0 after SIGTERM)."""
    settings.blackhole_dir.mkdir(parents=True, exist_ok=True)
    timer = _Timer(monotonic)
    if add_first:
        timer.arm(0.0)
    with stop or StopFlag() as flag:
        runtime = Runtime(settings, stop_requested=flag.is_set, progress=LogProgress())
        observer = Observer()
        observer.schedule(_Arm(timer.arm), str(settings.blackhole_dir), recursive=False)
        observer.start()
        scheduler = _scheduler(runtime, settings, periodic_sync)
        log.info("watching %s", settings.blackhole_dir)
        try:
            return _loop(runtime, timer, scheduler, flag, poll_seconds)
        finally:
            observer.stop()
            observer.join(timeout=5)


def _scheduler(runtime: Runtime, settings: Settings, periodic_sync: bool) -> schedule.Scheduler:
    scheduler = schedule.Scheduler()
    if periodic_sync:
        minutes = max(settings.watch_interval_minutes, 0.1)
        scheduler.every(int(minutes * 60)).seconds.do(_guarded, runtime, Request("watch sync"))
        scheduler.run_all()  # a first sync right away; later ones on the interval
    return scheduler


def _loop(
    runtime: Runtime,
    timer: _Timer,
    scheduler: schedule.Scheduler,
    flag: StopFlag,
    poll_seconds: float,
) -> ExitCode:
    submit = Request("watch submit", kinds=BLACKHOLE_KINDS)
    while not flag.is_set():
        if timer.fire_if_due():
            _guarded(runtime, submit)
            delay = _recheck_delay(runtime.settings.blackhole_dir, time.time())
            if delay is not None:
                timer.arm(delay)
        scheduler.run_pending()
        flag.wait(poll_seconds)
    log.info("stopped on request")
    return ExitCode.OK


def _recheck_delay(folder: Path, now: float) -> float | None:
    """Files still in the blackhole are either settling (look again soon) or failed (later)."""
    ages = [
        now - entry.stat().st_mtime
        for entry in folder.iterdir()
        if entry.is_file() and entry.name.lower().endswith(WATCHED_SUFFIXES)
    ]
    if not ages:
        return None
    if min(ages) < SETTLE_SECONDS:
        return SETTLE_SECONDS - min(ages) + SETTLE_MARGIN
    return RECHECK_SECONDS


def _guarded(runtime: Runtime, request: Request) -> None:
    """Run once; a per-run problem is logged and the watcher goes on, a fatal one ends it."""
    try:
        outcome = run_once(runtime, request)
    except AlreadyRunningError as error:
        log.info("skipped this round: %s", error.message)
        return
    except FatalError:
        raise
    except MirrorError as error:
        log.warning("%s: %s (%s)", request.command, error.message, error.hint)
        return
    if outcome.report is not None and outcome.plan.actions:
        log.info("%s: %s", request.command, outcome.report.summary())
