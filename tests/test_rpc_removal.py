"""``torrent-remove`` of an item whose files are half-fetched: what staging holds of it is
tidied (journaled), and the item is neither fetched again nor placed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from putio_mirror.core.naming import STAGING_DIR_NAME
from putio_mirror.fakeputio import FakePutio
from putio_mirror.journal.reader import JournalReader
from putio_mirror.journal.store import Journal
from tests.conftest import TorrentFactory
from tests.mirror_env import Mirror
from tests.rpc_env import Client, serving, url_of, wait_for

if TYPE_CHECKING:
    from pathlib import Path

    from putio_mirror.rpc.server import RpcServer

SLOW = {"download": {"bwlimit": "64k"}}  # the item is still being fetched when it is removed


def coming_down(
    server: RpcServer, fake_putio: FakePutio, data: bytes, staging: Path
) -> tuple[Client, str, Path]:
    """Add a torrent through the RPC door, let put.io finish it and wait until its part holds
    bytes; return the client, the item's info-hash and the part."""
    client = Client(url_of(server))
    info_hash = client.add_torrent(data)["torrent-added"]["hashString"]
    wait_for(lambda: fake_putio.transfers())
    fake_putio.finish_transfers()
    (part,) = wait_for(lambda: [p for p in staging.glob("*.part") if p.stat().st_size])
    return client, info_hash, part


@pytest.mark.parametrize("delete_local_data", [False, True])
def test_a_half_fetched_item_removed_leaves_nothing_in_staging_and_it_is_journaled(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory, delete_local_data: bool
) -> None:
    data = torrent_bytes("Half", length=2_000_000)
    staging = mirror.downloads / STAGING_DIR_NAME
    with serving(mirror, sections=SLOW) as server:
        client, info_hash, part = coming_down(server, fake_putio, data, staging)
        client.ok("torrent-remove", ids=[info_hash], **{"delete-local-data": delete_local_data})
    assert part.exists()  # the run under way stopped with serve; the part stayed
    with serving(mirror, sections=SLOW):  # its first sync sees the removal
        wait_for(lambda: not part.exists())
    assert not list(staging.glob("*.part")) and not (mirror.downloads / "Half").exists()
    with Journal.open(f"sqlite:///{mirror.journal}") as journal:
        tidied = [
            action
            for run in journal.recent_runs(50)
            for action in journal.actions_of(run.id)
            if action.kind == "tidy"
        ]
        assert not journal.facts().downloads[int(part.stem)].is_verified
    assert [(action.key, action.status) for action in tidied] == [
        (f"tidy:part:{part.stem}", "done")
    ]


def test_removing_an_item_while_it_comes_down_stops_it_and_tidies_it_at_once(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    data = torrent_bytes("Going", length=2_000_000)
    staging = mirror.downloads / STAGING_DIR_NAME
    with serving(mirror, sections=SLOW) as server:
        client, info_hash, part = coming_down(server, fake_putio, data, staging)
        client.ok("torrent-remove", ids=[info_hash], **{"delete-local-data": True})
        wait_for(lambda: not part.exists(), timeout=10)  # not after the 30 s it would take
        assert client.ok("torrent-get", fields=["id"])["torrents"] == []
    assert not (mirror.downloads / "Going").exists()
    with Journal.open(f"sqlite:///{mirror.journal}") as journal:
        kinds = [
            (action.kind, action.status)
            for run in journal.recent_runs(50)
            for action in journal.actions_of(run.id)
            if action.key.endswith(f":{part.stem}")
        ]
    assert ("tidy", "done") in kinds and ("download", "done") not in kinds


def test_removing_a_half_placed_item_with_its_data_deletes_the_files_already_placed(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    # Placed file by file, an item is in the download folder in part while the rest comes
    # down; Sonarr removes a failed download with its data: what was placed goes too.
    data = torrent_bytes("Pack", files=[("small.nfo", 1000), ("big.mkv", 2_000_000)])
    slow_by_file = {"download": {"bwlimit": "64k", "placement": "file"}}
    item = mirror.downloads / "Pack"
    with serving(mirror, sections=slow_by_file) as server:
        client = Client(url_of(server))
        info_hash = client.add_torrent(data)["torrent-added"]["hashString"]
        wait_for(lambda: fake_putio.transfers())
        fake_putio.finish_transfers()
        # placed, and journaled placed: what a removal deletes (a file placed but not yet
        # journaled, in the instant between the two, would be left behind)
        wait_for(lambda: _journaled_placed(mirror, "Pack/small.nfo"))
        assert (item / "small.nfo").exists() and not (item / "big.mkv").exists()
        client.ok("torrent-remove", ids=[info_hash], **{"delete-local-data": True})
        assert not (item / "small.nfo").exists()
    with serving(mirror, sections=slow_by_file) as server:  # its first sync tidies staging
        staging = mirror.downloads / STAGING_DIR_NAME
        wait_for(lambda: not list(staging.glob("*.part")))
    assert not item.exists()


def _journaled_placed(mirror: Mirror, relative_path: str) -> bool:
    """Whether the journal knows the file at ``relative_path`` as placed."""
    reader = JournalReader.open(f"sqlite:///{mirror.journal}")
    if reader is None:
        return False
    with reader:
        records = reader.downloads().values()
    return any(r.relative_path == relative_path and r.is_placed for r in records)
