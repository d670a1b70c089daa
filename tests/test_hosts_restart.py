"""Two hosts, one PostgreSQL journal, one host killed -9 and started again: what the killed
run did but had not journaled yet (its ends are journaled a few files at a time) is taken
up by the host itself, never fetched again by the other.

Real processes (``files download``, each host with its own state folder, so its own run
lock, as two machines), the fake put.io over loopback, whose node holds a file's answer
until the test lets it go: the moments between the steps are the test's, not a clock's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest
import yaml

from putio_mirror.fakeputio import FakePutio, LoggedRequest
from putio_mirror.journal.store import Journal
from tests.test_hosts import shared_journal

__all__ = ["shared_journal"]  # a fixture, used here

MiB = 1024 * 1024
T = TypeVar("T")


def _config(folder: Path, downloads: Path, fake: FakePutio, journal: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "token").write_text(fake.token)
    (folder / "token").chmod(0o600)
    config = {
        "putio": {"token_file": str(folder / "token"), "api_url": fake.api_url,
                  "upload_url": fake.upload_url, "timeout_seconds": 5},
        "paths": {"blackhole": str(folder / "blackhole"), "downloads": str(downloads),
                  "journal": journal},
        "download": {"parallel_files": 1, "placement": "file"},
    }  # fmt: skip
    path = folder / "mirror.yaml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def _spawn(config: Path) -> subprocess.Popen[bytes]:
    """``files download`` as a host of its own: its own state folder, so its own run lock."""
    env = dict(os.environ, XDG_STATE_HOME=str(config.parent / "state"), XDG_RUNTIME_DIR="")
    env.pop("PUTIO_TOKEN", None)
    command = [sys.executable, "-m", "putio_mirror", "--config", str(config), "files", "download"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(what: Callable[[], T], timeout: float = 30) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := what():
            return found
        time.sleep(0.05)
    raise AssertionError("timed out")


class Node:
    """Holds the node's answers for some files until let go; counts the requests."""

    def __init__(self, fake: FakePutio) -> None:
        self._held: dict[int, threading.Event] = {}
        self.asked: dict[int, int] = {}
        self._lock = threading.Lock()
        fake.on_request = self._hook

    def hold(self, file_id: int) -> threading.Event:
        self._held[file_id] = threading.Event()
        return self._held[file_id]

    def times_asked(self, file_id: int) -> int:
        with self._lock:
            return self.asked.get(file_id, 0)

    def _hook(self, request: LoggedRequest) -> None:
        if request.host != "node" or request.method != "GET":
            return
        file_id = int(request.path.rpartition("/")[2])
        with self._lock:
            self.asked[file_id] = self.asked.get(file_id, 0) + 1
        if (held := self._held.get(file_id)) is not None:
            held.wait(60)


@contextmanager
def _reaped(process: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


@pytest.mark.parametrize("layout", ["one-download-folder", "a-folder-each"])
def test_a_file_a_killed_host_placed_unjournaled_is_not_fetched_again_once_it_restarts(
    tmp_path: Path, fake_putio: FakePutio, shared_journal: str, layout: str
) -> None:
    """Host A places a file and is killed before journaling it (its ends wait for the next
    few files'). Started again, A finds the file in place and adopts it; host B, whose plan
    also has it, must leave it to A instead of fetching it again (and placing it over A's,
    or beside it in a folder of its own)."""
    # B's first file: large, so B claims it alone (nothing ahead) and then waits for it
    first = fake_putio.add_file("0-first.bin", size=65 * MiB)
    placed = fake_putio.add_file("a-placed.bin", size=5_000_000)
    fetching = fake_putio.add_file("b-fetching.bin", size=3_000_000)
    node = Node(fake_putio)
    b_may_go_on, a_may_go_on = node.hold(first), node.hold(fetching)
    shared = tmp_path / "downloads"
    folders = {
        host: shared if layout == "one-download-folder" else tmp_path / host / "downloads"
        for host in "ab"
    }
    configs = {
        host: _config(tmp_path / host, folders[host], fake_putio, shared_journal) for host in "ab"
    }
    with _reaped(_spawn(configs["b"])) as b:
        _wait_for(lambda: node.times_asked(first))  # B planned all three, holds the first
        with _reaped(_spawn(configs["a"])) as killed:
            # A left the first file to B, claimed the other two, placed one, fetches the other
            _wait_for(lambda: node.times_asked(fetching))
            assert (folders["a"] / "a-placed.bin").is_file()
            os.kill(killed.pid, signal.SIGKILL)
        asked_before = node.times_asked(placed)
        with Journal.open(shared_journal) as journal:
            assert placed not in journal.facts().downloads, "placed, but never journaled"
            assert f"download:{placed}" in journal.claims()
        with _reaped(_spawn(configs["a"])) as restarted:
            _wait_for(lambda: node.times_asked(fetching) == 2)  # A again, past its take-over
            b_may_go_on.set()
            b_out, b_err = b.communicate(timeout=120)
            a_may_go_on.set()
            a_out, a_err = restarted.communicate(timeout=120)
    assert b.returncode == 0, b_out.decode() + b_err.decode()
    assert restarted.returncode == 0, a_out.decode() + a_err.decode()
    assert node.times_asked(placed) == asked_before, "the placed file was fetched again"
    assert fake_putio.file_content(placed) == (folders["a"] / "a-placed.bin").read_bytes()
    if layout == "a-folder-each":
        assert not (folders["b"] / "a-placed.bin").exists()
    with Journal.open(shared_journal) as journal:
        records = journal.facts().downloads
        assert all(records[file_id].is_placed for file_id in (first, placed, fetching))
        # no action's claim is left (a host's word on its folder is no action's)
        assert [key for key in journal.claims() if not key.startswith("folder:")] == []
