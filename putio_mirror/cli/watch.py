"""The watcher: a foreground daemon for a supervisor (systemd, launchd, Docker).

watchdog tells us when the blackhole changes; each change arms a short timer
(files must settle before they are read), then a blackhole pass submits them.
``schedule`` starts a full sync every few minutes, which obeys the download
windows like any other sync; one starts too as a window opens (the interval may be
longer than the window), and ``serve``'s hurry starts none while they are closed.
SIGTERM finishes the current chunk, journals, and exits 0 (a supervisor's stop is a
daemon's normal end); Ctrl-C does the same and exits 130. SIGHUP reads the config again:
a running sync stops at its next chunk, and the watch goes on with the new config (a sync
right away resumes what it left); a config with problems is reported and the one read
before stays in force.

A dropped torrent never waits for a sync: the sync runs on its own thread
(without the blackhole's actions, which are the passes' job), and a blackhole
pass runs beside it. The sync holds the journal's run lock for as long as it
downloads (hours, inside a night window), so a pass takes a lock of its own
(``<run lock>.blackhole``, one pass at a time per journal) and touches nothing
a sync owns: it claims each submission in the journal like any run, re-reads
each file before sending it, and never marks another run's actions
interrupted or frees its claims.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

import schedule
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from putio_mirror.app.report import RunReport
from putio_mirror.app.run import (
    ALL_KINDS,
    BLACKHOLE_KINDS,
    Outcome,
    Request,
    Runtime,
    local_now,
    run_once,
)
from putio_mirror.cli.progress import LogProgress
from putio_mirror.cli.signals import Hangup, StopFlag
from putio_mirror.cli.watched import (
    Watched,
    recheck_delay,
)
from putio_mirror.config.settings import Settings
from putio_mirror.core.errors import (
    AlreadyRunningError,
    BlackholeMissingError,
    ExitCode,
    FatalError,
    MirrorError,
    SafetyLimitError,
    TransientError,
)
from putio_mirror.core.state import Snapshot
from putio_mirror.putio.client import CallStopped

log = logging.getLogger(__name__)

#: the watcher's sync: everything but the blackhole, which the passes submit
SYNC = Request("watch sync", kinds=ALL_KINDS - BLACKHOLE_KINDS)
#: how often the watcher's sync tries the run lock again while another run holds it
LOCK_RETRY_SECONDS = 5.0
#: the watcher's blackhole pass, which runs beside its sync
PASS = Request("watch submit", kinds=BLACKHOLE_KINDS, beside_sync=True)


@dataclass(frozen=True)
class Extras:
    """What ``serve`` adds to the watcher: the RPC door's hooks into its loop."""

    #: told of every snapshot a sync or pass observed (and whether it lists the files)
    on_snapshot: Callable[[Snapshot, bool], None] | None = None
    #: given, once the watcher runs, the function that asks for a pass at once
    wire_wake: Callable[[Callable[[], None]], None] | None = None
    #: given, once the watcher runs, the function that starts a sync at once (unless one runs)
    wire_sync: Callable[[Callable[[], None]], None] | None = None
    #: given, once the watcher runs, the function that starts a sync at once, stopping one
    #: that runs at its next chunk first (its plan became wrong: an item was removed)
    wire_replan: Callable[[Callable[[], None]], None] | None = None
    #: asked every ``hurry_seconds``: LOOK runs a pass (put.io's transfer list, no files),
    #: FETCH a pass and a sync (something finished on put.io waits to come down)
    hurry: Callable[[], str] | None = None
    hurry_seconds: float = 30.0
    #: told why a sync or pass could not reach put.io (an outage outlasting its retries)
    on_unreachable: Callable[[MirrorError], None] | None = None
    #: what watches the blackhole for the kernel's word of new files (a test's deaf one
    #: stands for a network share another host writes to, where the kernel tells nothing)
    observer: Callable[[], BaseObserver] = Observer


#: what ``Extras.hurry`` may ask for
LOOK, FETCH = "look", "fetch"


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


