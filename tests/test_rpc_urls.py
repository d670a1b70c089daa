"""``torrent-add`` with ``filename`` an http(s) URL: the .torrent is fetched here (bounded in
time and size) and then taken as if it came as ``metainfo``. Every server is a local one
on 127.0.0.1; nothing reaches the internet."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from putio_mirror.fakeputio import FakePutio
from putio_mirror.local.blackhole import MAX_TORRENT_BYTES, parse_torrent
from putio_mirror.rpc.server import RpcServer
from tests.conftest import TorrentFactory
from tests.mirror_env import Mirror
from tests.rpc_env import Client, serving, url_of, wait_for

MAGNET = "magnet:?xt=urn:btih:" + "c" * 40 + "&dn=From.A.Redirect"
Reply = Callable[[BaseHTTPRequestHandler], None]


@contextmanager
def web(routes: dict[str, Reply]) -> Iterator[str]:
    """Serve ``routes`` (path -> how to answer) on 127.0.0.1; yield the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            routes.get(self.path, lambda handler: handler.send_error(404))(self)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def body(data: bytes, content_type: str = "application/x-bittorrent") -> Reply:
    def reply(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return reply


def endless(handler: BaseHTTPRequestHandler) -> None:
    """A body with no length that never ends (the cap must stop it, not memory)."""
    handler.send_response(200)
    handler.end_headers()
    chunk = b"d" * 65536
    try:
        for _ in range(MAX_TORRENT_BYTES // len(chunk) * 4):
            handler.wfile.write(chunk)
    except OSError:
        pass  # the fetcher hung up: as it should


def stalling(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    handler.wfile.write(b"d8:announce")
    handler.wfile.flush()
    time.sleep(3)


def dripping(handler: BaseHTTPRequestHandler) -> None:
    """A byte at a time, each well within a read's timeout: only the deadline stops it."""
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    try:
        for _ in range(30):
            handler.wfile.write(b"d")
            handler.wfile.flush()
            time.sleep(0.1)
    except OSError:
        pass


def redirect(location: str) -> Reply:
    def reply(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return reply


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_torrent_at_a_url_is_fetched_and_added_as_if_sent_as_metainfo(
    rpc_endpoint: RpcServer, torrent_bytes: TorrentFactory
) -> None:
    data = torrent_bytes("Show.S02E03", files=[("Show.S02E03/a.mkv", 5000)])
    info_hash, name = parse_torrent(data)
    client = Client(url_of(rpc_endpoint), auth=None)
    with web({"/a.torrent": body(data), "/moved": redirect("/a.torrent")}) as base:
        added = client.ok("torrent-add", filename=f"{base}/moved", paused=True)["torrent-added"]
        again = client.ok("torrent-add", filename=f"{base}/a.torrent")["torrent-duplicate"]
        # (asked before the web server stops: stopping it takes longer than the endpoint
        # keeps an idle connection open)
        (item,) = client.ok("torrent-get", fields=["hashString", "totalSize", "status"])["torrents"]
    assert added == {"id": 1, "name": name, "hashString": info_hash} == again
    assert item == {"hashString": info_hash, "totalSize": 5000, "status": 0}
    assert rpc_endpoint.door.journal.desires.torrent(info_hash) == data


def test_a_url_that_redirects_to_a_magnet_adds_the_magnet(rpc_endpoint: RpcServer) -> None:
    client = Client(url_of(rpc_endpoint), auth=None)
    with web({"/get": redirect(MAGNET)}) as base:
        added = client.ok("torrent-add", filename=f"{base}/get")["torrent-added"]
    assert (added["hashString"], added["name"]) == ("c" * 40, "From.A.Redirect")


@pytest.mark.parametrize(
    ("path", "reply", "message"),
    [
        ("/missing", None, "HTTP 404"),
        ("/page", body(b"<html>login first</html>", "text/html"), "not a torrent"),
        ("/huge", body(b"d" * (MAX_TORRENT_BYTES + 1)), f"over {MAX_TORRENT_BYTES} bytes"),
        ("/endless", endless, f"over {MAX_TORRENT_BYTES} bytes"),
        ("/loop", redirect("/loop"), "too many redirects"),
        ("/ftp", redirect("ftp://127.0.0.1/a.torrent"), "only http and https"),
    ],
)
def test_what_a_url_gives_that_is_no_torrent_is_a_clear_error(
    rpc_endpoint: RpcServer, path: str, reply: Reply | None, message: str
) -> None:
    client = Client(url_of(rpc_endpoint), auth=None)
    routes = {path: reply} if reply is not None else {}
    with web(routes) as base:
        result = client.call("torrent-add", filename=f"{base}{path}")["result"]
        assert client.ok("torrent-get", fields=["id"])["torrents"] == []
    assert message in result and f"{base}{path}" in result


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"http://127.0.0.1:{closed_port()}/a.torrent", "could not reach"),
        ("ftp://127.0.0.1/a.torrent", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("/etc/passwd", "a path on this machine is not read"),
    ],
)
def test_unreachable_urls_and_other_schemes_are_refused(
    rpc_endpoint: RpcServer, url: str, message: str
) -> None:
    result = Client(url_of(rpc_endpoint), auth=None).call("torrent-add", filename=url)["result"]
    assert message in result


@pytest.mark.parametrize("slow", [stalling, dripping])
def test_a_stalling_server_times_out_and_other_clients_are_answered_meanwhile(
    rpc_endpoint: RpcServer, slow: Reply
) -> None:
    rpc_endpoint.door.url_timeout = 1.0
    waiting, other = (
        Client(url_of(rpc_endpoint), auth=None),
        Client(url_of(rpc_endpoint), auth=None),
    )
    results: list[str] = []
    with web({"/slow": slow}) as base:
        adding = threading.Thread(
            target=lambda: results.append(
                waiting.call("torrent-add", filename=f"{base}/slow")["result"]
            )
        )
        started = time.monotonic()
        adding.start()
        time.sleep(0.2)  # the fetch is under way
        other.ok("session-get")
        answered_after = time.monotonic() - started
        adding.join(10)
    assert answered_after < 0.9  # not behind the stalled fetch
    assert results and "timed out" in results[0]
    assert time.monotonic() - started < 2.5  # the fetch gave up at its timeout, not the server's


def test_a_url_added_through_serve_reaches_put_io_once_by_its_hash(
    mirror: Mirror, fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    data = torrent_bytes("Film.2026", length=4000)
    info_hash, _ = parse_torrent(data)
    with web({"/film.torrent": body(data)}) as base, serving(mirror) as server:
        client = Client(url_of(server))
        client.ok("torrent-add", filename=f"{base}/film.torrent")
        transfers = wait_for(lambda: fake_putio.transfers())
    assert [transfer["hash"] for transfer in transfers] == [info_hash]
