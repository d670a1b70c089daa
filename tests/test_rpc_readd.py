"""A torrent added again after ``torrent-remove``: it comes down again and reads complete
only once it is back on the disk, whether put.io kept its files or they went with it."""

from __future__ import annotations

import os
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


def only_row(client: Client) -> dict[str, Any]:
    (item,) = client.ok("torrent-get", fields=SONARR_FIELDS)["torrents"]
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


def test_an_item_added_again_reads_complete_only_with_the_very_files_placed_still_there(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    # Removed without its data, then added again: a file of its size put at a placed
    # file's path since is not its file, though the path exists. A file there that is not
    # the very one placed (journaled identity) is looked at by the next sync, as any file
    # found where put.io's goes: the bytes placed (only touched) are adopted by their
    # CRC32, never fetched again; any other is never taken for put.io's.
    data = torrent_bytes("Kept", files=[("k.mkv", 3000), ("k.nfo", 10)])
    with serving(mirror) as server:
        client = Client(url_of(server))
        info_hash = client.add_torrent(data)["torrent-added"]["hashString"]
        wait_for(lambda: fake_putio.transfers())
        fake_putio.finish_transfers()
        first = wait_for(lambda: completed(client))
        folder = Path(first["downloadDir"]) / first["name"]
        client.ok("torrent-remove", ids=[info_hash])  # its data stays where it is
        wait_for(lambda: not fake_putio.transfers())
        stranger = folder / "k.mkv.new"
        stranger.write_bytes(b"\xee" * 3000)
        stranger.replace(folder / "k.mkv")
        aired = 1_500_000_000 * 1_000_000_000
        os.utime(folder / "k.nfo", ns=(aired, aired))
        fake_putio.clear_requests()
        client.add_torrent(data)
        assert completed(client) is None  # not complete with a stranger's k.mkv
        item = wait_for(lambda: (row := only_row(client))["errorString"] and row)
    assert "Kept/k.mkv: a different local file is in the way" in item["errorString"]
    assert (folder / "k.mkv").read_bytes() == b"\xee" * 3000  # left alone
    assert not [entry for entry in fake_putio.requests if entry.host == "node"]
