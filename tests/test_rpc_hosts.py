"""``serve`` on two hosts sharing one PostgreSQL journal: real processes, each with its own
download folder, run lock and RPC port, the fake put.io over loopback, Sonarr's calls."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from putio_mirror.core.errors import MirrorError
from putio_mirror.core.state import Desire
from putio_mirror.fakeputio import FakePutio
from putio_mirror.journal.store import Journal
from putio_mirror.local.marks import MARK_NAME
from tests.conftest import TorrentFactory
from tests.postgres_server import free_port
from tests.rpc_env import PASSWORD, USER, Client, answers, wait_for
from tests.test_hosts import shared_journal

__all__ = ["shared_journal"]  # a fixture, used here


@dataclass
class Host:
    """One ``serve`` process: its folder (config, token, state, log) and its client."""

    folder: Path
    client: Client

    @property
    def downloads(self) -> Path:
        return self.folder / "downloads"

    def syncs_ended(self) -> int:
        log = (self.folder / "serve.log").read_text(errors="replace")
        return log.count("watch sync:")


def _write_config(folder: Path, fake: FakePutio, journal: str, port: int) -> Path:
    (folder / "blackhole").mkdir(parents=True)
    (folder / "token").write_text(fake.token)
    (folder / "token").chmod(0o600)
    rpc = {"listen": f"127.0.0.1:{port}", "username": USER, "password": PASSWORD}
    config = {
        "putio": {"token_file": str(folder / "token"), "api_url": fake.api_url,
                  "upload_url": fake.upload_url, "timeout_seconds": 5},
        "paths": {"blackhole": str(folder / "blackhole"), "downloads": str(folder / "downloads"),
                  "journal": journal},
        "rpc": rpc | {"poll_seconds": 0.2},
    }  # fmt: skip
    path = folder / "mirror.yaml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


@contextmanager
def serve_host(folder: Path, fake: FakePutio, journal: str) -> Iterator[Host]:
    """Run ``putio-mirror serve`` as a host of its own (its own state folder, so its own
    run lock, as another machine's) until the test ends; yield it once it answers."""
    port = free_port()
    config = _write_config(folder, fake, journal, port)
    env = dict(os.environ, XDG_STATE_HOME=str(folder / "state"), XDG_RUNTIME_DIR="")
    env.pop("PUTIO_TOKEN", None)
    with (folder / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "putio_mirror", "--config", str(config), "serve"],
            env=env,
            stdout=log,
            stderr=log,
        )
    try:
        host = Host(folder, Client(f"http://127.0.0.1:{port}/transmission/rpc"))
        wait_for(lambda: answers(host.client), timeout=30)
        yield host
    finally:
        process.kill()
        process.wait(15)


def _placed(hosts: list[Host]) -> list[Path]:
    return [
        path
        for host in hosts
        for path in host.downloads.rglob("*")
        if path.is_file() and ".putio-mirror-staging" not in path.parts and path.name != MARK_NAME
    ]


@pytest.mark.parametrize(
    ("layout", "category"),
    [
        # placed by its download itself, straight into the download folder
        ({"length": 600_000}, None),
        # placed by a PlaceItem of its category folder, once verified in staging
        ({"files": [("a.mkv", 600_000), ("b.srt", 1000)]}, "tv-sonarr"),
    ],
    ids=["file", "folder-in-category"],
)
def test_an_item_removed_on_one_host_while_another_fetches_it_is_never_placed(
    tmp_path: Path,
    fake_putio: FakePutio,
    shared_journal: str,
    torrent_bytes: TorrentFactory,
    layout: dict[str, Any],
    category: str | None,
) -> None:
    """Sonarr adds one torrent to two ``serve`` hosts sharing a journal: put.io gets one
    transfer. One host fetches it; Sonarr removes it, with its data, through the other.
    The fetching host must not place it afterwards: nobody would ever remove it (its
    desire is gone from both hosts' lists), and this host's own removals stop its sync,
    but another host's removal reaches it only through the journal."""
    data = torrent_bytes("Show.S01E02", **layout)
    with ExitStack() as stack:
        hosts = [
            stack.enter_context(serve_host(tmp_path / name, fake_putio, shared_journal))
            for name in "ab"
        ]
        where = {"download-dir": f"/elsewhere/{category}"} if category else {}
        added: list[dict[str, Any]] = []

        def add(host: Host) -> None:
            added.append(host.client.add_torrent(data, **where))

        adding = [threading.Thread(target=add, args=(host,)) for host in hosts]
        for thread in adding:
            thread.start()
        for thread in adding:
            thread.join()
        replies = sorted(next(iter(reply)) for reply in added)
        assert replies == ["torrent-added", "torrent-duplicate"]
        info_hash = next(iter(added[0].values()))["hashString"]
        wait_for(fake_putio.transfers)
        fake_putio.node_bytes_per_second = 300_000  # two seconds of fetching
        fake_putio.finish_transfers()
        fetching = wait_for(
            lambda: [host for host in hosts if any(host.downloads.rglob("*.part"))]
        )[0]
        other = hosts[1] if fetching is hosts[0] else hosts[0]
        syncs = fetching.syncs_ended()
        other.client.ok("torrent-remove", ids=[info_hash], **{"delete-local-data": True})
        wait_for(lambda: fetching.syncs_ended() > syncs)  # the sync that fetched it
        assert _placed(hosts) == []
        for host in hosts:
            assert host.client.ok("torrent-get", fields=["hashString"])["torrents"] == []
    assert [t["hash"] for t in fake_putio.transfers()] in ([], [info_hash])
    fetched = Counter(r.path for r in fake_putio.requests if r.host == "node" and r.method == "GET")
    assert max(fetched.values()) == 1, "no file fetched twice"


def test_one_torrent_added_on_many_hosts_at_once_is_one_desire_and_no_error(
    shared_journal: str,
) -> None:
    """Hosts sharing a PostgreSQL journal each take Sonarr's ``torrent-add`` of one torrent
    at the same moment: one is added, the others are duplicates, none an error (which
    Sonarr shows, failing the grab)."""
    journals = [Journal.open(shared_journal) for _ in range(4)]
    added: list[bool] = []
    errors: list[MirrorError] = []
    barrier = threading.Barrier(len(journals))

    def add(journal: Journal, info_hash: str) -> None:
        desire = Desire(info_hash, 0, f"item {info_hash[:4]}", "torrent", datetime.now(UTC))
        barrier.wait()
        try:
            added.append(journal.desires.add(desire, b"d4:infod4:name1:xee")[1])
        except MirrorError as error:
            errors.append(error)

    try:
        for n in range(10):
            info_hash = f"{n:040x}"
            threads = [threading.Thread(target=add, args=(j, info_hash)) for j in journals]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        for journal in journals:
            journal.close()
    assert errors == []
    assert sorted(added) == [False] * 30 + [True] * 10
