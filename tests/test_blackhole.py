"""Tests of putio_mirror.local.blackhole: parsing .torrent/.magnet files, scanning, filing away."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from pathlib import Path

import pytest
from fastbencode import bencode

from putio_mirror.core.errors import BlackholeChangedError, CorruptTorrentError, ItemError
from putio_mirror.local.blackhole import (
    MAX_TORRENT_BYTES,
    REJECTED_DIR,
    SUBMITTED_DIR,
    WRITER_PATIENCE_SECONDS,
    CutShortError,
    file_away,
    parse_magnet,
    parse_torrent,
    reread,
    scan,
    scan_blackhole,
)

HASH = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
PIECES = b"\x01" * 20
SINGLE_INFO = {b"name": b"ubuntu.iso", b"length": 1024, b"piece length": 16384, b"pieces": PIECES}
MULTI_INFO = {
    b"name": b"Show S01",
    b"piece length": 262144,
    b"pieces": PIECES * 3,
    b"files": [
        {b"length": 10, b"path": [b"e01.mkv"]},
        {b"length": 20, b"path": [b"Subs", b"e01.srt"]},
    ],
}


def torrent(info: dict[bytes, object], **extra: object) -> bytes:
    top: dict[bytes, object] = {b"announce": b"http://tracker.example/announce", b"info": info}
    top.update({key.encode(): value for key, value in extra.items()})
    return bytes(bencode(top))


def sha1(data: bytes) -> str:
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


# --- parse_torrent ----------------------------------------------------------------


def test_single_file_torrent_gives_sha1_of_its_info_and_its_name() -> None:
    assert parse_torrent(torrent(SINGLE_INFO)) == (sha1(bencode(SINGLE_INFO)), "ubuntu.iso")


def test_multi_file_torrent_gives_sha1_of_its_info_and_its_name() -> None:
    assert parse_torrent(torrent(MULTI_INFO)) == (sha1(bencode(MULTI_INFO)), "Show S01")


def test_the_utf8_name_is_preferred_and_bad_bytes_do_not_fail() -> None:
    info = {**SINGLE_INFO, b"name": b"caf\xe9", b"name.utf-8": "café".encode()}

    assert parse_torrent(torrent(info))[1] == "café"
    assert parse_torrent(torrent({**SINGLE_INFO, b"name": b"caf\xe9"}))[1] == "caf\ufffd"


def test_non_canonical_torrent_gives_sha1_of_the_raw_info_bytes() -> None:
    # keys out of order, and a number with a leading zero: re-encoding would differ
    raw_info = b"d4:name3:abc6:lengthi007e6:pieces20:" + PIECES + b"12:piece lengthi16384ee"
    data = b"d4:info" + raw_info + b"8:announce3:urle"
    canonical_info = bencode(
        {b"name": b"abc", b"length": 7, b"pieces": PIECES, b"piece length": 16384}
    )

    info_hash, name = parse_torrent(data)

    assert info_hash == sha1(raw_info)
    assert info_hash != sha1(canonical_info)
    assert name == "abc"


@pytest.mark.parametrize(
    "data",
    [b"hello world", b"i12e junk", b"d1:a1:b1:a1:ce", b"l" * 5000, b"d4:infoX"],
)
def test_data_that_is_not_bencode_is_refused(data: bytes) -> None:
    with pytest.raises(CorruptTorrentError, match="not bencoded data") as raised:
        parse_torrent(data)
    assert raised.value.hint


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"d4:infod4:name",
        b"d4:info",
        b"d4:infoli1",
        b"d4:infoli-",
        b"d4:infod12",
        b"d4:infol4:ab",
    ],
)
def test_data_that_ends_inside_a_value_is_refused_as_cut_short(data: bytes) -> None:
    with pytest.raises(CutShortError, match="cut short") as raised:
        parse_torrent(data)
    assert raised.value.hint


def test_a_saved_web_page_is_named_as_such() -> None:
    with pytest.raises(CorruptTorrentError, match="web page"):
        parse_torrent(b"<!DOCTYPE html><html><body>Please log in</body></html>")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bencode([b"a"]), "top level is not a dictionary"),
        (bencode({b"announce": b"x"}), "no 'info' dictionary"),
        (bencode({b"info": b"x"}), "no 'info' dictionary"),
        (torrent({k: v for k, v in SINGLE_INFO.items() if k != b"name"}), "no 'name'"),
        (torrent({k: v for k, v in SINGLE_INFO.items() if k != b"pieces"}), "'pieces'"),
        (torrent({**SINGLE_INFO, b"pieces": b"123"}), "'pieces'"),
        (torrent({k: v for k, v in SINGLE_INFO.items() if k != b"piece length"}), "piece length"),
        (torrent({k: v for k, v in SINGLE_INFO.items() if k != b"length"}), "neither"),
    ],
)
def test_bencoded_data_that_is_not_a_torrent_is_refused_with_the_reason(
    data: bytes, reason: str
) -> None:
    with pytest.raises(CorruptTorrentError, match="bencoded, but not a torrent") as raised:
        parse_torrent(bytes(data))
    assert reason in raised.value.message


def test_v2_only_torrent_is_refused_as_unsupported() -> None:
    info = {b"name": b"x", b"meta version": 2, b"piece length": 16384, b"file tree": {}}

    with pytest.raises(CorruptTorrentError, match="v2-only"):
        parse_torrent(torrent(info))


def test_a_huge_file_is_too_large_to_be_a_torrent() -> None:
    with pytest.raises(CorruptTorrentError, match=r"too large to be a \.torrent"):
        parse_torrent(b"x" * (MAX_TORRENT_BYTES + 1))


# --- parse_magnet -----------------------------------------------------------------


def test_magnet_with_hex_hash_gives_lowercase_hash_and_decoded_name() -> None:
    uri = f"magnet:?xt=urn:btih:{HASH.upper()}&dn=My%20Show+S01&tr=udp%3A%2F%2Ft.example"

    assert parse_magnet(f"  {uri}\n") == (HASH, "My Show S01", uri)


def test_magnet_with_base32_hash_gives_the_same_hash_in_hex() -> None:
    base32 = base64.b32encode(bytes.fromhex(HASH)).decode()

    assert parse_magnet(f"magnet:?xt=urn:btih:{base32.lower()}")[0] == HASH


def test_magnet_file_text_is_read_from_its_first_non_empty_line() -> None:
    text = f"\n\n  magnet:?dn=x&xt=urn:btih:{HASH}  \nsomething else\n"

    assert parse_magnet(text) == (HASH, "x", f"magnet:?dn=x&xt=urn:btih:{HASH}")


def test_hybrid_magnet_with_v1_and_v2_hashes_is_accepted() -> None:
    uri = f"magnet:?xt=urn:btmh:1220{'ab' * 32}&xt=urn:btih:{HASH}"

    assert parse_magnet(uri)[0] == HASH


def test_the_same_hash_written_twice_is_one_hash() -> None:
    base32 = base64.b32encode(bytes.fromhex(HASH)).decode()

    assert parse_magnet(f"magnet:?xt.1=urn:btih:{HASH}&xt.2=urn:btih:{base32}")[0] == HASH


def test_v2_only_magnet_is_refused_as_unsupported_by_putio() -> None:
    with pytest.raises(CorruptTorrentError, match=r"v2-only magnets are not supported by put\.io"):
        parse_magnet(f"magnet:?xt=urn:btmh:1220{'ab' * 32}")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no magnet link"),
        ("http://example.com/x.torrent", "does not start with 'magnet:?'"),
        ("magnet:?dn=nothing", "no BitTorrent info-hash"),
        ("magnet:?xt=urn:btih:1234", "not valid"),
        (f"magnet:?xt=urn:btih:{'g' * 40}", "not valid"),
        (f"magnet:?xt=urn:btih:{HASH}&xt=urn:btih:{'0' * 40}", "more than one"),
    ],
)
def test_garbage_magnets_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(CorruptTorrentError) as raised:
        parse_magnet(text)
    assert reason in raised.value.message
    assert raised.value.hint


# --- scan_blackhole ---------------------------------------------------------------


@pytest.fixture
def now() -> float:
    """A clock a minute ahead, so files written by the test are settled."""
    return time.time() + 60


def write(path: Path, data: bytes, mtime: float | None = None) -> Path:
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_scan_returns_torrents_and_magnets_sorted_by_name(tmp_path: Path, now: float) -> None:
    write(tmp_path / "b.magnet", f"magnet:?xt=urn:btih:{HASH}&dn=B".encode())
    write(tmp_path / "a.TORRENT", torrent(SINGLE_INFO))
    write(tmp_path / "notes.txt", b"ignored")
    write(tmp_path / ".hidden.torrent", torrent(SINGLE_INFO))
    (tmp_path / SUBMITTED_DIR).mkdir()
    write(tmp_path / SUBMITTED_DIR / "old.torrent", torrent(SINGLE_INFO))

    items = scan_blackhole(tmp_path, now=now)

    assert [(item.name, item.kind, item.problem) for item in items] == [
        ("a.TORRENT", "torrent", None),
        ("b.magnet", "magnet", None),
    ]
    first, second = items
    assert first.info_hash == sha1(bencode(SINGLE_INFO))
    assert first.display_name == "ubuntu.iso"
    assert first.path == str(tmp_path / "a.TORRENT")
    assert first.size == len(torrent(SINGLE_INFO))
    assert (second.info_hash, second.display_name) == (HASH, "B")
    assert second.magnet_uri == f"magnet:?xt=urn:btih:{HASH}&dn=B"


def test_scan_skips_files_that_may_still_be_being_written(tmp_path: Path) -> None:
    now = 1_800_000_000.0
    write(tmp_path / "young.torrent", torrent(SINGLE_INFO), mtime=now - 1)
    write(tmp_path / "empty-young.torrent", b"", mtime=now - 0.5)
    write(tmp_path / "settled.torrent", torrent(SINGLE_INFO), mtime=now - 3)

    names = [item.name for item in scan_blackhole(tmp_path, now=now, settle_seconds=2)]

    assert names == ["settled.torrent"]


def test_scan_gives_an_empty_or_cut_short_torrent_time_for_its_writer(tmp_path: Path) -> None:
    now = 1_800_000_000.0
    recent, long_ago = now - 60, now - WRITER_PATIENCE_SECONDS - 1
    write(tmp_path / "a-empty.torrent", b"", mtime=recent)
    write(tmp_path / "b-cut.torrent", torrent(SINGLE_INFO)[:-9], mtime=recent)
    write(tmp_path / "c-garbage.torrent", b"hello world", mtime=recent)
    write(tmp_path / "d-young.torrent", torrent(SINGLE_INFO), mtime=now - 1)
    write(tmp_path / "e-cut-long-ago.torrent", torrent(SINGLE_INFO)[:-9], mtime=long_ago)

    found = scan(tmp_path, now=now, settle_seconds=2)
    items, later = found.items, found.later

    assert [item.name for item in items] == ["c-garbage.torrent", "e-cut-long-ago.torrent"]
    assert all(item.problem for item in items)
    assert later == ("a-empty.torrent", "b-cut.torrent", "d-young.torrent")


def test_scan_does_not_wait_forever_for_a_file_dated_far_in_the_future(tmp_path: Path) -> None:
    now = 1_800_000_000.0
    write(tmp_path / "future.torrent", torrent(SINGLE_INFO), mtime=now + 10 * 86400)

    assert [item.name for item in scan_blackhole(tmp_path, now=now)] == ["future.torrent"]


def test_scan_reports_bad_files_as_problems_without_raising(tmp_path: Path, now: float) -> None:
    long_ago = now - WRITER_PATIENCE_SECONDS - 1
    write(tmp_path / "empty.torrent", b"", mtime=long_ago)
    write(tmp_path / "cut.torrent", torrent(SINGLE_INFO)[:-9], mtime=long_ago)
    write(tmp_path / "garbage.torrent", b"not a torrent at all")
    write(tmp_path / "list.torrent", bencode([b"x"]))
    write(tmp_path / "garbage.magnet", b"http://nope")
    write(tmp_path / "latin1.magnet", b"magnet:?dn=caf\xe9")
    write(tmp_path / "big.magnet", b"magnet:?" + b"x" * 70_000)
    with open(tmp_path / "huge.torrent", "wb") as stream:
        stream.truncate(MAX_TORRENT_BYTES + 1)  # sparse: cheap to make
    (tmp_path / "folder.torrent").mkdir()
    os.mkfifo(tmp_path / "pipe.torrent")

    problems = {item.name: item.problem for item in scan_blackhole(tmp_path, now=now)}

    assert problems == {
        "big.magnet": "too large to be a .magnet file (over 64 KiB)",
        "cut.torrent": "cut short: the data ends mid-way (its download or copy did not finish)",
        "empty.torrent": "the file is empty",
        "folder.torrent": "not a regular file",
        "garbage.magnet": "not a magnet link: it does not start with 'magnet:?'",
        "garbage.torrent": "not bencoded data",
        "huge.torrent": "too large to be a .torrent (over 10 MiB)",
        "latin1.magnet": "not UTF-8 text, so not a .magnet file",
        "list.torrent": "bencoded, but not a torrent: the top level is not a dictionary",
        "pipe.torrent": "not a regular file",
    }
    assert all(item.info_hash is None for item in scan_blackhole(tmp_path, now=now))


def test_scan_does_not_follow_symlinks(tmp_path: Path, now: float) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    write(outside / "real.torrent", torrent(SINGLE_INFO))
    blackhole = tmp_path / "blackhole"
    blackhole.mkdir()
    (blackhole / "link.torrent").symlink_to(outside / "real.torrent")
    (blackhole / "dangling.magnet").symlink_to(outside / "missing.magnet")

    items = scan_blackhole(blackhole, now=now)

    assert [item.name for item in items] == ["dangling.magnet", "link.torrent"]
    for item in items:
        assert item.info_hash is None
        assert item.problem == "symbolic links are not followed; copy the file in instead"


def test_scan_takes_files_one_folder_below_named_by_their_path_in_the_blackhole(
    tmp_path: Path, now: float
) -> None:
    # One blackhole, a folder per media manager: Sonarr drops into sonarr/, Radarr into radarr/.
    write(tmp_path / "top.torrent", torrent(SINGLE_INFO))
    (tmp_path / "sonarr").mkdir()
    write(tmp_path / "sonarr" / "show.torrent", torrent(MULTI_INFO))
    write(tmp_path / "sonarr" / ".hidden.torrent", torrent(SINGLE_INFO))
    (tmp_path / "sonarr" / SUBMITTED_DIR).mkdir()
    write(tmp_path / "sonarr" / SUBMITTED_DIR / "old.torrent", torrent(SINGLE_INFO))
    (tmp_path / "radarr").mkdir()
    write(tmp_path / "radarr" / "film.magnet", f"magnet:?xt=urn:btih:{HASH}&dn=F".encode())
    write(tmp_path / "radarr" / "young.torrent", torrent(SINGLE_INFO), mtime=now - 1)
    (tmp_path / ".hidden").mkdir()
    write(tmp_path / ".hidden" / "secret.torrent", torrent(SINGLE_INFO))
    (tmp_path / REJECTED_DIR).mkdir()
    write(tmp_path / REJECTED_DIR / "bad.torrent", b"junk")

    found = scan(tmp_path, now=now)

    assert [(item.name, item.path) for item in found.items] == [
        ("radarr/film.magnet", str(tmp_path / "radarr" / "film.magnet")),
        ("sonarr/show.torrent", str(tmp_path / "sonarr" / "show.torrent")),
        ("top.torrent", str(tmp_path / "top.torrent")),
    ]
    assert found.items[1].info_hash == sha1(bencode(MULTI_INFO))
    assert found.later == ("radarr/young.torrent",)
    assert found.too_deep == () and found.skipped == ()


def test_scan_goes_no_deeper_than_one_folder_and_through_no_linked_folder(
    tmp_path: Path, now: float
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    write(outside / "elsewhere.torrent", torrent(SINGLE_INFO))
    blackhole = tmp_path / "blackhole"
    (blackhole / "sonarr" / "season 1").mkdir(parents=True)
    write(blackhole / "sonarr" / "season 1" / "deep.torrent", torrent(SINGLE_INFO))
    write(blackhole / "sonarr" / "season 1" / "notes.txt", b"not a torrent")
    (blackhole / "sonarr" / ".partial").mkdir()
    write(blackhole / "sonarr" / ".partial" / "hidden.torrent", torrent(SINGLE_INFO))
    (blackhole / "linked").symlink_to(outside)

    found = scan(blackhole, now=now)

    assert found.items == () and found.later == ()
    assert found.too_deep == ("sonarr/season 1/deep.torrent",)
    assert [name for name, _ in found.skipped] == ["linked"]
    assert "symbolic link" in found.skipped[0][1]


def test_scan_names_a_subfolder_whose_name_is_not_utf8_as_printable_text(
    tmp_path: Path, now: float
) -> None:
    folder = os.fsencode(tmp_path) + b"/caf\xe9"
    os.mkdir(folder)
    with open(folder + b"/show.torrent", "wb") as stream:
        stream.write(torrent(SINGLE_INFO))

    (item,) = scan(tmp_path, now=now).items

    assert item.name == "caf\\xe9/show.torrent"
    assert os.fsencode(item.path) == folder + b"/show.torrent"


def test_scan_of_a_missing_folder_returns_nothing(tmp_path: Path, now: float) -> None:
    assert scan_blackhole(tmp_path / "missing", now=now) == ()
    write(tmp_path / "file", b"x")
    assert scan_blackhole(tmp_path / "file", now=now) == ()


# --- file_away --------------------------------------------------------------------


def test_file_away_moves_the_file_into_the_subfolder(tmp_path: Path) -> None:
    source = write(tmp_path / "a.torrent", b"one")

    moved = file_away(source, tmp_path, SUBMITTED_DIR)

    assert moved == tmp_path / SUBMITTED_DIR / "a.torrent"
    assert moved.read_bytes() == b"one"
    assert not source.exists()
    assert not (tmp_path / SUBMITTED_DIR / "a.torrent.why.txt").exists()


def test_file_away_of_a_file_in_a_subfolder_moves_it_into_that_subfolder_s_own(
    tmp_path: Path,
) -> None:
    (tmp_path / "sonarr").mkdir()
    source = write(tmp_path / "sonarr" / "a.torrent", b"one")

    moved = file_away(source, tmp_path, REJECTED_DIR, "not bencoded")

    assert moved == tmp_path / "sonarr" / REJECTED_DIR / "a.torrent"
    assert (tmp_path / "sonarr" / REJECTED_DIR / "a.torrent.why.txt").exists()
    assert not (tmp_path / REJECTED_DIR).exists()


def test_file_away_never_overwrites_an_earlier_file(tmp_path: Path) -> None:
    rejected = tmp_path / REJECTED_DIR
    rejected.mkdir()
    write(rejected / "a.torrent", b"first")
    write(rejected / "a (2).torrent", b"second")

    moved = file_away(write(tmp_path / "a.torrent", b"third"), tmp_path, REJECTED_DIR)

    assert moved == rejected / "a (3).torrent"
    assert [p.read_bytes() for p in sorted(rejected.iterdir())] == [b"second", b"third", b"first"]


def test_file_away_writes_the_note_beside_the_file(tmp_path: Path) -> None:
    rejected = tmp_path / REJECTED_DIR
    rejected.mkdir()
    write(rejected / "bad.torrent.why.txt", b"an old note")

    moved = file_away(write(tmp_path / "bad.torrent", b"x"), tmp_path, REJECTED_DIR, "not bencoded")

    assert moved == rejected / "bad (2).torrent"
    assert (rejected / "bad (2).torrent.why.txt").read_text() == "not bencoded\n"
    assert (rejected / "bad.torrent.why.txt").read_bytes() == b"an old note"


def test_file_away_of_a_vanished_file_raises_an_item_error(tmp_path: Path) -> None:
    with pytest.raises(ItemError, match=r"could not move gone\.torrent") as raised:
        file_away(tmp_path / "gone.torrent", tmp_path, SUBMITTED_DIR)
    assert raised.value.hint


# -- reading again at submit time -------------------------------------------------------


def test_reread_gives_the_hashed_bytes_and_refuses_a_link_a_fifo_or_another_torrent(
    tmp_path: Path,
) -> None:
    data = torrent(SINGLE_INFO)
    path = tmp_path / "a.torrent"
    path.write_bytes(data)
    info_hash = parse_torrent(data)[0]
    content = reread(path, info_hash, "a.torrent")
    assert content.data == data and content.identity[1] == path.stat().st_ino
    other = tmp_path / "elsewhere.torrent"
    other.write_bytes(data)  # even the same torrent: a link is never followed
    path.unlink()
    path.symlink_to(other)
    with pytest.raises(BlackholeChangedError, match="symbolic link"):
        reread(path, info_hash, "a.torrent")
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(BlackholeChangedError, match="not a regular file"):
        reread(path, info_hash, "a.torrent")
    path.unlink()
    path.write_bytes(torrent(SINGLE_INFO | {b"name": b"other.iso"}))
    with pytest.raises(BlackholeChangedError, match="another torrent"):
        reread(path, info_hash, "a.torrent")
    path.unlink()
    with pytest.raises(BlackholeChangedError, match="gone"):
        reread(path, info_hash, "a.torrent")


def test_file_away_moves_only_the_file_that_was_read(tmp_path: Path) -> None:
    path = tmp_path / "a.torrent"
    path.write_bytes(torrent(SINGLE_INFO))
    identity = reread(path, parse_torrent(path.read_bytes())[0], "a.torrent").identity
    replacement = tmp_path / "new.torrent"
    replacement.write_bytes(b"another file")
    replacement.replace(path)
    with pytest.raises(BlackholeChangedError, match="took its place"):
        file_away(path, tmp_path, SUBMITTED_DIR, identity=identity)
    assert path.read_bytes() == b"another file"
    assert not (tmp_path / SUBMITTED_DIR).exists()
