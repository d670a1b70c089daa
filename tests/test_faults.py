"""Faults end to end: `sync` keeps working and never loses or corrupts a byte.

kill -9 at random moments, connection resets, stalls, URLs that work once, 5xx with and
without JSON, outages, 429 storms and a token revoked mid-run — each through the real CLI
(in a process of its own for kill -9) against the fake put.io over real sockets.

Backoff sleeps cost no real time here: ``virtual_time`` hands the run's downloader and
put.io client a clock that moves only when they sleep (the fake's outage uses it too),
so a two-minute outage passes in milliseconds. The 429 test keeps real time on purpose.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import signal
import stat
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from putio_mirror.app import fetchers as app_fetchers
from putio_mirror.app import run as app
from putio_mirror.app.run import Request, Runtime, run_once
from putio_mirror.config.settings import load_settings
from putio_mirror.core.errors import ExitCode
from putio_mirror.core.retry import Backoff
from putio_mirror.fakeputio import FakePutio, LoggedRequest
from putio_mirror.journal.store import ActionRecord, Journal
from putio_mirror.putio.client import PutioClient
from tests.mirror_env import Mirror, mirror_for

MB = 1_000_000
CHUNK_KB = 64
STAGING = ".putio-mirror-staging"
QUICK: dict[str, dict[str, Any]] = {
    "putio": {"timeout_seconds": 2},
    "download": {"read_timeout_seconds": 0.5, "max_outage_seconds": 20, "chunk_size_kb": CHUNK_KB},
}
# A small account of nested items, a loose file and files of very different sizes.
# The movie is big enough to be fetched over several connections at once.
ACCOUNT = {
    "Show A/Season 1/Show.A.S01E01.mkv": 6_000_000,
    "Show A/Season 1/Show.A.S01E02.mkv": 4_000_000,
    "Show A/Season 1/Subs/Show.A.S01E01.srt": 40_000,
    "Movie B (2020)/Movie.B.2020.mkv": 34_000_000,
    "Movie B (2020)/Extras/Trailer.mkv": 1_000_000,
    "Pack C/Disc 1/Deep/track01.flac": 4_000_000,
    "loose-file.bin": 5_000_000,
}
KILL_ROUNDS = 20
NODE_RATE = 10 * MB  # bytes per second per connection: slow enough to kill mid-file
# A reset throws away what the client has not read yet; a node no faster than the client
# reads makes sure that some bytes arrive before each reset.
STEADY_RATE = 30 * MB


@pytest.fixture
def mirror(
    tmp_path: Path, fake_putio: FakePutio, capsys: pytest.CaptureFixture[str]
) -> Iterator[Mirror]:
    with mirror_for(tmp_path, fake_putio, capsys, **QUICK) as harness:
        yield harness
    fake_putio.on_request = None


class VirtualTime:
    """A monotonic clock that moves only when someone sleeps on it (thread-safe)."""

    def __init__(self) -> None:
        self._now = 1_000.0
        self._lock = threading.Lock()
        self.slept = 0.0

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._now += max(0.0, seconds)
            self.slept += max(0.0, seconds)
        time.sleep(0.0005)  # let the other threads run, as a real sleep would

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


@pytest.fixture
def virtual_time(monkeypatch: pytest.MonkeyPatch) -> VirtualTime:
    """Give the downloaders and put.io client that ``app`` builds a virtual clock."""
    clock = VirtualTime()

    def client(*args: Any, **kwargs: Any) -> PutioClient:
        return PutioClient(*args, sleep=clock.sleep, **kwargs)

    monkeypatch.setattr(app, "PutioClient", client)
    fetchers = [name for name in ("Fetcher", "Downloader") if hasattr(app_fetchers, name)]
    assert fetchers, "app builds its fetchers some other way; teach this fixture"
    for name in fetchers:
        monkeypatch.setattr(app_fetchers, name, _on_clock(getattr(app_fetchers, name), clock))
    return clock


def _on_clock(fetcher: Callable[..., Any], clock: VirtualTime) -> Callable[..., Any]:
    def build(*args: Any, **kwargs: Any) -> Any:
        return fetcher(*args, sleep=clock.sleep, monotonic=clock.monotonic, **kwargs)

    return build


# -- the account and what must be true of the local folders ---------------------------------


def build_account(fake: FakePutio, layout: dict[str, int]) -> dict[str, int]:
    """Given relative paths and sizes, create folders and files on the fake; return the ids."""
    folders: dict[str, int] = {"": 0}
    ids: dict[str, int] = {}
    for relative, size in layout.items():
        parent = ""
        for name in relative.split("/")[:-1]:
            here = f"{parent}/{name}" if parent else name
            if here not in folders:
                folders[here] = fake.add_folder(name, parent_id=folders[parent])
            parent = here
        ids[relative] = fake.add_file(relative.rsplit("/", 1)[-1], folders[parent], size=size)
    return ids


def crc32_of(path: Path) -> str:
    crc = 0
    with path.open("rb") as source:
        while block := source.read(4 * MB):
            crc = zlib.crc32(block, crc)
    return f"{crc:08x}"


@dataclass
class Expected:
    """What the mirror must hold: every remote file's bytes, by relative path."""

    fake: FakePutio
    ids: dict[str, int]
    checked: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.fake.file(file_id)["size"] for file_id in self.ids.values())

    def assert_visible_files_exact(self, downloads: Path) -> None:
        """Every file outside staging is one of ours, byte-exact; items appear whole."""
        for path in visible_files(downloads):
            relative = str(path.relative_to(downloads))
            assert relative in self.ids, f"unexpected file visible: {relative}"
            info = path.stat()
            if self.checked.get(relative) == (info.st_ino, info.st_mtime_ns):
                continue  # a placed file never changes; read it once
            assert path.read_bytes() == self.fake.file_content(self.ids[relative]), relative
            self.checked[relative] = (info.st_ino, info.st_mtime_ns)
        for item in {relative.split("/")[0] for relative in self.ids if "/" in relative}:
            if (downloads / item).exists():
                wanted = [r for r in self.ids if r.startswith(f"{item}/")]
                missing = [r for r in wanted if not (downloads / r).is_file()]
                assert missing == [], f"half an item is visible: {item} lacks {missing}"

    def assert_all_mirrored(self, downloads: Path) -> None:
        """Every remote file is at its path with put.io's CRC32, and nothing else is there."""
        for relative, file_id in self.ids.items():
            path = downloads / relative
            assert path.is_file(), f"{relative} is missing"
            assert crc32_of(path) == self.fake.file_crc32(file_id), relative
        assert {str(p.relative_to(downloads)) for p in visible_files(downloads)} == set(self.ids)


