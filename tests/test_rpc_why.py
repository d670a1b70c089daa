"""Why an RPC item does not come, told to Sonarr: the real ``serve`` against the fake
put.io, a real journal and a Transmission client. Sonarr turns any non-empty
``errorString`` into a warning that shows the text and keeps waiting (it never fails a
Transmission item by itself), so the text must say what is wrong and what to do."""

from __future__ import annotations

from typing import Any

from putio_mirror.fakeputio import FakePutio
from putio_mirror.fakeputio.transfers import ACTIVE
from putio_mirror.journal.store import Journal
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
