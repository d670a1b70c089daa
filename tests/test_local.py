"""Tests of putio_mirror.local: run lock, safe paths, atomic placing, space, CRC32."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import pytest
from pyfakefs.fake_filesystem_unittest import Patcher

from putio_mirror.core.errors import AlreadyRunningError, ItemError, NoSpaceError, UnsafePathError
from putio_mirror.local.durable import place_atomically
from putio_mirror.local.files import crc32_of, local_size
from putio_mirror.local.keeping import VerifiedMoves
from putio_mirror.local.lock import RunLock
from putio_mirror.local.paths import Inside, named_inside, resolve_all_inside, resolve_inside
from putio_mirror.local.space import ensure_room, free_bytes
from putio_mirror.local.staging import keep_verified, list_staging, part_path, remove_entry

PROJECT = Path(__file__).resolve().parents[1]
# Run in another process: try the lock, report the outcome on stdout.
TRY_LOCK = """
import sys
import threading
from pathlib import Path
from putio_mirror.core.errors import AlreadyRunningError
from putio_mirror.local.lock import RunLock
try:
    with RunLock(Path(sys.argv[1])):
        print("locked")
except AlreadyRunningError as error:
    print(f"refused|{error.message}|{error.hint}")
"""


def try_lock_in_another_process(path: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", TRY_LOCK, str(path)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout.strip()


# --- RunLock ------------------------------------------------------------------------


def test_a_second_run_in_another_process_is_refused_while_the_lock_is_held(
    tmp_path: Path,
) -> None:
    lock_file = tmp_path / "state" / "journal.lock"

    with RunLock(lock_file):
        outcome = try_lock_in_another_process(lock_file)

    status, message, hint = outcome.split("|")
    assert status == "refused"
    assert message == "another putio-mirror run is using this journal"
    assert str(lock_file) in hint
    assert f"pid {os.getpid()}" in hint


def test_the_lock_can_be_taken_again_after_release(tmp_path: Path) -> None:
    lock_file = tmp_path / "journal.lock"

    with RunLock(lock_file):
        pass

    assert try_lock_in_another_process(lock_file) == "locked"
    with RunLock(lock_file):
        assert lock_file.read_text().strip() == str(os.getpid())


def test_a_second_lock_in_the_same_process_is_refused_too(tmp_path: Path) -> None:
    lock_file = tmp_path / "journal.lock"

    with RunLock(lock_file), pytest.raises(AlreadyRunningError), RunLock(lock_file):
        pass


HOLD_LOCK = """
import sys
import threading
from pathlib import Path
from putio_mirror.local.lock import RunLock
with RunLock(Path(sys.argv[1])):
    print("locked", flush=True)
    sys.stdin.read()