class _Syncs:
    """Runs each periodic sync on a thread of its own, one at a time, and keeps what
    ended it badly (a fatal error, a bug) for the watcher to raise."""

    def __init__(
        self,
        runtime: Runtime,
        run: Callable[[Runtime, Request], Outcome] = run_once,
        on_unreachable: Callable[[MirrorError], None] | None = None,
    ) -> None:
        stopped = runtime.stop_requested
        self._on_unreachable = on_unreachable
        self._replanning = threading.Event()
        self._runtime = replace(
            runtime, stop_requested=lambda: stopped() or self._replanning.is_set()
        )
        self._run_once = run
        self._thread: threading.Thread | None = None
        self._running = False  # from start until _run decides, under _starting, to end
        self._after = False  # a sync is wanted after the one running
        self._failure: BaseException | None = None
        self._starting = threading.Lock()  # the RPC door may ask from its own threads

    def start(self, *, quietly: bool = False) -> None:
        with self._starting:
            if self._running:
                if not quietly:
                    log.info("watch sync: the last one is still running; not starting another")
                return
            self._running = True
            self._thread = threading.Thread(target=self._run, name="watch-sync", daemon=True)
            self._thread.start()

    def soon(self) -> None:
        """Start a sync now, or once the one running has ended: that one planned before
        what asks for this (an RPC client's removal to carry out on put.io)."""
        with self._starting:
            if self._running:
                self._after = True  # _run sees it once the running one has ended
                return
        self.start(quietly=True)

    def replan(self) -> None:
        """Start a sync now; one that runs stops at its next chunk and plans again."""
        with self._starting:
            if self._running:
                self._replanning.set()  # _run sees it once the running one has stopped
                return
        self.start(quietly=True)

    def _run(self) -> None:
        again = True
        try:
            while again:
                _guarded(SYNC.command, self._summary, self._on_unreachable)
                with self._starting:
                    again = self._replanning.is_set() or self._after
                    self._replanning.clear()
                    self._after = False
                    self._running = again
                if again:
                    log.info("watch sync: planning again (an RPC client removed an item)")
        except Exception as error:  # raised again in the watcher's own thread
            self._failure = error
        finally:
            if again:  # ended by an error; else the loop said so, and a sync asked for
                with self._starting:  # since may be running on a thread of its own
                    self._running = False

    def _summary(self) -> str | None:
        """Run one sync; while another run holds the lock (a timer's ``sync`` beside
        ``serve``), wait for it: it planned before whatever asked for this one."""
        waiting = False
        while True:
            try:
                return _outcome_summary(self._run_once(self._runtime, SYNC))
            except AlreadyRunningError as error:
                if not waiting:
                    log.info("%s: waits for another run to end: %s", SYNC.command, error.hint)
                    waiting = True
                if _stopped_within(self._runtime.stop_requested, LOCK_RETRY_SECONDS):
                    return None

    def raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()


def watch_blackhole(
    settings: Settings,
    *,
    add_first: bool,
    periodic_sync: bool,
    stop: StopFlag | None = None,
    poll_seconds: float = 0.5,
    monotonic: Callable[[], float] = time.monotonic,
    extras: Extras | None = None,
    reload: Callable[[], Settings] | None = None,
    clock: Callable[[], datetime] = local_now,
) -> ExitCode:
    """Given settings, watch until stopped; return the exit code (130 after Ctrl-C, else 0).
    ``clock``: the local wall clock the windows are read on (a test's own).

    On SIGHUP the current round ends as a stop would, and the next one runs with what
    ``reload`` returns (the same settings without it, or when it raises MirrorError)."""
    rounds = _Rounds(extras or Extras(), periodic_sync, poll_seconds, monotonic, clock)
    with stop or StopFlag() as flag, Hangup() as hangup:
        while True:
            rounds.watch(settings, add_first, flag, hangup)
            if flag.is_set():
                log.info("stopped on request")
                return ExitCode.INTERRUPTED if flag.by_ctrl_c else ExitCode.OK
            hangup.clear()
            settings, add_first = _reloaded(settings, reload), True


