"""``putio-mirror mount``: a real FUSE mount of the local put.io over loopback.

Skipped where /dev/fuse or fusermount3 is missing, except under CI=true, where that fails.
"""

from __future__ import annotations

import calendar
import errno
import os
import random
import signal
import subprocess
import time
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path

import pytest

from putio_mirror.core.errors import ExitCode
from putio_mirror.core.naming import local_paths
from putio_mirror.fakeputio import FakePutio
from putio_mirror.mount.kernel import READ_AHEAD_KB, device_of
from putio_mirror.putio.client import PutioClient
from tests.mirror_env import Mirror
from tests.mount_env import (
    api_requests,
    cached_pages,
    mounted,
    node_requests,
    require_fuse,
    unmount,
)
from tests.test_journal_gone import journal_taken_mid_download

MIB = 1024 * 1024


def build_account(fake: FakePutio) -> dict[str, int]:
    """A small account with nested folders, hostile names, twins, an empty and large files."""
    movies = fake.add_folder("Movies")
    movie = fake.add_folder("A Movie (2020)", movies)
    ids = {
        "movie": fake.add_file("movie.mkv", movie, size=5 * MIB + 123),
        "subtitle": fake.add_file("movie.srt", movie, b"1\n00:00:01 --> 00:00:02\nhi\n"),
        "big": fake.add_file("big.bin", 0, size=9 * MIB + 7),
        "empty": fake.add_file("empty.bin", 0, b""),
        "colon": fake.add_file("a:b?.txt", 0, b"colon"),
        "device": fake.add_file("CON.txt", 0, b"device"),
        "dots": fake.add_file("..", 0, b"dots"),
        "nfc": fake.add_file(unicodedata.normalize("NFC", "Café.txt"), 0, b"nfc"),
        "nfd": fake.add_file(unicodedata.normalize("NFD", "Café.txt"), 0, b"nfd"),
    }
    shared = fake.add_folder("Shared with me", 0, folder_type="SHARED")
    ids["shared"] = fake.add_file("not ours.txt", shared, b"friend's")
    ids["movies"] = movies
    return ids


def expected_paths(fake: FakePutio) -> dict[str, int]:
    """Relative path -> file id of every file, as the mirror names them."""
    with PutioClient(fake.token, fake.api_url, fake.upload_url) as client:
        files = client.list_all_files()
    folders = {item.id for item in files if item.is_folder}
    return {path: fid for fid, path in local_paths(files, 0).items() if fid not in folders}


def files_under(root: Path) -> set[str]:
    return {
        str(Path(folder, name).relative_to(root))
        for folder, _, names in os.walk(root)
        for name in names
    }


