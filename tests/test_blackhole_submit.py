"""Submitting blackhole files end to end: what put.io refuses, answers lost on the way, and
files that change between the scan and the upload."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from putio_mirror.app.run import Outcome, Request, Runtime, run_once
from putio_mirror.cli.demo import sample_torrent
from putio_mirror.cli.watch import submit_blackhole
from putio_mirror.config.settings import load_settings
from putio_mirror.core.plan import Plan
from putio_mirror.core.state import Desire
from putio_mirror.fakeputio import FakePutio
from putio_mirror.fakeputio.fake import LoggedRequest
from putio_mirror.journal.store import Journal
from putio_mirror.local.blackhole import parse_torrent
from tests.mirror_env import Mirror
from tests.rpc_env import Client, serving, url_of, wait_for

MAGNET_HASH = "c9e15763f722f23e98a29decdfae341b98d53056"
MAGNET = f"magnet:?xt=urn:btih:{MAGNET_HASH}&dn=Cosmos"


def submissions(fake: FakePutio) -> list[str]:
    return [
        f"{r.method} {r.path}"
        for r in fake.requests
        if r.path in ("/v2/files/upload", "/v2/transfers/add")
    ]


def names_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []


# -- put.io refuses a torrent -----------------------------------------------------------


@pytest.mark.parametrize("kind", ["torrent", "magnet"])
def test_torrent_put_io_refuses_goes_to_rejected_with_its_reason_and_is_not_uploaded_again(
    mirror: Mirror, torrent_bytes: Callable[..., bytes], kind: str
) -> None:
    if kind == "torrent":
        data = torrent_bytes("Private Show S01")
        info_hash, name = parse_torrent(data)[0], "show.torrent"
    else:
        data, info_hash, name = MAGNET.encode(), MAGNET_HASH, "cosmos.magnet"
    mirror.fake.refuse_torrent(info_hash, "NO_TRACKERS", "The torrent has no usable trackers")
    mirror.drop(name, data)
    first = mirror.run("torrents", "add")
    assert first.code == 1, first.err
    assert "put.io refused" in first.err and ".rejected/" in first.err
    rejected = mirror.blackhole / ".rejected"
    assert names_in(rejected) == [name, f"{name}.why.txt"]
    note = (rejected / f"{name}.why.txt").read_text()
    assert "The torrent has no usable trackers" in note and "NO_TRACKERS" in note
    assert (rejected / name).read_bytes() == data
    assert len(submissions(mirror.fake)) == 1
    mirror.fake.clear_requests()
    again = mirror.run("torrents", "add")
    assert again.code == 0, again.err
    assert submissions(mirror.fake) == []
    assert mirror.fake.transfers() == []


# -- the answer to an upload is lost ----------------------------------------------------


def test_upload_whose_answer_was_lost_is_adopted_as_ours_and_its_seeding_cancelled(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    data = torrent_bytes("Lost Answer (2024)")
    info_hash = parse_torrent(data)[0]
    mirror.fake.inject("/v2/files/upload", lose_answer=True)
    mirror.drop("lost.torrent", data)
    assert mirror.run("torrents", "add").code == 1  # the run cannot know what happened
    (transfer,) = mirror.fake.transfers()
    assert transfer["hash"] == info_hash
    mirror.fake.clear_requests()
    second = mirror.run("torrents", "add")
    assert second.code == 0, second.err
    assert submissions(mirror.fake) == [], "found on put.io by its info-hash: not sent again"
    assert names_in(mirror.blackhole / ".submitted") == ["lost.torrent", "lost.torrent.why.txt"]
    mirror.fake.finish_transfers()
    assert mirror.fake.transfer(transfer["id"])["status"] == "SEEDING"
    groom = mirror.run("transfers", "cancel-seeding")
    assert groom.code == 0, groom.err
    assert mirror.fake.transfers() == [], "the transfer is ours: its seeding is cancelled"


def test_upload_whose_answer_was_lost_is_not_submitted_again_once_its_transfer_is_cleaned(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    data = torrent_bytes("Lost Then Cleaned")
    mirror.fake.inject("/v2/files/upload", lose_answer=True)
    mirror.drop("lost.torrent", data)
    assert mirror.run("torrents", "add").code == 1
    assert mirror.run("torrents", "add").code == 0  # found on put.io: filed away
    mirror.fake.finish_transfers()
    (transfer,) = mirror.fake.transfers()
    assert mirror.run("transfers", "cancel-seeding").code == 0
    assert mirror.fake.transfers() == [], "gone from put.io's list"
    mirror.fake.clear_requests()
    mirror.drop("lost again.torrent", data)  # Sonarr grabs the same release again
    again = mirror.run("torrents", "add")
    assert again.code == 0, again.err
    assert submissions(mirror.fake) == [], "submitted once, as a torrent answered in time is"
    assert "submitted earlier" in again.err + again.out
    assert transfer["hash"] == parse_torrent(data)[0]


def test_upload_that_failed_before_put_io_created_it_is_submitted_again(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    data = torrent_bytes("Try Again")
    info_hash = parse_torrent(data)[0]
    mirror.fake.inject("/v2/files/upload", status=500)  # not retried: it might have worked
    mirror.drop("again.torrent", data)
    assert mirror.run("torrents", "add").code == 1
    assert mirror.fake.transfers() == []
    journal = Journal.open(f"sqlite:///{mirror.journal}")
    try:
        attempt = journal.facts().submissions[info_hash]
    finally:
        journal.close()
    assert attempt.transfer_id is None, "the attempt is journaled before the upload"
    second = mirror.run("torrents", "add")
    assert second.code == 0, second.err
    assert [t["hash"] for t in mirror.fake.transfers()] == [info_hash]
    assert names_in(mirror.blackhole / ".submitted") == ["again.torrent"]


# -- the file changes between the scan and the upload -----------------------------------


def swap_after_scan(mirror: Mirror, swap: Callable[[], None]) -> None:
    """Run ``swap`` once, when observe lists the transfers (the blackhole is scanned by then)."""
    done: list[bool] = []

    def hook(request: LoggedRequest) -> None:
        if request.path == "/v2/transfers/list" and not done:
            done.append(True)
            swap()

    mirror.fake.on_request = hook


def test_symlink_swapped_in_after_the_scan_is_never_followed_or_uploaded(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    planned = mirror.drop("show.torrent", torrent_bytes("Show S02"))
    private = mirror.root / "private" / "other.torrent"
    private.parent.mkdir()
    private.write_bytes(torrent_bytes("Something never dropped in the blackhole"))

    def swap() -> None:
        planned.unlink()
        planned.symlink_to(private)
        aged = planned.lstat().st_mtime - 60
        os.utime(planned, (aged, aged), follow_symlinks=False)  # settled for the next scan

    swap_after_scan(mirror, swap)
    result = mirror.run("torrents", "add")
    assert result.code == 1
    assert "changed after it was read" in result.err and "symbolic link" in result.err
    assert submissions(mirror.fake) == [] and mirror.fake.transfers() == []
    assert planned.is_symlink(), "left where it was; not moved into .submitted"
    mirror.fake.on_request = None
    again = mirror.run("torrents", "add")
    assert submissions(mirror.fake) == []
    assert again.code == 11  # done, but the rejected file needs a person
    assert names_in(mirror.blackhole / ".rejected") == ["show.torrent", "show.torrent.why.txt"]
    assert private.exists()


def test_torrent_rewritten_after_the_scan_is_submitted_by_the_next_run_with_its_new_hash(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    planned = mirror.drop("show.torrent", torrent_bytes("Show S03 720p"))
    newer = torrent_bytes("Show S03 1080p")

    def swap() -> None:
        replacement = planned.with_name(".show.torrent.tmp")
        replacement.write_bytes(newer)
        stat = replacement.stat()
        os.utime(replacement, (stat.st_atime - 60, stat.st_mtime - 60))
        replacement.replace(planned)

    swap_after_scan(mirror, swap)
    result = mirror.run("torrents", "add")
    assert result.code == 1 and "another torrent" in result.err
    assert submissions(mirror.fake) == []
    mirror.fake.on_request = None
    assert mirror.run("torrents", "add").code == 0
    (transfer,) = mirror.fake.transfers()
    assert transfer["hash"] == parse_torrent(newer)[0]


def test_a_file_taken_away_while_put_io_took_it_counts_as_submitted_and_is_never_resent(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    # Sonarr gave up on the grab and deleted its file while the upload was on its way.
    planned = mirror.drop("show.torrent", torrent_bytes("Show S04"))

    def take_away(request: LoggedRequest) -> None:
        if request.path == "/v2/files/upload":
            planned.unlink()

    mirror.fake.on_request = take_away
    result = mirror.run("torrents", "add")
    assert result.code == 0, result.err
    assert "not submitted" not in result.out + result.err
    (transfer,) = mirror.fake.transfers()
    assert transfer["name"] == "Show S04"
    mirror.fake.on_request = None
    mirror.drop("show.torrent", torrent_bytes("Show S04"))  # dropped again
    again = mirror.run("torrents", "add")
    assert again.code == 0, again.err
    assert len(mirror.fake.transfers()) == 1
    assert names_in(mirror.blackhole / ".submitted") == ["show.torrent", "show.torrent.why.txt"]


# -- a writer that stalls ----------------------------------------------------------------


def test_a_torrent_cut_short_while_its_writer_stalls_waits_for_the_rest_instead_of_rejected(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    # wget on a slow tracker, or a copy over a share, stalled longer than the settle time.
    data = torrent_bytes("Slow Writer S01")
    path = mirror.drop("slow.torrent", data[: len(data) // 2])
    first = mirror.run("torrents", "add")
    assert first.code == 0, first.err
    assert "slow.torrent" in first.out + first.err
    assert names_in(mirror.blackhole) == ["slow.torrent"], "left for the writer to finish"
    with path.open("ab") as stream:  # the writer wakes up and finishes
        stream.write(data[len(data) // 2 :])
    aged = path.stat().st_mtime - 60
    os.utime(path, (aged, aged))
    second = mirror.run("torrents", "add")
    assert second.code == 0, second.err
    assert [t["name"] for t in mirror.fake.transfers()] == ["Slow Writer S01"]
    assert names_in(mirror.blackhole / ".submitted") == ["slow.torrent"]


def test_a_torrent_cut_short_and_left_so_for_long_is_rejected_as_cut_short(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    data = torrent_bytes("Abandoned")
    path = mirror.drop("abandoned.torrent", data[: len(data) - 7])
    long_ago = path.stat().st_mtime - 3600
    os.utime(path, (long_ago, long_ago))
    result = mirror.run("torrents", "add")
    assert result.code == 11, result.err
    assert "cut short" in result.err
    assert names_in(mirror.blackhole / ".rejected") == [
        "abandoned.torrent",
        "abandoned.torrent.why.txt",
    ]


# -- file names that are not UTF-8 ------------------------------------------------------


def drop_raw(mirror: Mirror, raw_name: bytes, data: bytes) -> bytes:
    """Put a file whose name is these bytes (perhaps not UTF-8) into the blackhole, aged."""
    mirror.blackhole.mkdir(parents=True, exist_ok=True)
    path = os.fsencode(mirror.blackhole) + b"/" + raw_name
    with open(path, "wb") as stream:
        stream.write(data)
    os.utime(path, (1, 1))
    return path


def test_a_file_whose_name_is_not_utf8_is_submitted_and_filed_away_under_its_own_name(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    # Latin-1 names come from Windows shares and old tools; the bytes are the name.
    drop_raw(mirror, b"Caf\xe9 S01.torrent", torrent_bytes("Cafe S01"))
    drop_raw(mirror, b"Na\xefve.torrent", b"<html>not a torrent</html>")
    drop_raw(mirror, b"Later.torrent", torrent_bytes("Later"))
    result = mirror.run("torrents", "add")
    assert result.code == 11, result.err  # done; the unusable file needs a person
    assert "Na\\xefve.torrent" in result.err
    assert sorted(t["name"] for t in mirror.fake.transfers()) == ["Cafe S01", "Later"]
    submitted = os.fsencode(mirror.blackhole / ".submitted")
    assert sorted(os.listdir(submitted)) == [b"Caf\xe9 S01.torrent", b"Later.torrent"]
    rejected = os.listdir(os.fsencode(mirror.blackhole / ".rejected"))
    assert sorted(rejected) == [b"Na\xefve.torrent", b"Na\xefve.torrent.why.txt"]
    history = mirror.run("history")
    assert history.code == 0, history.err


# -- another run submits between this run's plan and its turn -----------------------------


def run_with_a_pass_first(mirror: Mirror) -> Outcome:
    """A whole ``torrents add`` run in which, once it has planned, a watcher's blackhole pass
    (another process or host sharing the journal) runs from start to end."""
    settings = load_settings(mirror.config, {})

    def meanwhile(plan: Plan) -> None:
        report = submit_blackhole(Runtime(settings))
        assert report is not None and report.done and not report.failed

    return run_once(Runtime(settings, on_plan=meanwhile), Request("torrents add"))


def test_a_torrent_asked_for_over_rpc_is_not_submitted_again_by_a_run_that_planned_it_too(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    data = torrent_bytes("Asked For")
    info_hash = parse_torrent(data)[0]
    journal = Journal.open(f"sqlite:///{mirror.journal}")
    try:
        desire = Desire(info_hash, 1, "Asked For", "torrent", datetime.now(UTC), size=1234)
        journal.desires.add(desire, data)
    finally:
        journal.close()
    outcome = run_with_a_pass_first(mirror)
    assert [t["hash"] for t in mirror.fake.transfers()] == [info_hash], "submitted once"
    assert outcome.report is not None and not outcome.report.failed
    assert outcome.exit_code == 0


def test_a_blackhole_torrent_another_run_submitted_meanwhile_is_no_failure_of_this_run(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    data = torrent_bytes("Raced")
    mirror.drop("raced.torrent", data)
    outcome = run_with_a_pass_first(mirror)
    assert len(mirror.fake.transfers()) == 1
    assert outcome.report is not None and not outcome.report.failed, outcome.report.failed
    assert outcome.exit_code == 0
    assert names_in(mirror.blackhole / ".submitted") == ["raced.torrent"]


def test_a_torrent_asked_for_over_rpc_whose_answer_was_lost_is_never_submitted_twice(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    """As a blackhole torrent's: found on put.io, the transfer is journaled as ours, so once
    it is cleaned the torrent, still asked for by Sonarr, is not uploaded (and downloaded)
    a second time."""
    data = torrent_bytes("Asked For, Answer Lost")
    info_hash = parse_torrent(data)[0]
    with Journal.open(f"sqlite:///{mirror.journal}") as journal:
        desire = Desire(info_hash, 1, "Asked For, Answer Lost", "torrent", datetime.now(UTC))
        journal.desires.add(desire, data)
    mirror.fake.inject("/v2/files/upload", lose_answer=True)
    assert mirror.run("sync").code == 1  # the run cannot know what happened
    mirror.fake.finish_transfers()
    # found on put.io by its info-hash: mirrored, and its seeding cancelled (gone from the list)
    assert mirror.run("sync").code == 0
    assert mirror.fake.transfers() == []
    mirror.fake.clear_requests()
    assert mirror.run("sync").code == 0
    assert submissions(mirror.fake) == [], "submitted once, as one answered in time is"
    assert mirror.fake.transfers() == []


# -- one blackhole, a folder per media manager -------------------------------------------


def drop_into(mirror: Mirror, folder: str, name: str, data: bytes) -> Path:
    """Put a file into a folder of the blackhole, aged as ``Mirror.drop`` ages it."""
    path = mirror.blackhole / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (path.stat().st_atime - 60, path.stat().st_mtime - 60))
    return path


def journaled_names(mirror: Mirror) -> list[str]:
    journal = Journal.open(f"sqlite:///{mirror.journal}")
    try:
        return sorted(entry.name for entry in journal.facts().submissions.values())
    finally:
        journal.close()


def test_files_dropped_into_subfolders_are_submitted_and_filed_away_in_their_own_folder(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    # Sonarr drops into blackhole/sonarr, Radarr into blackhole/radarr.
    drop_into(mirror, "sonarr", "show.torrent", torrent_bytes("Show S01"))
    drop_into(mirror, "sonarr", "broken.torrent", b"<html>login</html>")
    drop_into(mirror, "radarr", "cosmos.magnet", MAGNET.encode())
    mirror.drop("top.torrent", torrent_bytes("Top"))
    result = mirror.run("torrents", "add")
    assert result.code == 11, result.err  # done; the unusable file needs a person
    assert sorted(t["name"] for t in mirror.fake.transfers()) == ["Cosmos", "Show S01", "Top"]
    sonarr, radarr = mirror.blackhole / "sonarr", mirror.blackhole / "radarr"
    assert names_in(sonarr) == [".rejected", ".submitted"]
    assert names_in(sonarr / ".submitted") == ["show.torrent"]
    assert names_in(sonarr / ".rejected") == ["broken.torrent", "broken.torrent.why.txt"]
    assert names_in(radarr / ".submitted") == ["cosmos.magnet"]
    assert names_in(mirror.blackhole / ".submitted") == ["top.torrent"]
    assert "blackhole file sonarr/broken.torrent rejected" in result.err
    assert journaled_names(mirror) == ["radarr/cosmos.magnet", "sonarr/show.torrent", "top.torrent"]
    uploads = [r for r in mirror.fake.requests if r.path == "/v2/files/upload"]
    assert len(uploads) == 2 and all(b"sonarr/" not in r.body for r in uploads), "its own name"


def test_the_same_torrent_in_two_subfolders_is_submitted_once(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    data = torrent_bytes("Both Want It")
    drop_into(mirror, "sonarr", "it.torrent", data)
    drop_into(mirror, "radarr", "it.torrent", data)
    result = mirror.run("torrents", "add")
    assert result.code == 0, result.err
    assert submissions(mirror.fake) == ["POST /v2/files/upload"]
    assert names_in(mirror.blackhole / "radarr" / ".submitted") == ["it.torrent"]
    sonarr = names_in(mirror.blackhole / "sonarr" / ".submitted")
    assert sonarr == ["it.torrent", "it.torrent.why.txt"], "filed away as the same torrent"
    drop_into(mirror, "sonarr", "again.torrent", data)
    mirror.fake.clear_requests()
    again = mirror.run("torrents", "add")
    assert again.code == 0, again.err
    assert submissions(mirror.fake) == []
    assert "sonarr/again.torrent: this torrent was submitted earlier" in again.err


def test_a_file_nested_deeper_is_left_alone_and_said_once_a_run_as_needing_a_person(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    deep = drop_into(mirror, "sonarr/season 1", "deep.torrent", torrent_bytes("Deep"))
    drop_into(mirror, "sonarr/season 1", "deeper.magnet", MAGNET.encode())
    for _ in range(2):
        result = mirror.run("--quiet", "torrents", "add")
        assert result.code == 11, result.err  # only a person can move it: said every run
        said = [line for line in result.err.splitlines() if "sonarr/season 1/deep.torrent" in line]
        assert len(said) == 1, result.err
        assert said[0].startswith("needs you:"), said
        assert "sonarr/season 1/deeper.magnet" in said[0]
        assert "hint: drop .torrent and .magnet files directly" in result.err
    assert mirror.fake.transfers() == []
    assert deep.exists(), "left where it is"


def test_a_linked_subfolder_is_not_followed_and_said_so(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    outside = mirror.root / "outside"
    inside = drop_into(mirror, "../outside", "elsewhere.torrent", torrent_bytes("Elsewhere"))
    (mirror.blackhole / "linked").symlink_to(outside)
    result = mirror.run("torrents", "add")
    assert result.code == 11, result.err
    assert mirror.fake.transfers() == []
    assert inside.exists() and names_in(outside) == ["elsewhere.torrent"]
    said = [line for line in result.err.splitlines() if "linked" in line]
    assert len(said) == 1 and said[0].startswith("needs you:"), result.err
    assert "symbolic link" in said[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may list any folder")
def test_a_subfolder_that_cannot_be_listed_is_said_and_the_others_still_taken(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    drop_into(mirror, "locked", "hidden away.torrent", torrent_bytes("Locked"))
    drop_into(mirror, "sonarr", "show.torrent", torrent_bytes("Show"))
    (mirror.blackhole / "locked").chmod(0)
    try:
        result = mirror.run("torrents", "add")
    finally:
        (mirror.blackhole / "locked").chmod(0o755)
    assert result.code == 11, result.err
    assert [t["name"] for t in mirror.fake.transfers()] == ["Show"]
    said = [line for line in result.err.splitlines() if "locked" in line]
    assert len(said) == 1 and said[0].startswith("needs you:"), said
    assert "cannot be listed" in said[0]


def test_a_download_folder_inside_the_blackhole_is_never_taken_for_one_of_its_folders(
    mirror: Mirror,
) -> None:
    """Sonarr's blackhole client set with its watch folder inside its torrent folder
    (``blackhole/complete``): the items put.io holds, .torrent files among them, land
    there; none may be submitted back, nor told of as nested too deep."""
    mirror.write_config(paths={"downloads": str(mirror.blackhole / "complete")})
    mirror.fake.add_file("single.torrent", content=b"d4:infod4:name1:xee")
    item = mirror.fake.add_folder("Item")
    mirror.fake.add_file("inner.torrent", item, content=b"d4:infod4:name1:yee")
    assert mirror.run("sync").code == 0
    assert (mirror.blackhole / "complete" / "single.torrent").exists()
    mirror.fake.clear_requests()
    again = mirror.run("sync")
    assert again.code == 0, again.err
    assert submissions(mirror.fake) == []
    assert "too deep" not in again.err and "not looked into" not in again.err, again.err
    assert (mirror.blackhole / "complete" / "single.torrent").exists()


# -- a .torrent and a magnet of one torrent in one pass -----------------------------------


def place(mirror: Mirror, name: str, data: bytes) -> Path:
    """Put a file into the blackhole (``folder/name``: into that folder of it), settled."""
    folder, _, own = name.rpartition("/")
    return drop_into(mirror, folder, own, data) if folder else mirror.drop(name, data)


def filed_away(mirror: Mirror, name: str) -> list[str]:
    """What the ``.submitted`` folder the file ``name`` (``folder/name``) goes to holds."""
    folder, _, _ = name.rpartition("/")
    return names_in(mirror.blackhole / folder / ".submitted")


@pytest.mark.parametrize("command", [("torrents", "add"), ("sync",)], ids=" ".join)
@pytest.mark.parametrize(
    ("torrent", "magnets"),
    [
        ("Show.torrent", ["Show.magnet"]),  # Sonarr retried with a magnet
        ("sonarr/Show.torrent", ["radarr/Show.magnet"]),  # two media managers
        ("Show.torrent", ["Show (retry).magnet", "sonarr/Show.magnet"]),
    ],
    ids=["one folder", "two folders", "two magnets"],
)
def test_a_torrent_and_its_magnet_in_one_pass_submit_the_torrent_and_file_the_magnet_away(
    mirror: Mirror, command: tuple[str, ...], torrent: str, magnets: list[str]
) -> None:
    """The .torrent carries what a magnet lacks (trackers, the metadata, the private
    flag: a private torrent added as a magnet never starts on put.io), so of one
    torrent's files in one pass it is the one submitted, whatever the names' order."""
    data = sample_torrent()
    info_hash = parse_torrent(data)[0]
    for magnet in magnets:
        place(mirror, magnet, f"magnet:?xt=urn:btih:{info_hash}&dn=Sintel".encode())
    place(mirror, torrent, data)
    result = mirror.run(*command)
    assert result.code == 0, result.err
    assert submissions(mirror.fake) == ["POST /v2/files/upload"], "the torrent, not the magnet"
    (upload,) = [r for r in mirror.fake.requests if r.path == "/v2/files/upload"]
    assert data in upload.body, "put.io got the .torrent's bytes"
    (transfer,) = mirror.fake.transfers()
    assert transfer["hash"] == info_hash and transfer["magneturi"] is None
    assert journaled_names(mirror) == [torrent]
    own = torrent.rpartition("/")[2]
    beside = filed_away(mirror, torrent)
    assert own in beside and f"{own}.why.txt" not in beside, "submitted, not a duplicate"
    for magnet in magnets:
        own = magnet.rpartition("/")[2]
        assert {own, f"{own}.why.txt"} <= set(filed_away(mirror, magnet)), "a duplicate"
    left = [p for p in mirror.blackhole.rglob("*") if p.is_file() and ".submitted" not in p.parts]
    assert left == [], left


def journaled_transfer(mirror: Mirror, info_hash: str) -> int | None:
    journal = Journal.open(f"sqlite:///{mirror.journal}")
    try:
        return journal.transfer_of(info_hash)
    finally:
        journal.close()


def test_over_rpc_a_torrent_added_after_its_magnet_takes_its_place_as_one_item(
    mirror: Mirror,
) -> None:
    """As the blackhole does across passes (``test_blackhole_torrent_after_magnet``), the
    RPC door puts a .torrent in the place of its magnet while put.io has not started the
    magnet (``test_rpc_torrent_after_magnet`` tells each case): the client still follows
    the item it added first, its id answered ``torrent-duplicate``, and put.io ends with
    one transfer, the .torrent's."""
    data = sample_torrent()
    info_hash = parse_torrent(data)[0]
    uri = f"magnet:?xt=urn:btih:{info_hash}&dn=Sintel"
    with serving(mirror) as server:
        client = Client(url_of(server))
        added = client.ok("torrent-add", filename=uri)["torrent-added"]
        again = client.add_torrent(data)["torrent-duplicate"]
        assert (again["id"], again["hashString"]) == (added["id"], info_hash)
        (transfer,) = wait_for(
            lambda: [t for t in mirror.fake.transfers() if t["magneturi"] is None]
        )
        assert [t["id"] for t in mirror.fake.transfers()] == [transfer["id"]]
        wait_for(lambda: journaled_transfer(mirror, info_hash) == transfer["id"])
    # the magnet may have gone to put.io before the .torrent came; never after it
    assert submissions(mirror.fake)[-1] == "POST /v2/files/upload"
    journal = Journal.open(f"sqlite:///{mirror.journal}")
    try:
        (desire,) = journal.desires.listing().values()
    finally:
        journal.close()
    assert (desire.rpc_id, desire.kind, desire.magnet_uri) == (added["id"], "torrent", "")
