"""The watcher against a real directory and a real process: arrivals, add-first, SIGTERM."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

import pytest

from putio_mirror.config import load_settings
from putio_mirror.errors import ExitCode
from putio_mirror.signals import StopFlag
from putio_mirror.watch import watch_blackhole
from tests.mirror_env import Mirror


@pytest.fixture
def mirror(mirror: Mirror) -> Mirror:
    """The shared set-up, with the blackhole folder there to be watched."""
    mirror.blackhole.mkdir()
    return mirror


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


class Watcher:
    """``torrents watch`` in a thread, stopped through its flag like SIGTERM would."""

    def __init__(self, mirror: Mirror, *, add_first: bool) -> None:
        self.flag = StopFlag()
        self.result: list[ExitCode] = []
        settings = load_settings(mirror.config, {})
        self.thread = threading.Thread(
            target=lambda: self.result.append(
                watch_blackhole(settings, add_first=add_first, periodic_sync=False, stop=self.flag)
            )
        )

    def __enter__(self) -> Watcher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.flag.set()
        self.thread.join(timeout=10)
        assert self.result == [ExitCode.OK]


def test_watch_submits_a_new_file_once_it_is_completely_written(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    with Watcher(mirror, add_first=True):
        (mirror.blackhole / "new.torrent").write_bytes(torrent_bytes("Arrived"))
        assert wait_for(lambda: len(mirror.fake.transfers()) == 1)
        assert wait_for(lambda: (mirror.blackhole / ".submitted" / "new.torrent").exists())
    assert [t["name"] for t in mirror.fake.transfers()] == ["Arrived"]


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
