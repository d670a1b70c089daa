"""Every command, end to end: the real CLI against the local put.io over real sockets."""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Callable

from putio_mirror.core.errors import ExitCode
from putio_mirror.fakeputio import FakePutio
from tests.mirror_env import Mirror

MAGNET = "magnet:?xt=urn:btih:" + "c9e15763f722f23e98a29decdfae341b98d53056" + "&dn=Cosmos"


def mutating(fake: FakePutio) -> list[str]:
    return [f"{r.method} {r.path}" for r in fake.requests if r.mutating]


def test_torrents_add_submits_torrent_and_magnet_and_files_them_away(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    mirror.drop("show.torrent", torrent_bytes("Show S01E01"))
    mirror.drop("cosmos.magnet", MAGNET.encode())
    result = mirror.run("torrents", "add")
    assert result.code == 0, result.err
    assert mutating(mirror.fake) == ["POST /v2/transfers/add", "POST /v2/files/upload"]
    upload = next(r for r in mirror.fake.requests if r.path == "/v2/files/upload")
    assert upload.query.get("torrent") == "true"
    assert sorted(p.name for p in (mirror.blackhole / ".submitted").iterdir()) == [
        "cosmos.magnet",
        "show.torrent",
    ]
    assert {t["name"] for t in mirror.fake.transfers()} == {"Show S01E01", "Cosmos"}


def test_same_torrent_dropped_again_under_another_name_is_not_submitted_twice(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    data = torrent_bytes("Movie (2020)")
    mirror.drop("movie.torrent", data)
    assert mirror.run("torrents", "add").code == 0
    mirror.fake.clear_requests()
    mirror.fake.finish_transfers()
    mirror.run("transfers", "groom")  # the transfer is gone from put.io's list now
    mirror.fake.clear_requests()
    mirror.drop("Movie.2020.1080p.torrent", data)
    result = mirror.run("torrents", "add")
    assert result.code == 0
    assert mutating(mirror.fake) == []
    assert "not adding it again" in result.err
    assert (mirror.blackhole / ".submitted" / "Movie.2020.1080p.torrent").exists()


def test_corrupt_torrent_is_rejected_with_a_note_and_not_retried(mirror: Mirror) -> None:
    mirror.drop("broken.torrent", b"d4:infoi3ee")
    assert mirror.run("torrents", "add").code == 11  # done, but it needs a person
    rejected = mirror.blackhole / ".rejected"
    assert (rejected / "broken.torrent").read_bytes() == b"d4:infoi3ee"
    assert (rejected / "broken.torrent.why.txt").read_text().strip()
    mirror.fake.clear_requests()
    assert mirror.run("torrents", "add").code == 0
    assert mutating(mirror.fake) == []


def test_cancel_seeding_touches_only_our_transfers(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    mirror.drop("ours.torrent", torrent_bytes("Ours"))
    mirror.run("torrents", "add")
    foreign = mirror.fake.add_transfer("Foreign", status="SEEDING", hash="f" * 40)
    mirror.fake.finish_transfers()
    mirror.fake.clear_requests()
    assert mirror.run("transfers", "cancel-seeding").code == 0
    cancels = [r for r in mirror.fake.requests if r.path == "/v2/transfers/cancel"]
    assert len(cancels) == 1 and str(foreign) not in cancels[0].body.decode()
    assert [t["name"] for t in mirror.fake.transfers()] == ["Foreign"]


def test_clean_waits_until_files_are_mirrored_then_cleans(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    mirror.fake.torrent_final_status = "COMPLETED"
    mirror.drop("a.torrent", torrent_bytes("Album", files=[("01.flac", 5000), ("02.flac", 7000)]))
    mirror.run("torrents", "add")
    mirror.fake.finish_transfers()
    assert mirror.run("transfers", "clean").code == 0
    assert len(mirror.fake.transfers()) == 1, "not cleaned before its files are mirrored"
    assert mirror.run("files", "download").code == 0
    assert mirror.run("transfers", "groom").code == 0
    assert mirror.fake.transfers() == []


def test_files_list_prints_the_tree_as_json_with_paths(mirror: Mirror) -> None:
    shows = mirror.fake.add_folder("Shows")
    mirror.fake.add_file("e1.mkv", parent_id=shows, content=b"abc")
    result = mirror.run("files", "list")
    listing = json.loads(result.out)
    assert [(i["path"], i["folder"]) for i in listing] == [("Shows", True), ("Shows/e1.mkv", False)]
    assert listing[1]["crc32"] == f"{zlib.crc32(b'abc'):08x}"


def test_files_download_mirrors_the_tree_verified_and_never_twice(mirror: Mirror) -> None:
    shows = mirror.fake.add_folder("Shows")
    season = mirror.fake.add_folder("Season 1", parent_id=shows)
    big = mirror.fake.add_file("e1.mkv", parent_id=season, size=1_500_000)
    mirror.fake.add_file("empty.nfo", parent_id=shows, content=b"")
    assert mirror.run("files", "download").code == 0
    local = mirror.local_files()
    assert local["Shows/Season 1/e1.mkv"] == mirror.fake.file_content(big)
    assert local["Shows/empty.nfo"] == b""
    assert list((mirror.downloads / ".putio-mirror-staging").glob("*.part")) == []
    mirror.fake.clear_requests()
    assert mirror.run("files", "download").code == 0
    assert [r for r in mirror.fake.requests if r.host == "node"] == []


def test_files_download_limit_and_chunk_size(mirror: Mirror) -> None:
    for name in ("a.bin", "b.bin", "c.bin"):
        mirror.fake.add_file(name, size=200_000)
    assert mirror.run("files", "download", "--limit", "2", "--chunk-size", "64").code == 0
    assert sorted(mirror.local_files()) == ["a.bin", "b.bin"]
    assert mirror.run("files", "download").code == 0
    assert sorted(mirror.local_files()) == ["a.bin", "b.bin", "c.bin"]


def test_file_moved_away_by_the_media_manager_is_not_downloaded_again(mirror: Mirror) -> None:
    mirror.fake.add_file("movie.mkv", size=10_000)
    assert mirror.run("sync").code == 0
    (mirror.downloads / "movie.mkv").rename(mirror.root / "imported.mkv")
    mirror.fake.clear_requests()
    assert mirror.run("sync").code == 0
    assert not (mirror.downloads / "movie.mkv").exists()
    assert [r for r in mirror.fake.requests if r.host == "node"] == []


def test_file_already_present_locally_is_adopted_with_a_warning(mirror: Mirror) -> None:
    file_id = mirror.fake.add_file("movie.mkv", size=5000)
    mirror.downloads.mkdir(parents=True)
    (mirror.downloads / "movie.mkv").write_bytes(mirror.fake.file_content(file_id))
    result = mirror.run("files", "download")
    assert result.code == 0 and "already downloaded" in result.err
    assert [r for r in mirror.fake.requests if r.host == "node"] == []


def test_a_strangers_file_of_put_ios_size_where_a_file_goes_is_told_as_in_the_way(
    mirror: Mirror,
) -> None:
    # Of put.io's size, yet other bytes (its CRC32): not put.io's file, never adopted;
    # only a person can move it, as one of another size (the plan's note).
    mirror.fake.add_file("movie.mkv", size=5000)
    mirror.downloads.mkdir(parents=True)
    (mirror.downloads / "movie.mkv").write_bytes(b"\xee" * 5000)
    result = mirror.run("sync")
    assert result.code == ExitCode.NEEDS_ATTENTION, "as one of another size: a person's to do"
    assert "needs you: movie.mkv: a different local file is in the way" in result.err
    assert "failed" not in result.err and "1 kept out by a local file in the way" in result.out
    assert "hint: move or rename it" in result.err
    assert (mirror.downloads / "movie.mkv").read_bytes() == b"\xee" * 5000
    status = mirror.run("status").out
    assert "Needs you" in status and "movie.mkv: a different local file is in the way" in status


def test_a_stranger_of_put_ios_size_is_read_once_not_on_every_run_until_it_changes(
    mirror: Mirror,
) -> None:
    # A 50 GB file an older tool preallocated and never finished, read whole by every run
    # (hourly, from a timer) to learn again that it is not put.io's. Judged once, it is
    # trusted to be the same stranger while it is the same file (inode, mtime), as a
    # placed file is; one changed since is judged afresh.
    file_id = mirror.fake.add_file("movie.mkv", size=5000)
    mirror.downloads.mkdir(parents=True)
    stranger = mirror.downloads / "movie.mkv"
    stranger.write_bytes(b"\xee" * 5000)
    assert "in the way" in mirror.run("sync").err
    # put.io's very bytes under the same inode and mtime: a run that reads the file
    # would adopt them; one that trusts its judgement does not read it
    judged = stranger.stat()
    with stranger.open("r+b") as rewritten:
        rewritten.write(mirror.fake.file_content(file_id))
    os.utime(stranger, ns=(judged.st_atime_ns, judged.st_mtime_ns))
    again = mirror.run("sync")
    assert again.code == ExitCode.NEEDS_ATTENTION and "in the way" in again.err, again.err
    assert "differed when a run read it, and it has not changed since" in again.err
    os.utime(stranger)  # changed since (now): judged afresh, and of put.io's bytes
    adopted = mirror.run("sync")
    assert adopted.code == 0, adopted.err
    assert "already downloaded" in adopted.err
    assert [r for r in mirror.fake.requests if r.host == "node"] == []


def test_history_shows_runs_and_their_actions(mirror: Mirror) -> None:
    mirror.fake.add_file("x.bin", size=10)
    mirror.run("files", "download")
    runs = mirror.run("history").out
    assert "files download" in runs and "exit 0" in runs
    actions = mirror.run("history", "--run", "1").out
    assert "done        download x.bin" in actions and "download:" not in actions


def test_revoked_token_stops_at_once_with_exit_4_and_a_hint(mirror: Mirror) -> None:
    mirror.fake.add_file("x.bin", size=10)
    mirror.fake.revoke_token()
    result = mirror.run("sync")
    assert result.code == 4
    assert "token" in result.err and "Hint:" in result.err
    # put.io's two listings are asked at once (issue 14): each meets the refusal at most
    # once, and nothing is asked after it
    refused = [r.path for r in mirror.fake.requests if r.status == 401]
    assert 1 <= len(refused) <= 2 and set(refused) <= {"/v2/transfers/list", "/v2/files/list"}
    assert len(mirror.fake.requests) == len(refused)


def test_config_with_several_mistakes_reports_all_at_once_and_exits_2(mirror: Mirror) -> None:
    mirror.config.write_text(
        "download:\n  chunk_size_kb: lots\n  colour: blue\n"
        "schedule:\n  windows: ['25:00-26:00']\nsafety:\n  max_cancels: -x\n"
    )
    result = mirror.run("sync")
    assert result.code == 2
    for fragment in ("download.chunk_size_kb", "download.colour", "schedule.windows", "safety"):
        assert fragment in result.err
    assert "mirror.yaml" in result.err


def test_token_never_appears_in_output_logs_or_journal(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    log_file = mirror.root / "mirror.log"
    mirror.write_config(paths={"log_file": str(log_file)})
    mirror.fake.add_file("x.bin", size=1000)
    mirror.drop("a.torrent", torrent_bytes("A"))
    outputs = [mirror.run("-vv", "sync", "--dry-run"), mirror.run("-vv", "sync")]
    mirror.fake.revoke_token()
    outputs.append(mirror.run("-vv", "sync"))
    token = mirror.fake.token
    for result in outputs:
        assert token not in result.out and token not in result.err
    assert log_file.read_text() and token not in log_file.read_text()
    assert token.encode() not in mirror.journal.read_bytes()
    node = [r for r in mirror.fake.requests if r.host == "node"]
    assert node and all(token not in json.dumps([dict(r.headers), r.query]) for r in node)


def test_info_hash_of_submitted_torrent_is_journaled(
    mirror: Mirror, torrent_bytes: Callable[..., bytes]
) -> None:
    from fastbencode import bdecode, bencode  # type: ignore[attr-defined]

    data = torrent_bytes("Hash me")
    mirror.drop("h.torrent", data)
    mirror.run("torrents", "add")
    info_hash = hashlib.sha1(bencode(bdecode(data)[b"info"]), usedforsecurity=False).hexdigest()
    assert mirror.fake.transfers()[0]["hash"] == info_hash
    story = json.loads(mirror.run("history", "--run", "1", "--json").out)
    assert "upload:" + info_hash in [action["key"] for action in story["actions"]]


def test_remote_item_is_deleted_only_when_configured_and_after_verification(
    mirror: Mirror,
) -> None:
    album = mirror.fake.add_folder("Album")
    mirror.fake.add_file("01.flac", parent_id=album, size=3000)
    assert mirror.run("sync").code == 0
    assert len(mirror.fake.files()) == 2, "off by default"
    mirror.write_config(download={"delete_remote_after": True})
    assert mirror.run("sync").code == 0
    assert mirror.fake.files() == []
    assert (mirror.downloads / "Album" / "01.flac").stat().st_size == 3000


def test_hidden_files_on_put_io_are_mirrored_and_deleted_only_once_placed(
    mirror: Mirror,
) -> None:
    album = mirror.fake.add_folder("Album")
    mirror.fake.add_file("01.flac", parent_id=album, content=b"one")
    hidden = mirror.fake.add_file(".cover.jpg", parent_id=album, content=b"cover")
    mirror.fake.hide_file(hidden)
    mirror.write_config(download={"delete_remote_after": True})
    result = mirror.run("sync")
    assert result.code == 0, result.err
    assert (mirror.downloads / "Album" / ".cover.jpg").read_bytes() == b"cover"
    assert mirror.fake.files() == [], "deleted on put.io only after it was mirrored"


def test_download_folder_that_is_a_file_is_a_config_problem_reported_before_any_work(
    mirror: Mirror,
) -> None:
    (mirror.root / "not-a-folder").write_text("x")
    mirror.write_config(paths={"downloads": str(mirror.root / "not-a-folder")})
    result = mirror.run("sync")
    assert result.code == 2 and "paths.downloads" in result.err
    assert mirror.fake.requests == []


def test_the_installed_command_exits_with_main_s_code_and_all_its_output(mirror: Mirror) -> None:
    # ``python -m putio_mirror`` runs ``cli.entry``, which skips the interpreter's teardown:
    # every line must still arrive through the pipes, and the exit code must be main's.
    mirror.fake.add_file("x.bin", size=300_000)
    done = mirror.spawn("files", "download")
    out, err = done.communicate(timeout=60)
    assert done.returncode == 0, err
    assert b"Result: 1 done, 0 failed." in out
    assert (mirror.downloads / "x.bin").stat().st_size == 300_000
    mirror.fake.revoke_token()
    refused = mirror.spawn("sync")
    _, err = refused.communicate(timeout=60)
    assert refused.returncode == 4
    assert b"Hint:" in err


def test_verified_bytes_a_run_left_unjournaled_are_placed_without_a_fetch(
    mirror: Mirror,
) -> None:
    # a run killed after it moved a file into verified/, before its journal heard of it
    shows = mirror.fake.add_folder("Shows")
    kept = mirror.fake.add_file("e1.srt", parent_id=shows, content=b"subtitles")
    fetched = mirror.fake.add_file("e2.srt", parent_id=shows, content=b"more subtitles")
    verified = mirror.downloads / ".putio-mirror-staging" / "verified"
    verified.mkdir(parents=True)
    (verified / str(kept)).write_bytes(b"subtitles")
    assert mirror.run("files", "download").code == 0
    assert mirror.local_files() == {"Shows/e1.srt": b"subtitles", "Shows/e2.srt": b"more subtitles"}
    asked = {r.path for r in mirror.fake.requests if r.host == "node"}
    assert any(str(fetched) in path for path in asked)
    assert not any(str(kept) in path for path in asked)