def visible_files(downloads: Path) -> list[Path]:
    return [
        path
        for path in sorted(downloads.rglob("*"))
        if path.is_file() and STAGING not in path.relative_to(downloads).parts
    ]


def bytes_on_disk(downloads: Path) -> int:
    """Bytes really written under the download folder, staging included (sparse parts count
    what is written; segment tables are not data)."""
    total = 0
    for path in downloads.rglob("*"):
        if path.name.endswith(".segments"):
            continue
        try:
            info = path.stat()
        except FileNotFoundError:
            continue  # placed or discarded by the run meanwhile
        if stat.S_ISREG(info.st_mode):
            total += min(info.st_size, info.st_blocks * 512)
    return total


def on_disk(staging: Path) -> dict[int, list[tuple[int, int]]]:
    """The byte ranges each ``.part`` holds for sure: its segment table's done bytes if it
    has one (JSON rows ``[start, end, done, crc]``), else everything up to its length."""
    held: dict[int, list[tuple[int, int]]] = {}
    for part in staging.glob("*.part"):
        table = part.with_name(part.name + ".segments")
        if table.exists():
            rows = json.loads(table.read_text())["segments"]
            held[int(part.stem)] = [(start, start + done) for start, _, done, *_ in rows if done]
        elif part.stat().st_size:
            held[int(part.stem)] = [(0, part.stat().st_size)]
    return held


def mid_file(held: dict[int, list[tuple[int, int]]], sizes: dict[int, int]) -> bool:
    """True if some part holds some but not all of its file."""
    return any(0 < sum(b - a for a, b in spans) < sizes[key] for key, spans in held.items())


