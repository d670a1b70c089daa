"""The endpoint under many clients at once and under a client that stalls."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

from putio_mirror.rpc.server import RpcServer
from tests.rpc_env import READ_TIMEOUT, Client, url_of


def test_a_hundred_clients_at_once_are_all_answered(rpc_endpoint: RpcServer) -> None:
    def one_client(number: int) -> str:
        client = Client(url_of(rpc_endpoint), auth=None)
        listing = client.ok("torrent-get", fields=["id"], ids="recently-active")
        assert listing == {"torrents": [], "removed": []}
        return str(client.ok("session-get")["version"])

    with ThreadPoolExecutor(100) as pool:
        versions = list(pool.map(one_client, range(100)))
    assert len(versions) == 100 and all(version.startswith("3.00") for version in versions)


def test_a_stalled_client_is_dropped_and_others_are_served_meanwhile(
    rpc_endpoint: RpcServer,
) -> None:
    with socket.create_connection(("127.0.0.1", rpc_endpoint.port), timeout=5) as stalled:
        stalled.sendall(b"POST /transmission/rpc HTTP/1.1\r\nContent-Length: 100\r\n")
        assert Client(url_of(rpc_endpoint), auth=None).ok("session-get")["rpc-version"] == 16
        started = time.monotonic()
        assert stalled.recv(100) == b""  # closed by the server, without an answer
        assert time.monotonic() - started < READ_TIMEOUT + 2
