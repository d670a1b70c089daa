"""A torrent added again after ``torrent-remove``: it comes down again and reads complete
only once it is back on the disk, whether put.io kept its files or they went with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from putio_mirror.fakeputio import FakePutio
from tests.conftest import TorrentFactory
from tests.mirror_env import Mirror
from tests.rpc_env import Client, serving, url_of, wait_for
from tests.test_rpc_sonarr import SONARR_FIELDS, sonarr_state


def completed(client: Client) -> dict[str, Any] | None:
    """Poll as Sonarr does; return the item once Sonarr would import it, after checking
    that it is where the fields say."""
    (item,) = client.ok("torrent-get", fields=SONARR_FIELDS)["torrents"]
    if sonarr_state(item) != "completed":
        return None
    output = Path(item["downloadDir"]) / item["name"]
    assert output.exists(), f"reads completed, but {output} is not there"
    return item


@pytest.mark.parametrize("delete_remote", [False, True])
def test_an_item_removed_with_its_data_and_added_again_comes_down_again(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory, delete_remote: bool
) -> None:
    data = torrent_bytes("Again", files=[("a.mkv", 3000), ("a.nfo", 10)])
    with serving(mirror, delete_remote_on_remove=delete_remote) as server:
        client = Client(url_of(server))
        info_hash = client.add_torrent(data)["torrent-added"]["hashString"]
        wait_for(lambda: fake_putio.transfers())
        fake_putio.finish_transfers()
        first = wait_for(lambda: completed(client))
        placed = Path(first["downloadDir"]) / first["name"]
        client.ok("torrent-remove", ids=[info_hash], **{"delete-local-data": True})
        assert not placed.exists()
        # put.io's transfer is cleaned (and, with delete_remote_on_remove, its files deleted)
        wait_for(lambda: not fake_putio.transfers())
        if delete_remote:
            wait_for(lambda: not [f for f in fake_putio.files() if f["name"] == "Again"])
        client.add_torrent(data)
        completed(client)  # not complete at a path that is gone
        wait_for(lambda: fake_putio.finish_transfers() or completed(client))
        again = completed(client)
    assert again is not None
    assert (Path(again["downloadDir"]) / again["name"] / "a.mkv").stat().st_size == 3000
    uploads = [entry for entry in fake_putio.requests if entry.path == "/v2/files/upload"]
    # put.io's files are fetched again where it kept them; else it is submitted again
    assert len(uploads) == (2 if delete_remote else 1)


def test_an_item_removed_before_put_io_had_it_and_added_again_is_submitted_again(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    data = torrent_bytes("Early", length=2000)
    with serving(mirror) as server:
        client = Client(url_of(server))
        info_hash = client.add_torrent(data)["torrent-added"]["hashString"]
        wait_for(lambda: fake_putio.transfers())
        client.ok("torrent-remove", ids=[info_hash])
        wait_for(lambda: not fake_putio.transfers())  # cancelled on put.io
        client.add_torrent(data)
        wait_for(lambda: fake_putio.transfers())
        wait_for(lambda: fake_putio.finish_transfers() or completed(client))
    assert (mirror.downloads / "Early").stat().st_size == 2000


def test_an_item_added_again_after_put_io_s_copy_was_deleted_by_hand_is_submitted_again(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    data = torrent_bytes("Gone", files=[("g.mkv", 2500)])
    with serving(mirror) as server:
        client = Client(url_of(server))
        info_hash = client.add_torrent(data)["torrent-added"]["hashString"]
        wait_for(lambda: fake_putio.transfers())
        fake_putio.finish_transfers()
        wait_for(lambda: completed(client))
        client.ok("torrent-remove", ids=[info_hash], **{"delete-local-data": True})
        wait_for(lambda: not fake_putio.transfers())  # cleaned by the mirror
        # The user deletes put.io's copy by hand: put.io has nothing of it any more.
        (item,) = [entry for entry in fake_putio.files() if entry["name"] == "Gone"]
        fake_putio.delete_file(item["id"])
        client.add_torrent(data)
        wait_for(lambda: fake_putio.transfers(), timeout=15)  # submitted again
        wait_for(lambda: fake_putio.finish_transfers() or completed(client))
    assert (mirror.downloads / "Gone" / "g.mkv").stat().st_size == 2500
    uploads = [entry for entry in fake_putio.requests if entry.path == "/v2/files/upload"]
    assert len(uploads) == 2


def test_an_item_whose_transfer_was_cancelled_by_hand_on_put_io_is_submitted_again(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    data = torrent_bytes("Cancelled", length=1500)
    with serving(mirror) as server:
        client = Client(url_of(server))
        client.add_torrent(data)
        (first,) = wait_for(lambda: fake_putio.transfers())
        # The user cancels it on put.io's site while Sonarr still waits for it.
        with fake_putio.world.lock:
            del fake_putio.world.transfers[first["id"]]
        again = wait_for(lambda: fake_putio.transfers(), timeout=15)
        assert again[0]["id"] != first["id"]
        wait_for(lambda: fake_putio.finish_transfers() or completed(client))
    assert (mirror.downloads / "Cancelled").stat().st_size == 1500
