"""A part's node GET spoken by hand and streamed chunk by chunk (``fetch/leanget.streamed_get``):
on the pool's own connections, kept alive between files, the socket's reads timed by the
kernel (one ``recv`` a chunk), every answer mapped as ``node_get`` maps it; whatever it
does not read itself goes back to ``node_get``."""

from __future__ import annotations

import shutil
import socket
import ssl
import struct
import subprocess
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from putio_mirror.fetch.engine import Fetcher
from putio_mirror.fetch.leanget import streamed_get
from putio_mirror.fetch.nodehttp import Retry
from putio_mirror.fetch.values import Fetched, FileToFetch
from putio_mirror.net.sessions import Session
from tests import test_node_direct
from tests.fetching import serving
from tests.test_node_direct import BODY, Node, handler_of

node = test_node_direct.node
CHUNK = 512  # BODY is 2 KiB: a part of four chunks, never fetched whole


@pytest.fixture
def session() -> Iterator[Session]:
    with Session() as made:
        yield made


def _item(tmp_path: Path, number: int = 1) -> FileToFetch:
    return FileToFetch(number, len(BODY), f"{zlib.crc32(BODY):08x}", tmp_path / f"{number}.part")


def _idle_socket(session: Session, node: Node) -> socket.socket:
    pool = session.direct_pool(node.url)
    assert pool is not None and pool.pool is not None
    conn = pool.pool.queue[-1]  # the connection given back last
    assert conn is not None and isinstance(conn.sock, socket.socket)
    return conn.sock


def test_parts_are_streamed_by_hand_on_one_kept_alive_connection(
    node: Node, tmp_path: Path, session: Session
) -> None:
    session.headers["Authorization"] = "token secret"
    fetcher = Fetcher(lambda _: node.url, session=session, chunk_size=CHUNK, read_timeout=7.5)
    for number in (1, 2, 3):
        item = _item(tmp_path, number)
        assert fetcher.fetch(item) == Fetched(True, len(BODY))
        assert item.part_path.read_bytes() == BODY
    assert len(node.seen) == 3 and len(set(node.ports)) == 1  # one connection, kept alive
    assert all("Authorization" not in headers for headers in node.seen)
    assert {headers["Accept-Encoding"] for headers in node.seen} == {"identity"}
    # Read by hand: the socket blocks, its reads timed by the kernel (urllib3 would have
    # left Python's timeout on it).
    sock = _idle_socket(session, node)
    assert sock.gettimeout() is None
    timeval = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16)
    assert struct.unpack("@ll", timeval)[0] == 7


def test_a_part_resumed_asks_for_the_rest_by_hand(
    node: Node, tmp_path: Path, session: Session
) -> None:
    item = _item(tmp_path)
    item.part_path.write_bytes(BODY[:700])
    node.status = 206
    node.headers = {"Content-Range": f"bytes 700-{len(BODY) - 1}/{len(BODY)}"}
    node.body = BODY[700:]
    fetcher = Fetcher(lambda _: node.url, session=session, chunk_size=CHUNK)
    assert fetcher.fetch(item) == Fetched(True, len(BODY))
    assert item.part_path.read_bytes() == BODY
    assert [headers.get("Range") for headers in node.seen] == ["bytes=700-"]


def test_the_connection_is_shared_with_urllib3_either_way(node: Node, session: Session) -> None:
    pool = session.direct_pool(node.url)
    assert pool is not None
    for _ in range(2):
        with streamed_get(session, node.url, None, (5.0, 5.0)) as (answer, read):
            buffer = memoryview(bytearray(len(BODY)))
            assert answer.status_code == 200 and read(buffer) == len(BODY)
        assert pool.urlopen("GET", "/node/1", retries=False).data == BODY
    assert len(set(node.ports)) == 1


def test_each_buffer_is_filled_as_the_body_trickles_in(session: Session) -> None:
    with _trickling_node() as url, streamed_get(session, url, None, (5.0, 5.0)) as (_, read):
        buffer = memoryview(bytearray(len(BODY)))
        assert read(buffer) == len(BODY)  # filled, though sent in four pieces
        assert bytes(buffer) == BODY
        assert read(buffer) == 0


def test_a_streamed_body_that_stalls_is_a_failed_connection(node: Node, session: Session) -> None:
    node.length = len(BODY) + 10  # announced, never sent: the node then waits
    buffer = memoryview(bytearray(len(BODY) + 10))
    started = time.monotonic()
    with (
        pytest.raises(Retry, match=r"the connection failed \(TimeoutError\)"),
        streamed_get(session, node.url, None, (5.0, 0.3)) as (_, read),
    ):
        came = read(buffer)  # what came within the read timeout may be handed over first
        read(buffer[came:])
    assert time.monotonic() - started < 3


