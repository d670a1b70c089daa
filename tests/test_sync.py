"""`sync`: dry runs change nothing, windows stop at chunk boundaries, one run at a time, safety."""

from __future__ import annotations

import gc
import hashlib
import json
import threading
import time
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from putio_mirror.app.run import ALL_KINDS, Request, Runtime, run_once
from putio_mirror.config.settings import load_settings
from putio_mirror.core.errors import ExitCode
from putio_mirror.core.pacing import AUTO_MAX_FILES
from putio_mirror.fakeputio.fake import LoggedRequest
from putio_mirror.local.lock import RunLock
from tests.mirror_env import Mirror


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under root (journal included) by its bytes' digest."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.name.endswith(("-wal", "-shm"))
    }


class SteppingClock:
    """A local clock that moves ``step`` forward every time it is read."""

    def __init__(self, start: datetime, step: timedelta) -> None:
        self.now = start.astimezone()
        self.step = step

    def __call__(self) -> datetime:
        current = self.now
        self.now += self.step
        return current


def test_dry_run_makes_no_mutating_call_and_changes_no_byte_anywhere(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    mirror.fake.add_file("movie.mkv", size=50_000)
    mirror.fake.add_transfer("Seeding", status="SEEDING", hash="e" * 40)
    assert mirror.run("sync").code == 0  # a journal with history to protect
    mirror.fake.add_file("new.mkv", size=10_000)
    mirror.drop("a.torrent", torrent_bytes("A"))
    mirror.write_config(transfers={"manage_foreign": True})
    before = tree_digest(mirror.root)
    mirror.fake.clear_requests()
    result = mirror.run("sync", "--dry-run")
    assert result.code == 0
    assert "new.mkv" in result.out and "a.torrent" in result.out and "cancel" in result.out
    assert [r for r in mirror.fake.requests if r.mutating or r.host == "node"] == []
    assert tree_digest(mirror.root) == before


def test_window_closing_mid_file_stops_at_a_chunk_boundary_and_next_window_resumes(
    mirror: Mirror,
) -> None:
    file_id = mirror.fake.add_file("big.bin", size=2 * 1024 * 1024)
    mirror.write_config(schedule={"windows": ["00:05-05:55"]}, download={"chunk_size_kb": 64})
    settings = load_settings(mirror.config, {})
    # Each clock read is one minute later: the window closes after a dozen chunks.
    late = SteppingClock(datetime(2026, 11, 27, 5, 40), timedelta(minutes=1))
    first = run_once(Runtime(settings, clock=late), Request("sync"))
    assert first.exit_code == ExitCode.WINDOW_CLOSED
    part = mirror.downloads / ".putio-mirror-staging" / f"{file_id}.part"
    offset = part.stat().st_size
    assert 0 < offset < 2 * 1024 * 1024 and offset % (64 * 1024) == 0
    assert not (mirror.downloads / "big.bin").exists()

    mirror.fake.clear_requests()
    night = SteppingClock(datetime(2026, 11, 28, 1, 0), timedelta(seconds=0))
    second = run_once(Runtime(settings, clock=night), Request("sync"))
    assert second.exit_code == ExitCode.OK
    ranges = [r.headers.get("Range") for r in mirror.fake.requests if r.host == "node"]
    assert ranges == [f"bytes={offset}-"]
    data = (mirror.downloads / "big.bin").read_bytes()
    assert f"{zlib.crc32(data):08x}" == mirror.fake.file_crc32(file_id)


def test_outside_the_window_blackhole_and_grooming_run_but_downloads_wait(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    mirror.fake.add_file("movie.mkv", size=1000)
    mirror.drop("a.torrent", torrent_bytes("A"))
    mirror.write_config(schedule={"windows": ["00:05-05:55"]})
    settings = load_settings(mirror.config, {})
    noon = SteppingClock(datetime(2026, 11, 27, 12, 0), timedelta(0))
    outcome = run_once(Runtime(settings, clock=noon), Request("sync"))
    assert outcome.exit_code == ExitCode.WINDOW_CLOSED
    assert outcome.report is not None and outcome.report.deferred == 1
    assert [t["name"] for t in mirror.fake.transfers()] == ["A"]
    assert [r for r in mirror.fake.requests if r.host == "node"] == []


def test_window_given_on_the_command_line_replaces_the_config(mirror: Mirror) -> None:
    mirror.fake.add_file("movie.mkv", size=1000)
    now = datetime.now().astimezone()
    closed = f"{(now + timedelta(hours=2)):%H:%M}-{(now + timedelta(hours=3)):%H:%M}"
    assert mirror.run("sync", "--window", closed).code == 10
    assert mirror.run("sync").code == 0


def test_second_run_while_one_is_active_exits_at_once_touching_nothing(mirror: Mirror) -> None:
    mirror.fake.add_file("movie.mkv", size=1000)
    journal = mirror.journal
    journal.parent.mkdir(parents=True, exist_ok=True)
    with RunLock(Path(f"{journal}.lock")):
        mirror.fake.clear_requests()
        result = mirror.run("sync")
    assert result.code == ExitCode.ALREADY_RUNNING
    assert "another putio-mirror run" in result.err
    assert mirror.fake.requests == []


def test_two_sync_processes_started_together_one_works_one_exits_6(mirror: Mirror) -> None:
    file_id = mirror.fake.add_file("movie.mkv", size=3_000_000)
    mirror.fake.node_fault(file_id, stall_after=1_000_000, times=1)
    first = mirror.spawn("sync")
    second = mirror.spawn("sync")
    codes = sorted([first.wait(timeout=60), second.wait(timeout=60)])
    for process in (first, second):
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        process.stderr.close()
    assert codes == [0, 6]
    assert (mirror.downloads / "movie.mkv").read_bytes() == mirror.fake.file_content(file_id)


def test_kill_9_during_download_then_rerun_resumes_from_bytes_on_disk(mirror: Mirror) -> None:
    file_id = mirror.fake.add_file("movie.mkv", size=4_000_000)
    mirror.fake.node_fault(file_id, stall_after=1_500_000, times=1)
    part = mirror.kill_mid_file(file_id, at_least=1_000_000)
    on_disk = part.stat().st_size
    assert on_disk >= 1_000_000
    mirror.fake.clear_requests()
    assert mirror.run("files", "download").code == 0
    ranges = [r.headers.get("Range") for r in mirror.fake.requests if r.host == "node"]
    assert ranges == [f"bytes={on_disk}-"]
    data = (mirror.downloads / "movie.mkv").read_bytes()
    assert f"{zlib.crc32(data):08x}" == mirror.fake.file_crc32(file_id)
    history = mirror.run("history", "--run", "2").out
    assert "download movie.mkv" in history and "done" in history


def test_plan_beyond_the_safety_limits_is_refused_with_exit_5_unless_forced(
    mirror: Mirror,
) -> None:
    for number in range(4):
        mirror.fake.add_transfer(f"t{number}", status="SEEDING", hash=f"{number:040x}")
    mirror.write_config(transfers={"manage_foreign": True}, safety={"max_cancels": 3})
    mirror.fake.clear_requests()
    refused = mirror.run("transfers", "cancel-seeding")
    assert refused.code == 5 and "--force" in refused.err
    assert [r for r in mirror.fake.requests if r.mutating] == []
    assert mirror.run("transfers", "cancel-seeding", "--dry-run").code == 5
    assert mirror.run("transfers", "cancel-seeding", "--force").code == 0
    assert mirror.fake.transfers() == []


def test_sync_refuses_when_put_io_suddenly_lists_nothing(mirror: Mirror) -> None:
    ids = [mirror.fake.add_file(f"f{n}.bin", size=10) for n in range(12)]
    hashes = f"{1:040x}"
    mirror.fake.add_transfer("done", status="COMPLETED", hash=hashes, file_id=ids[0])
    mirror.write_config(transfers={"manage_foreign": True, "clean_finished": False})
    assert mirror.run("sync").code == 0
    for file_id in ids:
        mirror.fake.delete_file(file_id)
    mirror.write_config(transfers={"manage_foreign": True})
    result = mirror.run("sync")
    assert result.code == 5 and "lists no files" in result.err


def test_every_action_of_a_run_is_journaled_with_its_outcome(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    mirror.fake.add_file("movie.mkv", size=100)
    mirror.drop("a.torrent", torrent_bytes("A"))
    mirror.drop("bad.torrent", b"garbage")
    settings = load_settings(mirror.config, {})
    outcome = run_once(Runtime(settings), Request("sync", kinds=ALL_KINDS))
    assert outcome.exit_code == 11  # bad.torrent was rejected: done, but it needs a person
    actions = json.loads(mirror.run("history", "--run", "1", "--json").out)["actions"]
    (noted,) = (action for action in actions if action["kind"] == "needs-you")
    assert "bad.torrent" in noted["target"] and noted["status"] == "skipped"
    statuses = {action["key"]: action["status"] for action in actions if action is not noted}
    assert set(statuses.values()) == {"done"}
    assert {key.split(":")[0] for key in statuses} == {"upload", "reject", "download"}


def test_media_manager_never_sees_half_an_item(mirror: Mirror) -> None:
    show = mirror.fake.add_folder("Show S01")
    first = mirror.fake.add_file("e1.mkv", parent_id=show, size=300_000)
    second = mirror.fake.add_file("e2.mkv", parent_id=show, size=2_000_000)
    one_at_a_time = {"chunk_size_kb": 64, "parallel_files": 1}
    mirror.write_config(schedule={"windows": ["00:05-05:55"]}, download=one_at_a_time)
    settings = load_settings(mirror.config, {})
    late = SteppingClock(datetime(2026, 11, 27, 5, 30), timedelta(minutes=1))
    assert run_once(Runtime(settings, clock=late), Request("sync")).exit_code == 10
    assert not (mirror.downloads / "Show S01").exists()
    staged = mirror.downloads / ".putio-mirror-staging" / "verified" / str(first)
    assert staged.read_bytes() == mirror.fake.file_content(first)
    night = SteppingClock(datetime(2026, 11, 28, 1, 0), timedelta(0))
    assert run_once(Runtime(settings, clock=night), Request("sync")).exit_code == 0
    assert sorted(p.name for p in (mirror.downloads / "Show S01").iterdir()) == ["e1.mkv", "e2.mkv"]
    assert (mirror.downloads / "Show S01" / "e2.mkv").read_bytes() == mirror.fake.file_content(
        second
    )
    assert not staged.exists()


def test_per_file_placement_when_configured(mirror: Mirror) -> None:
    show = mirror.fake.add_folder("Show")
    mirror.fake.add_file("e1.mkv", parent_id=show, size=1000)
    mirror.write_config(download={"placement": "file"})
    assert mirror.run("sync").code == 0
    assert (mirror.downloads / "Show" / "e1.mkv").exists()
    assert not (mirror.downloads / ".putio-mirror-staging" / "items").exists()


def test_several_files_download_at_once_and_all_verify(mirror: Mirror) -> None:
    ids = [mirror.fake.add_file(f"f{n}.bin", size=200_000 + n) for n in range(8)]
    mirror.fake.node_fault(ids[0], reset_after=50_000, times=1)
    mirror.write_config(download={"parallel_files": 4, "chunk_size_kb": 16})
    assert mirror.run("files", "download").code == 0
    local = mirror.local_files()
    assert all(local[f"f{n}.bin"] == mirror.fake.file_content(i) for n, i in enumerate(ids))
    assert mirror.run("history", "--run", "1").out.count(" done ") == 8


def test_large_file_downloads_over_several_connections_and_verifies(mirror: Mirror) -> None:
    file_id = mirror.fake.add_file("big.mkv", size=40 * 1024 * 1024 + 123)
    mirror.write_config(download={"connections": 4})
    assert mirror.run("files", "download").code == 0
    ranges = {r.headers.get("Range") for r in mirror.fake.requests if r.host == "node"}
    assert len(ranges) >= 2, "split across connections"
    data = (mirror.downloads / "big.mkv").read_bytes()
    assert f"{zlib.crc32(data):08x}" == mirror.fake.file_crc32(file_id)
    staging = mirror.downloads / ".putio-mirror-staging"
    assert [p.name for p in staging.iterdir() if p.is_file()] == []


def test_bad_bandwidth_timetable_is_a_config_error(mirror: Mirror) -> None:
    mirror.write_config(download={"bwlimit": "08:00,fast"})
    result = mirror.run("sync")
    assert result.code == 2 and "download.bwlimit" in result.err


class NodeGauge:
    """An ``on_request`` hook that holds each node request ``seconds`` (put.io's distance)
    and notes the most answered at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self.answering = self.most = 0

    def __call__(self, request: LoggedRequest) -> None:
        if request.host != "node":
            return
        with self.lock:
            self.answering += 1
            self.most = max(self.most, self.answering)
        time.sleep(self.seconds)
        with self.lock:
            self.answering -= 1


def test_auto_downloads_many_small_files_more_at_once_while_put_io_is_far(
    mirror: Mirror,
) -> None:
    ids = [mirror.fake.add_file(f"sub{n:02}.srt", size=2_000 + n) for n in range(40)]
    gauge = NodeGauge(seconds=0.1)
    mirror.fake.on_request = gauge
    assert mirror.run("files", "download").code == 0  # parallel_files: auto, the default
    # two at once to begin with, doubled while the files mostly wait: 2, 4, 8, 12
    assert 8 <= gauge.most <= AUTO_MAX_FILES
    local = mirror.local_files()
    assert all(local[f"sub{n:02}.srt"] == mirror.fake.file_content(i) for n, i in enumerate(ids))


def test_two_files_whose_node_hangs_do_not_hold_up_the_others(mirror: Mirror) -> None:
    slow = {mirror.fake.add_file(f"a{n}.srt", size=1_000 + n) for n in range(2)}  # first in line
    others = {mirror.fake.add_file(f"b{n:02}.srt", size=2_000 + n) for n in range(20)}
    asked: list[int] = []  # file ids in the order the node was asked for them
    lock = threading.Lock()

    def hang(request: LoggedRequest) -> None:
        if request.host != "node":
            return
        file_id = int(request.path.rsplit("/", 1)[-1])
        with lock:
            first = file_id in slow and file_id not in asked
            asked.append(file_id)
        if first:
            # the two workers a run begins with both wait here, past the read timeout
            # (2 s in tests): the file is asked for again after its retry's pause
            time.sleep(3)

    mirror.fake.on_request = hang
    assert mirror.run("files", "download").code == 0  # parallel_files: auto, the default
    retried = min(n for n, file_id in enumerate(asked) if file_id in asked[:n])  # asked again
    assert others <= set(asked[:retried]), "the other files waited for the two that hung"
    local = mirror.local_files()
    assert {"a0.srt", "a1.srt"} <= set(local)


def test_the_configs_files_at_once_hold_however_far_put_io_is(mirror: Mirror) -> None:
    for n in range(16):
        mirror.fake.add_file(f"sub{n:02}.srt", size=2_000 + n)
    gauge = NodeGauge(seconds=0.05)
    mirror.fake.on_request = gauge
    mirror.write_config(download={"parallel_files": 3})
    assert mirror.run("files", "download").code == 0
    assert gauge.most == 3


def test_download_links_are_asked_for_in_parallel(mirror: Mirror) -> None:
    for n in range(8):
        mirror.fake.add_file(f"sub{n:02}.srt", size=2_000 + n)
    four = threading.Barrier(4, timeout=10)
    broken: list[str] = []
    asked: list[str] = []

    def hold(request: LoggedRequest) -> None:
        if request.host == "api" and request.path.endswith("/url"):
            asked.append(request.path)
            try:
                four.wait()
            except threading.BrokenBarrierError:
                broken.append(request.path)

    mirror.fake.on_request = hold
    assert mirror.run("files", "download").code == 0
    assert len(asked) == 8 and broken == []


def test_the_cyclic_collector_runs_again_after_a_run_and_after_one_that_failed(
    mirror: Mirror,
) -> None:
    mirror.fake.add_file("e01.srt", size=100)
    assert mirror.run("sync", "--dry-run").code == 0
    assert gc.isenabled(), "a run left the cyclic garbage collector paused"
    mirror.write_config(download={"remote_root": 2_000_000_000})  # no such folder
    assert mirror.run("sync", "--dry-run").code == ExitCode.USAGE
    assert gc.isenabled(), "a failed run left the cyclic garbage collector paused"


def test_a_seeding_transfer_added_by_hand_is_named_to_a_person_and_never_mailed(
    mirror: Mirror,
) -> None:
    # `transfers cancel-seeding` by hand, a transfer seeding on put.io that putio-mirror did
    # not add: it is left seeding, and the person is told why, not "all is in step"
    mirror.fake.add_transfer("Added.By.Hand", status="SEEDING", hash="e" * 40)
    told = mirror.run("transfers", "cancel-seeding")
    assert told.code == 0
    assert "Added.By.Hand (seeding)" in told.out and "manage_foreign" in told.out, told.out
    assert "in step" not in told.out
    assert mirror.run("-q", "sync").out == "", "a quiet timer run mails nothing of it"
    mirror.write_config(transfers={"manage_foreign": True})
    cancelled = mirror.run("transfers", "cancel-seeding")
    assert cancelled.code == 0 and "Added.By.Hand" in cancelled.out
    assert "manage_foreign" not in cancelled.out
