"""The whole product over a disk that keeps only what POSIX promises (``tests/power_cut_fs.py``):
a download's progress and every placed file outlive a power cut.

The real CLI (or ``run_once``) runs against the fake put.io with its download folder (and
staging inside it), or its blackhole, on a FUSE mount whose unmount leaves only what was
synced: a file's bytes as of its last ``fsync``, a folder's names as of its last. The
journal stays on a normal disk (SQLite syncs its own writes). Each test ends a run (a
window's end, SIGTERM, exit 0, kill -9), cuts the power, and runs again on a fresh mount.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, closing
from pathlib import Path

import pytest

from putio_mirror.app.run import Request, Runtime, run_once
from putio_mirror.config.settings import load_settings
from putio_mirror.core.errors import ExitCode
from putio_mirror.fakeputio import FakePutio
from putio_mirror.fakeputio.fake import LoggedRequest
from tests.conftest import TorrentFactory
from tests.mirror_env import Mirror
from tests.power_cut_fs import power_cut_mount
from tests.test_window_ends import WINDOW, ClosingWindow, close_after, first_node_request

MIB = 1024 * 1024

Powered = Callable[[], AbstractContextManager[Path]]


def on_a_power_cut_disk(folder: Path, tmp_path: Path) -> Powered:
    """Given a folder of the mirror's, return how to mount a disk there whose unsynced
    changes vanish at each unmount (a power cut)."""
    record = tmp_path / f"{folder.name}-record"
    return functools.partial(power_cut_mount, disk_of(folder, tmp_path), folder, record)


def disk_of(folder: Path, tmp_path: Path) -> Path:
    """Given a folder of the mirror's, return the disk mounted there, not mounted: what is
    written there now is on the disk."""
    return tmp_path / f"{folder.name}-disk"


def journal_downloads(mirror: Mirror) -> dict[int, tuple[int, bool, str | None]]:
    """Return each file's bytes done, whether it is verified, and where it was placed (as
    the journal says), read without writing a byte."""
    uri = f"file:{mirror.journal}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        query = "SELECT file_id, bytes_done, verified_at, placed_path FROM downloads"
        return {row[0]: (row[1], row[2] is not None, row[3]) for row in conn.execute(query)}


def node_ranges(fake: FakePutio) -> dict[int, list[str]]:
    """Return, by file id, the Range of each node GET for it ("" for none: from byte 0)."""
    found: dict[int, list[str]] = {}
    for request in fake.requests:
        if request.host == "node" and request.method == "GET":
            file_id = int(request.path.split("?")[0].rsplit("/", 1)[1])
            found.setdefault(file_id, []).append(request.headers.get("Range", ""))
    return found


def from_byte_0(ranges: list[str]) -> bool:
    return any(not r or r.startswith("bytes=0-") for r in ranges)


# -- a. a stopped download's progress --------------------------------------------------------

BIG = {"small.bin": 3 * MIB, "middle.bin": 5 * MIB, "large.bin": 40 * MIB}


def big_files(mirror: Mirror) -> dict[str, int]:
    mirror.fake.node_bytes_per_second = 400_000  # a connection's: a few seconds a file
    return {name: mirror.fake.add_file(name, size=size) for name, size in BIG.items()}


def stopped_by_the_window(mirror: Mirror) -> None:
    mirror.write_config(schedule={"windows": [WINDOW]}, download={"parallel_files": 3})
    clock = ClosingWindow()
    mirror.fake.on_request = first_node_request(lambda: close_after(clock, 2.0))
    outcome = run_once(Runtime(load_settings(mirror.config, {}), clock=clock), Request("sync"))
    mirror.fake.on_request = None
    assert outcome.exit_code == ExitCode.WINDOW_CLOSED


def stopped_by_sigterm(mirror: Mirror) -> None:
    mirror.write_config(download={"parallel_files": 3})
    started = threading.Event()

    def on_request(request: LoggedRequest) -> None:
        if request.host == "node":
            started.set()

    mirror.fake.on_request = on_request
    with mirror.spawned("files", "download") as process:
        assert started.wait(30)
        time.sleep(2.0)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    mirror.fake.on_request = None
    assert process.returncode == ExitCode.INTERRUPTED, err.decode()


@pytest.mark.parametrize(
    "stop", [stopped_by_the_window, stopped_by_sigterm], ids=["window", "sigterm"]
)
def test_a_stopped_download_resumes_after_a_power_cut(
    mirror: Mirror, tmp_path: Path, stop: Callable[[Mirror], None]
) -> None:
    ids = big_files(mirror)
    powered = on_a_power_cut_disk(mirror.downloads, tmp_path)
    with powered():
        stop(mirror)
    mirror.fake.clear_requests()
    mirror.fake.node_bytes_per_second = None
    mirror.write_config()
    with powered():
        assert mirror.run("files", "download").code == 0
        assert mirror.local_files() == {
            name: mirror.fake.file_content(file_id) for name, file_id in ids.items()
        }
    ranges = node_ranges(mirror.fake)
    again = {name: ranges[file_id] for name, file_id in ids.items() if from_byte_0(ranges[file_id])}
    assert not again, f"fetched again from byte 0 after the power cut: {again}"


# -- b. placed files ---------------------------------------------------------------------------


def a_season(fake: FakePutio, name: str, episodes: int, size: int) -> dict[str, int]:
    """Add a folder item with a subfolder of episodes; return their ids by relative path."""
    show = fake.add_folder(name)
    season = fake.add_folder("Season 1", show)
    return {
        f"{name}/Season 1/e{n}.mkv": fake.add_file(f"e{n}.mkv", season, size=size)
        for n in range(episodes)
    }


def assert_placed_files_kept(mirror: Mirror, contents: dict[int, bytes]) -> None:
    """Every file the journal says placed is at its place with its bytes, and every file
    gone from put.io is in the download folder (call with the download folder mounted)."""
    on_put_io = {item["id"] for item in mirror.fake.files()}
    placed = {file_id: path for file_id, (_, _, path) in journal_downloads(mirror).items() if path}
    lost = []
    for file_id, path in placed.items():
        final = Path(path) if os.path.isabs(path) else mirror.downloads / path
        if not final.is_file() or final.read_bytes() != contents[file_id]:
            lost.append(final.relative_to(mirror.downloads).as_posix())
    kept = set(mirror.local_files().values())
    gone = [file_id for file_id in contents if file_id not in on_put_io]
    deleted = [file_id for file_id in gone if contents[file_id] not in kept]
    assert not lost, f"journaled placed, lost in the power cut: {lost}"
    assert not deleted, f"deleted on put.io, lost in the power cut: {deleted}"


def placed_through_a_power_cut(
    mirror: Mirror,
    powered: Powered,
    contents: dict[int, bytes],
    *more: Powered,
    before: Callable[[], object] = lambda: None,
) -> None:
    """Run a sync (put.io's copies deleted once placed; ``before`` is done on the disk
    first), cut the power; check what the journal says placed, then that the next run has
    nothing to fetch again."""
    with contextlib.ExitStack() as mounted:
        for each in (powered, *more):
            mounted.enter_context(each())
        before()
        result = mirror.run("sync")
        assert result.code == 0, result.err
    mirror.fake.clear_requests()
    with contextlib.ExitStack() as mounted:
        for each in (powered, *more):
            mounted.enter_context(each())
        assert_placed_files_kept(mirror, contents)
        result = mirror.run("sync")
        assert result.code == 0, result.err
        assert sorted(mirror.local_files().values()) == sorted(contents.values())
    assert not node_ranges(mirror.fake), "a file placed was fetched again"


def a_season_and_a_movie(mirror: Mirror) -> dict[int, bytes]:
    ids = a_season(mirror.fake, "Show", 3, 300_000)
    ids["movie.mkv"] = mirror.fake.add_file("movie.mkv", size=1_500_000)
    return {file_id: mirror.fake.file_content(file_id) for file_id in ids.values()}


@pytest.mark.parametrize("placement", ["item", "file"])
def test_files_placed_outlive_a_power_cut_and_put_io_keeps_what_it_took(
    mirror: Mirror, tmp_path: Path, placement: str
) -> None:
    contents = a_season_and_a_movie(mirror)
    mirror.write_config(download={"delete_remote_after": True, "placement": placement})
    placed_through_a_power_cut(mirror, on_a_power_cut_disk(mirror.downloads, tmp_path), contents)


def test_files_placed_from_staging_on_another_disk_outlive_a_power_cut_of_both(
    mirror: Mirror, tmp_path: Path
) -> None:
    # Staging on a disk of its own: each file is copied in (synced) and moved in.
    contents = a_season_and_a_movie(mirror)
    staging = mirror.root / "staging"
    mirror.write_config(paths={"staging": str(staging)}, download={"delete_remote_after": True})
    powered = on_a_power_cut_disk(mirror.downloads, tmp_path)
    placed_through_a_power_cut(mirror, powered, contents, on_a_power_cut_disk(staging, tmp_path))


def test_files_placed_into_an_item_placed_before_outlive_a_power_cut(
    mirror: Mirror, tmp_path: Path
) -> None:
    # A season's first episodes are placed (the item folder made whole); a later one
    # comes into that folder alone, into a new subfolder.
    ids = a_season(mirror.fake, "Show", 2, 300_000)
    powered = on_a_power_cut_disk(mirror.downloads, tmp_path)
    with powered():
        assert mirror.run("sync").code == 0
    show = next(item["id"] for item in mirror.fake.files() if item["name"] == "Show")
    season2 = mirror.fake.add_folder("Season 2", show)
    ids["Show/Season 2/e9.mkv"] = mirror.fake.add_file("e9.mkv", season2, size=300_000)
    contents = {file_id: mirror.fake.file_content(file_id) for file_id in ids.values()}
    mirror.write_config(download={"delete_remote_after": True})
    placed_through_a_power_cut(mirror, powered, contents)


def test_files_placed_into_a_folder_a_killed_run_made_outlive_a_power_cut(
    mirror: Mirror, tmp_path: Path
) -> None:
    # A run made the item's folder and was killed before it synced the folder above it:
    # the next run finds the folder there, but its name is not on the disk yet (and no
    # file is placed beside it, whose sync would carry it). An earlier run made staging.
    powered = on_a_power_cut_disk(mirror.downloads, tmp_path)
    ids = {"first.mkv": mirror.fake.add_file("first.mkv", size=1000)}
    with powered():
        assert mirror.run("sync").code == 0
    ids |= a_season(mirror.fake, "Show", 3, 300_000)
    contents = {file_id: mirror.fake.file_content(file_id) for file_id in ids.values()}
    mirror.write_config(download={"delete_remote_after": True, "placement": "file"})
    made = mirror.downloads / "Show"
    placed_through_a_power_cut(mirror, powered, contents, before=made.mkdir)


# -- c. killed amid placing many small files, then the power goes ------------------------------


def test_a_run_killed_amid_placing_many_small_files_then_a_power_cut_loses_nothing_placed(
    mirror: Mirror, tmp_path: Path
) -> None:
    ids = {f"f{n:03}.bin": mirror.fake.add_file(f"f{n:03}.bin", size=20_000) for n in range(150)}
    pack = mirror.fake.add_folder("Pack")
    for n in range(150):
        ids[f"Pack/p{n:03}.bin"] = mirror.fake.add_file(f"p{n:03}.bin", pack, size=20_000)
    contents = {file_id: mirror.fake.file_content(file_id) for file_id in ids.values()}
    mirror.write_config(download={"parallel_files": 4})
    powered = on_a_power_cut_disk(mirror.downloads, tmp_path)
    with powered(), mirror.spawned("files", "download") as process:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if len(list(mirror.downloads.glob("f*.bin"))) >= 40:
                break
            time.sleep(0.01)
        assert process.poll() is None, "the run ended before it could be killed"
        assert len(list(mirror.downloads.glob("f*.bin"))) >= 40, "killed before placing"
        process.kill()
        process.communicate(timeout=10)
    journaled = journal_downloads(mirror)
    kept = {file_id for file_id, (_, verified, _) in journaled.items() if verified}
    assert kept, "the run was killed before it verified a file"
    with powered():
        assert_placed_files_kept(mirror, contents)
    mirror.fake.clear_requests()
    with powered():
        assert mirror.run("files", "download").code == 0
        assert mirror.local_files() == {name: contents[file_id] for name, file_id in ids.items()}
    again = kept & set(node_ranges(mirror.fake))
    assert not again, f"journaled verified, fetched again after the power cut: {sorted(again)}"


# -- d. the blackhole ----------------------------------------------------------------------------


def submissions(fake: FakePutio) -> list[LoggedRequest]:
    return [r for r in fake.requests if r.path in ("/v2/files/upload", "/v2/transfers/add")]


MAGNET = "magnet:?xt=urn:btih:c9e15763f722f23e98a29decdfae341b98d53056&dn=Cosmos"


def test_a_blackhole_file_submitted_is_neither_submitted_twice_nor_lost_after_a_power_cut(
    mirror: Mirror, tmp_path: Path, torrent_bytes: TorrentFactory
) -> None:
    dropped = {"show.torrent": torrent_bytes("Show S01"), "cosmos.magnet": MAGNET.encode()}
    powered = on_a_power_cut_disk(mirror.blackhole, tmp_path)
    for name, data in dropped.items():  # on the disk before it is mounted: durable
        path = disk_of(mirror.blackhole, tmp_path) / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (time.time() - 60, time.time() - 60))
    with powered():
        result = mirror.run("torrents", "add")
        assert result.code == 0, result.err
        assert sorted(p.name for p in (mirror.blackhole / ".submitted").iterdir()) == sorted(
            dropped
        )
    assert len(submissions(mirror.fake)) == 2
    with powered():
        result = mirror.run("torrents", "add")
        assert result.code == 0, result.err
        found = {
            path.name: path.read_bytes()
            for path in mirror.blackhole.rglob("*")
            if path.is_file() and path.name in dropped
        }
    assert len(submissions(mirror.fake)) == 2, "submitted again after the power cut"
    assert found == dropped, "a blackhole file lost in the power cut"