"""


def test_a_lock_file_deleted_by_hand_while_a_run_holds_it_lets_no_second_run_in(
    tmp_path: Path,
) -> None:
    """A person who takes the lock file for a stale one and deletes it leaves its holder
    locking a file that is gone: the next comer made a new one, locked it, and took over
    the running run's claims as a dead run's."""
    lock_file = tmp_path / "state" / "journal.sqlite3.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lock_file)],
        cwd=PROJECT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        lock_file.unlink()
        outcome = try_lock_in_another_process(lock_file)
    finally:
        holder.communicate("", timeout=10)
    assert outcome.startswith("refused|"), outcome
    _, _, hint = outcome.split("|")
    assert f"pid {holder.pid}" in hint and "deleted" in hint
    assert try_lock_in_another_process(lock_file) == "locked", "once it ended, a run may go"


# --- paths --------------------------------------------------------------------------


def test_part_path_names_the_part_file_by_file_id(tmp_path: Path) -> None:
    assert part_path(tmp_path, 1234) == tmp_path / "1234.part"


def test_a_sidecar_without_its_part_is_listed_as_left_over_and_removed_alone(
    tmp_path: Path,
) -> None:
    for name in ("7.part", "7.part.segments", "8.part.segments", "x.part.segments"):
        (tmp_path / name).write_text("{}")
    (lone,) = [entry for entry in list_staging(tmp_path) if entry.kind == "sidecar"]
    assert lone.remote_id == 8  # 7's is its part's; x is not ours
    remove_entry(tmp_path, lone)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "7.part",
        "7.part.segments",
        "x.part.segments",
    ]


@pytest.mark.parametrize("relative", ["a/b.mkv", "a/../b.mkv", "./c", "d//e"])
def test_resolve_inside_accepts_paths_that_stay_inside(tmp_path: Path, relative: str) -> None:
    path = resolve_inside(tmp_path, relative)

    assert path.resolve().is_relative_to(tmp_path.resolve())
    assert path != tmp_path


@pytest.mark.parametrize(
    "relative", ["../x", "a/../../x", "..", "/etc/passwd", "", ".", "a/..", "x\x00y"]
)
def test_resolve_inside_refuses_paths_that_escape(tmp_path: Path, relative: str) -> None:
    with pytest.raises(UnsafePathError, match="would leave") as raised:
        resolve_inside(tmp_path / "root", relative)
    assert raised.value.hint


@pytest.mark.parametrize("relative", ["../x", "a/../../x", "..", "/etc/passwd", "", ".", "x\x00y"])
def test_a_path_told_by_name_alone_is_refused_as_resolve_inside_refuses_it(
    tmp_path: Path, relative: str
) -> None:
    with pytest.raises(UnsafePathError, match="would leave"):
        named_inside(tmp_path, relative)
    assert named_inside(tmp_path, "a/../b/./c.mkv") == tmp_path / "b" / "c.mkv"


def test_resolve_inside_refuses_a_symlink_inside_root_pointing_out(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    (root / "dangling").symlink_to(tmp_path / "nowhere")

    with pytest.raises(UnsafePathError):
        resolve_inside(root, "escape/file.mkv")
    with pytest.raises(UnsafePathError):
        resolve_inside(root, "dangling")


def test_resolve_inside_allows_a_symlink_that_stays_inside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "alias").symlink_to(root / "real")

    assert resolve_inside(root, "alias/file.mkv") == root / "alias" / "file.mkv"


def test_resolve_all_inside_checks_each_file_of_a_folder_it_resolved_once(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "show").mkdir(parents=True)
    (root / "show" / "escape.srt").symlink_to(tmp_path / "outside.srt")
    fine = ["show/e01.mkv", "show/e02.mkv", "top.nfo"]

    assert resolve_all_inside(root, fine) == [root / name for name in fine]
    with pytest.raises(UnsafePathError):
        resolve_all_inside(root, [*fine, "show/escape.srt"])


def test_inside_checks_every_path_of_a_run_against_where_its_root_led_when_made(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    (root / "show").mkdir(parents=True)
    inside = Inside(root)
    assert inside.one("show/e01.mkv") == root / "show" / "e01.mkv"
    (root / "show" / "escape.srt").symlink_to(tmp_path / "outside.srt")
    with pytest.raises(UnsafePathError):
        inside.one("show/escape.srt")

    # the root's folder swapped for a link elsewhere mid-run: what would be written
    # through it is out of where the root led, refused (the root is not walked again)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "show").mkdir(parents=True)
    root.rename(tmp_path / "moved")
    root.symlink_to(elsewhere)
    with pytest.raises(UnsafePathError, match="out of"):
        inside.one("show/e02.mkv")
    assert Inside(root).one("show/e02.mkv") == root / "show" / "e02.mkv"


# --- place_atomically ----------------------------------------------------------------


def make_part(tmp_path: Path, data: bytes = b"movie data") -> Path:
    staging = tmp_path / ".putio-mirror-staging"
    staging.mkdir(exist_ok=True)
    part = part_path(staging, 7)
    part.write_bytes(data)
    return part


def test_place_atomically_moves_the_part_into_new_folders(tmp_path: Path) -> None:
    part = make_part(tmp_path)
    final = tmp_path / "Show" / "Season 1" / "ep.mkv"

    place_atomically(part, final)

    assert final.read_bytes() == b"movie data"
    assert not part.exists()


def test_place_atomically_never_overwrites_and_keeps_the_part(tmp_path: Path) -> None:
    part = make_part(tmp_path)
    final = tmp_path / "ep.mkv"
    final.write_bytes(b"precious")

    with pytest.raises(ItemError, match="would overwrite") as raised:
        place_atomically(part, final)

    assert final.read_bytes() == b"precious"
    assert part.read_bytes() == b"movie data"
    assert str(part) in raised.value.hint


def test_place_atomically_does_not_replace_a_dangling_symlink(tmp_path: Path) -> None:
    part = make_part(tmp_path)
    final = tmp_path / "ep.mkv"
    final.symlink_to(tmp_path / "elsewhere")

    with pytest.raises(ItemError, match="would overwrite"):
        place_atomically(part, final)

    assert final.is_symlink()
    assert not (tmp_path / "elsewhere").exists()
    assert part.exists()


@pytest.fixture
def no_hard_links(monkeypatch: pytest.MonkeyPatch) -> None:
    """A filesystem (like some NAS shares) that refuses link(2)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", refuse)


