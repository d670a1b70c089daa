"""The endpoint under many clients at once and under a client that stalls."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from putio_mirror.config.rpc import RpcSettings
from putio_mirror.core.state import Policy
from putio_mirror.journal.store import Journal
from putio_mirror.rpc.board import Board
from putio_mirror.rpc.methods import Door
from putio_mirror.rpc.server import RpcServer
from tests.rpc_env import Client, url_of

READ_TIMEOUT = 0.5


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RpcServer]:
    """The endpoint alone (no watcher) on a journal of its own, stopped afterwards."""
    journal = Journal.open(f"sqlite:///{tmp_path / 'journal.sqlite3'}")
    door = Door(
        journal,
        Board(journal, Policy()),
        tmp_path / "downloads",
        RpcSettings(port=0),
        Policy(),
        wake=lambda: None,
        clock=lambda: datetime.now(UTC),
    )
    endpoint = RpcServer(door, RpcSettings(port=0), read_timeout=READ_TIMEOUT)
    endpoint.start()
    try:
        yield endpoint
    finally:
        endpoint.shutdown()
        endpoint.server_close()
        journal.close()


def test_a_hundred_clients_at_once_are_all_answered(server: RpcServer) -> None:
    def one_client(number: int) -> str:
        client = Client(url_of(server), auth=None)
        listing = client.ok("torrent-get", fields=["id"], ids="recently-active")
        assert listing == {"torrents": [], "removed": []}
        return str(client.ok("session-get")["version"])

    with ThreadPoolExecutor(100) as pool:
        versions = list(pool.map(one_client, range(100)))
    assert len(versions) == 100 and all(version.startswith("3.00") for version in versions)


def test_a_stalled_client_is_dropped_and_others_are_served_meanwhile(server: RpcServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as stalled:
        stalled.sendall(b"POST /transmission/rpc HTTP/1.1\r\nContent-Length: 100\r\n")
        assert Client(url_of(server), auth=None).ok("session-get")["rpc-version"] == 16
        started = time.monotonic()
        assert stalled.recv(100) == b""  # closed by the server, without an answer
        assert time.monotonic() - started < READ_TIMEOUT + 2