def test_a_streamed_body_cut_short_is_a_failed_connection(session: Session) -> None:
    with _trickling_node(cut=True) as url:
        buffer = memoryview(bytearray(len(BODY)))
        with (
            pytest.raises(Retry, match=r"the connection failed \(IncompleteRead\)"),
            streamed_get(session, url, None, (5.0, 5.0)) as (_, read),
        ):
            # what came before the cut may be handed over first (a MSG_WAITALL read comes
            # back short at the cut): the next read fails
            came = read(buffer)
            assert bytes(buffer[:came]) == BODY[:came]
            read(buffer[came:])


def test_a_trickling_body_hands_over_what_came_within_the_read_timeout(session: Session) -> None:
    # The body comes in four pieces 50 ms apart: a read timeout of 0.12 s ends the buffer
    # early, with what came by then; nothing is lost, and the rest comes with the next.
    with _trickling_node() as url, streamed_get(session, url, None, (5.0, 0.12)) as (_, read):
        buffer = memoryview(bytearray(len(BODY)))
        got = read(buffer)
        assert 0 < got < len(BODY)
        while got < len(BODY):
            count = read(buffer[got:])
            assert count > 0
            got += count
        assert bytes(buffer) == BODY
        assert read(buffer) == 0


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (200, {"Content-Encoding": "gzip"}),
        (200, {"Transfer-Encoding": "chunked"}),
    ],
)
def test_answers_it_does_not_read_are_asked_again_through_node_get(
    node: Node, session: Session, status: int, headers: dict[str, str]
) -> None:
    node.status, node.headers = status, headers
    if "Transfer-Encoding" in headers:
        node.body = b"4\r\nabcd\r\n0\r\n\r\n"
    with streamed_get(session, node.url, None, (5.0, 5.0)) as (answer, _):
        assert answer.status_code == status
        assert hasattr(answer, "raw")  # urllib3's answer
    assert len(node.seen) == 2  # by hand, then through node_get


@contextmanager
def _trickling_node(*, cut: bool = False) -> Iterator[str]:
    """Yield the URL of a node that sends BODY in four pieces a little apart (``cut``: only
    three, then closes the connection)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.flush()
            quarter = len(BODY) // 4
            for start in range(0, len(BODY) - (quarter if cut else 0), quarter):
                time.sleep(0.05)
                self.wfile.write(BODY[start : start + quarter])
                self.wfile.flush()
            self.close_connection = cut

        def log_message(self, *args: object) -> None:
            pass

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as port:
        yield f"http://127.0.0.1:{port}/node/1"


# -- over TLS, as put.io's nodes answer: the socket keeps Python's timeout ----------------


@pytest.fixture
def tls_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Node]:
    """A Node over TLS on loopback, with a certificate for 127.0.0.1 that requests trusts
    (``REQUESTS_CA_BUNDLE``)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl makes the test's certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made_by = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    names = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    into = ["-keyout", str(key), "-out", str(cert)]
    subprocess.run([*made_by, *names, *into], check=True, capture_output=True)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    made = Node()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    class Server(ThreadingHTTPServer):
        def get_request(self) -> tuple[socket.socket, Any]:
            sock, address = super().get_request()
            return context.wrap_socket(sock, server_side=True), address

    server = Server(("127.0.0.1", 0), handler_of(made))
    with serving(server) as port:
        made.url = f"https://127.0.0.1:{port}/node/1"
        yield made


def test_parts_are_streamed_over_tls_on_one_kept_alive_connection(
    tls_node: Node, tmp_path: Path, session: Session
) -> None:
    fetcher = Fetcher(lambda _: tls_node.url, session=session, chunk_size=CHUNK)
    for number in (1, 2):
        item = _item(tmp_path, number)
        assert fetcher.fetch(item) == Fetched(True, len(BODY))
        assert item.part_path.read_bytes() == BODY
    assert len(tls_node.seen) == 2 and len(set(tls_node.ports)) == 1
    pool = session.direct_pool(tls_node.url)
    assert pool is not None and pool.pool is not None
    conn = pool.pool.queue[-1]
    assert conn is not None and isinstance(conn.sock, ssl.SSLSocket)
    assert conn.sock.gettimeout() == 60.0  # Python's timeout, as urllib3 leaves it


def test_a_tls_body_that_stalls_is_a_failed_connection(tls_node: Node, session: Session) -> None:
    tls_node.length = len(BODY) + 10
    buffer = memoryview(bytearray(len(BODY) + 10))
    with (
        pytest.raises(Retry, match=r"the connection failed \((TimeoutError|timeout)\)"),
        streamed_get(session, tls_node.url, None, (5.0, 0.3)) as (_, read),
    ):
        read(buffer)
