"""The watcher against a real directory and a real process: arrivals, add-first, SIGTERM."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Callable

import pytest
from watchdog.observers.api import BaseObserver, EventEmitter

from putio_mirror.app.run import Runtime
from putio_mirror.cli import watch as watch_module
from putio_mirror.cli.signals import StopFlag
from putio_mirror.cli.watch import (
    Extras,
    submit_blackhole,
    watch_blackhole,
)
from putio_mirror.cli.watched import RECHECK_SECONDS, SETTLE_SECONDS, recheck_delay
from putio_mirror.config.settings import load_settings
from putio_mirror.core.errors import AlreadyRunningError, ExitCode
from putio_mirror.fakeputio.fake import LoggedRequest
from putio_mirror.journal.store import Journal
from putio_mirror.local.lock import RunLock
from tests.mirror_env import Mirror


@pytest.fixture
def mirror(mirror: Mirror) -> Mirror:
    """The shared set-up, with the blackhole folder there to be watched."""
    mirror.blackhole.mkdir(exist_ok=True)
    return mirror


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


class _Told(logging.Handler):
    """Sets ``event`` when a record's message starts with ``start``."""

    def __init__(self, start: str, event: threading.Event) -> None:
        super().__init__(logging.INFO)
        self.start, self.event = start, event

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(self.start):
            self.event.set()


class Watcher:
    """``torrents watch`` in a thread, stopped through its flag like SIGTERM would.

    Entering returns once the watcher says it is watching: what it holds of the blackhole
    (the folders' times it compares, the kernel's watch) is taken by then, so a file a
    test drops after it is news to the watcher, however long its thread took to start.
    (A file dropped before would count as there from the start, never to be taken
    unless ``add_first``: sleeping half a second instead lost that race on a loaded
    machine.)"""

    def __init__(
        self,
        mirror: Mirror,
        *,
        add_first: bool,
        periodic_sync: bool = False,
        extras: Extras | None = None,
    ) -> None:
        self.flag = StopFlag()
        self.result: list[ExitCode] = []
        self.watching = threading.Event()
        self._told = _Told("watching ", self.watching)
        self._logger = logging.getLogger(watch_module.__name__)
        self._level = self._logger.level
        settings = load_settings(mirror.config, {})
        self.thread = threading.Thread(
            target=lambda: self.result.append(
                watch_blackhole(
                    settings,
                    add_first=add_first,
                    periodic_sync=periodic_sync,
                    stop=self.flag,
                    extras=extras,
                )
            )
        )

    def __enter__(self) -> Watcher:
        self._logger.addHandler(self._told)
        if not self._logger.isEnabledFor(logging.INFO):
            self._logger.setLevel(logging.INFO)
        self.thread.start()
        assert self.watching.wait(15), "the watcher did not start watching"
        return self

    def __exit__(self, *exc: object) -> None:
        self.flag.set()
        self.thread.join(timeout=10)
        self._logger.removeHandler(self._told)
        self._logger.setLevel(self._level)
        assert self.result == [ExitCode.OK]


