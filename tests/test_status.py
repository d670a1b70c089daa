"""`putio-mirror status [--json]`: transfers, downloads in flight, failures, last run, windows."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from putio_mirror.journal.store import Journal
from tests.mirror_env import Mirror


def status_json(mirror: Mirror) -> dict[str, Any]:
    result = mirror.run("status", "--json")
    assert result.code == 0, result.err
    document: dict[str, Any] = json.loads(result.out)
    return document


def test_status_lists_transfers_with_progress_and_those_in_error(mirror: Mirror) -> None:
    mirror.fake.add_transfer("Movie", status="DOWNLOADING", percent_done=42, size=3 * 2**30)
    mirror.fake.add_transfer("Broken", status="ERROR", error_message="tracker down")
    out = mirror.run("status").out
    assert "put.io transfers: 2, 1 in ERROR (they need you" in out
    assert "Movie [DOWNLOADING] 42% 3 GiB" in out
    assert "Broken [ERROR] — tracker down" in out
    (movie, broken) = status_json(mirror)["transfers"]
    assert movie["percent_done"] == 42 and broken["error_message"] == "tracker down"


def test_status_without_journal_or_token_says_so_creates_nothing_and_exits_0(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    document = yaml.safe_load(mirror.config.read_text())
    del document["putio"]["token_file"]
    mirror.config.write_text(yaml.safe_dump(document))
    result = mirror.run("status")
    assert result.code == 0, result.err
    assert "put.io transfers: unknown (no put.io token" in result.out
    assert "Last run: none yet" in result.out and "Downloading here now: nothing" in result.out
    assert "Windows: downloads may run at any time" in result.out
    assert not mirror.journal.exists() and mirror.fake.requests == []


def test_status_shows_failed_files_with_their_next_try_and_the_last_run(mirror: Mirror) -> None:
    file_id = mirror.fake.add_file("x.bin", size=1000)
    assert mirror.run("sync").code == 0
    with Journal.open(f"sqlite:///{mirror.journal}") as journal:
        failed_at = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
        journal.reset_download(file_id)
        journal.record_failure(file_id, failed_at, "the disk said no")
    document = status_json(mirror)
    (failing,) = document["failing"]
    assert failing["name"] == "x.bin" and failing["failures"] == 1
    assert failing["last_error"] == "the disk said no"
    assert datetime.fromisoformat(failing["next_try"]) > failed_at  # 10 minutes later
    last = document["last_run"]
    assert last["command"] == f"sync on {socket.gethostname()}" and last["exit_code"] == 0
    assert last["host"] == socket.gethostname()
    out = mirror.run("status").out
    assert "x.bin: 1 failure(s), next try after" in out and "the disk said no" in out
    assert f"Last run: #1 sync on {socket.gethostname()}, started" in out and "exit 0" in out


def test_status_while_a_sync_downloads_shows_the_file_bytes_and_host(mirror: Mirror) -> None:
    mirror.fake.add_file("big.bin", size=8 * 2**20)
    mirror.fake.node_bytes_per_second = 512 * 1024
    mirror.write_config(download={"connections": 1, "read_timeout_seconds": 20})
    env = {k: v for k, v in os.environ.items() if k not in ("PUTIO_TOKEN", "PUTIO_MIRROR_CONFIG")}
    process = subprocess.Popen(
        [sys.executable, "-m", "putio_mirror", "--config", str(mirror.config), "sync"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        seen: dict[str, Any] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            if mirror.journal.exists():
                flying = status_json(mirror)["in_flight"]
                if flying and flying[0]["bytes_done"] > 0:
                    seen = flying[0]
                    break
            time.sleep(0.2)
        assert seen, "status never saw the download in flight"
        assert seen["target"].endswith("big.bin") and seen["size"] == 8 * 2**20
        assert seen["host"] == socket.gethostname()
        assert 0 < seen["bytes_done"] < 8 * 2**20
        assert status_json(mirror)["last_run"]["exit_code"] is None  # the run goes on
        assert "Downloading here now:" in mirror.run("status").out
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 130
    after = status_json(mirror)
    assert after["in_flight"] == [] and after["staged_bytes"] > 0


def test_status_says_what_the_last_sync_found_needs_you_until_a_sync_finds_it_solved(
    mirror: Mirror,
) -> None:
    """history folds the timer's runs that only repeat what needs a person and points at
    status: status must say what, with the way out."""
    mirror.blackhole.mkdir(parents=True, exist_ok=True)
    mirror.fake.add_file("notes.txt", content=b"put.io's notes")
    mirror.downloads.mkdir(parents=True)
    (mirror.downloads / "notes.txt").write_bytes(b"my own notes, longer")
    for _ in range(2):
        assert mirror.run("--quiet", "sync").code == 11
    history = mirror.run("history").out
    assert "2 runs with nothing to do" in history and "see `putio-mirror status`" in history
    out = mirror.run("status").out
    assert "Needs you (found by run #2, sync on " in out
    assert "notes.txt: a different local file is in the way" in out
    assert "hint: move or rename it" in out
    (needs,) = status_json(mirror)["needs_you"]
    assert needs["message"].startswith("notes.txt:") and needs["hint"].startswith("move")
    assert "notes.txt: a different local file" in mirror.run("history", "--run", "2").out

    (mirror.downloads / "notes.txt").rename(mirror.root / "mine.txt")
    assert mirror.run("--quiet", "sync").code == 0
    assert "Needs you" not in mirror.run("status").out
    assert status_json(mirror)["needs_you"] == []


@pytest.mark.parametrize("in_folder", [True, False], ids=["folder item", "lone file"])
def test_a_stranger_s_file_that_appears_during_the_download_is_said_by_the_run_and_status(
    mirror: Mirror, in_folder: bool
) -> None:
    """The plan saw the way free; the file came while the node stalled the download, so
    only placing finds it (an item's placement, or a lone file's download): the run and
    status name it, status until it is moved and the file placed."""
    folder = mirror.fake.add_folder("Show") if in_folder else 0
    big = mirror.fake.add_file("Show.mkv", folder, size=300_000)
    if in_folder:
        mirror.fake.add_file("Show.nfo", folder, size=100)
    mirror.fake.node_fault(big, stall_after=1_000)
    relative = "Show/Show.mkv" if in_folder else "Show.mkv"
    stranger = mirror.downloads / relative
    part = mirror.downloads / ".putio-mirror-staging" / f"{big}.part"

    def drop_it() -> None:
        deadline = time.monotonic() + 20
        while not part.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        stranger.parent.mkdir(parents=True, exist_ok=True)
        stranger.write_bytes(b"not put.io's")

    dropping = threading.Thread(target=drop_it)
    dropping.start()
    run = mirror.run("--quiet", "sync")
    dropping.join()
    assert run.code != 0 and f"{stranger}: a different file is already there" in run.err
    out = mirror.run("status").out
    assert f"{relative}: a different local file is in the way" in out
    assert "hint: move or rename it" in out
    again = mirror.run("--quiet", "sync")  # the verified copy waits; placing it fails again
    assert again.code != 0 and f"{relative}: a different local" in mirror.run("status").out

    stranger.rename(mirror.root / "mine.mkv")
    assert mirror.run("--quiet", "sync").code == 0
    assert (mirror.downloads / relative).stat().st_size == 300_000
    assert status_json(mirror)["needs_you"] == []


def test_status_marks_the_transfers_putio_mirror_did_not_add_and_leaves_alone(
    mirror: Mirror,
) -> None:
    # Seeding on put.io after a sync that cancels seeding: a person must see why.
    mirror.drop("Ours.magnet", f"magnet:?xt=urn:btih:{'a' * 40}&dn=Ours\n".encode())
    assert mirror.run("torrents", "add").code == 0
    mirror.fake.add_transfer("Theirs", status="SEEDING", size=2**30)
    out = mirror.run("status").out
    assert (
        "put.io transfers: 2 (1 not added by putio-mirror, left as it is: "
        "transfers.manage_foreign: true grooms it too)" in out
    ), out
    assert "Theirs [SEEDING] 1 GiB (not added by putio-mirror)" in out
    (ours,) = [line for line in out.splitlines() if "Ours" in line]
    assert "not added" not in ours
    by_name = {t["name"]: t for t in status_json(mirror)["transfers"]}
    assert not by_name["Theirs"]["added_by_putio_mirror"]
    assert by_name["Ours"]["added_by_putio_mirror"]
    mirror.write_config(transfers={"manage_foreign": True})
    assert "not added" not in mirror.run("status").out