def assert_nothing_on_disk_asked_again(
    fake: FakePutio, held: dict[int, list[tuple[int, int]]]
) -> None:
    """No node request starts inside bytes a part already held when the run began."""
    for file_id, spans in held.items():
        for start in range_starts(fake, file_id):
            inside = [(a, b) for a, b in spans if a <= start < b]
            assert inside == [], f"file {file_id}: asked again from {start}, on disk {inside}"


def assert_journal_settled(mirror: Mirror) -> list[str]:
    """No action of any run is left "started"; return every action's status."""
    actions = journal_actions(mirror)
    left = [f"run {a.run_id}: {a.key}" for a in actions if a.status == "started"]
    assert left == [], f"actions left started: {left}"
    return [action.status for action in actions]


def journal_actions(mirror: Mirror) -> list[ActionRecord]:
    """Every action of every run, oldest first."""
    journal = Journal.open(f"sqlite:///{mirror.journal}")
    try:
        runs = sorted(run.id for run in journal.recent_runs(100))
        return [action for run in runs for action in journal.actions_of(run)]
    finally:
        journal.close()


def node_requests(fake: FakePutio, file_id: int | None = None) -> list[LoggedRequest]:
    return [
        r
        for r in fake.requests
        if r.host == "node" and (file_id is None or r.path == f"/download/{file_id}")
    ]


def range_starts(fake: FakePutio, file_id: int) -> list[int]:
    starts = []
    for request in node_requests(fake, file_id):
        match = re.fullmatch(r"bytes=(\d+)-\d*", request.headers.get("Range", "bytes=0-"))
        assert match is not None
        starts.append(int(match[1]))
    return starts


def once(
    action: Callable[[], None], wanted: Callable[[LoggedRequest], bool]
) -> Callable[[LoggedRequest], None]:
    """Return an ``on_request`` hook that runs ``action`` at the first request ``wanted``."""
    fired = threading.Event()

    def hook(request: LoggedRequest) -> None:
        if wanted(request) and not fired.is_set():
            fired.set()
            action()

    return hook


def is_node(request: LoggedRequest) -> bool:
    return request.host == "node"


# -- 1. kill -9 at random moments --------------------------------------------------------------


def spawn_sync(mirror: Mirror, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("PUTIO_TOKEN", "PUTIO_MIRROR_CONFIG")}
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "putio_mirror", "--config", str(mirror.config), "sync"],
            env=env,
            stdout=output,
            stderr=output,
        )


def kill_at_a_random_moment(
    process: subprocess.Popen[bytes], downloads: Path, threshold: int, rng: random.Random
) -> bool:
    """Kill -9 once ``threshold`` bytes are on disk (or at a random early moment); return
    True if the process was killed, False if it had finished by itself."""
    if rng.random() < 0.25:
        deadline = time.monotonic() + rng.uniform(0.0, 0.8)
        while time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.005)
    else:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and process.poll() is None:
            if bytes_on_disk(downloads) >= threshold:
                time.sleep(rng.uniform(0.0, 0.03))  # land anywhere within a chunk
                break
            time.sleep(0.005)
    if process.poll() is not None:
        return False
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    return True


def test_sync_killed_9_at_twenty_random_moments_ends_byte_exact_and_never_shows_a_bad_file(
    mirror: Mirror,
) -> None:
    ids = build_account(mirror.fake, ACCOUNT)
    expected = Expected(mirror.fake, ids)
    sizes = {file_id: ACCOUNT[relative] for relative, file_id in ids.items()}
    mirror.fake.node_bytes_per_second = NODE_RATE
    rng = random.Random(20261127)
    thresholds = sorted(rng.uniform(0, expected.total) for _ in range(KILL_ROUNDS))
    log = mirror.root / "killed-runs.log"
    staging = mirror.downloads / STAGING
    killed = landed_mid_file = 0
    held: dict[int, list[tuple[int, int]]] = {}
    for threshold in thresholds:
        mirror.fake.clear_requests()
        process = spawn_sync(mirror, log)
        if kill_at_a_random_moment(process, mirror.downloads, int(threshold), rng):
            killed += 1
        else:
            assert process.returncode == 0, log.read_text()[-3000:]
        assert_nothing_on_disk_asked_again(mirror.fake, held)
        held = on_disk(staging)
        landed_mid_file += mid_file(held, sizes)
        expected.assert_visible_files_exact(mirror.downloads)

    assert killed >= KILL_ROUNDS // 2, "most rounds must be killed, or the test proves little"
    assert landed_mid_file >= 5, "several kills must land in the middle of a file"
    mirror.fake.clear_requests()
    final = mirror.run("sync")
    assert final.code == 0, final.err
    assert_nothing_on_disk_asked_again(mirror.fake, held)
    expected.assert_all_mirrored(mirror.downloads)
    statuses = assert_journal_settled(mirror)
    assert "interrupted" in statuses, "the killed runs' actions were marked interrupted"
    assert [p.name for p in staging.rglob("*") if p.is_file()] == []


