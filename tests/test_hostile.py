"""Hostile input end to end: names from the server, blackhole files, a full disk, a bad journal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.mirror_env import Mirror

HOSTILE_NAMES = [
    "..",
    ".",
    "a\\b",
    "C:evil",
    "con.txt",
    "-rf",
    "tab\there",
    "bell\x07\x7f",
    "é" * 127 + ".mkv",  # 254 UTF-8 bytes of name, plus an extension
    "caf\u00e9.mkv",  # NFC
    "cafe\u0301.mkv",  # NFD twin
    "same.mkv",
    "same.mkv",
    "SAME.mkv",
    ".putio-mirror-staging",
    "trailing dot.",
]


def everything_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*")}


def test_hostile_remote_names_stay_inside_the_download_folder_distinct_and_stable(
    mirror: Mirror,
) -> None:
    folder = mirror.fake.add_folder("..")
    ids = [
        mirror.fake.add_file(name, parent_id=folder, content=name.encode())
        for name in HOSTILE_NAMES
    ]
    ids += [mirror.fake.add_file(name, content=b"top " + name.encode()) for name in HOSTILE_NAMES]
    outside_before = everything_under(mirror.root) - everything_under(mirror.downloads)
    assert mirror.run("files", "download").code == 0
    local = mirror.local_files()
    assert len(local) == len(ids), "every remote file has its own local file"
    assert sorted(local.values()) == sorted(mirror.fake.file_content(i) for i in ids)
    for relative in local:
        resolved = (mirror.downloads / relative).resolve()
        assert resolved.is_relative_to(mirror.downloads.resolve())
        assert all(len(part.encode()) <= 255 for part in Path(relative).parts)
        assert not Path(relative).parts[-1].startswith("-")
    outside_after = everything_under(mirror.root) - everything_under(mirror.downloads)
    expected = {mirror.downloads, mirror.journal.parent}
    new_outside = {p for p in outside_after - outside_before - expected if p.parent not in expected}
    assert new_outside == set(), "nothing written outside the download folder"
    first = sorted(local)
    assert mirror.run("files", "download").code == 0
    assert sorted(mirror.local_files()) == first


def test_hostile_blackhole_files_are_rejected_with_reasons_and_never_crash(
    mirror: Mirror, tmp_path: Path
) -> None:
    secret = tmp_path / "outside-secret.torrent"
    secret.write_bytes(b"not yours")
    mirror.drop("garbage.torrent", b"\x00\xff" * 100)
    mirror.drop("notatorrent.torrent", b"d3:foo3:bare")
    mirror.drop("garbage.magnet", b"magnet:?xt=urn:btih:nothex")
    mirror.drop("huge.torrent", b"d" + b"0" * (11 * 1024 * 1024))
    os.symlink(secret, mirror.blackhole / "link.torrent")
    os.utime(mirror.blackhole / "link.torrent", (0, 0), follow_symlinks=False)
    result = mirror.run("torrents", "add")
    assert result.code == 11, result.err  # done, but the rejections need a person
    rejected = mirror.blackhole / ".rejected"
    names = {p.name for p in rejected.iterdir() if not p.name.endswith(".why.txt")}
    assert names == {
        "garbage.torrent",
        "notatorrent.torrent",
        "garbage.magnet",
        "huge.torrent",
        "link.torrent",
    }
    assert all((rejected / f"{name}.why.txt").read_text().strip() for name in names)
    assert secret.read_bytes() == b"not yours", "the link's target is untouched"
    assert [r for r in mirror.fake.requests if r.mutating] == []


def test_file_still_being_written_waits_for_the_next_run(mirror: Mirror) -> None:
    mirror.blackhole.mkdir(exist_ok=True)
    (mirror.blackhole / "fresh.torrent").write_bytes(b"d4:info")  # just written, half done
    assert mirror.run("torrents", "add").code == 0
    assert (mirror.blackhole / "fresh.torrent").exists()
    assert not (mirror.blackhole / ".rejected").exists()


def test_no_room_for_a_file_skips_it_with_a_reason_and_loses_nothing(mirror: Mirror) -> None:
    small = mirror.fake.add_file("small.bin", size=1000)
    mirror.fake.add_file("huge.bin", size=10_000_000)
    mirror.write_config(download={"free_space_margin_mb": 0})
    free = os.statvfs(mirror.root).f_bavail * os.statvfs(mirror.root).f_frsize
    mirror.fake.add_file("bigger-than-disk.bin", size=free + 10**9)
    result = mirror.run("files", "download")
    assert result.code == 1
    assert "bigger-than-disk.bin" in result.err and "free" in result.err.lower()
    local = mirror.local_files()
    assert local["small.bin"] == mirror.fake.file_content(small)
    assert "huge.bin" in local


def test_corrupt_journal_stops_with_exit_7_and_a_hint(mirror: Mirror) -> None:
    mirror.journal.parent.mkdir(parents=True)
    mirror.journal.write_bytes(b"this is not a database" * 100)
    result = mirror.run("sync")
    assert result.code == 7
    assert "Hint:" in result.err
    assert mirror.journal.read_bytes() == b"this is not a database" * 100


def test_crash_report_never_holds_the_token(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    from putio_mirror.cli.crash import write_crash_report

    monkeypatch.setenv("XDG_STATE_HOME", str(mirror.root / "xdg"))
    monkeypatch.setenv("PUTIO_TOKEN", mirror.fake.token)
    try:
        raise RuntimeError(f"boom with {mirror.fake.token} inside")
    except RuntimeError as error:
        report = write_crash_report(error)
    text = report.read_text()
    assert "RuntimeError" in text and mirror.fake.token not in text


@pytest.mark.parametrize("size", [300_000, 40 * 1024 * 1024], ids=["single", "segmented"])
def test_crc_mismatch_is_never_placed_retried_from_zero_once_then_reported(
    mirror: Mirror, size: int
) -> None:
    file_id = mirror.fake.add_file("corrupt.mkv", size=size)
    item = mirror.fake.world.tree.get(file_id)
    assert item is not None
    item.crc32 = "deadbeef"  # put.io's listing and the bytes no longer agree
    result = mirror.run("files", "download")
    assert result.code == 1 and "CRC32" in result.err
    assert not (mirror.downloads / "corrupt.mkv").exists()
    served = sum(
        int(r.headers.get("Range", "bytes=0-").split("=")[1].split("-")[0] or 0) == 0
        for r in mirror.fake.requests
        if r.host == "node"
    )
    assert served == 2, "fetched from zero twice: the first try and one retry"
    # the same bytes twice: put.io's copy is damaged, nothing here would cure it
    assert "the same bytes twice" in result.err and "remove it" not in result.err
    history = mirror.run("history", "--run", "1").out
    assert "failed" in history and "download" in history
