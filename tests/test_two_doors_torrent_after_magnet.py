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

from putio_mirror.app.run import Runtime
from putio_mirror.cli.watch import submit_blackhole
from putio_mirror.config.settings import load_settings
from putio_mirror.fakeputio import FakePutio, LoggedRequest
from putio_mirror.journal.store import Journal
from putio_mirror.local.blackhole import parse_torrent
from tests.conftest import TorrentFactory
from tests.mirror_env import Mirror
from tests.postgres_server import free_port
from tests.rpc_env import PASSWORD, USER, Client, answers, wait_for

NAME = "Private.Show.S01E01"
#: the requests that add or take away a transfer on put.io
SUBMITTING = ("/v2/transfers/add", "/v2/files/upload", "/v2/transfers/cancel")


def torrent_and_magnet(torrent_bytes: TorrentFactory) -> tuple[bytes, str, str]:
    """A .torrent, a magnet of the same torrent (no trackers, as indexers often give
    them) and their info-hash."""
    data = torrent_bytes(NAME, files=[(f"{NAME}.mkv", 3000)])
    info_hash = parse_torrent(data)[0]
    return data, f"magnet:?xt=urn:btih:{info_hash}&dn={NAME}", info_hash


def submissions(fake: FakePutio) -> list[str]:
    return [entry.path for entry in fake.requests if entry.path in SUBMITTING]


def held_by_put_io(fake: FakePutio) -> str:
    sources = ["magnet" if t["magneturi"] else "torrent" for t in fake.transfers()]
    return " ".join(sources) or "nothing"


def journaled_transfer(mirror: Mirror, info_hash: str) -> int | None:
    with Journal.open(f"sqlite:///{mirror.journal}") as journal:
        return journal.transfer_of(info_hash)


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
