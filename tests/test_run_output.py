"""What a run prints for the person who reads it at 7 a.m.: the plan first, honest byte
counts, when a closed window opens, and nothing at all under --quiet unless it matters."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from putio_mirror.app.report import RunReport
from putio_mirror.app.run import Request, Runtime, run_once
from putio_mirror.cli.anywhere import hoisted
from putio_mirror.cli.output import byte_lines
from putio_mirror.config.settings import load_settings
from putio_mirror.core.plan import Plan
from tests.mirror_env import Mirror


def closed_window() -> str:
    """A one-minute window twelve hours from now: closed for this whole test."""
    start = datetime.now() + timedelta(hours=12)
    end = start + timedelta(minutes=1)
    return f"{start:%H:%M}-{end:%H:%M}"


def test_quiet_run_with_nothing_to_do_prints_nothing(mirror: Mirror) -> None:
    mirror.blackhole.mkdir(parents=True, exist_ok=True)  # a missing one needs a person
    mirror.fake.add_file("movie.mkv", size=1000)
    assert mirror.run("sync").code == 0
    quiet = mirror.run("--quiet", "sync")
    assert quiet.code == 0 and quiet.out == "" and quiet.err == ""


def test_quiet_run_still_reports_a_failure(mirror: Mirror) -> None:
    mirror.fake.add_file("movie.mkv", size=1000)
    (mirror.downloads / "movie.mkv").mkdir(parents=True)  # a folder in the way of the file
    result = mirror.run("--quiet", "sync")
    assert result.code != 0
    assert "movie.mkv" in result.err and "Result:" in result.out


def test_a_failure_is_told_once_on_the_console_and_kept_in_the_log_file(mirror: Mirror) -> None:
    mirror.fake.add_file("movie.mkv", size=1000)
    (mirror.downloads / "movie.mkv").mkdir(parents=True)  # a folder in the way of the file
    in_the_way = f"{mirror.downloads / 'movie.mkv'}: a different file is already there"
    told = mirror.run("--quiet", "sync").err
    assert told.count("needs you: ") == told.count(in_the_way) == 1, told
    assert "(movie.mkv) failed" not in told
    log_file = mirror.root / "mirror.log"
    mirror.write_config(paths={"log_file": str(log_file)})
    again = mirror.run("sync").err
    assert again.count("needs you: ") == again.count(in_the_way) == 1, again
    assert "(movie.mkv) failed" not in again
    assert "(movie.mkv) failed: " in log_file.read_text()


def test_the_group_options_may_follow_the_command_as_a_crontab_writes_them(
    mirror: Mirror,
) -> None:
    mirror.blackhole.mkdir(parents=True, exist_ok=True)
    mirror.fake.add_file("movie.mkv", size=1000)
    loud = mirror.run("files", "download", "-v")
    assert loud.code == 0 and " INFO " in loud.err, loud.err
    quiet = mirror.run("sync", "--quiet")
    assert quiet.code == 0 and quiet.out == "" and quiet.err == ""


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["sync", "-q", "--dry-run"], ["-q", "sync", "--dry-run"]),
        (
            ["-c", "a.yaml", "sync", "-vv", "--config", "b.yaml"],
            ["-c", "a.yaml", "-vv", "--config", "b.yaml", "sync"],
        ),
        (
            ["history", "--config=b.yaml", "--limit", "3"],
            ["--config=b.yaml", "history", "--limit", "3"],
        ),
        (["transfers", "retry", "--", "-q"], ["transfers", "retry", "--", "-q"]),
        (["--quiet", "status"], ["--quiet", "status"]),
        (["-c", "sync", "status", "-q"], ["-c", "sync", "-q", "status"]),  # a file named sync
    ],
)
def test_hoisting_moves_only_the_group_options_after_the_command(
    words: list[str], expected: list[str]
) -> None:
    commands = frozenset({"sync", "history", "transfers", "status"})
    assert hoisted(words, commands) == expected


def test_a_run_says_what_it_downloaded_and_verified(mirror: Mirror) -> None:
    mirror.fake.add_file("a.mkv", size=3000)
    mirror.fake.add_file("b.mkv", size=2000)
    result = mirror.run("files", "download")
    assert result.code == 0
    assert f"Downloaded and verified 2 files (4.88 KiB) into {mirror.downloads}." in result.out
    assert result.out.index("Plan:") < result.out.index("Result:")


def test_the_plan_is_told_before_any_work(mirror: Mirror) -> None:
    mirror.fake.add_file("a.mkv", size=3000)
    seen: list[tuple[int, list[Path]]] = []

    def told(plan: Plan) -> None:
        seen.append((len(plan), list(mirror.downloads.rglob("*.mkv"))))

    settings = load_settings(mirror.config, {})
    run_once(Runtime(settings, on_plan=told), Request("sync"))
    assert seen == [(1, [])]
    assert (mirror.downloads / "a.mkv").exists()


def test_a_closed_window_defers_and_says_when_it_opens(mirror: Mirror) -> None:
    mirror.fake.add_file("a.mkv", size=3000)
    mirror.write_config(schedule={"windows": [closed_window()]})
    result = mirror.run("sync")
    assert result.code == 10
    assert "The download window is closed; it opens next" in result.out
    assert "Downloaded" not in result.out


def test_a_dry_run_honours_a_closed_window(mirror: Mirror) -> None:
    mirror.fake.add_file("a.mkv", size=3000)
    window = closed_window()
    mirror.write_config(schedule={"windows": [window]})
    result = mirror.run("sync", "--dry-run")
    assert result.code == 0
    assert f"The download window ({window}) is closed now" in result.err
    assert "would defer 1 download action(s)" in result.err


def test_bytes_of_unfinished_files_are_never_counted_as_downloaded(tmp_path: Path) -> None:
    report = RunReport(interrupted=True, bytes_downloaded=5 * 1024**2)
    report.verified_files, report.verified_bytes, report.verified_fetched = 1, 2 * 1024**2, 1024**2
    env = {"PUTIO_MIRROR_DOWNLOADS": str(tmp_path), "PUTIO_TOKEN": "t" * 20}
    settings = load_settings(None, env, check_paths=False)
    lines = byte_lines(report, settings)
    assert lines[0].startswith("Downloaded and verified 1 file (2 MiB)")
    assert lines[1].startswith("4 MiB more is in staging, not yet complete")


def test_verbose_shows_every_retry_so_an_outage_is_never_silence(mirror: Mirror) -> None:
    mirror.blackhole.mkdir(parents=True, exist_ok=True)
    film = mirror.fake.add_file("movie.mkv", size=1000)
    mirror.fake.inject("/v2/transfers/list", status=503, times=1)
    mirror.fake.node_fault(film, status=500, times=1)
    result = mirror.run("-v", "sync")
    assert result.code == 0, result.err
    assert "put.io GET transfers/list: put.io answered HTTP 503; retrying in" in result.err
    assert "(try 2 of 8)" in result.err
    assert re.search(rf"put.io file {film}: .* retrying in .* gives up after \d+ s", result.err)
    quiet = mirror.run("sync")  # without -v, a healed blip is not worth a line
    assert "retrying" not in quiet.err


def test_a_run_lists_what_it_did_a_few_of_each_kind(mirror: Mirror) -> None:
    folder = mirror.fake.add_folder("Show")
    for number in range(23):
        mirror.fake.add_file(f"e{number:02d}.mkv", folder, size=10)
    result = mirror.run("sync")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    downloads = [line for line in lines if line.startswith("  download ")]
    assert len(downloads) == 21, result.out
    assert downloads[-1].endswith("… and 3 more (`putio-mirror history` lists every one)")
    # the first 20 done, in the order they were done (parallel downloads finish in any order)
    shown = {line.split()[-1] for line in downloads[:-1]}
    assert len(shown) == 20 and shown <= {f"Show/e{number:02d}.mkv" for number in range(23)}
    assert "  place item  Show" in lines, result.out
    again = mirror.run("--quiet", "sync")
    assert (again.code, again.out) == (0, ""), again


def test_a_failure_is_told_once_under_quiet_then_only_reminded_to_a_person_asking(
    mirror: Mirror,
) -> None:
    """A timer's quiet runs mail only when a person is needed: a file waiting out its
    pause after a failure already told is said again to a person running by hand."""
    file_id = mirror.fake.add_file("movie.mkv", size=1000)
    item = mirror.fake.world.tree.get(file_id)
    assert item is not None
    item.crc32 = "deadbeef"  # put.io's listing and its bytes disagree: it fails each time
    told = mirror.run("--quiet", "sync")
    assert told.code == 1 and "failed: movie.mkv" in told.err
    waiting = mirror.run("--quiet", "sync")
    assert (waiting.code, waiting.out, waiting.err) == (0, "", "")
    by_hand = mirror.run("sync")
    assert "movie.mkv: failed 2 time(s)" in by_hand.out and "next try after" in by_hand.out


def test_a_local_file_in_the_way_needs_a_person_even_under_quiet(mirror: Mirror) -> None:
    """Never overwritten, so never mirrored until someone moves it: a 'needs you' line
    with the way out, each run, and exit 11, not a warning a log may swallow."""
    mirror.fake.add_file("movie.mkv", size=1000)
    mirror.downloads.mkdir(parents=True)
    (mirror.downloads / "movie.mkv").write_bytes(b"an older copy of mine")
    for _ in range(2):
        result = mirror.run("--quiet", "sync")
        assert result.code == 11 and result.out == ""
        assert "needs you: movie.mkv: a different local file is in the way" in result.err
        assert "hint: move or rename it" in result.err
    assert (mirror.downloads / "movie.mkv").read_bytes() == b"an older copy of mine"
