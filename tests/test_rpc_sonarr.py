"""Sonarr's conversation with a "Transmission" replayed against ``serve`` and the fake put.io.

What Sonarr would conclude at each poll is asserted: queued, then downloading with a
rising ``percentDone``, and completed only once the item is verified and placed, with
``downloadDir``/``name`` the placed item. Then "Remove Completed" deletes it.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import requests

from putio_mirror.fakeputio import FakePutio
from putio_mirror.journal.store import Journal
from tests.conftest import TorrentFactory
from tests.mirror_env import Mirror
from tests.rpc_env import PASSWORD, USER, Client, serving, url_of, wait_for

# Sonarr v4's TransmissionProxy asks for these on every poll.
SONARR_FIELDS = [
    "id", "hashString", "name", "downloadDir", "totalSize", "leftUntilDone", "isFinished",
    "eta", "status", "secondsDownloading", "secondsSeeding", "errorString", "uploadedEver",
    "downloadedEver", "seedRatioLimit", "seedRatioMode", "seedIdleLimit", "seedIdleMode",
    "fileCount", "file-count", "labels",
]  # fmt: skip
CATEGORY = "tv-sonarr"


def sonarr_version(text: str) -> tuple[int, ...]:
    """Sonarr's reading: the first dotted number outside parentheses."""
    outside = re.sub(r"\([^)]*\)", "", text)
    found = re.search(r"\d+(\.\d+){1,3}", outside)
    assert found is not None
    return tuple(int(part) for part in found[0].split("."))


def sonarr_state(item: dict[str, Any]) -> str:
    """What Sonarr's Transmission client makes of one torrent-get item."""
    if item["errorString"]:
        return "warning"
    if item["totalSize"] == 0:
        return "queued"
    if item["leftUntilDone"] == 0 and item["status"] in (0, 5, 6):
        return "completed"
    if item["isFinished"] and item["status"] not in (1, 2):
        return "completed"
    return {0: "paused", 3: "queued", 4: "downloading"}.get(item["status"], "queued")


class Sonarr:
    """The polls Sonarr makes, with every conclusion checked against the disk."""

    def __init__(self, client: Client, info_hash: str) -> None:
        self.client, self.info_hash = client, info_hash
        self.seen: list[tuple[str, float]] = []

    def poll(self) -> dict[str, Any]:
        (item,) = self.client.ok("torrent-get", fields=[*SONARR_FIELDS, "percentDone"])["torrents"]
        assert set(SONARR_FIELDS) <= set(item)
        state = sonarr_state(item)
        output = Path(item["downloadDir"]) / item["name"].replace(":", "_")
        if state == "completed":  # an import starts now: the item must be whole and in place
            assert output.exists()
            assert not list(output.parent.glob(".putio-mirror*"))  # nothing half-built beside
        self.seen.append((state, item["percentDone"]))
        return item

    def wait(self, state: str) -> dict[str, Any]:
        return wait_for(lambda: (item := self.poll()) and sonarr_state(item) == state and item)


