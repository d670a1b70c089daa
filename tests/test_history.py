"""`putio-mirror history`: names not keys, duration and bytes, folded empty runs, --json,
--failed, no token needed, an unknown run is an error."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from putio_mirror.core.errors import ExitCode
from putio_mirror.core.history import (
    Folded,
    RunStory,
    RunSummary,
    duration,
    fold,
    folded_line,
)
from tests.mirror_env import Mirror


def test_runs_show_duration_and_bytes_and_actions_show_names_and_notes(mirror: Mirror) -> None:
    folder = mirror.fake.add_folder("Show")
    mirror.fake.add_file("episode.mkv", folder, size=2048)
    assert mirror.run("files", "download").code == 0
    runs = mirror.run("history").out
    assert re.search(r"^#1 \S+ \S+ files download on \S+ \[exit 0\] \d+s, 2 KiB fetched: ", runs)
    actions = mirror.run("history", "--run", "1").out.splitlines()
    assert actions[0].startswith("#1 ")
    (download,) = [line for line in actions[1:] if " download " in line]
    assert "Show/episode.mkv" in download and "verified" in download
    assert not any(re.search(r"\w+:\d{3,}", line) for line in actions), "no internal keys"


def test_consecutive_runs_with_nothing_to_do_are_folded_into_one_line(mirror: Mirror) -> None:
    mirror.blackhole.mkdir(exist_ok=True)
    for _ in range(3):
        assert mirror.run("torrents", "add").code == 0
    mirror.fake.add_file("film.mkv", size=10)
    assert mirror.run("files", "download").code == 0
    assert mirror.run("torrents", "add").code == 0
    lines = mirror.run("history").out.splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith("#5 ") and "torrents add" in lines[0]
    assert lines[1].startswith("#4 ") and "files download" in lines[1]
    assert lines[2].startswith("#1–#3 3 runs with nothing to do")
    document = json.loads(mirror.run("history", "--json").out)
    assert [run.get("id") for run in document["runs"]] == [5, 4, None]
    assert document["runs"][2] == {"folded": [3, 2, 1]}
    assert document["runs"][1]["bytes_fetched"] == 10
    assert document["runs"][1]["duration_seconds"] >= 0
    assert mirror.run("history", "--limit", "1").out.count("\n") == 1


def test_failed_shows_only_what_failed_and_the_files_that_keep_failing(mirror: Mirror) -> None:
    broken = mirror.fake.add_file("broken.mkv", size=50_000)
    mirror.fake.add_file("fine.mkv", size=1000)
    mirror.write_config(download={"max_outage_seconds": 1, "parallel_files": 1})
    mirror.fake.node_fault(broken, status=500, times=10_000)
    assert mirror.run("sync").code == 1
    out = mirror.run("history", "--failed").out
    assert "#1 " in out and "failed      download broken.mkv" in out
    assert "fine.mkv" not in out
    assert "broken.mkv: 1 failure(s)" in out
    one = json.loads(mirror.run("history", "--run", "1", "--failed", "--json").out)
    assert [action["target"] for action in one["actions"]] == ["broken.mkv"]
    assert one["run"]["exit_code"] == 1 and one["run"]["failed"] == 1


def test_history_reads_the_journal_without_a_token(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mirror.fake.add_file("film.mkv", size=10)
    assert mirror.run("files", "download").code == 0
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("PUTIO_TOKEN", raising=False)
    document = yaml.safe_load(mirror.config.read_text())
    document["putio"]["token_file"] = str(tmp_path / "gone")
    mirror.config.write_text(yaml.safe_dump(document))
    result = mirror.run("history")
    assert result.code == 0, result.err
    assert "files download" in result.out


def test_an_unknown_run_is_an_error_with_exit_2(mirror: Mirror) -> None:
    mirror.fake.add_file("film.mkv", size=10)
    assert mirror.run("files", "download").code == 0
    result = mirror.run("history", "--run", "99")
    assert result.code == 2
    assert "no run #99 (the newest is #1)" in result.err


def _story(run_id: int, actions: int, exit_code: int | None = 0) -> RunStory:
    moment = datetime(2026, 11, 27, 1, 0, tzinfo=UTC) + timedelta(minutes=run_id)
    summary = RunSummary(run_id, "sync on h", "h", moment, moment, exit_code, None)
    return RunStory(summary, actions, 0, 0)


def test_fold_joins_only_two_or_more_consecutive_empty_runs_and_keeps_failed_ones() -> None:
    stories = [
        _story(9, 0),
        _story(8, 1),
        _story(7, 0),
        _story(6, 0),
        _story(5, 0, exit_code=4),  # nothing done, but it failed: never folded away
        _story(4, 0),
        _story(3, 0, exit_code=11),  # an hourly run repeating what needs a person
    ]
    entries = fold(stories, limit=10)
    shown = [
        [s.run.id for s in entry.runs] if isinstance(entry, Folded) else entry.run.id
        for entry in entries
    ]
    assert shown == [9, 8, [7, 6], 5, [4, 3]]
    assert len(fold(stories, limit=2)) == 2
    assert isinstance(entries[-1], Folded) and isinstance(entries[2], Folded)
    assert folded_line(entries[-1]).endswith(
        "(1 found something that needs you: see `putio-mirror status`)"
    )
    assert "needs you" not in folded_line(entries[2])


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (59.9, "59s"), (192, "3m 12s"), (7500, "2h 05m")]
)
def test_durations_read_as_people_say_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_a_run_refused_by_put_io_before_its_plan_is_in_history_with_the_reason(
    mirror: Mirror,
) -> None:
    mirror.fake.add_file("film.mkv", size=10)
    mirror.fake.revoke_token()
    refused = mirror.run("sync")
    assert refused.code == ExitCode.REMOTE_FATAL, refused.err
    (line,) = mirror.run("history").out.splitlines()
    assert line.startswith("#1 ") and "sync on " in line and "[exit 4]" in line
    assert "token" in line
    document = json.loads(mirror.run("history", "--json").out)
    (run,) = document["runs"]
    assert run["exit_code"] == ExitCode.REMOTE_FATAL and "token" in run["summary"]


def test_a_run_ended_by_an_outage_before_its_plan_is_in_history(mirror: Mirror) -> None:
    # put.io asks for an hour's pause: the client gives up at once rather than stall the run
    mirror.fake.inject("*", status=503, times=100, retry_after="3600")
    ended = mirror.run("sync")
    assert ended.code == ExitCode.UNREACHABLE, ended.err
    document = json.loads(mirror.run("history", "--json").out)
    (run,) = document["runs"]
    assert run["exit_code"] == ExitCode.UNREACHABLE and run["finished_at"] is not None
    assert "put.io" in run["summary"]
