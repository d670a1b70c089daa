"""GETs that skip requests (``Session.direct_pool``): a node's, with the same checks and
headers less any token; the API's, with the same token, query and errors; requests' path
wherever a proxy or a redirect is involved."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from putio_mirror.core.errors import ChecksumMismatchError, NotFoundError
from putio_mirror.fakeputio import FakePutio
from putio_mirror.fetch.engine import Fetcher
from putio_mirror.fetch.nodehttp import node_get
from putio_mirror.fetch.values import Fetched, FileToFetch
from putio_mirror.net.sessions import Session
from putio_mirror.putio.client import PutioClient
from tests.fetching import serving

BODY = bytes(range(256)) * 8


@dataclass
class Node:
    """A node on loopback that answers each GET with ``status``, ``headers`` and ``body``,
    and remembers the headers it was sent."""

    url: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = BODY
    length: int | None = None  # the Content-Length sent, if not the body's
    seen: list[dict[str, str]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)  # each request's client port


def handler_of(made: Node) -> type[BaseHTTPRequestHandler]:
    """The request handler of a Node: answers as ``made`` says, remembers what it saw."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            made.seen.append(dict(self.headers.items()))
            made.ports.append(self.client_address[1])
            self.send_response(made.status)
            for name, value in made.headers.items():
                self.send_header(name, value)
            if "Transfer-Encoding" not in made.headers:
                length = len(made.body) if made.length is None else made.length
                self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(made.body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def node() -> Iterator[Node]:
    made = Node()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_of(made))
    with serving(server) as port:
        made.url = f"http://127.0.0.1:{port}/node/1"
        yield made


def _item(tmp_path: Path, size: int = len(BODY)) -> FileToFetch:
    return FileToFetch(1, size, f"{zlib.crc32(BODY):08x}", tmp_path / "1.part")


def test_a_loopback_node_is_asked_directly_without_the_token(node: Node, tmp_path: Path) -> None:
    with Session() as session:
        session.headers["Authorization"] = "token secret"
        assert session.direct_pool(node.url) is not None
        fetcher = Fetcher(lambda _: node.url, session=session)
        assert fetcher.fetch(_item(tmp_path)) == Fetched(True, len(BODY))
    assert (tmp_path / "1.part").read_bytes() == BODY
    assert [headers.get("Authorization") for headers in node.seen] == [None]


def test_a_direct_answer_announcing_another_size_fails_the_file(node: Node, tmp_path: Path) -> None:
    node.status = 206
    node.headers = {"Content-Range": f"bytes 0-{len(BODY) - 1}/{len(BODY) + 1}"}
    with Session() as session, pytest.raises(ChecksumMismatchError):
        Fetcher(lambda _: node.url, session=session).fetch(_item(tmp_path, len(BODY)))


def test_a_direct_answer_with_wrong_bytes_fails_the_file(node: Node, tmp_path: Path) -> None:
    node.body = bytes(len(BODY))
    with Session() as session, pytest.raises(ChecksumMismatchError):
        Fetcher(lambda _: node.url, session=session).fetch(_item(tmp_path))


def test_a_proxy_sends_node_requests_through_requests(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.delenv("no_proxy", raising=False)
    with Session() as session:
        assert session.direct_pool(node.url) is None


def test_a_redirect_is_followed(fake_putio: FakePutio) -> None:
    """The API's ``download`` answers 302 to a node URL: requests follows it."""
    file_id = fake_putio.add_file("a.bin", content=BODY)
    redirecting = f"{fake_putio.api_url}/files/{file_id}/download?oauth_token={fake_putio.token}"
    with Session() as session:
        assert session.direct_pool(redirecting) is not None
        with node_get(session, redirecting, None, (5.0, 5.0)) as answer:
            assert answer.status_code == 200
            assert answer.raw.read() == BODY


def test_the_apis_gets_go_direct_with_the_token_query_and_errors_as_before(
    fake_putio: FakePutio,
) -> None:
    """put.io's API GETs (a small file's link above all) skip requests too: the token, the
    query and the answers' mapping to our errors are the same."""
    folder = fake_putio.add_folder("Show")
    file_id = fake_putio.add_file("e01.mkv", parent_id=folder, content=BODY)
    with PutioClient(fake_putio.token, fake_putio.api_url, timeout=5.0, page_size=1) as client:
        assert Session().direct_pool(fake_putio.api_url) is not None
        link = client.download_url(file_id)
        listed = client.list_all_files()  # one a page: the cursor's query, page after page
        with pytest.raises(NotFoundError):
            client.file(987654)
    assert {entry.id for entry in listed} == {folder, file_id}
    with Session() as session, node_get(session, link, None, (5.0, 5.0)) as answer:
        assert answer.raw.read() == BODY
    api = [logged for logged in fake_putio.requests if logged.host == "api"]
    assert all(logged.headers.get("Authorization") == f"token {fake_putio.token}" for logged in api)
    assert any(logged.query.get("per_page") == "1" for logged in api)
