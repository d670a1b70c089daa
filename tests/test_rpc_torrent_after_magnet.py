"""A .torrent added over RPC after a magnet of the same torrent (Sonarr grabbing the same
release again from another indexer, or a person adding it by hand): the .torrent carries
what the magnet lacks (its trackers, the metadata, the private flag), and a private
torrent added to put.io as a magnet usually never starts. So the .torrent is what put.io
gets while it has not started the magnet; once the transfer is under way it is never
sent a second time. Either way the client hears Transmission's ``torrent-duplicate``.

The real ``serve`` against the fake put.io, a real journal and a Transmission client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from putio_mirror.fakeputio import FakePutio
from putio_mirror.journal.store import Journal
from putio_mirror.local.blackhole import parse_torrent
from putio_mirror.rpc.server import RpcServer
from tests.conftest import TorrentFactory
from tests.mirror_env import Mirror
from tests.rpc_env import Client, serving, url_of, wait_for
from tests.test_rpc_sonarr import SONARR_FIELDS, sonarr_state

NAME = "Private.Show.S01E01"
#: the requests that add or take away a transfer on put.io (read before it finishes: a
#: finished one is cancelled when seeding, by the grooming rules)
SUBMITTING = ("/v2/transfers/add", "/v2/files/upload", "/v2/transfers/cancel")


def torrent_and_magnet(torrent_bytes: TorrentFactory) -> tuple[bytes, str, str]:
    """A .torrent, a magnet of the same torrent (no trackers, as indexers often give
    them) and their info-hash."""
    data = torrent_bytes(NAME, files=[(f"{NAME}.mkv", 3000)])
    info_hash = parse_torrent(data)[0]
    return data, f"magnet:?xt=urn:btih:{info_hash}&dn={NAME}", info_hash


def submissions(fake: FakePutio) -> list[str]:
    return [entry.path for entry in fake.requests if entry.path in SUBMITTING]


def placed(client: Client) -> dict[str, Any] | None:
    (item,) = client.ok("torrent-get", fields=SONARR_FIELDS)["torrents"]
    return item if sonarr_state(item) == "completed" else None


def upload_body(fake: FakePutio) -> bytes:
    (upload,) = [entry for entry in fake.requests if entry.path == "/v2/files/upload"]
    return upload.body


def journaled_transfer(mirror: Mirror, info_hash: str) -> int | None:
    with Journal.open(f"sqlite:///{mirror.journal}") as journal:
        return journal.transfer_of(info_hash)


def passes_seen(server: RpcServer, count: int) -> None:
    """Wait until ``count`` more looks at put.io refreshed the board (their plans made)."""
    for _ in range(count):
        assert server.door.board.wait_refreshed(10), "no look at put.io"


def test_a_torrent_added_while_its_magnet_waits_unsubmitted_is_what_put_io_gets(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    data, magnet, info_hash = torrent_and_magnet(torrent_bytes)
    with serving(mirror) as server:
        client = Client(url_of(server))
        # added paused (Sonarr's "Add Paused"): nothing of it goes to put.io yet
        first = client.ok("torrent-add", filename=magnet, paused=True)["torrent-added"]
        again = client.add_torrent(data, paused=False)
        client.ok("torrent-start", ids=[info_hash])
        (transfer,) = wait_for(lambda: fake_putio.transfers())
        submitted = submissions(fake_putio)
        fake_putio.finish_transfers()
        item = wait_for(lambda: placed(client))
    assert set(again) == {"torrent-duplicate"}, "Transmission's answer to the same hash"
    assert again["torrent-duplicate"]["id"] == first["id"]
    assert again["torrent-duplicate"]["hashString"] == info_hash
    assert submitted == ["/v2/files/upload"], "the .torrent, never the magnet"
    assert data in upload_body(fake_putio)
    assert transfer["hash"] == info_hash and transfer["magneturi"] is None
    assert (Path(item["downloadDir"]) / item["name"] / f"{NAME}.mkv").stat().st_size == 3000


def test_a_torrent_added_while_put_io_looks_for_its_magnet_s_metadata_replaces_the_magnet(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    data, magnet, info_hash = torrent_and_magnet(torrent_bytes)
    with serving(mirror) as server:
        client = Client(url_of(server))
        first = client.ok("torrent-add", filename=magnet, paused=False)["torrent-added"]
        (waiting,) = wait_for(lambda: fake_putio.transfers())
        fake_putio.tick(2)  # PREPARING_DOWNLOAD: no metadata from any peer, nothing fetched
        assert fake_putio.transfer(waiting["id"])["status"] == "PREPARING_DOWNLOAD"
        again = client.add_torrent(data, paused=False)
        (transfer,) = wait_for(
            lambda: [t for t in fake_putio.transfers() if t["id"] != waiting["id"]]
        )
        assert [t["id"] for t in fake_putio.transfers()] == [transfer["id"]], "one transfer"
        submitted = submissions(fake_putio)
        fake_putio.finish_transfers()
        item = wait_for(lambda: placed(client))
    assert set(again) == {"torrent-duplicate"}
    assert again["torrent-duplicate"]["id"] == first["id"]
    assert submitted == [
        "/v2/transfers/add",  # the magnet
        "/v2/transfers/cancel",  # its transfer, before put.io started it
        "/v2/files/upload",  # the .torrent in its place
    ]
    cancel = next(entry for entry in fake_putio.requests if entry.path == "/v2/transfers/cancel")
    assert str(waiting["id"]).encode() in cancel.body
    assert data in upload_body(fake_putio)
    assert transfer["hash"] == info_hash and transfer["magneturi"] is None
    assert journaled_transfer(mirror, info_hash) == transfer["id"]
    assert (Path(item["downloadDir"]) / item["name"] / f"{NAME}.mkv").stat().st_size == 3000


def test_a_torrent_added_once_put_io_fetches_its_magnet_is_never_sent(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    data, magnet, info_hash = torrent_and_magnet(torrent_bytes)
    with serving(mirror) as server:
        client = Client(url_of(server))
        first = client.ok("torrent-add", filename=magnet, paused=False)["torrent-added"]
        (transfer,) = wait_for(lambda: fake_putio.transfers())
        fake_putio.tick(3)  # DOWNLOADING: put.io has the metadata and fetches the data
        again = client.add_torrent(data, paused=False)
        passes_seen(server, 3)
        assert [t["id"] for t in fake_putio.transfers()] == [transfer["id"]]
        submitted = submissions(fake_putio)
        fake_putio.finish_transfers()
        wait_for(lambda: placed(client))
    assert set(again) == {"torrent-duplicate"}
    assert again["torrent-duplicate"]["id"] == first["id"]
    assert submitted == ["/v2/transfers/add"], "the magnet's transfer goes on"
    assert journaled_transfer(mirror, info_hash) == transfer["id"]


def test_a_torrent_put_io_refuses_in_its_magnet_s_place_gives_the_magnet_back(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    """put.io took the magnet, then refuses the .torrent Sonarr added after it: the
    magnet's transfer, cancelled to make way, is added again and goes on, Sonarr's row of
    it with no error; the item is then the magnet again, never replaced on every look."""
    data, magnet, info_hash = torrent_and_magnet(torrent_bytes)
    with serving(mirror) as server:
        client = Client(url_of(server))
        client.ok("torrent-add", filename=magnet, paused=False)
        (waiting,) = wait_for(lambda: fake_putio.transfers())
        fake_putio.inject("/v2/files/upload", status=400, error_type="INVALID_TORRENT")
        client.add_torrent(data, paused=False)
        (back,) = wait_for(lambda: [t for t in fake_putio.transfers() if t["id"] != waiting["id"]])
        passes_seen(server, 3)
        submitted = submissions(fake_putio)
        (row,) = client.ok("torrent-get", ids=[info_hash], fields=SONARR_FIELDS)["torrents"]
        fake_putio.finish_transfers()
        item = wait_for(lambda: placed(client))
    assert back["magneturi"] == waiting["magneturi"], "the same magnet as before"
    assert submitted == [
        "/v2/transfers/add",  # the magnet
        "/v2/transfers/cancel",  # its transfer, to make way
        "/v2/files/upload",  # refused
        "/v2/transfers/add",  # the magnet again, and nothing more
    ]
    assert row["errorString"] == "", row
    assert journaled_transfer(mirror, info_hash) == back["id"]
    placed_files = (Path(item["downloadDir"]) / item["name"]).iterdir()
    assert sum(path.stat().st_size for path in placed_files) == item["totalSize"] > 0


def test_a_replacement_whose_upload_fails_after_the_cancel_is_submitted_at_the_next_look(
    mirror: Mirror,
    fake_putio: FakePutio,
    torrent_bytes: TorrentFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The magnet's transfer is cancelled, then put.io fails the upload: the journal forgot
    that transfer first, so the next pass submits the .torrent (put.io shows nothing of
    it), rather than wait for a transfer that is gone until the board finds the item lost
    (a warning that put.io lost it, and a listing of put.io's files, first)."""
    data, magnet, info_hash = torrent_and_magnet(torrent_bytes)
    with serving(mirror) as server:
        client = Client(url_of(server))
        client.ok("torrent-add", filename=magnet, paused=False)
        (waiting,) = wait_for(lambda: fake_putio.transfers())
        fake_putio.inject("/v2/files/upload", status=503, retry_after="3600")
        client.add_torrent(data, paused=False)
        wait_for(lambda: [r for r in fake_putio.requests if r.path == "/v2/files/upload"])
        (transfer,) = wait_for(lambda: fake_putio.transfers(), timeout=5)
        submitted = submissions(fake_putio)
        fake_putio.finish_transfers()
        wait_for(lambda: placed(client))
    assert transfer["id"] != waiting["id"] and transfer["magneturi"] is None
    assert submitted == [
        "/v2/transfers/add",
        "/v2/transfers/cancel",
        "/v2/files/upload",  # answered 503
        "/v2/files/upload",
    ]
    assert journaled_transfer(mirror, info_hash) == transfer["id"]
    assert "submitting it again" not in caplog.text, "taken for an item put.io lost"