# -- 2. resets, stalls, one-use URLs, 5xx ------------------------------------------------------


def test_download_completes_through_a_connection_reset_every_few_mb_keeping_what_arrived(
    mirror: Mirror, virtual_time: VirtualTime
) -> None:
    ids = build_account(mirror.fake, {"Movie/movie.mkv": 12 * MB})
    file_id = ids["Movie/movie.mkv"]
    mirror.fake.node_bytes_per_second = STEADY_RATE
    mirror.fake.node_fault(file_id, reset_after=3 * MB, times=3)
    result = mirror.run("sync")
    assert result.code == 0, result.err
    Expected(mirror.fake, ids).assert_all_mirrored(mirror.downloads)
    # A reset loses what was still in the socket, so each retry starts a little before
    # the cut, but never before the start of the request before it.
    starts = range_starts(mirror.fake, file_id)
    assert len(starts) == 4 and starts[0] == 0 and starts[-1] > 0
    assert all(0 <= later - earlier <= 3 * MB for earlier, later in pairwise(starts))


def test_download_completes_after_a_stall_longer_than_the_read_timeout(
    mirror: Mirror, virtual_time: VirtualTime
) -> None:
    ids = build_account(mirror.fake, {"movie.mkv": 5 * MB})
    file_id = ids["movie.mkv"]
    mirror.fake.node_fault(file_id, stall_after=2 * MB, times=1)
    started = time.monotonic()
    result = mirror.run("sync")
    assert result.code == 0, result.err
    assert time.monotonic() - started < 10, "the stall was cut by the 0.5 s read timeout"
    Expected(mirror.fake, ids).assert_all_mirrored(mirror.downloads)
    # Everything before the stall arrived; at most the chunk being read is asked again.
    first, second = range_starts(mirror.fake, file_id)
    assert first == 0 and 2 * MB - CHUNK_KB * 1024 <= second <= 2 * MB


def test_download_completes_when_every_url_works_only_once(
    mirror: Mirror, virtual_time: VirtualTime
) -> None:
    ids = build_account(mirror.fake, {"Show/e1.mkv": 4 * MB, "Show/e2.mkv": 3 * MB})
    mirror.fake.url_max_uses = 1
    for file_id in ids.values():
        mirror.fake.node_fault(file_id, reset_after=MB, times=2)
    result = mirror.run("sync")
    assert result.code == 0, result.err
    Expected(mirror.fake, ids).assert_all_mirrored(mirror.downloads)
    assert len(node_requests(mirror.fake)) <= 12, "no loop on expired URLs"


@pytest.mark.parametrize("status", [500, 502, 503])
@pytest.mark.parametrize("json_body", [True, False], ids=["json", "html"])
def test_download_completes_through_5xx_on_the_url_route_and_the_node(
    mirror: Mirror, virtual_time: VirtualTime, status: int, json_body: bool
) -> None:
    ids = build_account(mirror.fake, {"Movie/movie.mkv": 3 * MB, "loose.bin": 2 * MB})
    movie = ids["Movie/movie.mkv"]
    mirror.fake.inject("/v2/files/*/url", status=status, times=3, json_body=json_body)
    mirror.fake.node_fault(movie, reset_after=MB, times=1)
    mirror.fake.node_fault(movie, status=status, times=2)
    mirror.fake.node_fault(ids["loose.bin"], status=status, times=1)
    result = mirror.run("sync")
    assert result.code == 0, result.err
    Expected(mirror.fake, ids).assert_all_mirrored(mirror.downloads)
    url_answers = [r.status for r in mirror.fake.requests if r.path.endswith("/url")]
    assert url_answers.count(status) == 3
    assert [r.status for r in node_requests(mirror.fake, movie)] == [200, status, status, 206]