def test_watch_submits_a_new_file_once_it_is_completely_written(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    with Watcher(mirror, add_first=True):
        (mirror.blackhole / "new.torrent").write_bytes(torrent_bytes("Arrived"))
        assert wait_for(lambda: len(mirror.fake.transfers()) == 1)
        assert wait_for(lambda: (mirror.blackhole / ".submitted" / "new.torrent").exists())
    assert [t["name"] for t in mirror.fake.transfers()] == ["Arrived"]


def test_watch_submits_files_dropped_into_subfolders_even_ones_made_while_it_watches(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    (mirror.blackhole / "sonarr").mkdir()
    with Watcher(mirror, add_first=False):
        (mirror.blackhole / "sonarr" / "show.torrent").write_bytes(torrent_bytes("Show"))
        assert wait_for(lambda: len(mirror.fake.transfers()) == 1)
        assert wait_for(
            lambda: (mirror.blackhole / "sonarr" / ".submitted" / "show.torrent").exists()
        )
        (mirror.blackhole / "radarr").mkdir()
        time.sleep(0.5)  # a watch of it may take a moment
        (mirror.blackhole / "radarr" / "film.torrent").write_bytes(torrent_bytes("Film"))
        assert wait_for(lambda: len(mirror.fake.transfers()) == 2)
        assert wait_for(
            lambda: (mirror.blackhole / "radarr" / ".submitted" / "film.torrent").exists()
        )
    assert sorted(t["name"] for t in mirror.fake.transfers()) == ["Film", "Show"]


def test_watch_takes_a_folder_moved_in_with_its_files(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    made = mirror.root / "made-elsewhere"
    made.mkdir()
    (made / "show.torrent").write_bytes(torrent_bytes("Moved In"))
    with Watcher(mirror, add_first=False):
        made.rename(mirror.blackhole / "sonarr")
        assert wait_for(lambda: len(mirror.fake.transfers()) == 1)
    assert [t["name"] for t in mirror.fake.transfers()] == ["Moved In"]


def test_a_subfolder_file_still_settling_is_looked_at_again_soon(mirror: Mirror) -> None:
    (mirror.blackhole / "sonarr").mkdir()
    young = mirror.blackhole / "sonarr" / "young.torrent"
    young.write_bytes(b"d")
    now = young.stat().st_mtime + 0.5
    assert recheck_delay(mirror.blackhole, now) == pytest.approx(SETTLE_SECONDS - 0.5 + 0.25)
    os.utime(young, (now - 60, now - 60))
    assert recheck_delay(mirror.blackhole, now) == RECHECK_SECONDS  # left there: failed


def test_a_file_still_settling_when_a_slow_pass_began_is_taken_seconds_later_not_30(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    slow = threading.Event()

    def slowly(request: LoggedRequest) -> None:
        if slow.is_set() and request.path == "/v2/transfers/list":
            time.sleep(1.0)  # the pass ends after the file has settled

    mirror.fake.on_request = slowly
    with Watcher(mirror, add_first=False):
        (mirror.blackhole / "a.torrent").write_bytes(torrent_bytes("A"))
        assert wait_for(lambda: (mirror.blackhole / ".submitted" / "a.torrent").exists())
        slow.set()
        time.sleep(0.5)  # filing a away armed the next pass: b is young when it runs
        (mirror.blackhole / "b.torrent").write_bytes(torrent_bytes("B"))
        assert wait_for(lambda: len(mirror.fake.transfers()) == 2, timeout=10.0)
    assert sorted(t["name"] for t in mirror.fake.transfers()) == ["A", "B"]


def test_watch_adds_existing_files_first_unless_told_not_to(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    mirror.drop("old.torrent", torrent_bytes("Old"))
    with Watcher(mirror, add_first=False):
        time.sleep(0.5)
        assert mirror.fake.transfers() == []
    with Watcher(mirror, add_first=True):
        assert wait_for(lambda: len(mirror.fake.transfers()) == 1)


def test_watch_process_exits_cleanly_on_sigterm(mirror: Mirror) -> None:
    mirror.fake.add_file("x.bin", size=1000)
    process = mirror.spawn("watch")
    assert wait_for(lambda: (mirror.downloads / "x.bin").exists()), "the first sync ran"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    process.stderr.close()


def test_a_torrent_dropped_while_the_sync_downloads_is_submitted_within_seconds(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    mirror.fake.add_file("big.mkv", size=16 * 1024 * 1024)
    mirror.fake.node_bytes_per_second = 100_000  # a download of a minute or so
    with Watcher(mirror, add_first=True, periodic_sync=True):
        assert wait_for(lambda: mirror.fake.node_bytes_sent > 0), "the sync is downloading"
        dropped = time.monotonic()
        (mirror.blackhole / "new.torrent").write_bytes(torrent_bytes("Dropped Meanwhile"))
        assert wait_for(lambda: len(mirror.fake.transfers()) == 1, timeout=8.0)
        waited = time.monotonic() - dropped
        assert wait_for(lambda: (mirror.blackhole / ".submitted" / "new.torrent").exists())
        assert not (mirror.downloads / "big.mkv").exists(), "the download was still running"
    assert waited < SETTLE_SECONDS + 4.0
    assert [t["name"] for t in mirror.fake.transfers()] == ["Dropped Meanwhile"]


def test_a_blackhole_pass_runs_beside_a_sync_s_run_lock_but_never_beside_another_pass(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    settings = load_settings(mirror.config, {})
    journal = Journal.open(settings.journal_url)
    run_lock = journal.lock_path
    journal.close()
    mirror.drop("a.torrent", torrent_bytes("A"))
    with RunLock(run_lock):  # a sync is running
        report = submit_blackhole(Runtime(settings))
    assert report is not None and len(report.done) == 1 and not report.failed
    assert [t["name"] for t in mirror.fake.transfers()] == ["A"]
    mirror.drop("b.torrent", torrent_bytes("B"))
    pass_lock = run_lock.with_name(f"{run_lock.stem}.blackhole{run_lock.suffix}")
    with RunLock(pass_lock), pytest.raises(AlreadyRunningError):
        submit_blackhole(Runtime(settings))
    assert submit_blackhole(Runtime(settings)) is not None
    assert len(mirror.fake.transfers()) == 2
    assert submit_blackhole(Runtime(settings)) is None, "nothing left to do"


def finish(process: subprocess.Popen[bytes], signum: int) -> tuple[int, str]:
    """Send the signal; return the exit code and what the process logged."""
    process.send_signal(signum)
    code = process.wait(timeout=15)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    err = process.stderr.read().decode()
    process.stderr.close()
    return code, err


def test_watch_process_exits_130_on_ctrl_c(mirror: Mirror) -> None:
    mirror.fake.add_file("x.bin", size=1000)
    with mirror.spawned("watch") as process:
        assert wait_for(lambda: (mirror.downloads / "x.bin").exists()), "the first sync ran"
        code, err = finish(process, signal.SIGINT)
    assert code == 130, err


def test_sighup_reads_the_config_again_and_a_broken_one_leaves_the_old_in_force(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    mirror.fake.add_file("x.bin", size=1000)
    with mirror.spawned("watch") as process:
        assert wait_for(lambda: (mirror.downloads / "x.bin").exists()), "the first sync ran"
        # A config with a problem: reported, and the watcher goes on as it was.
        good = mirror.config.read_text()
        mirror.config.write_text(good + "colour: blue\n")
        process.send_signal(signal.SIGHUP)
        (mirror.blackhole / "first.torrent").write_bytes(torrent_bytes("First"))
        assert wait_for(lambda: len(mirror.fake.transfers()) == 1), "still watching the old folder"
        assert process.poll() is None
        # A good one moves the blackhole: the new folder is watched from then on.
        moved = mirror.root / "other-blackhole"
        mirror.write_config(paths={"blackhole": str(moved)})
        process.send_signal(signal.SIGHUP)
        assert wait_for(moved.is_dir), "the new blackhole was made"
        (moved / "second.torrent").write_bytes(torrent_bytes("Second"))
        assert wait_for(lambda: len(mirror.fake.transfers()) == 2), "the new folder is watched"
        assert wait_for(lambda: (moved / ".submitted" / "second.torrent").exists())
        code, err = finish(process, signal.SIGTERM)
        assert code == 0, err
    assert "the config was not reloaded" in err and "colour: unknown option" in err


def test_the_watcher_outlives_its_blackhole_vanishing_and_watches_it_again_once_back(
    mirror: Mirror, torrent_bytes: Callable[..., bytes], caplog: pytest.LogCaptureFixture
) -> None:
    # An unmounted share, or a folder removed and made again: the old watch died with it.
    def vanish(request: LoggedRequest) -> None:
        if request.path == "/v2/files/upload":
            shutil.rmtree(mirror.blackhole)

    mirror.fake.on_request = vanish
    with Watcher(mirror, add_first=True) as watcher:
        (mirror.blackhole / "first.torrent").write_bytes(torrent_bytes("First"))
        assert wait_for(lambda: len(mirror.fake.transfers()) == 1)
        assert wait_for(lambda: "blackhole" in caplog.text and "is gone" in caplog.text)
        time.sleep(1.0)  # the pass has ended and looked at the folder
        assert watcher.thread.is_alive(), "the watcher lives on"
        mirror.fake.on_request = None
        mirror.blackhole.mkdir()
        (mirror.blackhole / "second.torrent").write_bytes(torrent_bytes("Second"))
        assert wait_for(lambda: len(mirror.fake.transfers()) == 2, timeout=10.0)
        assert wait_for(lambda: (mirror.blackhole / ".submitted" / "second.torrent").exists())
        time.sleep(0.5)
        (mirror.blackhole / "third.torrent").write_bytes(torrent_bytes("Third"))
        assert wait_for(lambda: len(mirror.fake.transfers()) == 3, timeout=10.0)
    assert sorted(t["name"] for t in mirror.fake.transfers()) == ["First", "Second", "Third"]


def test_a_pass_armed_just_before_the_blackhole_vanishes_does_not_end_the_watcher(
    mirror: Mirror, torrent_bytes: Callable[..., bytes], caplog: pytest.LogCaptureFixture
) -> None:
    # A .torrent arrives, arming a pass, and the share is unmounted before the pass runs:
    # the pass found no folder and raised the config error of `torrents add`, fatal, and
    # the watcher ended, leaving Sonarr's blackhole unwatched once the share came back.
    caplog.set_level(logging.INFO, logger="putio_mirror.cli.watch")
    with Watcher(mirror, add_first=True) as watcher:
        part = mirror.blackhole / "x.torrent.part"
        part.write_bytes(torrent_bytes("X"))
        part.rename(mirror.blackhole / "x.torrent")
        shutil.rmtree(mirror.blackhole)
        # the pass armed by the rename runs once the file has settled, and finds no folder
        assert wait_for(lambda: "watch submit: the blackhole folder" in caplog.text, 15.0)
        time.sleep(0.5)  # (the old code's watcher thread ended on it: give it time to)
        assert watcher.thread.is_alive(), "the watcher lives on"
        mirror.blackhole.mkdir()
        (mirror.blackhole / "y.torrent").write_bytes(torrent_bytes("Y"))
        assert wait_for(lambda: len(mirror.fake.transfers()) == 1, timeout=10.0)
    assert [t["name"] for t in mirror.fake.transfers()] == ["Y"]


class _Deaf(EventEmitter):
    """Hears nothing: inotify on a network share (NFS, SMB) that another host writes to."""

    def queue_events(self, timeout: float) -> None:
        time.sleep(timeout)


class DeafObserver(BaseObserver):
    def __init__(self) -> None:
        super().__init__(emitter_class=_Deaf)


def test_files_dropped_where_the_watch_hears_nothing_are_taken_all_the_same(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    """A blackhole on a share Sonarr writes from another machine: the kernel tells of no
    file, so the watcher looks at the folders themselves every few seconds too."""
    with Watcher(mirror, add_first=True, extras=Extras(observer=DeafObserver)):
        time.sleep(1.0)  # the first pass found an empty blackhole
        (mirror.blackhole / "first.torrent").write_bytes(torrent_bytes("First"))
        (mirror.blackhole / "sonarr").mkdir()
        (mirror.blackhole / "sonarr" / "second.torrent").write_bytes(torrent_bytes("Second"))
        assert wait_for(lambda: len(mirror.fake.transfers()) == 2, timeout=15.0)


class _Cycle:
    """Garbage only the cyclic collector frees: it refers to itself."""

    def __init__(self) -> None:
        self.me = self
        self.payload = bytearray(1024 * 1024)  # as a run's listings and buffers weigh


def test_what_each_run_of_the_watcher_leaves_to_the_cyclic_collector_is_collected(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    """``serve`` ran for weeks growing ~1 MB for every item Sonarr sent through: a run
    keeps its objects out of the collector's walks while it starts, then hands them to
    the oldest generation, which CPython walks only once it grew by a quarter. So each
    run's cycles stayed until the process ended."""
    left: list[weakref.ref[_Cycle]] = []

    def leave_a_cycle(snapshot: object, lists_files: bool) -> None:
        left.append(weakref.ref(_Cycle()))

    with Watcher(mirror, add_first=True, extras=Extras(on_snapshot=leave_a_cycle)):
        assert wait_for(lambda: len(left) == 1)
        (mirror.blackhole / "next.torrent").write_bytes(torrent_bytes("Next"))
        assert wait_for(lambda: len(mirror.fake.transfers()) == 1)
        # the first run's cycle was collected by the time the second run ended
        assert wait_for(lambda: left[0]() is None, timeout=5.0)
