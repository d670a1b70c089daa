"""The smaller methods, through the endpoint alone: stats, free space, start/stop, labels,
removal of unknown ids, and the seed limits a client sets coming back in ``torrent-get``."""

from __future__ import annotations

from pathlib import Path

from putio_mirror.rpc.server import RpcServer
from tests.conftest import TorrentFactory
from tests.rpc_env import Client, url_of

FIELDS = ["id", "status", "labels", "seedRatioLimit", "seedRatioMode", "seedIdleMode"]


def test_start_stop_labels_and_seed_limits_come_back_in_torrent_get(
    rpc_endpoint: RpcServer, torrent_bytes: TorrentFactory
) -> None:
    client = Client(url_of(rpc_endpoint), auth=None)
    first = client.add_torrent(torrent_bytes("one"), paused=True)["torrent-added"]
    second = client.add_torrent(torrent_bytes("two"), labels=["tv"])["torrent-added"]
    assert (first["id"], second["id"]) == (1, 2)
    client.ok("torrent-set", ids=[first["hashString"].upper()], labels=["films", "4k"])
    client.ok("torrent-set", ids=2, seedRatioLimit=1.5, seedRatioMode=1, seedIdleMode=0)
    client.ok("torrent-start", ids=[1])
    client.ok("torrent-stop", ids=[second["hashString"]])
    items = client.ok("torrent-get", fields=FIELDS)["torrents"]
    assert items == [
        {"id": 1, "status": 3, "labels": ["films", "4k"], "seedRatioLimit": 0,
         "seedRatioMode": 0, "seedIdleMode": 0},
        {"id": 2, "status": 0, "labels": ["tv"], "seedRatioLimit": 1.5,
         "seedRatioMode": 1, "seedIdleMode": 0},
    ]  # fmt: skip
    client.ok("torrent-set", ids=2, seedRatioMode=2)  # unlimited: the global rule again
    assert client.ok("torrent-get", ids=2, fields=["seedRatioMode"])["torrents"] == [
        {"seedRatioMode": 0}
    ]
    bad = client.call("torrent-set", ids=2, seedRatioLimit="lots", seedRatioMode=1)
    assert bad["result"] == "'seedRatioLimit' should be a number of at least 0"


def test_removing_unknown_ids_is_a_quiet_success_and_ids_are_required(
    rpc_endpoint: RpcServer, torrent_bytes: TorrentFactory
) -> None:
    client = Client(url_of(rpc_endpoint), auth=None)
    client.add_torrent(torrent_bytes("kept"))
    client.ok("torrent-remove", ids=["f" * 40, 99], **{"delete-local-data": True})
    assert client.call("torrent-remove")["result"] == "'ids' is required"
    assert len(client.ok("torrent-get", fields=["id"])["torrents"]) == 1
    client.ok("queue-move-top", ids=[1])
    client.ok("torrent-verify", ids=[1])


def test_session_stats_and_free_space_of_the_download_folder_only(
    rpc_endpoint: RpcServer, torrent_bytes: TorrentFactory
) -> None:
    client = Client(url_of(rpc_endpoint), auth=None)
    client.add_torrent(torrent_bytes("a"))
    client.add_torrent(torrent_bytes("b"), paused=True)
    stats = client.ok("session-stats")
    assert (stats["torrentCount"], stats["activeTorrentCount"], stats["pausedTorrentCount"]) == (
        2,
        1,
        1,
    )
    downloads = rpc_endpoint.door.downloads
    space = client.ok("free-space", path=str(downloads / "tv"))
    assert space["path"] == str(downloads / "tv") and space["size-bytes"] > 0
    for elsewhere in ("/etc", str(downloads / ".." / "x"), str(Path("/"))):
        assert client.call("free-space", path=elsewhere)["result"].startswith("free-space:")