def read_range(path: Path, offset: int, length: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read(length)


def test_every_file_reads_through_the_mount_exactly_as_put_io_has_it(
    mirror: Mirror, fake_putio: FakePutio
) -> None:
    build_account(fake_putio)
    expected = expected_paths(fake_putio)
    with mounted(mirror) as mount:
        assert files_under(mount.mount_point) == set(expected)
        for relative, file_id in expected.items():
            result = subprocess.run(
                ["cmp", "-", str(mount.mount_point / relative)],
                input=fake_putio.file_content(file_id),
                capture_output=True,
                check=False,
            )
            assert result.returncode == 0, (relative, result.stdout, result.stderr)


def test_names_follow_the_mirrors_hostile_name_rules(mirror: Mirror, fake_putio: FakePutio) -> None:
    ids = build_account(fake_putio)
    with mounted(mirror) as mount:
        names = set(os.listdir(mount.mount_point))
        assert {"a_b_.txt", "CON_.txt", "_", "Movies"} <= names
        assert f"Café (putio-{ids['nfd']}).txt" in names and "Café.txt" in names
        assert "Shared with me" not in names and ".putio-mirror-staging" not in names


def test_stat_shows_put_io_sizes_and_times(mirror: Mirror, fake_putio: FakePutio) -> None:
    ids = build_account(fake_putio)
    listed = fake_putio.file(ids["big"])
    with mounted(mirror) as mount:
        info = (mount.mount_point / "big.bin").stat()
        assert info.st_size == 9 * MIB + 7
        updated = calendar.timegm(time.strptime(listed["updated_at"], "%Y-%m-%dT%H:%M:%S"))
        assert info.st_mtime == updated  # put.io's times are UTC
        assert (mount.mount_point / "Movies").is_dir()


def test_random_offset_reads_return_the_right_bytes(mirror: Mirror, fake_putio: FakePutio) -> None:
    ids = build_account(fake_putio)
    content = fake_putio.file_content(ids["big"])
    chooser = random.Random(12)
    with mounted(mirror) as mount:
        path = mount.mount_point / "big.bin"
        for _ in range(40):
            offset = chooser.randrange(0, len(content) + 10)
            length = chooser.choice([1, 4096, 100_000, MIB + 5, 3 * MIB])
            assert read_range(path, offset, length) == content[offset : offset + length]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root may widen the kernel's read-ahead")
def test_the_first_open_gets_the_wide_kernel_read_ahead(
    mirror: Mirror, fake_putio: FakePutio
) -> None:
    build_account(fake_putio)
    with mounted(mirror) as mount:
        device = device_of(str(mount.mount_point.resolve()))
        assert device is not None
        knob = Path(f"/sys/class/bdi/{device}/read_ahead_kb")
        assert knob.read_text().strip() != str(READ_AHEAD_KB)  # nothing set it yet
        # The kernel copies the knob into the file once the open is answered: it must be
        # set by then, however soon after mounting the first reader comes.
        with (mount.mount_point / "big.bin").open("rb"):
            assert knob.read_text().strip() == str(READ_AHEAD_KB)


def test_a_streamed_file_leaves_nothing_in_the_page_cache(
    mirror: Mirror, fake_putio: FakePutio, tmp_path: Path
) -> None:
    ids = build_account(fake_putio)
    control = tmp_path / "control.bin"
    control.write_bytes(bytes(MIB))
    assert cached_pages(control) > 0  # the probe sees cached pages where there are some
    with mounted(mirror) as mount:
        # Streamed bytes go straight to the reader: copying them into fresh page cache
        # took half the mount's CPU, or most of it (see DirectFUSE.open).
        content = fake_putio.file_content(ids["big"])
        assert cached_pages(mount.mount_point / "big.bin", len(content)) == 0


def test_eight_concurrent_readers_each_get_their_file(
    mirror: Mirror, fake_putio: FakePutio
) -> None:
    movies = fake_putio.add_folder("Many")
    ids = [fake_putio.add_file(f"part{n}.bin", movies, size=3 * MIB + n) for n in range(6)]
    ids += [ids[0], ids[1]]  # two readers share a file
    with mounted(mirror, connections=2) as mount:

        def read(file_id: int) -> bool:
            name = f"part{ids.index(file_id)}.bin"
            data = (mount.mount_point / "Many" / name).read_bytes()
            return data == fake_putio.file_content(file_id)

        with ThreadPoolExecutor(8) as pool:
            assert all(pool.map(read, ids))


def test_a_mirrored_file_is_read_from_the_local_copy_without_the_node(
    mirror: Mirror, fake_putio: FakePutio
) -> None:
    ids = build_account(fake_putio)
    assert mirror.run("sync").code == 0
    local = mirror.downloads / "Movies" / "A Movie (2020)" / "movie.mkv"
    assert local.is_file()
    with mounted(mirror) as mount:
        fake_putio.clear_requests()
        path = mount.mount_point / "Movies" / "A Movie (2020)" / "movie.mkv"
        assert path.read_bytes() == fake_putio.file_content(ids["movie"])
        assert os.getxattr(path, "user.putio.mirrored").decode() == str(local)
        assert node_requests(fake_putio) == []
        assert api_requests(fake_putio) == []


def test_xattrs_show_the_put_io_id_crc32_and_mirror_state(
    mirror: Mirror, fake_putio: FakePutio
) -> None:
    ids = build_account(fake_putio)
    with mounted(mirror) as mount:
        path = mount.mount_point / "big.bin"
        assert os.getxattr(path, "user.putio.id") == str(ids["big"]).encode()
        assert os.getxattr(path, "user.putio.crc32") == fake_putio.file_crc32(ids["big"]).encode()
        assert os.getxattr(path, "user.putio.mirrored") == b""
        assert set(os.listxattr(path)) == {
            "user.putio.id",
            "user.putio.crc32",
            "user.putio.mirrored",
        }
        folder = mount.mount_point / "Movies"
        assert os.getxattr(folder, "user.putio.id") == str(ids["movies"]).encode()
        with pytest.raises(OSError) as missing:
            os.getxattr(path, "user.other")
        assert missing.value.errno == errno.ENODATA


def test_an_outage_fails_the_read_with_eio_within_the_timeout(
    mirror: Mirror, fake_putio: FakePutio
) -> None:
    build_account(fake_putio)
    with mounted(mirror, max_outage_seconds=2, read_timeout_seconds=1) as mount:
        path = mount.mount_point / "big.bin"
        fake_putio.outage(120)
        started = time.monotonic()
        with pytest.raises(OSError) as failed:
            read_range(path, 4 * MIB, 4096)
        elapsed = time.monotonic() - started
        assert failed.value.errno == errno.EIO
        assert elapsed < 2 + 1 + 2  # max outage + one read timeout + slack


def test_a_stalled_node_is_retried_and_an_expired_url_renewed(
    mirror: Mirror, fake_putio: FakePutio
) -> None:
    ids = build_account(fake_putio)
    fake_putio.node_fault(ids["big"], stall_after=100_000)
    fake_putio.url_max_uses = 1
    with mounted(mirror, read_timeout_seconds=1, max_outage_seconds=20) as mount:
        data = (mount.mount_point / "big.bin").read_bytes()
        assert data == fake_putio.file_content(ids["big"])
    url_calls = [path for path in api_requests(fake_putio) if path.endswith("/url")]
    assert len(url_calls) >= 2  # a fresh URL after the node refused a used one


def test_the_mount_is_read_only(mirror: Mirror, fake_putio: FakePutio) -> None:
    build_account(fake_putio)
    with mounted(mirror) as mount:
        fake_putio.clear_requests()
        for attempt in (
            lambda: (mount.mount_point / "big.bin").open("r+b"),
            lambda: (mount.mount_point / "new.txt").write_bytes(b"x"),
            lambda: (mount.mount_point / "Movies").rmdir(),
            lambda: (mount.mount_point / "big.bin").unlink(),
        ):
            with pytest.raises(OSError) as refused:
                attempt()
            assert refused.value.errno == errno.EROFS
        assert not any(request.mutating for request in fake_putio.requests)


def test_walking_the_tree_costs_no_api_request(mirror: Mirror, fake_putio: FakePutio) -> None:
    build_account(fake_putio)
    with mounted(mirror) as mount:
        fake_putio.clear_requests()
        for _ in range(3):
            for folder, _, names in os.walk(mount.mount_point):
                for name in names:
                    (Path(folder) / name).stat()
        assert api_requests(fake_putio) == []


def test_sigterm_unmounts_cleanly(mirror: Mirror, fake_putio: FakePutio) -> None:
    build_account(fake_putio)
    with mounted(mirror) as mount:
        (mount.mount_point / "big.bin").stat()
        mount.process.send_signal(signal.SIGTERM)
        assert mount.process.wait(15) == 0, mount.output()
        assert not os.path.ismount(mount.mount_point)
        assert list(mount.mount_point.iterdir()) == []


@pytest.mark.parametrize("problem", ["missing", "not empty", "a file"])
def test_an_unfit_mount_point_is_refused_with_a_hint(
    mirror: Mirror, tmp_path: Path, problem: str
) -> None:
    require_fuse()
    target = tmp_path / "target"
    if problem == "not empty":
        target.mkdir()
        (target / "keep.txt").write_text("mine")
    elif problem == "a file":
        target.write_text("a file")
    result = mirror.run("mount", "--foreground", str(target))
    assert result.code == 2
    assert "Hint:" in result.err
    assert not os.path.ismount(target)


def test_the_block_cache_stays_within_cache_max_mb(mirror: Mirror, fake_putio: FakePutio) -> None:
    folder = fake_putio.add_folder("Season")
    ids = [fake_putio.add_file(f"e{n}.mkv", folder, size=7 * MIB + n) for n in range(4)]
    cache = mirror.downloads / ".putio-mirror-staging" / "mount-cache"
    # A block in every MiB of the four files (30 MiB), in random order: what a sequential
    # reader has read is not kept, what was read here at random is.
    places = [(number, block) for number in range(4) for block in range(7)]
    random.Random(16).shuffle(places)
    with mounted(mirror, cache_max_mb=16) as mount:
        for number, block in places:
            path = mount.mount_point / "Season" / f"e{number}.mkv"
            offset = block * MIB + 1000
            data = fake_putio.file_content(ids[number])[offset : offset + 4096]
            assert read_range(path, offset, 4096) == data
            held = sum(path.stat().st_size for path in cache.rglob("*") if path.is_file())
            assert held <= 16 * MIB
        assert held > 8 * MIB  # the cache was used
        for number, file_id in enumerate(ids):  # streams as well
            data = (mount.mount_point / "Season" / f"e{number}.mkv").read_bytes()
            assert data == fake_putio.file_content(file_id)
        time.sleep(0.2)  # read-ahead past the reader lands too
        assert sum(path.stat().st_size for path in cache.rglob("*") if path.is_file()) <= 16 * MIB
    assert not cache.exists()  # emptied at unmount


def test_a_finished_sync_refreshes_the_listing(mirror: Mirror, fake_putio: FakePutio) -> None:
    build_account(fake_putio)
    with mounted(mirror, refresh_seconds=3600) as mount:
        assert not (mount.mount_point / "new.txt").exists()
        new = fake_putio.add_file("new.txt", 0, b"fresh")
        assert mirror.run("sync").code == 0
        deadline = time.monotonic() + 15
        while not (mount.mount_point / "new.txt").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (mount.mount_point / "new.txt").read_bytes() == b"fresh"
        # ...and the file the sync just mirrored is read from its local copy.
        mirrored = os.getxattr(mount.mount_point / "new.txt", "user.putio.mirrored").decode()
        assert mirrored == str(mirror.downloads / "new.txt")
        assert fake_putio.file_content(new) == b"fresh"


def test_without_foreground_the_mount_runs_in_the_background(
    mirror: Mirror, fake_putio: FakePutio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_fuse()
    build_account(fake_putio)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    mount_point = tmp_path / "background"
    mount_point.mkdir()
    try:
        result = mirror.run("mount", str(mount_point))
        assert result.code == 0, result.err
        assert os.path.ismount(mount_point)
        assert "Mounted put.io on" in result.out
        assert (mount_point / "CON_.txt").read_bytes() == b"device"
    finally:
        unmount(mount_point)
    pid = int(result.out.split("(process ")[1].split(";")[0])
    deadline = time.monotonic() + 15
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), "the background mount outlived its unmount"


def _alive(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return finished == 0


def test_a_refused_token_fails_before_anything_is_mounted(
    mirror: Mirror, fake_putio: FakePutio, tmp_path: Path
) -> None:
    require_fuse()
    fake_putio.revoke_token()
    target = tmp_path / "target"
    target.mkdir()
    result = mirror.run("mount", "--foreground", str(target))
    assert result.code == 4, result.err
    assert "token" in result.err and not os.path.ismount(target)


def test_an_unreadable_journal_only_means_streaming(mirror: Mirror, fake_putio: FakePutio) -> None:
    ids = build_account(fake_putio)
    mirror.journal.parent.mkdir(parents=True)
    mirror.journal.write_bytes(b"this is not a database" * 100)
    with mounted(mirror) as mount:
        path = mount.mount_point / "big.bin"
        assert path.read_bytes() == fake_putio.file_content(ids["big"])
        assert os.getxattr(path, "user.putio.mirrored") == b""
        assert "could not read the journal" in mount.output()


def test_readers_stuck_on_a_silent_node_do_not_freeze_the_rest_of_the_mount(
    mirror: Mirror, fake_putio: FakePutio
) -> None:
    # libfuse 3.12+ serves at most 10 requests at once unless told otherwise: ten readers
    # waiting on a silent node (a scanner probing a slow account) left `ls` hanging.
    folder = fake_putio.add_folder("Stuck")
    stuck = [fake_putio.add_file(f"s{n}.bin", folder, size=2 * MIB) for n in range(14)]
    small = fake_putio.add_file("small.txt", 0, b"still here")
    for file_id in stuck:
        fake_putio.node_fault(file_id, stall_after=10, times=100)
    fake_putio.stall_release_seconds = 60
    with mounted(mirror, read_timeout_seconds=5, max_outage_seconds=6) as mount:

        def read_head(number: int) -> None:
            path = mount.mount_point / "Stuck" / f"s{number}.bin"
            with suppress(OSError), path.open("rb") as head:
                head.read(4096)

        with ThreadPoolExecutor(len(stuck)) as pool:
            for number in range(len(stuck)):
                pool.submit(read_head, number)
            time.sleep(1)  # every reader is waiting on the node now
            started = time.monotonic()
            assert "small.txt" in os.listdir(mount.mount_point)
            assert (mount.mount_point / "small.txt").read_bytes() == b"still here"
            assert time.monotonic() - started < 2
        assert fake_putio.file_content(small) == b"still here"


def test_an_open_file_keeps_its_stat_when_put_io_renames_or_deletes_it(
    mirror: Mirror, fake_putio: FakePutio
) -> None:
    # Players fstat the file they play (ffmpeg's avio_size, mpv's stream size): a rename on
    # put.io while it played made fstat fail with ENOENT once the listing had changed.
    movie = fake_putio.add_file("movie.mkv", 0, size=3 * MIB)
    other = fake_putio.add_file("other.mkv", 0, size=2 * MIB)
    with mounted(mirror, refresh_seconds=1) as mount:
        playing = os.open(mount.mount_point / "movie.mkv", os.O_RDONLY)
        gone = os.open(mount.mount_point / "other.mkv", os.O_RDONLY)
        try:
            fake_putio.rename(movie, "renamed.mkv")
            fake_putio.delete_file(other)
            deadline = time.monotonic() + 15
            while "renamed.mkv" not in os.listdir(mount.mount_point):
                assert time.monotonic() < deadline, "the listing was never refreshed"
                time.sleep(0.1)
            time.sleep(1.5)  # past the kernel's attribute cache (the refresh interval)
            assert os.fstat(playing).st_size == 3 * MIB
            assert os.fstat(gone).st_size == 2 * MIB
            data = os.pread(playing, 4096, MIB)
            assert data == fake_putio.file_content(movie)[MIB : MIB + 4096]
        finally:
            os.close(playing)
            os.close(gone)


def test_a_live_or_dead_mount_on_the_mount_point_is_named_with_the_way_out(
    mirror: Mirror, fake_putio: FakePutio
) -> None:
    build_account(fake_putio)
    with mounted(mirror) as mount:
        again = mirror.run("mount", "--foreground", str(mount.mount_point))
        assert again.code == 2 and "mounted on" in again.err and "already" in again.err
        mount.process.kill()  # the OOM killer, kill -9: the kernel keeps a dead mount there
        mount.process.wait(15)
        with pytest.raises(OSError) as dead:
            os.listdir(mount.mount_point)
        assert dead.value.errno == errno.ENOTCONN
        result = mirror.run("mount", "--foreground", str(mount.mount_point))
        assert result.code == 2, result.err
        assert "no longer served" in result.err
        assert f"fusermount3 -u {mount.mount_point}" in result.err


@pytest.mark.parametrize("ending", [signal.SIGTERM, signal.SIGINT])
def test_a_read_stuck_on_a_silent_node_does_not_hold_up_the_unmount(
    mirror: Mirror, fake_putio: FakePutio, ending: signal.Signals
) -> None:
    # Ctrl-C or `systemctl stop` while a player waits on a silent node: libfuse waits for
    # every request in flight before it unmounts, which took the read's whole outage.
    file_id = fake_putio.add_file("stuck.mkv", 0, size=4 * MIB)
    fake_putio.node_fault(file_id, stall_after=10, times=100)
    fake_putio.stall_release_seconds = 60
    with mounted(mirror, read_timeout_seconds=20, max_outage_seconds=25) as mount:

        def read_head() -> int | None:
            try:
                with (mount.mount_point / "stuck.mkv").open("rb") as head:
                    head.read(4096)
            except OSError as error:
                return error.errno
            return None

        with ThreadPoolExecutor(1) as pool:
            reader = pool.submit(read_head)
            time.sleep(1)  # the read waits on the node now
            started = time.monotonic()
            mount.process.send_signal(ending)
            assert mount.process.wait(15) == 0, mount.output()
            assert time.monotonic() - started < 3
            assert reader.result(5) is not None  # failed, not answered with made-up bytes
        assert not os.path.ismount(mount.mount_point)


def test_a_local_copy_replaced_by_a_symlink_is_not_called_mirrored(
    mirror: Mirror, fake_putio: FakePutio, tmp_path: Path
) -> None:
    # The mount never reads a local copy through a symlink (one there could lead anywhere,
    # and with allow_other anyone may read what it leads to): such a file is streamed,
    # and user.putio.mirrored must say so, not name the link.
    ids = build_account(fake_putio)
    assert mirror.run("sync").code == 0
    local = mirror.downloads / "Movies" / "A Movie (2020)" / "movie.mkv"
    elsewhere = tmp_path / "library" / "movie.mkv"
    elsewhere.parent.mkdir()
    local.rename(elsewhere)
    local.symlink_to(elsewhere)  # what a tool that "moves and links back" leaves
    with mounted(mirror) as mount:
        fake_putio.clear_requests()
        path = mount.mount_point / "Movies" / "A Movie (2020)" / "movie.mkv"
        assert os.getxattr(path, "user.putio.mirrored") == b""
        assert path.read_bytes() == fake_putio.file_content(ids["movie"])
        assert node_requests(fake_putio, ids["movie"])  # streamed, as the xattr says


def wait_for(check: Callable[[], bool], seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.1)
    return check()


def mirrored_at(path: Path) -> str:
    return os.getxattr(path, "user.putio.mirrored").decode()


def test_a_journal_deleted_under_the_mount_is_said_once_and_the_next_one_is_read(
    mirror: Mirror, fake_putio: FakePutio
) -> None:
    # A person deletes the journal while a sync writes it and a media server reads
    # through the mount: the sync stops (exit 7); the mount goes on serving (it only
    # reads), says once what it no longer knows, lets the next sync make a new journal
    # there and reads it; it unmounts promptly, quietly.
    fake_putio.add_file("first.txt", size=3000)
    assert mirror.run("files", "download").code == ExitCode.OK
    with mounted(mirror, refresh_seconds=0.5) as mount:
        assert mirrored_at(mount.mount_point / "first.txt") != ""
        ids = [fake_putio.add_file(f"f{n:03}.bin", size=200_000) for n in range(40)]
        code, err = journal_taken_mid_download(mirror, lambda journal: journal.unlink())
        assert code == ExitCode.JOURNAL, err
        time.sleep(6)  # several refreshes, and a look for a new run (every 5 s)
        first = mount.mount_point / "f000.bin"
        assert first.read_bytes() == fake_putio.file_content(ids[0])
        again = mirror.run("files", "download")
        assert again.code == ExitCode.OK, again.err
        last = mount.mount_point / "f039.bin"
        assert wait_for(lambda: mirrored_at(last) != ""), mount.output()
        assert mirrored_at(last) == str(mirror.downloads / "f039.bin")
        assert last.read_bytes() == fake_putio.file_content(ids[-1])
        mount.process.send_signal(signal.SIGTERM)
        assert mount.process.wait(15) == 0, mount.output()
    said = mount.output()
    assert said.count("deleted or moved away") == 1, said
    assert "Traceback" not in said, said


def test_a_folder_of_the_mirror_replaced_by_a_symlink_is_not_read_through(
    mirror: Mirror, fake_putio: FakePutio, tmp_path: Path
) -> None:
    # O_NOFOLLOW guards only a path's last name: a folder above the copy swapped for a
    # symlink (planted, or a "move and link back" tool) led the mount's reads anywhere,
    # and a file of the right size there was served as put.io's.
    ids = build_account(fake_putio)
    assert mirror.run("sync").code == 0
    movies = mirror.downloads / "Movies"
    elsewhere = tmp_path / "elsewhere"
    stranger = elsewhere / "A Movie (2020)" / "movie.mkv"
    stranger.parent.mkdir(parents=True)
    stranger.write_bytes(b"\xee" * len(fake_putio.file_content(ids["movie"])))
    movies.rename(tmp_path / "moved-away")
    movies.symlink_to(elsewhere)
    with mounted(mirror) as mount:
        path = mount.mount_point / "Movies" / "A Movie (2020)" / "movie.mkv"
        assert os.getxattr(path, "user.putio.mirrored") == b""
        assert path.read_bytes() == fake_putio.file_content(ids["movie"])


def test_a_mirrored_copy_put_io_has_since_replaced_is_not_served_as_its_file(
    mirror: Mirror, fake_putio: FakePutio
) -> None:
    # put.io lists other bytes (another CRC32) under the id the journal verified: the
    # copy here is the old file, not what put.io now has.
    file_id = fake_putio.add_file("show.mkv", 0, size=2 * MIB)
    assert mirror.run("sync").code == 0
    fake_putio.replace_content(file_id, b"\x01" * (2 * MIB))
    with mounted(mirror) as mount:
        path = mount.mount_point / "show.mkv"
        assert os.getxattr(path, "user.putio.mirrored") == b""
        assert path.read_bytes() == b"\x01" * (2 * MIB)


def test_bytes_put_io_replaced_under_one_id_are_never_mixed_with_the_old(
    mirror: Mirror, fake_putio: FakePutio
) -> None:
    # put.io's blocks were kept by file id alone: once put.io had other bytes under that
    # id, a new open was served the old blocks kept with the new ones fetched since, and a
    # file open before read on in the new bytes, a mix of two files given as one.
    file_id = fake_putio.add_file("film.mkv", 0, size=4 * MIB)
    old = fake_putio.file_content(file_id)
    new = bytes(255 - byte for byte in old)
    with mounted(mirror, refresh_seconds=1) as mount:
        path = mount.mount_point / "film.mkv"
        before = os.open(path, os.O_RDONLY)
        try:
            assert os.pread(before, MIB, 0) == old[:MIB]
            fake_putio.replace_content(file_id, new)
            listed = fake_putio.file_crc32(file_id).encode()
            assert wait_for(lambda: os.getxattr(path, "user.putio.crc32") == listed)
            assert read_range(path, 0, 2 * MIB) == new[: 2 * MIB]
            with pytest.raises(OSError) as mixed:
                os.pread(before, MIB, 3 * MIB)
            assert mixed.value.errno == errno.EIO
        finally:
            os.close(before)
        assert path.read_bytes() == new


def test_every_hostile_name_is_listed_once_and_opens_its_own_file(
    mirror: Mirror, fake_putio: FakePutio
) -> None:
    # Names put.io allows: one listing must name each item once, within NAME_MAX, and
    # every name listed must open that item's bytes (user.putio.id says whose they are).
    long_stem = "é" * 200  # 400 bytes of UTF-8
    names = [
        ".",
        "..",
        "...",
        "a\\b.txt",
        "tab\there\nnewline\x7f\x1b[31m.txt",
        "dup.txt",
        "dup.txt",
        "Film.mkv",
        "film.mkv",
        f"{long_stem}.mkv",
        f"{long_stem}x.mkv",
        ".putio-mirror-staging",
        "-rf",
        " ",
        "twin",
    ]
    twin = fake_putio.add_folder("twin")
    fake_putio.add_file("inside.txt", twin, b"inside")
    content = {
        fake_putio.add_file(name, 0, f"{n}:{name}".encode()): n for n, name in enumerate(names)
    }
    with mounted(mirror) as mount:
        listed = os.listdir(mount.mount_point)
        assert len(listed) == len(set(listed)) == len(names) + 1
        seen = set()
        for name in listed:
            assert 0 < len(os.fsencode(name)) <= 255 and name not in (".", "..")
            path = mount.mount_point / name
            file_id = int(os.getxattr(path, "user.putio.id"))
            seen.add(file_id)
            if file_id == twin:
                assert (path / "inside.txt").read_bytes() == b"inside"
            else:
                assert path.read_bytes() == fake_putio.file_content(file_id), name
        assert seen == {*content, twin}


def test_a_mirrored_copy_moved_or_deleted_under_the_mount_is_streamed_instead(
    mirror: Mirror, fake_putio: FakePutio, tmp_path: Path
) -> None:
    # Sonarr imports (moves) the copy, or a person tidies: a file open on the copy reads
    # on what it opened; the next open streams put.io's bytes, and says so.
    moved = fake_putio.add_file("moved.mkv", 0, size=2 * MIB)
    deleted = fake_putio.add_file("deleted.mkv", 0, size=2 * MIB)
    assert mirror.run("sync").code == 0
    with mounted(mirror) as mount:
        open_before = os.open(mount.mount_point / "moved.mkv", os.O_RDONLY)
        try:
            (mirror.downloads / "moved.mkv").rename(tmp_path / "library.mkv")
            (mirror.downloads / "deleted.mkv").unlink()
            assert os.pread(open_before, 2 * MIB, 0) == fake_putio.file_content(moved)
        finally:
            os.close(open_before)
        fake_putio.clear_requests()
        for file_id, name in ((moved, "moved.mkv"), (deleted, "deleted.mkv")):
            path = mount.mount_point / name
            assert os.getxattr(path, "user.putio.mirrored") == b""
            assert path.read_bytes() == fake_putio.file_content(file_id)
            assert node_requests(fake_putio, file_id)


def test_a_verified_copy_in_staging_is_read_where_staging_leads_never_through_a_link_inside(
    mirror: Mirror, fake_putio: FakePutio, tmp_path: Path
) -> None:
    # A file verified but not placed (its place is taken) is read from staging. Staging is
    # used by where it leads, as a run uses it (a user may configure it as a link to
    # another disk); a link *inside* it is no more followed than anywhere the mirror
    # writes (fetch/partfile, local/staging refuse one).
    file_id = fake_putio.add_file("show.mkv", 0, size=3000)
    (mirror.downloads / "show.mkv").mkdir(parents=True)
    (mirror.downloads / "show.mkv" / "someone's").write_bytes(b"x")
    real = tmp_path / "staging-disk"
    real.mkdir()
    (mirror.downloads / ".putio-mirror-staging").symlink_to(real)  # the user's link
    assert mirror.run("sync").code == ExitCode.NEEDS_ATTENTION  # kept out: a file in the way
    verified = real / "verified" / str(file_id)
    assert verified.is_file()
    with mounted(mirror) as mount:  # read from where the configured link leads
        assert os.getxattr(mount.mount_point / "show.mkv", "user.putio.mirrored") == (
            str(verified).encode()
        )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / str(file_id)).write_bytes(b"\xee" * 3000)
    (real / "verified").rename(tmp_path / "moved-away")
    (real / "verified").symlink_to(elsewhere)
    with mounted(mirror) as mount:
        path = mount.mount_point / "show.mkv"
        assert os.getxattr(path, "user.putio.mirrored") == b""
        assert path.read_bytes() == fake_putio.file_content(file_id)
