"""Two doors at once: a magnet added over RPC (Sonarr's Transmission client) and a .torrent
of the same release dropped in the blackhole (a person, or a second download client). The
.torrent carries what the magnet lacks (its trackers, the metadata, the private flag): it
is what put.io must end up with, one transfer, whichever door submits it and wherever a
run is killed. Sonarr's ``torrent-get`` row of the hash goes on all the while.

The real ``serve`` in a process of its own, killed -9 at a chosen request (the fake
put.io's ``on_request`` hook, before put.io's answer goes out), then started again; the
fake put.io over loopback, a real blackhole folder and a real SQLite journal.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from putio_mirror.app.run import Runtime
from putio_mirror.cli.watch import submit_blackhole
from putio_mirror.config.settings import load_settings
from putio_mirror.fakeputio import FakePutio, LoggedRequest
from putio_mirror.journal.store import Journal
from tests.conftest import TorrentFactory
from tests.mirror_env import Mirror
from tests.postgres_server import free_port
from tests.rpc_env import PASSWORD, USER, Client, answers, serving, url_of, wait_for
from tests.test_rpc_sonarr import SONARR_FIELDS, sonarr_state
from tests.test_rpc_torrent_after_magnet import NAME, submissions, torrent_and_magnet

CATEGORY = "tv-sonarr"


def held_by_put_io(fake: FakePutio) -> str:
    sources = ["magnet" if t["magneturi"] else "torrent" for t in fake.transfers()]
    return " ".join(sources) or "nothing"


def journaled_transfer(mirror: Mirror, info_hash: str) -> int | None:
    with Journal.open(f"sqlite:///{mirror.journal}") as journal:
        return journal.transfer_of(info_hash)


def names_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []


def loose_files(mirror: Mirror) -> list[str]:
    return [path.name for path in mirror.blackhole.iterdir() if path.is_file()]


def replaced(fake: FakePutio, magnet_transfer: object) -> bool:
    """Whether put.io holds transfers of the torrent again, none of them the magnet's."""
    transfers = fake.transfers()
    return bool(transfers) and all(t["id"] != magnet_transfer for t in transfers)


def row_of(client: Client, info_hash: str) -> dict[str, Any]:
    """Sonarr's ``torrent-get`` row of the hash (asked for by hash, as Sonarr does)."""
    (row,) = client.ok("torrent-get", ids=[info_hash], fields=SONARR_FIELDS)["torrents"]
    assert row["hashString"] == info_hash and row["errorString"] == "", row
    return dict(row)


def placed(client: Client, info_hash: str) -> dict[str, Any] | None:
    row = row_of(client, info_hash)
    return row if sonarr_state(row) == "completed" else None


@contextmanager
def serve_process(mirror: Mirror) -> Iterator[tuple[subprocess.Popen[bytes], Client]]:
    """``serve`` in a process of its own, and a client of its endpoint."""
    port = free_port()
    rpc = {"listen": f"127.0.0.1:{port}", "username": USER, "password": PASSWORD}
    mirror.write_config(rpc=rpc | {"poll_seconds": 0.2})
    client = Client(f"http://127.0.0.1:{port}/transmission/rpc")
    with mirror.spawned("serve") as process:
        wait_for(lambda: answers(client), timeout=30)
        yield process, client


def kill_at(fake: FakePutio, process: subprocess.Popen[bytes], path: str, *, done: bool) -> None:
    """Make the process's first request to ``path`` its last: put.io carries it out (if
    ``done``; else answers 503, doing nothing) and the process is killed -9 before the
    answer reaches it."""
    if not done:
        fake.inject(path, status=503, retry_after="3600")
    killed: list[int] = []

    def hook(entry: LoggedRequest) -> None:
        if entry.path == path and not killed:
            killed.append(process.pid)
            os.kill(process.pid, signal.SIGKILL)

    fake.on_request = hook


def killed(fake: FakePutio, process: subprocess.Popen[bytes]) -> None:
    """Wait for the kill ``kill_at`` armed, then put put.io back to normal."""
    try:
        process.wait(timeout=30)
    finally:
        fake.on_request = None
        fake.heal()
    assert process.returncode == -signal.SIGKILL, process.returncode


#: each break: the request ``serve`` is killed at, whether put.io carried it out, and what
#: put.io holds then (the journal knows no transfer of the torrent in each)
BREAKS: dict[str, tuple[str, bool, str]] = {
    "before the magnet's transfer is cancelled": ("/v2/transfers/cancel", False, "magnet"),
    "after the magnet's transfer is cancelled": ("/v2/transfers/cancel", True, "nothing"),
    "after the upload, before the journal has it": ("/v2/files/upload", True, "torrent"),
}