@pytest.mark.usefixtures("no_hard_links")
def test_place_atomically_renames_where_hard_links_are_not_supported(tmp_path: Path) -> None:
    part = make_part(tmp_path)
    final = tmp_path / "ep.mkv"

    place_atomically(part, final)

    assert final.read_bytes() == b"movie data"
    assert not part.exists()


@pytest.mark.usefixtures("no_hard_links")
def test_place_atomically_without_hard_links_still_never_overwrites(tmp_path: Path) -> None:
    part = make_part(tmp_path)
    final = tmp_path / "ep.mkv"
    final.write_bytes(b"precious")

    with pytest.raises(ItemError, match="would overwrite"):
        place_atomically(part, final)

    assert final.read_bytes() == b"precious"
    assert part.exists()


def test_place_atomically_of_a_missing_part_raises_an_item_error(tmp_path: Path) -> None:
    with pytest.raises(ItemError, match="could not move"):
        place_atomically(tmp_path / "9.part", tmp_path / "ep.mkv")
    assert not (tmp_path / "ep.mkv").exists()


# --- space --------------------------------------------------------------------------

GIB = 1024**3


def test_ensure_room_raises_no_space_with_the_figures() -> None:
    with Patcher() as patcher:
        patcher.fs.set_disk_usage(10 * GIB)
        patcher.fs.create_file("/data/big.bin", st_size=9 * GIB)
        target = Path("/data/Show/Season 1/ep.mkv")

        assert free_bytes(target) == GIB
        with pytest.raises(NoSpaceError) as raised:
            ensure_room(target, 2 * GIB)
        ensure_room(target, GIB - 100 * 1024 * 1024)

    assert raised.value.message == (
        "not enough room for 2 GiB in /data/Show/Season 1/ep.mkv: 1 GiB free, 100 MiB kept spare"
    )
    assert raised.value.hint


def test_ensure_room_counts_the_margin() -> None:
    with Patcher() as patcher:
        patcher.fs.set_disk_usage(GIB)
        with pytest.raises(NoSpaceError):
            ensure_room(Path("/x"), 1, margin=GIB)
        ensure_room(Path("/x"), GIB, margin=0)


# --- files --------------------------------------------------------------------------


def test_crc32_of_reads_in_chunks_and_keeps_leading_zeros(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"hello world")

    assert crc32_of(path, chunk_size=3) == "0d4a1185"
    assert crc32_of(path) == f"{zlib.crc32(b'hello world'):08x}"


def test_crc32_of_a_missing_file_raises_an_item_error(tmp_path: Path) -> None:
    with pytest.raises(ItemError, match="cannot read"):
        crc32_of(tmp_path / "missing")


def test_local_size_is_none_for_missing_files_and_folders(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"12345")

    assert local_size(path) == 5
    assert local_size(tmp_path / "missing") is None
    assert local_size(path / "under-a-file") is None
    assert local_size(tmp_path) is None


def test_local_size_is_none_for_a_path_too_long_to_hold_a_file(tmp_path: Path) -> None:
    # a download folder with a long path of its own, and a deep put.io tree: no file can
    # be there, and looking must not end the run (observe looks before every plan)
    folder = tmp_path / ("d" * 200)
    folder.mkdir()
    too_long = folder.joinpath(*["n" * 250] * 20, "file.mkv")

    assert local_size(too_long) is None


def test_a_verified_folder_that_is_a_symlink_is_refused_and_nothing_moves_through_it(
    tmp_path: Path,
) -> None:
    staging, elsewhere = tmp_path / "staging", tmp_path / "elsewhere"
    staging.mkdir()
    elsewhere.mkdir()
    first = staging / "1.part"
    first.write_bytes(b"one")
    keep_verified(first, staging, 1)  # verified/ is made, a real folder
    (staging / "verified").rename(tmp_path / "old-verified")
    (staging / "verified").symlink_to(elsewhere)
    second = staging / "2.part"
    second.write_bytes(b"two")
    with pytest.raises(UnsafePathError):
        keep_verified(second, staging, 2)
    assert second.read_bytes() == b"two" and list(elsewhere.iterdir()) == []