# -- 3. outages --------------------------------------------------------------------------------


def test_download_rides_out_a_two_minute_outage_resuming_from_the_bytes_it_had(
    mirror: Mirror, virtual_time: VirtualTime
) -> None:
    mirror.write_config(
        putio=QUICK["putio"], download={**QUICK["download"], "max_outage_seconds": 300}
    )
    ids = build_account(mirror.fake, {"Movie/movie.mkv": 8 * MB})
    file_id = ids["Movie/movie.mkv"]
    mirror.fake.node_bytes_per_second = STEADY_RATE
    mirror.fake.node_fault(file_id, reset_after=3 * MB, times=1)
    # The outage starts as the node begins to send: after 3 MB every host goes dark.
    start_outage = once(lambda: mirror.fake.outage(120, virtual_time.monotonic), is_node)
    mirror.fake.on_request = start_outage
    result = mirror.run("sync")
    assert result.code == 0, result.err
    assert virtual_time.slept >= 120
    Expected(mirror.fake, ids).assert_all_mirrored(mirror.downloads)
    first, second = range_starts(mirror.fake, file_id)
    assert first == 0 and 0 < second <= 3 * MB


def _start_long_outage(mirror: Mirror, virtual_time: VirtualTime) -> int:
    ids = build_account(mirror.fake, {"Movie/movie.mkv": 8 * MB})
    file_id = ids["Movie/movie.mkv"]
    mirror.fake.node_bytes_per_second = STEADY_RATE
    mirror.fake.node_fault(file_id, reset_after=3 * MB, times=1)
    outage = once(lambda: mirror.fake.outage(3_600, virtual_time.monotonic), is_node)
    mirror.fake.on_request = outage
    return file_id


def test_outage_longer_than_max_outage_ends_the_run_keeping_the_bytes_and_the_next_run_completes(
    mirror: Mirror, virtual_time: VirtualTime
) -> None:
    file_id = _start_long_outage(mirror, virtual_time)
    result = mirror.run("sync")
    assert result.code == 1
    assert "got no data for" in result.err and "hint: " in result.err
    # max_outage_seconds is 20: the run gives up then, not after the API client's retries.
    assert 19.9 <= virtual_time.slept <= 21
    kept = (mirror.downloads / STAGING / f"{file_id}.part").stat().st_size
    assert 0 < kept <= 3 * MB
    assert visible_files(mirror.downloads) == []
    assert_journal_settled(mirror)
    virtual_time.advance(3_600)
    mirror.fake.clear_requests()
    again = mirror.run("sync")
    assert again.code == 0, again.err
    assert range_starts(mirror.fake, file_id) == [kept]
    Expected(mirror.fake, {"Movie/movie.mkv": file_id}).assert_all_mirrored(mirror.downloads)


def test_a_stop_requested_while_the_node_keeps_failing_ends_the_run_at_once_as_interrupted(
    mirror: Mirror, virtual_time: VirtualTime
) -> None:
    # SIGTERM from systemd, or the window closing, in the middle of an outage.
    file_id = build_account(mirror.fake, {"movie.mkv": 5 * MB})["movie.mkv"]
    mirror.fake.node_fault(file_id, status=503, times=1_000)
    stop = threading.Event()
    mirror.fake.on_request = once(stop.set, is_node)
    settings = load_settings(mirror.config, {})
    outcome = run_once(Runtime(settings, stop_requested=stop.is_set), Request("sync"))
    assert outcome.exit_code == ExitCode.INTERRUPTED
    assert len(node_requests(mirror.fake)) == 1, "no request after the stop"
    assert virtual_time.slept < 20, "it did not wait for the outage to end first"
    assert "paused" in assert_journal_settled(mirror)


# -- 4. a storm of 429s ------------------------------------------------------------------------


