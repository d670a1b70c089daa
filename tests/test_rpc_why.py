"""Why an RPC item does not come, told to Sonarr: the real ``serve`` against the fake
put.io, a real journal and a Transmission client. Sonarr turns any non-empty
``errorString`` into a warning that shows the text and keeps waiting (it never fails a
Transmission item by itself), so the text must say what is wrong and what to do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from putio_mirror.core.errors import ExitCode
from putio_mirror.core.state import Policy, Snapshot
from putio_mirror.fakeputio import FakePutio
from putio_mirror.fakeputio.transfers import ACTIVE
from putio_mirror.journal.store import Journal
from putio_mirror.rpc.board import Board
from putio_mirror.rpc.fields import Outage
from tests.conftest import TorrentFactory
from tests.mirror_env import Mirror
from tests.rpc_env import Client, serving, url_of, wait_for

FIELDS = ["hashString", "status", "error", "errorString", "leftUntilDone", "percentDone"]


def only_item(client: Client) -> dict[str, Any]:
    (item,) = client.ok("torrent-get", fields=FIELDS)["torrents"]
    return item


def finish_with_a_damaged_file(fake: FakePutio, name: str) -> None:
    """Finish every transfer, put.io's CRC32 of the file ``name`` not matching its bytes
    (set before any listing can show the file)."""
    with fake.world.lock:
        for _ in ACTIVE:
            fake.world.tick()
        (item,) = [item for item in fake.world.tree.every_item() if item.name == name]
        item.crc32 = "deadbeef"


def failures_of(mirror: Mirror) -> int:
    with Journal.open(f"sqlite:///{mirror.journal}") as journal:
        records = journal.facts().downloads.values()
        return max((record.failures for record in records), default=0)


def test_a_file_whose_put_io_copy_looks_damaged_is_told_not_shown_as_downloading(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    data = torrent_bytes("Show.S01E02", files=[("Show.S01E02.mkv", 3000), ("Show.nfo", 100)])
    with serving(mirror) as server:
        client = Client(url_of(server))
        client.add_torrent(data, paused=False)
        wait_for(lambda: fake_putio.transfers())
        finish_with_a_damaged_file(fake_putio, "Show.S01E02.mkv")
        wait_for(lambda: failures_of(mirror) >= 2)  # fetched twice from zero, both wrong
        item = wait_for(lambda: (row := only_item(client))["errorString"] and row, timeout=5)
    assert "damaged" in item["errorString"] and "Show.S01E02.mkv" in item["errorString"]
    assert "blocklist" in item["errorString"]  # what to do about it, in Sonarr's words
    assert item["error"] == 3 and item["leftUntilDone"] > 0


TV = {"download-dir": "/downloads/tv"}  # Sonarr's category folder, mapped into ours


def item_named(client: Client, name: str) -> dict[str, Any]:
    fields = [*FIELDS, "name"]
    (item,) = [
        row for row in client.ok("torrent-get", fields=fields)["torrents"] if row["name"] == name
    ]
    return item


def placed(client: Client, name: str) -> bool:
    return item_named(client, name)["leftUntilDone"] == 0


def has_transfer(fake: FakePutio, name: str) -> bool:
    return any(transfer["name"] == name for transfer in fake.transfers())


def finish(fake: FakePutio) -> None:
    with fake.world.lock:
        for _ in ACTIVE:
            fake.world.tick()


def test_a_long_put_io_outage_is_a_warning_on_the_items_waiting_for_it_and_clears_after(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    with serving(mirror, poll_seconds=0.1) as server:
        client = Client(url_of(server))
        client.add_torrent(torrent_bytes("Fine.S01E01"), paused=False, **TV)
        wait_for(lambda: fake_putio.transfers())
        finish(fake_putio)
        wait_for(lambda: placed(client, "Fine.S01E01"))
        client.add_torrent(torrent_bytes("Stuck.S01E02"), paused=False, **TV)
        wait_for(lambda: has_transfer(fake_putio, "Stuck.S01E02"))
        # put.io down for maintenance: every call answered 503 with an hour's Retry-After
        fake_putio.inject("*", status=503, times=1_000_000, retry_after="3600")
        stuck = wait_for(lambda: (row := item_named(client, "Stuck.S01E02"))["errorString"] and row)
        fine = item_named(client, "Fine.S01E01")
        fake_putio.heal()
        cleared = wait_for(
            lambda: not (row := item_named(client, "Stuck.S01E02"))["errorString"] and row
        )
    assert "put.io has not answered since" in stuck["errorString"]
    assert "503" in stuck["errorString"] and "retrying" in stuck["errorString"]
    assert stuck["error"] in (1, 2)  # a warning that passes by itself: never to blocklist
    assert stuck["leftUntilDone"] > 0
    assert fine["errorString"] == "" and fine["error"] == 0 and fine["leftUntilDone"] == 0
    assert cleared["error"] == 0


def test_a_stranger_s_file_in_the_way_is_told_with_what_to_do_and_clears_once_moved(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    show = torrent_bytes("Show.S01E03", files=[("Show.S01E03.mkv", 3000), ("Show.nfo", 100)])
    stranger = mirror.downloads / "tv" / "Show.S01E03" / "Show.S01E03.mkv"
    stranger.parent.mkdir(parents=True)
    stranger.write_bytes(b"not put.io's")
    # put.io's transfer is cleaned meanwhile (nothing of it to fetch): the periodic sync
    # is the one that finds the way free
    every_6_s = {"schedule": {"watch_interval_minutes": 0.1}}
    with serving(mirror, sections=every_6_s, poll_seconds=0.1) as server:
        client = Client(url_of(server))
        client.add_torrent(show, paused=False, **TV)
        client.add_torrent(torrent_bytes("Fine.S01E04"), paused=False, **TV)
        wait_for(lambda: len(fake_putio.transfers()) == 2)
        finish(fake_putio)
        stuck = wait_for(lambda: (row := item_named(client, "Show.S01E03"))["errorString"] and row)
        wait_for(lambda: placed(client, "Fine.S01E04"))
        fine = item_named(client, "Fine.S01E04")
        stranger.rename(mirror.root / "moved-away.mkv")
        done = wait_for(lambda: placed(client, "Show.S01E03") and item_named(client, "Show.S01E03"))
    assert "in the way" in stuck["errorString"] and "Show.S01E03.mkv" in stuck["errorString"]
    assert "move or rename it" in stuck["errorString"]  # what to do
    assert stuck["error"] == 3 and stuck["leftUntilDone"] > 0
    assert fine["errorString"] == "" and fine["error"] == 0
    assert done["errorString"] == "" and done["error"] == 0


def test_a_full_disk_is_told_with_the_room_wanted_and_clears_once_there_is_room(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    with serving(mirror, poll_seconds=0.1) as server:
        client = Client(url_of(server))
        client.add_torrent(torrent_bytes("Fine.S01E05"), paused=False, **TV)
        wait_for(lambda: fake_putio.transfers())
        finish(fake_putio)
        wait_for(lambda: placed(client, "Fine.S01E05"))
    no_room = {"download": {"free_space_margin_mb": 10**12}}  # more than any disk has
    with serving(mirror, sections=no_room, poll_seconds=0.1) as server:
        client = Client(url_of(server))
        client.add_torrent(torrent_bytes("Big.S01E06"), paused=False, **TV)
        wait_for(lambda: has_transfer(fake_putio, "Big.S01E06"))
        finish(fake_putio)
        stuck = wait_for(lambda: (row := item_named(client, "Big.S01E06"))["errorString"] and row)
        fine = item_named(client, "Fine.S01E05")
    with serving(mirror, poll_seconds=0.1) as server:  # room made
        client = Client(url_of(server))
        done = wait_for(lambda: placed(client, "Big.S01E06") and item_named(client, "Big.S01E06"))
    assert "room" in stuck["errorString"] and "free" in stuck["errorString"]
    assert stuck["error"] == 3 and stuck["leftUntilDone"] > 0
    assert fine["errorString"] == "" and fine["leftUntilDone"] == 0
    assert done["errorString"] == "" and done["error"] == 0


def arm_a_stall(fake: FakePutio, name: str) -> int:
    """Finish every transfer and make the node stall the first GET of the file ``name``
    (armed before any listing can show it); return its id."""
    with fake.world.lock:
        for _ in ACTIVE:
            fake.world.tick()
        (item,) = [item for item in fake.world.tree.every_item() if item.name == name]
        fake.node_fault(item.id, stall_after=1_000)
    return item.id


def test_a_stranger_s_file_dropped_during_the_download_is_told_and_clears_once_moved(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    show = torrent_bytes("Show.S01E07", files=[("Show.S01E07.mkv", 300_000), ("Show.nfo", 100)])
    stranger = mirror.downloads / "tv" / "Show.S01E07" / "Show.S01E07.mkv"
    every_6_s = {"schedule": {"watch_interval_minutes": 0.1}}
    with serving(mirror, sections=every_6_s, poll_seconds=0.1) as server:
        client = Client(url_of(server))
        client.add_torrent(show, paused=False, **TV)
        wait_for(lambda: fake_putio.transfers())
        file_id = arm_a_stall(fake_putio, "Show.S01E07.mkv")
        # the plan saw the way free; while the node stalls the download, a file appears
        part = mirror.downloads / ".putio-mirror-staging" / f"{file_id}.part"
        wait_for(part.exists)
        stranger.parent.mkdir(parents=True)
        stranger.write_bytes(b"not put.io's")
        stuck = wait_for(lambda: (row := item_named(client, "Show.S01E07"))["errorString"] and row)
        stranger.rename(mirror.root / "moved-away.mkv")
        done = wait_for(lambda: placed(client, "Show.S01E07") and item_named(client, "Show.S01E07"))
    assert "in the way" in stuck["errorString"] and "Show.S01E07.mkv" in stuck["errorString"]
    assert "move or rename it" in stuck["errorString"]  # what to do
    assert stuck["error"] == 3 and stuck["leftUntilDone"] > 0
    assert done["errorString"] == "" and done["error"] == 0
    assert (mirror.downloads / "tv" / "Show.S01E07" / "Show.S01E07.mkv").stat().st_size == 300_000


def test_an_outage_the_journal_tells_of_is_a_warning_at_once_after_serve_restarts(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    """``serve`` restarted while put.io is out: its own first look spends minutes in the
    client's retries, but the journal's runs already say put.io did not answer (exit 8),
    so the items waiting for it say so from the first poll, and no more once it answers."""
    with serving(mirror, poll_seconds=0.1) as server:
        client = Client(url_of(server))
        client.add_torrent(torrent_bytes("Stuck.S01E08"), paused=False, **TV)
        wait_for(lambda: has_transfer(fake_putio, "Stuck.S01E08"))
    # put.io down for maintenance: the timer's sync finds it so and ends early (journaled)
    fake_putio.inject("*", status=503, times=1_000_000, retry_after="3600")
    assert mirror.run("sync").code == 8
    fake_putio.heal()
    fake_putio.outage(3600)  # still out: every connection reset, retried for minutes
    with serving(mirror, poll_seconds=0.1) as server:
        client = Client(url_of(server))
        stuck = wait_for(
            lambda: (row := item_named(client, "Stuck.S01E08"))["errorString"] and row, timeout=8
        )
        fake_putio.outage(0)  # back
        cleared = wait_for(
            lambda: not (row := item_named(client, "Stuck.S01E08"))["errorString"] and row
        )
    assert "put.io has not answered since" in stuck["errorString"]
    assert "503" in stuck["errorString"], "why, as the journal has it"
    assert stuck["error"] in (1, 2) and stuck["leftUntilDone"] > 0
    assert cleared["error"] == 0


T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def journal_run(journal: Journal, command: str, minute: int, code: ExitCode, summary: str) -> None:
    """Journal a run that began ``minute`` minutes after T0 and took one minute."""
    run_id = journal.start_run(command, T0 + timedelta(minutes=minute))
    journal.finish_run(run_id, T0 + timedelta(minutes=minute + 1), int(code), summary)


def test_the_runs_that_heard_nothing_from_put_io_since_it_last_answered_are_its_outage(
    tmp_path: Path,
) -> None:
    """Runs that say nothing of put.io between them (the door's own removals, a run
    stopped on request) neither end the outage nor tell of it; the board's own answered
    look ends it, as a run that heard from put.io does."""
    answered, silent = "sync on nas", "ended before its plan: put.io GET transfers/list failed"
    now = T0 + timedelta(minutes=45)
    with Journal.open(f"sqlite:///{tmp_path / 'journal.db'}") as journal:
        journal_run(journal, answered, 0, ExitCode.OK, "3 done, 0 failed")
        journal_run(journal, answered, 15, ExitCode.UNREACHABLE, f"{silent}: HTTP 503")
        journal_run(journal, "rpc torrent-remove", 20, ExitCode.OK, "1 done")
        journal_run(journal, answered, 30, ExitCode.UNREACHABLE, f"{silent}: HTTP 502")
        journal_run(
            journal, answered, 40, ExitCode.INTERRUPTED, "ended before its plan: interrupted"
        )
        board = Board(journal, Policy(), clock=lambda: now, stale_after=300)
        told = board.outage(now)
        board.refresh(Snapshot(), with_files=False)  # a look answered
        after_a_look = board.outage(now + timedelta(minutes=10))
        journal_run(journal, answered, 50, ExitCode.OK, "0 done, 0 failed")
        fresh = Board(journal, Policy(), clock=lambda: now, stale_after=300)
        after_a_run = fresh.outage(now + timedelta(minutes=60))
    why = "put.io GET transfers/list failed: HTTP 502"
    assert told == Outage(T0 + timedelta(minutes=15), why)
    assert after_a_look is None and after_a_run is None