def test_sonarr_sees_queued_downloading_and_completed_only_once_placed(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    data = torrent_bytes("Show.S01E01", files=[("Show.S01E01.mkv", 3000), ("Show.nfo", 100)])
    with serving(mirror) as server:
        # The opening GET without a session id, as Sonarr sends it.
        assert requests.get(url_of(server), auth=(USER, PASSWORD), timeout=5).status_code == 409
        client = Client(url_of(server))
        session = client.ok("session-get")
        assert sonarr_version(session["version"]) >= (2, 40)
        folder = f"{session['download-dir']}/{CATEGORY}"
        added = client.add_torrent(
            data, paused=False, labels=[CATEGORY], **{"download-dir": folder}
        )
        item = added["torrent-added"]
        info_hash = item["hashString"]
        assert item["name"] == "Show.S01E01"
        again = client.add_torrent(data, paused=False, **{"download-dir": folder})
        assert again == {"torrent-duplicate": item}
        client.ok(
            "torrent-set",
            ids=[info_hash],
            seedRatioLimit=2,
            seedRatioMode=1,
            seedIdleLimit=60,
            seedIdleMode=1,
        )
        sonarr = Sonarr(client, info_hash)
        first = sonarr.poll()
        assert first["status"] == 3 and first["leftUntilDone"] > 0
        assert (first["seedRatioLimit"], first["seedIdleLimit"]) == (2, 60)
        wait_for(lambda: [t for t in fake_putio.transfers() if t["hash"] == info_hash])
        fake_putio.tick(3)  # put.io is downloading it: half of put.io's half
        downloading = sonarr.wait("downloading")
        assert 0 < downloading["percentDone"] < 0.5
        fake_putio.finish_transfers()
        done = sonarr.wait("completed")
    placed = mirror.downloads / CATEGORY / "Show.S01E01"
    assert (done["downloadDir"], done["name"]) == (str(placed.parent), placed.name)
    assert sorted(path.name for path in placed.iterdir()) == ["Show.S01E01.mkv", "Show.nfo"]
    assert done["leftUntilDone"] == 0 and done["fileCount"] == 2
    states = [state for state, _ in sonarr.seen]
    assert states[0] == "queued" and "downloading" in states and states[-1] == "completed"
    progress = [percent for _, percent in sonarr.seen]
    assert progress == sorted(progress)  # never backwards
    uploads = [t for t in fake_putio.transfers() if t["hash"] == info_hash]
    assert len(uploads) == 1  # once, though it was added twice


def test_remove_completed_deletes_the_placed_item_and_journals_it(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    data = torrent_bytes("Film (2024)", length=2048)
    info_hash = hashlib.sha1(  # the info-hash as Sonarr computes it
        data[data.index(b"4:infod") + 6 : -1], usedforsecurity=False
    ).hexdigest()
    with serving(mirror, delete_remote_on_remove=True) as server:
        client = Client(url_of(server))
        folder = str(mirror.downloads / CATEGORY)
        added = client.add_torrent(data, paused=False, **{"download-dir": folder})
        assert added["torrent-added"]["hashString"] == info_hash
        wait_for(lambda: fake_putio.transfers())
        fake_putio.finish_transfers()
        sonarr = Sonarr(client, info_hash)
        done = sonarr.wait("completed")
        placed = Path(done["downloadDir"]) / done["name"]
        assert placed.read_bytes()
        client.ok("torrent-remove", ids=[info_hash], **{"delete-local-data": True})
        assert not placed.exists()
        assert client.ok("torrent-get", fields=SONARR_FIELDS)["torrents"] == []
        # put.io's copy goes too (rpc.delete_remote_on_remove), at the next sync
        wait_for(lambda: not [f for f in fake_putio.files() if f["name"] == "Film (2024)"])
    with Journal.open(f"sqlite:///{mirror.journal}") as journal:
        runs = [run for run in journal.recent_runs(50) if run.command == "rpc torrent-remove"]
        (action,) = journal.actions_of(runs[0].id)
    assert (action.kind, action.status, action.target) == (
        "remove-local",
        "done",
        f"{CATEGORY}/Film (2024)",
    )


def test_remove_completed_deletes_only_the_files_it_placed(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    # As Transmission's delete-local-data does: the torrent's own files go, and the folders
    # they leave empty; a file someone else put in the item (an extracted archive, notes)
    # and a file of ours replaced since by another (even of its size) stay.
    files = [("Show.S01E02.mkv", 3000), ("Show.nfo", 100), ("Subs/en.srt", 50)]
    data = torrent_bytes("Show.S01E02", files=files)
    with serving(mirror) as server:
        client = Client(url_of(server))
        folder = str(mirror.downloads / CATEGORY)
        info_hash = client.add_torrent(data, paused=False, **{"download-dir": folder})[
            "torrent-added"
        ]["hashString"]
        wait_for(lambda: fake_putio.transfers())
        fake_putio.finish_transfers()
        done = Sonarr(client, info_hash).wait("completed")
        placed = Path(done["downloadDir"]) / done["name"]
        (placed / "Show.S01E02.en.extracted.srt").write_text("an unpacker's file\n")
        (placed / "Show.nfo").unlink()
        (placed / "Show.nfo").write_text("the user's own notes, longer than put.io's file\n" * 9)
        (placed / "Show.S01E02.mkv").unlink()  # another release of put.io's size put there
        (placed / "Show.S01E02.mkv").write_bytes(b"x" * 3000)
        client.ok("torrent-remove", ids=[info_hash], **{"delete-local-data": True})
        assert client.ok("torrent-get", fields=SONARR_FIELDS)["torrents"] == []
    left = sorted(path.relative_to(placed).as_posix() for path in placed.rglob("*"))
    assert left == ["Show.S01E02.en.extracted.srt", "Show.S01E02.mkv", "Show.nfo"]
    with Journal.open(f"sqlite:///{mirror.journal}") as journal:
        runs = [run for run in journal.recent_runs(50) if run.command == "rpc torrent-remove"]
        (action,) = journal.actions_of(runs[0].id)
    assert action.status == "done"
    assert "3 file(s) not placed by putio-mirror were left" in (action.detail or ""), action.detail