def test_429_storm_on_the_listings_is_retried_never_before_the_retry_after_it_named(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tiny backoff of our own, so only Retry-After can make the client wait.
    def client(*args: Any, **kwargs: Any) -> PutioClient:
        return PutioClient(*args, backoff=Backoff(base=0.01, cap=60.0), **kwargs)

    monkeypatch.setattr(app, "PutioClient", client)
    ids = build_account(mirror.fake, {"movie.mkv": 100_000})
    mirror.fake.inject("/v2/transfers/list", status=429, times=2, retry_after="1")
    mirror.fake.inject("/v2/files/list", status=429, times=2, retry_after="1")
    result = mirror.run("sync")
    assert result.code == 0, result.err
    Expected(mirror.fake, ids).assert_all_mirrored(mirror.downloads)
    api = [r for r in mirror.fake.requests if r.host == "api"]
    assert len([r for r in api if r.status == 429]) == 4
    for path in ("/v2/transfers/list", "/v2/files/list"):  # asked at once, each retried alone
        asked = [r for r in api if r.path == path]
        assert [r.status for r in asked] == [429, 429, 200]
        for limited, again in itertools.pairwise(asked):
            waited = again.received_at - limited.received_at
            assert waited >= 1.0, f"{path} came {waited:.3f} s after a 429"


# -- 5. a token revoked mid-run ----------------------------------------------------------------


def _revoke_while_downloading(mirror: Mirror) -> int:
    """A 6 MB file whose node connection resets after 2 MB; the token is revoked as the
    node starts sending, so the fresh URL after the reset is refused with a 401."""
    file_id = build_account(mirror.fake, {"Movie/movie.mkv": 6 * MB})["Movie/movie.mkv"]
    mirror.fake.node_bytes_per_second = STEADY_RATE
    mirror.fake.node_fault(file_id, reset_after=2 * MB, times=1)
    mirror.fake.on_request = once(mirror.fake.revoke_token, is_node)
    return file_id


def test_token_revoked_mid_run_stops_at_once_with_exit_4_and_the_next_run_resumes(
    mirror: Mirror, virtual_time: VirtualTime
) -> None:
    file_id = _revoke_while_downloading(mirror)
    result = mirror.run("sync")
    assert result.code == 4
    assert "Hint:" in result.err and "token" in result.err
    assert [r.path for r in mirror.fake.requests if r.status == 401] == [f"/v2/files/{file_id}/url"]
    kept = (mirror.downloads / STAGING / f"{file_id}.part").stat().st_size
    assert 0 < kept <= 2 * MB
    journal = Journal.open(f"sqlite:///{mirror.journal}")
    try:
        (run,) = journal.recent_runs(100)
        assert run.finished_at is not None and run.exit_code == 4
        assert [a.status for a in journal.actions_of(run.id)] == ["failed"]
    finally:
        journal.close()

    mirror.fake.on_request = None
    mirror.fake.restore_token()
    mirror.fake.clear_requests()
    again = mirror.run("sync")
    assert again.code == 0, again.err
    assert range_starts(mirror.fake, file_id) == [kept]
    Expected(mirror.fake, {"Movie/movie.mkv": file_id}).assert_all_mirrored(mirror.downloads)
    assert_journal_settled(mirror)


def test_token_revoked_during_two_parallel_downloads_is_met_by_exactly_one_401(
    mirror: Mirror, virtual_time: VirtualTime
) -> None:
    ids = build_account(mirror.fake, {"a.bin": 6 * MB, "b.bin": 2 * MB})
    first, second = ids["a.bin"], ids["b.bin"]
    mirror.fake.node_bytes_per_second = 4 * MB
    mirror.fake.node_fault(first, reset_after=3 * MB, times=1)
    mirror.fake.node_fault(second, reset_after=MB // 2, times=1)
    started: set[str] = set()

    def revoke_once_both_started(request: LoggedRequest) -> None:
        started.add(request.path)
        if {f"/download/{first}", f"/download/{second}"} <= started:
            mirror.fake.revoke_token()

    mirror.fake.on_request = revoke_once_both_started
    result = mirror.run("sync")
    assert result.code == 4
    assert len([r for r in mirror.fake.requests if r.status == 401]) == 1
    statuses = {action.target: action.status for action in journal_actions(mirror)}
    assert statuses == {"a.bin": "paused", "b.bin": "failed"}
    held = on_disk(mirror.downloads / STAGING)
    assert held[first] and held[second], "both downloads kept their bytes"
    mirror.fake.on_request = None
    mirror.fake.restore_token()
    mirror.fake.clear_requests()
    assert mirror.run("sync").code == 0
    assert_nothing_on_disk_asked_again(mirror.fake, held)
    Expected(mirror.fake, ids).assert_all_mirrored(mirror.downloads)