@dataclass(frozen=True)
class _Rounds:
    """What stays the same from one round of watching to the next (a round ends at SIGHUP)."""

    extras: Extras
    periodic_sync: bool
    poll_seconds: float
    monotonic: Callable[[], float]
    clock: Callable[[], datetime]

    def watch(self, settings: Settings, add_first: bool, flag: StopFlag, hangup: Hangup) -> None:
        """Watch with one set of settings until stopped or hung up."""
        settings.blackhole_dir.mkdir(parents=True, exist_ok=True)
        timer = _Timer(self.monotonic)
        if add_first:
            timer.arm(0.0)
        if self.extras.wire_wake is not None:
            self.extras.wire_wake(lambda: timer.arm(0.0))
        ended = threading.Event()  # set when this round ends by an error, too

        def stop_requested() -> bool:
            return flag.is_set() or hangup.is_set() or ended.is_set()

        runtime = Runtime(
            settings,
            stop_requested=stop_requested,
            progress=LogProgress(),
            on_snapshot=self.extras.on_snapshot,
            clock=self.clock,
            runs_again=True,
        )
        observer = self.extras.observer()
        keep_out = (settings.download_dir, settings.staging_dir)
        watched = Watched(observer, settings.blackhole_dir, keep_out, timer.arm, self.monotonic)
        observer.start()
        syncs = _Syncs(runtime, on_unreachable=self.extras.on_unreachable)
        if self.extras.wire_sync is not None:
            self.extras.wire_sync(syncs.soon)
        if self.extras.wire_replan is not None:
            self.extras.wire_replan(syncs.replan)
        log.info("watching %s", settings.blackhole_dir)
        try:
            scheduler = _scheduler(syncs, settings, self.periodic_sync)
            # a sync as a window opens, whatever the interval (the periodic syncs' watcher)
            window = _Window(
                lambda: settings.schedule.is_open(self.clock()),
                syncs.soon if self.periodic_sync else lambda: None,
            )
            hurry = _Hurry(self.extras, timer, syncs, self.monotonic, window.is_open)
            loop = _Loop(
                runtime, timer, scheduler, syncs, watched, hurry, window, self.extras.on_unreachable
            )
            loop.run((flag, hangup), self.poll_seconds)
        finally:
            ended.set()  # a sync still running stops at its next chunk
            syncs.join()
            observer.stop()
            observer.join(timeout=5)


def _reloaded(settings: Settings, reload: Callable[[], Settings] | None) -> Settings:
    """The settings read again after SIGHUP; the old ones if they cannot be."""
    if reload is None:
        return settings
    try:
        fresh = reload()
    except MirrorError as error:
        problems = "".join(f"\n  - {problem}" for problem in getattr(error, "problems", ()))
        log.error(
            "SIGHUP: the config was not reloaded, the one read before stays in force: %s%s",
            error.message,
            problems,
        )
        return settings
    log.info("SIGHUP: read the config again (%s)", fresh.config_path or "no file: defaults")
    return fresh


def _scheduler(syncs: _Syncs, settings: Settings, periodic_sync: bool) -> schedule.Scheduler:
    scheduler = schedule.Scheduler()
    if periodic_sync:
        minutes = max(settings.watch_interval_minutes, 0.1)
        scheduler.every(int(minutes * 60)).seconds.do(syncs.start)
        scheduler.run_all()  # a first sync right away; later ones on the interval
    return scheduler


@dataclass(frozen=True)
class _Loop:
    """What the watcher's loop looks after, one round long."""

    runtime: Runtime
    timer: _Timer
    scheduler: schedule.Scheduler
    syncs: _Syncs
    watched: Watched
    hurry: _Hurry
    window: _Window
    on_unreachable: Callable[[MirrorError], None] | None = None

    def run(self, ends: tuple[StopFlag, Hangup], poll_seconds: float) -> None:
        flag, hangup = ends
        while not (flag.is_set() or hangup.is_set()):
            self.hurry.check()
            self.window.check()
            self.watched.check()
            if self.timer.fire_if_due():
                command = "watch submit"
                # Ages as the pass saw them: a file it left for later (younger than the
                # settle time) may have settled while put.io answered; ages taken after
                # the pass would call it failed and look again only in 30 s.
                began = time.time()
                _guarded(
                    command,
                    lambda: _report_summary(submit_blackhole(self.runtime)),
                    self.on_unreachable,
                )
                self.watched.looked()  # what the pass moved away is no news
                delay = recheck_delay(self.watched.folder, began, self.watched.keep_out)
                if delay is not None:
                    self.timer.arm(delay)
            self.scheduler.run_pending()
            self.syncs.raise_failure()
            flag.wait(poll_seconds)