def test_a_replacement_stopped_between_forgetting_the_magnet_s_transfer_and_cancelling_it(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    """The journal forgot the magnet's transfer, then the cancel never reached put.io (a
    kill between the two, or put.io refusing it): that transfer is still there, known to
    the journal as nobody's. The next passes must take it as ours again and replace it,
    not leave the item on a magnet that never starts."""
    data, magnet, info_hash = torrent_and_magnet(torrent_bytes)
    with serving(mirror) as server:
        client = Client(url_of(server))
        client.ok("torrent-add", filename=magnet, paused=False)
        (waiting,) = wait_for(lambda: fake_putio.transfers())
        fake_putio.inject("/v2/transfers/cancel", status=503, retry_after="3600", times=1)
        client.add_torrent(data, paused=False)
        (transfer,) = wait_for(
            lambda: [t for t in fake_putio.transfers() if t["id"] != waiting["id"]], timeout=30
        )
        remaining = [t["id"] for t in fake_putio.transfers()]
        submitted = submissions(fake_putio)
        fake_putio.finish_transfers()
        item = wait_for(lambda: placed(client))
    assert submitted == [
        "/v2/transfers/add",  # the magnet
        "/v2/transfers/cancel",  # answered 503: its transfer stays, forgotten by the journal
        "/v2/transfers/cancel",  # a later pass took it as ours again and replaced it
        "/v2/files/upload",
    ]
    assert remaining == [transfer["id"]], "the magnet's transfer cancelled in the end"
    assert transfer["hash"] == info_hash and transfer["magneturi"] is None
    assert data in upload_body(fake_putio)
    assert journaled_transfer(mirror, info_hash) == transfer["id"]
    assert (Path(item["downloadDir"]) / item["name"] / f"{NAME}.mkv").stat().st_size == 3000
