"""``serve`` between polls: what it asks put.io while items wait, and what it knows after a
restart, from the journal alone."""

from __future__ import annotations

import time

import pytest

from putio_mirror.fakeputio import FakePutio
from tests.conftest import TorrentFactory
from tests.mirror_env import Mirror
from tests.rpc_env import Client, serving, url_of, wait_for, watch_sync_over

FIELDS = ["hashString", "status", "leftUntilDone", "downloadDir", "name", "percentDone"]


def api_calls(fake: FakePutio, path: str) -> int:
    return sum(1 for entry in fake.requests if entry.host == "api" and entry.path == path)


def test_while_items_wait_put_io_s_transfers_are_watched_and_its_files_listed_only_when_one_is_done(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    with serving(mirror, poll_seconds=0.1) as server:
        client = Client(url_of(server))
        info_hash = client.add_torrent(torrent_bytes("Waiting"))["torrent-added"]["hashString"]
        wait_for(lambda: fake_putio.transfers())
        wait_for(watch_sync_over)  # the first sync, the one that lists put.io's files
        files_before = api_calls(fake_putio, "/v2/files/list")
        transfers_before = api_calls(fake_putio, "/v2/transfers/list")
        # put.io's transfers are looked at again and again (a pass at each poll; three
        # looks, so two at least began after the count), however slowly under load ...
        wait_for(lambda: api_calls(fake_putio, "/v2/transfers/list") >= transfers_before + 3)
        # ... and its files not listed meanwhile: nothing is done there
        assert api_calls(fake_putio, "/v2/files/list") == files_before
        fake_putio.finish_transfers()
        done = wait_for(
            lambda: (
                (item := client.ok("torrent-get", fields=FIELDS)["torrents"][0])
                and item["leftUntilDone"] == 0
                and item
            )
        )
    assert done["hashString"] == info_hash
    assert (mirror.downloads / "Waiting").is_file()


def test_after_a_restart_a_placed_item_reads_complete_though_put_io_forgot_it(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    data = torrent_bytes("Kept", files=[("Kept/a.mkv", 100), ("Kept/b.srt", 10)])
    folder = {"download-dir": str(mirror.downloads / "films")}
    with serving(mirror) as server:
        client = Client(url_of(server))
        client.add_torrent(data, **folder)
        wait_for(lambda: fake_putio.transfers())
        fake_putio.finish_transfers()
        wait_for(lambda: client.ok("torrent-get", fields=FIELDS)["torrents"][0]["percentDone"] == 1)
    for transfer in fake_putio.transfers():  # seeding over, transfer cleaned on put.io's side
        fake_putio.set_transfer(transfer["id"], status="COMPLETED")
    with serving(mirror, poll_seconds=3600) as server:
        (item,) = Client(url_of(server)).ok("torrent-get", fields=FIELDS)["torrents"]
    assert (item["downloadDir"], item["name"]) == (str(mirror.downloads / "films"), "Kept")
    assert (item["leftUntilDone"], item["percentDone"], item["status"]) == (0, 1, 0)


def test_an_item_the_filters_leave_wholly_out_reads_as_an_error_and_is_not_watched(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    data = torrent_bytes("Film.2024", files=[("Film.2024.mp4", 3000), ("Film.nfo", 10)])
    only_mkv = {"download": {"include": ["*.mkv"]}}
    with serving(mirror, sections=only_mkv, poll_seconds=0.1) as server:
        client = Client(url_of(server))
        client.add_torrent(data)
        wait_for(lambda: fake_putio.transfers())
        fake_putio.finish_transfers()
        fields = [*FIELDS, "errorString", "error"]
        # Sonarr shows the message as a warning, rather than "queued" for ever
        item = wait_for(
            lambda: (got := client.ok("torrent-get", fields=fields)["torrents"][0])["error"] and got
        )
        assert "download.include" in item["errorString"] and item["leftUntilDone"] > 0
        time.sleep(0.5)  # the passes asked for before it read so are over...
        wait_for(watch_sync_over)  # ...even on a loaded machine
        looks = api_calls(fake_putio, "/v2/transfers/list")
        time.sleep(1)
        # no pass every 0.1 s (ten in that second); one already queued may still come
        assert api_calls(fake_putio, "/v2/transfers/list") - looks <= 1
    assert not (mirror.downloads / "Film.2024").exists()


def test_a_plan_over_the_safety_limits_is_refused_and_serve_goes_on_answering(
    mirror: Mirror, fake_putio: FakePutio, caplog: pytest.LogCaptureFixture
) -> None:
    # A Sonarr backfill left more finished transfers seeding than max_cancels: the sync
    # refuses the plan, as a timer run does, but serve must not exit with it (its service
    # manager would restart it into the same refusal, and Sonarr would lose its client)
    for number in range(3):
        fake_putio.add_transfer(f"Seeding.{number}", status="SEEDING", hash=f"{number:040x}")
    sections = {"transfers": {"manage_foreign": True}, "safety": {"max_cancels": 1}}
    with serving(mirror, sections) as server:
        wait_for(lambda: "refusing to run this plan" in caplog.text)
        wait_for(watch_sync_over)
        Client(url_of(server)).ok("session-get")  # still answering
    assert [t["status"] for t in fake_putio.transfers()] == ["SEEDING"] * 3
