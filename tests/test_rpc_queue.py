"""``queue-move-*``: the download order RPC clients set, kept in the journal, shown as
``queuePosition`` and followed by the downloads."""

from __future__ import annotations

from pathlib import Path

import pytest

from putio_mirror.fakeputio import FakePutio
from putio_mirror.journal.store import Journal
from putio_mirror.rpc.queue import Move, moved
from putio_mirror.rpc.server import RpcServer
from tests.conftest import TorrentFactory
from tests.mirror_env import Mirror
from tests.rpc_env import Client, serving, url_of, wait_for


@pytest.mark.parametrize(
    ("move", "chosen", "order"),
    [
        ("top", "ce", "ceabd"),
        ("bottom", "ac", "bdeac"),
        ("up", "ce", "acbed"),
        ("up", "ab", "abcde"),  # the first ones cannot go higher, nor pass each other
        ("down", "bd", "acbed"),
        ("down", "de", "abcde"),
        ("top", "", "abcde"),
    ],
)
def test_moves_follow_transmission(move: Move, chosen: str, order: str) -> None:
    assert "".join(moved(list("abcde"), set(chosen), move)) == order


def positions(client: Client) -> dict[int, int]:
    rows = client.ok("torrent-get", fields=["id", "queuePosition"])["torrents"]
    return {row["id"]: row["queuePosition"] for row in rows}


def test_queue_moves_set_queue_position_and_the_journal_keeps_them(
    rpc_endpoint: RpcServer, torrent_bytes: TorrentFactory, tmp_path: Path
) -> None:
    client = Client(url_of(rpc_endpoint), auth=None)
    hashes = [client.add_torrent(torrent_bytes(f"item {n}"))["torrent-added"]["hashString"]
              for n in range(4)]  # fmt: skip
    assert positions(client) == {1: 0, 2: 1, 3: 2, 4: 3}
    client.ok("queue-move-top", ids=[hashes[2]])
    client.ok("queue-move-bottom", ids=[1])
    assert positions(client) == {3: 0, 2: 1, 4: 2, 1: 3}
    client.ok("queue-move-up", ids=[4])
    client.ok("queue-move-down", ids=[3])
    assert positions(client) == {4: 0, 3: 1, 2: 2, 1: 3}
    client.ok("torrent-remove", ids=[3])
    client.add_torrent(torrent_bytes("item 4"))  # a new one joins at the end
    assert positions(client) == {4: 0, 2: 1, 1: 2, 5: 3}
    with Journal.open(f"sqlite:///{tmp_path / 'journal.sqlite3'}") as reopened:
        order = [desire.rpc_id for desire in reopened.desires.listing().values()]
    assert order == [4, 2, 1, 5]


def test_files_download_in_the_order_the_client_set(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    names = ["First", "Second", "Third"]
    with serving(mirror, sections={"download": {"parallel_files": 1}}) as server:
        client = Client(url_of(server))
        for name in names:
            client.add_torrent(torrent_bytes(name, length=2000))
        wait_for(lambda: len(fake_putio.transfers()) == 3)
        client.ok("queue-move-top", ids=[3])
        client.ok("queue-move-bottom", ids=[1])
        fake_putio.clear_requests()
        fake_putio.finish_transfers()
        wait_for(lambda: all((mirror.downloads / name).is_file() for name in names))
        fetched = [entry.path for entry in fake_putio.requests if entry.host == "node"]
    by_name = {file["name"]: file["id"] for file in fake_putio.files()}
    order = [by_name[name] for name in ("Third", "Second", "First")]
    paths = [path.split("?")[0] for path in fetched]
    firsts = [paths.index(f"/download/{file_id}") for file_id in order]
    assert firsts == sorted(firsts), fetched
