"""The watcher's syncs: one at a time, and none asked for lost while one runs (``serve``'s
RPC door asks for one when a client removes an item whose put.io copy is to go)."""

from __future__ import annotations

import threading
from pathlib import Path

from putio_mirror.app.run import Outcome, Request, Runtime
from putio_mirror.cli.watch import _Syncs
from putio_mirror.config.settings import load_settings
from putio_mirror.core.errors import ExitCode
from putio_mirror.core.plan import Plan
from putio_mirror.local.lock import RunLock
from tests.mirror_env import Mirror


class SlowSyncs:
    """A run_once that holds each sync until released, and counts them."""

    def __init__(self) -> None:
        self.started: list[threading.Event] = []
        self.release = threading.Semaphore(0)
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def __call__(self, runtime: Runtime, request: Request) -> Outcome:
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            began = threading.Event()
            self.started.append(began)
        began.set()
        self.release.acquire()
        with self._lock:
            self.running -= 1
        return Outcome(Plan(()), None, ExitCode.OK)


def test_a_sync_asked_for_while_one_runs_follows_it_and_none_overlap(mirror: Mirror) -> None:
    runs = SlowSyncs()
    syncs = _Syncs(Runtime(load_settings(mirror.config, {})), run=runs)
    syncs.start()
    assert _started(runs, 1)
    # planned before the client's removal: it must not be the last sync for a while
    syncs.soon()
    syncs.soon()  # asked twice while one runs: one more sync, not two
    syncs.start(quietly=True)  # the periodic one, skipped while one runs
    runs.release.release()
    assert _started(runs, 2)
    runs.release.release()
    syncs.join()
    assert len(runs.started) == 2 and runs.most_at_once == 1
    syncs.soon()  # none running: starts at once
    assert _started(runs, 3)
    runs.release.release()
    syncs.join()
    syncs.raise_failure()


def _started(runs: SlowSyncs, count: int) -> bool:
    for _ in range(200):
        if len(runs.started) >= count:
            return runs.started[count - 1].wait(5)
        threading.Event().wait(0.025)
    return False


def test_a_sync_asked_for_while_a_timers_sync_holds_the_lock_runs_once_that_one_ends(
    mirror: Mirror,
) -> None:
    # `serve` beside a timer's `sync`: the client's request came after that sync planned, so
    # the watcher's own sync must follow it, not be skipped until the next interval.
    file_id = mirror.fake.add_file("movie.mkv", size=1000)
    syncs = _Syncs(Runtime(load_settings(mirror.config, {})))
    mirror.journal.parent.mkdir(parents=True, exist_ok=True)
    with RunLock(Path(f"{mirror.journal}.lock")):  # the timer's sync, in another process
        syncs.soon()
        threading.Event().wait(1.5)
        assert not (mirror.downloads / "movie.mkv").exists()
    syncs.join()
    syncs.raise_failure()
    assert (mirror.downloads / "movie.mkv").read_bytes() == mirror.fake.file_content(file_id)