@pytest.mark.parametrize("where", list(BREAKS))
def test_a_torrent_dropped_for_an_rpc_magnet_wins_though_serve_is_killed_mid_replacement(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory, where: str
) -> None:
    data, magnet, info_hash = torrent_and_magnet(torrent_bytes)
    path, done, held = BREAKS[where]
    with serve_process(mirror) as (process, client):
        category = {"download-dir": str(mirror.downloads / CATEGORY)}
        added = client.ok("torrent-add", filename=magnet, **category)["torrent-added"]
        (waiting,) = wait_for(lambda: fake_putio.transfers(), timeout=30)
        assert waiting["magneturi"] and waiting["status"] == "IN_QUEUE"
        kill_at(fake_putio, process, path, done=done)
        mirror.drop("Show.torrent", data)
        killed(fake_putio, process)
    assert held_by_put_io(fake_putio) == held
    assert journaled_transfer(mirror, info_hash) is None
    with serving(mirror) as server:
        client = Client(url_of(server))
        assert row_of(client, info_hash)["id"] == added["id"], "Sonarr's row, still there"
        wait_for(lambda: replaced(fake_putio, waiting["id"]), timeout=30)
        assert held_by_put_io(fake_putio) == "torrent", "the .torrent wins"
        wait_for(lambda: not loose_files(mirror), timeout=30)
        (transfer,) = fake_putio.transfers()
        assert transfer["hash"] == info_hash and transfer["id"] != waiting["id"]
        assert row_of(client, info_hash)["id"] == added["id"]
        fake_putio.finish_transfers()
        item = wait_for(lambda: placed(client, info_hash), timeout=30)
    uploads = [entry for entry in fake_putio.requests if entry.path == "/v2/files/upload"]
    assert uploads and all(data in upload.body for upload in uploads)
    assert "/v2/transfers/add" not in submissions(fake_putio)[1:], "the magnet, once"
    assert journaled_transfer(mirror, info_hash) == transfer["id"]
    # filed away as submitted (its bytes the RPC item's), not as a duplicate with a note
    assert names_in(mirror.blackhole / ".submitted") == ["Show.torrent"]
    # where Sonarr looks: its category's folder, which the .torrent went into on put.io too
    assert Path(item["downloadDir"]) == mirror.downloads / CATEGORY
    assert (Path(item["downloadDir"]) / item["name"] / f"{NAME}.mkv").stat().st_size == 3000


def test_an_rpc_replacement_killed_before_its_cancel_is_done_by_the_next_pass_alone(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    """Over RPC alone (the .torrent added after its magnet), killed once the journal forgot
    the magnet's transfer and before put.io cancelled it: the next pass (``serve``'s, as
    it starts again) records that transfer and replaces it, as the blackhole's does, not
    a pass later."""
    data, magnet, info_hash = torrent_and_magnet(torrent_bytes)
    with serve_process(mirror) as (process, client):
        client.ok("torrent-add", filename=magnet)
        wait_for(lambda: fake_putio.transfers(), timeout=30)
        kill_at(fake_putio, process, "/v2/transfers/cancel", done=False)
        client.add_torrent(data)
        killed(fake_putio, process)
    assert held_by_put_io(fake_putio) == "magnet"
    assert journaled_transfer(mirror, info_hash) is None
    fake_putio.clear_requests()
    one_pass = submit_blackhole(Runtime(load_settings(mirror.config, {})))
    assert one_pass is not None and not one_pass.failed, one_pass
    assert submissions(fake_putio) == ["/v2/transfers/cancel", "/v2/files/upload"]
    (transfer,) = fake_putio.transfers()
    assert transfer["hash"] == info_hash and transfer["magneturi"] is None
    assert journaled_transfer(mirror, info_hash) == transfer["id"]


def test_a_magnet_added_over_rpc_for_a_torrent_waiting_in_the_blackhole_never_goes_first(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    """The reverse order: the .torrent in the blackhole first, its submission not through
    (put.io failing the upload, or a run killed before it), then Sonarr adds the magnet.
    The magnet must not go to put.io ahead of the .torrent, nor have it filed away as its
    duplicate: the .torrent is submitted, and the magnet's row is the .torrent's item."""
    data, magnet, info_hash = torrent_and_magnet(torrent_bytes)
    fake_putio.inject("/v2/files/upload", status=503, retry_after="3600", times=1000)
    with serving(mirror) as server:
        client = Client(url_of(server))
        mirror.drop("Show.torrent", data)
        wait_for(lambda: "/v2/files/upload" in submissions(fake_putio), timeout=30)
        added = client.ok("torrent-add", filename=magnet)["torrent-added"]
        server.door.board.wait_refreshed(10)
        server.door.board.wait_refreshed(10)
        fake_putio.heal()
        (transfer,) = wait_for(lambda: fake_putio.transfers(), timeout=30)
        wait_for(lambda: not loose_files(mirror), timeout=30)
        server.door.board.wait_refreshed(10)
        assert [t["id"] for t in fake_putio.transfers()] == [transfer["id"]]
        assert row_of(client, info_hash)["id"] == added["id"]
        fake_putio.finish_transfers()
        wait_for(lambda: placed(client, info_hash), timeout=30)
    assert "/v2/transfers/add" not in submissions(fake_putio), "the magnet never sent"
    assert transfer["hash"] == info_hash and transfer["magneturi"] is None
    assert names_in(mirror.blackhole / ".submitted") == ["Show.torrent"], "submitted, no note"
    assert journaled_transfer(mirror, info_hash) == transfer["id"]
