"""The ``transmission-rpc`` library (PyPI), as Python tools use it, against ``serve``."""

from __future__ import annotations

import pytest

from putio_mirror.fakeputio import FakePutio
from tests.conftest import TorrentFactory
from tests.mirror_env import Mirror
from tests.rpc_env import PASSWORD, USER, serving, wait_for

transmission_rpc = pytest.importorskip("transmission_rpc")

MAGNET_HASH = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
MAGNET = f"magnet:?xt=urn:btih:{MAGNET_HASH.upper()}&dn=Library.Magnet"


def test_transmission_rpc_adds_lists_changes_and_removes(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    data = torrent_bytes("Library.Torrent", files=[("a.mkv", 2000), ("b.srt", 20)])
    with serving(mirror) as server:
        client = transmission_rpc.Client(
            host="127.0.0.1",
            port=server.port,
            path="/transmission/rpc",
            username=USER,
            password=PASSWORD,
            timeout=10,
        )
        assert client.get_session().download_dir == str(mirror.downloads)
        folder = str(mirror.downloads / "radarr")
        added = client.add_torrent(data, download_dir=folder, labels=["radarr"], paused=False)
        magnet = client.add_torrent(MAGNET, paused=True)
        assert magnet.hash_string == MAGNET_HASH
        torrents = {torrent.hash_string: torrent for torrent in client.get_torrents()}
        assert set(torrents) == {added.hash_string, MAGNET_HASH}
        film = torrents[added.hash_string]
        assert (film.name, film.download_dir, film.labels) == (
            "Library.Torrent",
            folder,
            ["radarr"],
        )
        assert film.total_size == 2020 and film.left_until_done > 0
        assert torrents[MAGNET_HASH].status == "stopped"  # added paused
        client.change_torrent(added.hash_string, seed_ratio_limit=1.5, seed_ratio_mode=1)
        assert client.get_torrent(added.id).seed_ratio_limit == 1.5
        wait_for(lambda: len(fake_putio.transfers()) == 1)  # the paused magnet waits
        client.start_torrent(MAGNET_HASH)
        wait_for(lambda: len(fake_putio.transfers()) == 2)
        client.remove_torrent([MAGNET_HASH, added.id], delete_data=False)
        assert client.get_torrents() == []
