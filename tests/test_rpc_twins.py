"""Two releases of one name (the same release from two trackers: two info-hashes): the
second is placed beside the first under a name of its own, and stays that item for its
RPC client when put.io's tree later gives it the plain name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from putio_mirror.fakeputio import FakePutio
from tests.conftest import TorrentFactory
from tests.mirror_env import Mirror
from tests.rpc_env import Client, serving, url_of, wait_for

NAME = "Show.S01E01"
FIELDS = ["leftUntilDone", "downloadDir", "name", "files"]
#: syncs (which list put.io's files) every two seconds
OFTEN = {"schedule": {"watch_interval_minutes": 0.03}}


def placed(client: Client, info_hash: str) -> dict[str, Any] | None:
    (item,) = client.ok("torrent-get", ids=[info_hash], fields=FIELDS)["torrents"]
    return item if item["leftUntilDone"] == 0 else None


def listings(fake: FakePutio) -> list[object]:
    return [entry for entry in fake.requests if entry.path == "/v2/files/list"]


def test_a_twin_reads_and_is_removed_where_it_was_placed_when_the_other_leaves_put_io(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    with serving(mirror, sections=OFTEN) as server:
        client = Client(url_of(server))
        first = client.add_torrent(torrent_bytes(NAME, files=[("a.mkv", 3000)]))
        one = first["torrent-added"]["hashString"]
        wait_for(lambda: fake_putio.transfers())
        fake_putio.finish_transfers()
        wait_for(lambda: placed(client, one))
        second = client.add_torrent(torrent_bytes(NAME, files=[("a.mkv", 3001)]))
        two = second["torrent-added"]["hashString"]
        # as Sonarr does for an indexer with a seed ratio: put.io seeds it on
        client.ok("torrent-set", ids=[two], seedRatioLimit=100, seedRatioMode=1)
        item = wait_for(lambda: fake_putio.finish_transfers() or placed(client, two))
        own = Path(item["downloadDir"]) / item["name"]
        assert own.name != NAME and (own / "a.mkv").stat().st_size == 3001
        # The first leaves the client, its copy kept (imported as a hard link), and the
        # user deletes it on put.io: the second is the only one of its name there now.
        client.ok("torrent-remove", ids=[one])
        older = min(f["id"] for f in fake_putio.files() if f["name"] == NAME)
        fake_putio.delete_file(older)
        fake_putio.clear_requests()
        wait_for(lambda: len(listings(fake_putio)) >= 2)  # a whole sync has seen it
        item = placed(client, two)
        assert item is not None
        assert Path(item["downloadDir"]) / item["name"] == own
        files = [{"name": f"{own.name}/a.mkv", "length": 3001, "bytesCompleted": 3001}]
        assert item["files"] == files  # as Transmission names them: from downloadDir
        client.ok("torrent-remove", ids=[two], **{"delete-local-data": True})
    assert not own.exists()
    assert (mirror.downloads / NAME / "a.mkv").stat().st_size == 3000  # the first's, kept