class _Window:
    """Whether the download windows are open; ``on_open`` is called as one opens."""

    def __init__(self, is_open: Callable[[], bool], on_open: Callable[[], None]) -> None:
        self.is_open = is_open
        self._on_open = on_open
        self._was_open = is_open()  # the first sync has just started

    def check(self) -> None:
        now_open = self.is_open()
        if now_open and not self._was_open:
            log.info("a download window opened: syncing")
            self._on_open()
        self._was_open = now_open


class _Hurry:
    """While the RPC door has items not yet placed, a pass every few seconds, and a sync
    as soon as one of them is finished on put.io: it comes down without waiting for the
    sync interval, and put.io's whole file list is read only when there is something new.
    No sync while the download windows are closed: it could only defer the download (and
    list the whole account, and fill ``history``, at every poll); one starts as a window
    opens (``_Window``)."""

    def __init__(
        self,
        extras: Extras,
        timer: _Timer,
        syncs: _Syncs,
        monotonic: Callable[[], float],
        window_open: Callable[[], bool],
    ) -> None:
        self._extras, self._timer, self._syncs = extras, timer, syncs
        self._monotonic = monotonic
        self._window_open = window_open
        self._last = monotonic()  # the first sync has just started

    def check(self) -> None:
        if self._extras.hurry is None:
            return
        if self._monotonic() - self._last < self._extras.hurry_seconds:
            return
        self._last = self._monotonic()
        wanted = self._extras.hurry()
        if wanted in (LOOK, FETCH):
            self._timer.arm(0.0)
        if wanted == FETCH and self._window_open():
            self._syncs.start(quietly=True)


def _stopped_within(stop_requested: Callable[[], bool], seconds: float) -> bool:
    """Given how a stop is asked, wait up to ``seconds``; return whether one was asked."""
    deadline = time.monotonic() + seconds
    while not stop_requested():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(left, 0.25))
    return True


def _guarded(
    command: str,
    work: Callable[[], str | None],
    on_unreachable: Callable[[MirrorError], None] | None = None,
) -> None:
    """Run once; a per-run problem is logged and the watcher goes on, a fatal one ends it
    (a plan over the safety limits is this plan's problem, not the watcher's); put.io out
    of reach is told to ``on_unreachable`` too."""
    try:
        summary = work()
    except AlreadyRunningError as error:
        log.info("%s: skipped this round: %s", command, error.message)
        return
    except CallStopped as error:  # the watcher is stopping: no trouble of put.io's
        log.info("%s: %s", command, error.message)
        return
    except SafetyLimitError as error:
        # This plan only: exiting would leave Sonarr without its client, and a service
        # manager would restart the watcher into the same refusal. Each pass tells it.
        log.warning("needs you: %s: %s (%s)", command, error.message, error.hint)
        return
    except FatalError:
        raise
    except MirrorError as error:
        log.warning("%s: %s (%s)", command, error.message, error.hint)
        if on_unreachable is not None and isinstance(error, TransientError):
            on_unreachable(error)
        return
    if summary is not None:
        log.info("%s: %s", command, summary)


def _outcome_summary(outcome: Outcome) -> str | None:
    for item in outcome.attention:
        log.warning("needs you: %s (%s)", item.message, item.hint)
    return _report_summary(outcome.report) if outcome.plan.actions else None


def _report_summary(report: RunReport | None) -> str | None:
    return None if report is None else report.summary()


# -- a blackhole pass, beside a running sync ----------------------------------------------


def submit_blackhole(runtime: Runtime) -> RunReport | None:
    """Given the runtime, submit the blackhole once, whether or not a sync is running;
    return what was done (None if there was nothing to do, or no blackhole: a folder that
    vanished after its pass was armed, which ``Watched`` tells and watches again once
    back). Raise AlreadyRunningError if another blackhole pass of this journal is
    running, MirrorError as a run would."""
    try:
        return run_once(runtime, PASS).report
    except BlackholeMissingError as missing:
        log.info("%s: %s", PASS.command, missing.message)
        return None