# -- a run's moves into verified/, relative to the folders it opened once ----------------


def _moves(tmp_path: Path) -> tuple[Path, VerifiedMoves]:
    staging = tmp_path / "staging"
    staging.mkdir()
    return staging, VerifiedMoves(staging)


def _part(staging: Path, file_id: int) -> Path:
    part = part_path(staging, file_id)
    part.write_bytes(f"bytes of {file_id}".encode())
    return part


def test_a_run_moves_verified_parts_and_syncs_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    staging, moves = _moves(tmp_path)
    synced: list[str] = []
    real = os.fsync
    monkeypatch.setattr(
        os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd))
    )
    moves.sync()  # nothing moved yet: nothing to sync
    for file_id in (1, 2):
        moves.keep(_part(staging, file_id), file_id)
    moves.sync()
    moves.close()
    assert sorted(p.name for p in staging.iterdir()) == ["verified"]
    assert (staging / "verified" / "2").read_bytes() == b"bytes of 2"
    # verified/, made by the first move, has its name synced in staging; then the moves
    # (the folders above staging, found there, are synced once a process: make_folders)
    above = {str(folder) for folder in staging.parents}
    assert [path for path in synced if path not in above] == [
        str(staging),
        str(staging / "verified"),
    ]


def test_a_verified_folder_swapped_for_a_symlink_mid_run_gets_nothing_through_it(
    tmp_path: Path,
) -> None:
    staging, moves = _moves(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moves.keep(_part(staging, 1), 1)
    (staging / "verified").rename(tmp_path / "old-verified")
    (staging / "verified").symlink_to(elsewhere)
    moves.keep(_part(staging, 2), 2)  # into the folder it opened: never through the link
    moves.close()
    assert list(elsewhere.iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "old-verified").iterdir()) == ["1", "2"]


@pytest.mark.parametrize("planted", ["staging", "verified"])
def test_a_symlinked_staging_or_verified_folder_is_refused(tmp_path: Path, planted: str) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    real = tmp_path / "real"
    real.mkdir()
    if planted == "staging":
        staging = tmp_path / "staging"
        staging.symlink_to(real)
    else:
        staging = real
        (staging / "verified").symlink_to(elsewhere)
    moves = VerifiedMoves(staging)
    part = _part(real, 1)
    with pytest.raises(UnsafePathError):
        moves.keep(part, 1)
    moves.close()
    assert part.read_bytes() == b"bytes of 1" and list(elsewhere.iterdir()) == []
    if planted == "staging":
        assert [p.name for p in real.iterdir()] == ["1.part"]  # no verified/ made through it


def test_a_verified_folder_removed_mid_run_is_made_again(tmp_path: Path) -> None:
    staging, moves = _moves(tmp_path)
    moves.keep(_part(staging, 1), 1)
    (staging / "verified" / "1").unlink()
    (staging / "verified").rmdir()
    moves.keep(_part(staging, 2), 2)
    moves.sync()
    moves.close()
    assert [p.name for p in (staging / "verified").iterdir()] == ["2"]


def test_staging_listed_while_a_sync_beside_it_moves_its_parts_lists_what_it_finds(
    tmp_path: Path,
) -> None:
    # ``serve``'s blackhole pass observes beside a running sync, whose workers move parts
    # into verified/ meanwhile: a part read in the folder and gone before its stat was
    # once a crash of serve ("hit a bug: FileNotFoundError: …/10051.part").
    (tmp_path / "verified").mkdir()
    ids = range(10_000, 13_000)
    for file_id in ids:
        part_path(tmp_path, file_id).write_bytes(b"x")
    moved = threading.Event()

    def move_all() -> None:
        for file_id in reversed(ids):
            part_path(tmp_path, file_id).rename(tmp_path / "verified" / str(file_id))
        moved.set()

    mover = threading.Thread(target=move_all)
    mover.start()
    listings = 0
    try:
        while not moved.is_set():
            found = {(entry.kind, entry.remote_id) for entry in list_staging(tmp_path)}
            assert {file_id for _, file_id in found} <= set(ids)
            listings += 1
    finally:
        mover.join()
    assert listings
    assert {entry.kind for entry in list_staging(tmp_path)} == {"verified"}
