"""A small file's GET spoken by hand (``fetch/leanget.py``): on the pool's own connections,
kept alive between files, and every answer mapped as ``node_get`` and ``body_start`` map it;
whatever it does not read itself goes back to ``node_get``. The API's GETs
(``net/sessions.direct_get``) are read by hand the same way."""

from __future__ import annotations

import gzip
import json
import re
import urllib.parse
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import urllib3
from requests import Response

from putio_mirror.core.errors import ChecksumMismatchError
from putio_mirror.fetch.engine import Fetcher
from putio_mirror.fetch.leanget import NOT_MINE, Partial, lean_body
from putio_mirror.fetch.nodehttp import Retry
from putio_mirror.fetch.values import Fetched, FileToFetch
from putio_mirror.net.sessions import Session, direct_get, request_target
from tests import test_node_direct
from tests.test_node_direct import BODY, Node

node = test_node_direct.node
TIMEOUT = (5.0, 5.0)


@pytest.fixture
def session() -> Iterator[Session]:
    with Session() as made:
        yield made


def _item(tmp_path: Path, size: int = len(BODY)) -> FileToFetch:
    return FileToFetch(1, size, f"{zlib.crc32(BODY):08x}", tmp_path / "1.part")


def _pool(session: Session, node: Node) -> urllib3.HTTPConnectionPool:
    pool = session.direct_pool(node.url)
    assert pool is not None
    return pool


def _ask(
    session: Session, node: Node, item: FileToFetch, timeout: tuple[float, float] = TIMEOUT
) -> object:
    return lean_body(_pool(session, node), request_target(node.url), item, timeout)


def _bytes(body: object) -> bytes:
    assert isinstance(body, memoryview)
    return bytes(body)


def test_small_files_are_fetched_by_hand_on_one_kept_alive_connection(
    node: Node, tmp_path: Path, session: Session
) -> None:
    session.headers["Authorization"] = "token secret"
    fetcher = Fetcher(lambda _: node.url, session=session)
    for number in (1, 2, 3):
        item = FileToFetch(number, len(BODY), f"{zlib.crc32(BODY):08x}", tmp_path / f"{number}")
        assert fetcher.fetch(item) == Fetched(True, len(BODY))
        assert item.part_path.read_bytes() == BODY
    assert len(node.seen) == 3 and len(set(node.ports)) == 1  # one connection, kept alive
    assert all("Authorization" not in headers for headers in node.seen)
    assert {headers["Accept-Encoding"] for headers in node.seen} == {"identity"}
    assert all("Range" not in headers for headers in node.seen)


def test_the_connection_is_shared_with_the_usual_path(
    node: Node, tmp_path: Path, session: Session
) -> None:
    item = _item(tmp_path)
    assert _bytes(_ask(session, node, item)) == BODY
    answer = _pool(session, node).urlopen("GET", "/node/1", retries=False)
    assert answer.data == BODY
    assert _bytes(_ask(session, node, item)) == BODY
    assert len(set(node.ports)) == 1


@pytest.mark.parametrize(
    ("status", "headers", "reason", "retry_after"),
    [
        (503, {"Retry-After": "7"}, "the node answered HTTP 503", 7.0),
        (500, {}, "the node answered HTTP 500", None),
        (404, {}, "the node refused the URL (HTTP 404); asking for a fresh one", None),
        (410, {}, "the node refused the URL (HTTP 410); asking for a fresh one", None),
        (
            206,
            {"Content-Range": f"bytes 5-{len(BODY) - 1}/{len(BODY)}"},
            "the node answered a range other than bytes 0-",
            None,
        ),
        (416, {"Content-Range": f"bytes */{len(BODY)}"}, "the node refused the range", None),
    ],
)
def test_answers_are_mapped_as_body_start_maps_them(
    node: Node,
    tmp_path: Path,
    session: Session,
    status: int,
    headers: dict[str, str],
    reason: str,
    retry_after: float | None,
) -> None:
    node.status, node.headers = status, headers
    with pytest.raises(Retry) as raised:
        _ask(session, node, _item(tmp_path))
    assert raised.value.reason.startswith(reason)
    assert raised.value.retry_after == retry_after
    assert not raised.value.from_api


def test_a_206_of_the_whole_file_is_its_body(node: Node, tmp_path: Path, session: Session) -> None:
    node.status = 206
    node.headers = {"content-range": f"bytes 0-{len(BODY) - 1}/{len(BODY)}"}
    assert _bytes(_ask(session, node, _item(tmp_path))) == BODY


def test_a_node_announcing_another_size_fails_the_file(
    node: Node, tmp_path: Path, session: Session
) -> None:
    node.status = 206
    node.headers = {"Content-Range": f"bytes 0-{len(BODY) - 1}/{len(BODY) + 1}"}
    with pytest.raises(ChecksumMismatchError):
        _ask(session, node, _item(tmp_path))


def test_a_short_body_is_retried_and_a_longer_one_handed_to_the_usual_path(
    node: Node, tmp_path: Path, session: Session
) -> None:
    with pytest.raises(Retry, match="short body"):
        _ask(session, node, _item(tmp_path, len(BODY) + 10))
    assert _ask(session, node, _item(tmp_path, len(BODY) - 10)) is None


def test_a_body_cut_short_or_stalled_is_a_failed_connection_keeping_what_came(
    node: Node, tmp_path: Path, session: Session
) -> None:
    node.length = len(BODY) + 10  # announced, never sent: the node then waits
    failed = r"the connection failed \((TimeoutError|timeout)\)"
    try:
        answer = _ask(session, node, _item(tmp_path, len(BODY) + 10), timeout=(5.0, 0.3))
    except Retry as trouble:  # the body's bytes came with the head, in the read that failed
        assert re.fullmatch(failed, str(trouble))
        return
    # the bytes came in a read of their own, handed over before the next one failed
    assert isinstance(answer, Partial) and answer.trouble is not None
    assert re.fullmatch(failed, str(answer.trouble))
    assert BODY.startswith(bytes(answer.body)) and len(answer.body) > 0


def test_a_node_that_is_not_there_is_a_failed_connection(tmp_path: Path, session: Session) -> None:
    gone = Node(url="http://127.0.0.1:9/node/1")
    with pytest.raises(Retry, match="the connection failed"):
        _ask(session, gone, _item(tmp_path))


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (302, {"Location": "/elsewhere"}),
        (200, {"Transfer-Encoding": "chunked"}),
        (200, {"Content-Encoding": "gzip"}),
    ],
)
def test_answers_it_does_not_read_go_back_to_node_get(
    node: Node, tmp_path: Path, session: Session, status: int, headers: dict[str, str]
) -> None:
    node.status, node.headers = status, headers
    assert _ask(session, node, _item(tmp_path)) is NOT_MINE


# -- the API's GETs (net/sessions.direct_get), read by hand the same way -----------------


def _api_get(session: Session, node: Node, timeout: tuple[float, float] = TIMEOUT) -> Response:
    answer = direct_get(session, node.url, {"a": 1}, {"Authorization": "token t"}, timeout)
    assert answer is not None
    return answer


def test_api_gets_are_read_by_hand_on_one_kept_alive_connection(
    node: Node, session: Session
) -> None:
    node.body = json.dumps({"url": "http://node/1"}).encode()
    node.headers = {"Content-Type": "application/json"}
    answers = [_api_get(session, node) for _ in range(3)]
    assert [answer.json() for answer in answers] == [{"url": "http://node/1"}] * 3
    assert answers[0].headers["content-type"] == "application/json"
    assert answers[0].url == f"{node.url}?a=1"
    assert len(set(node.ports)) == 1
    assert {headers["Authorization"] for headers in node.seen} == {"token t"}


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_an_api_answer_compressed_is_decoded(node: Node, session: Session, encoding: str) -> None:
    text = json.dumps({"files": list(range(100))}).encode()
    node.body = gzip.compress(text) if encoding == "gzip" else zlib.compress(text)
    node.headers = {"Content-Encoding": encoding}
    assert _api_get(session, node).content == text


def test_an_api_answer_not_read_by_hand_is_read_by_urllib3(node: Node, session: Session) -> None:
    node.status, node.headers, node.body = 302, {"Location": "/elsewhere"}, b""
    answer = _api_get(session, node)
    assert answer.status_code == 302 and answer.headers["Location"] == "/elsewhere"
    assert len(node.seen) == 2  # asked by hand, then again through urllib3


def test_an_api_answer_that_stalls_is_a_read_timeout(node: Node, session: Session) -> None:
    node.length = len(node.body) + 10
    with pytest.raises(requests.ReadTimeout):
        _api_get(session, node, timeout=(5.0, 0.3))


def test_an_api_answer_of_several_gzip_members_is_left_to_urllib3(
    node: Node, session: Session
) -> None:
    node.body = gzip.compress(b'{"a": ') + gzip.compress(b"1}")
    node.headers = {"Content-Encoding": "gzip"}
    assert _api_get(session, node).json() == {"a": 1}
    assert len(node.seen) == 2  # read by hand, found not plain, asked again through urllib3


def test_an_api_answer_longer_than_the_room_read_ahead_is_read_whole(
    node: Node, session: Session
) -> None:
    node.body = json.dumps({"files": ["x" * 100] * 3000}).encode()  # ~300 KB
    assert len(node.body) > 200_000
    assert _api_get(session, node).content == node.body
    assert _api_get(session, node).content == node.body
    assert len(node.seen) == 2 and len(set(node.ports)) == 1


def test_an_api_answer_announcing_more_than_it_sends_makes_no_buffer_of_that_size(
    node: Node, session: Session
) -> None:
    # A Content-Length is the server's word: a wrong one (2**62 bytes) must not become a
    # buffer of that size (MemoryError). urllib3 reads such an answer as it comes; this one
    # stalls, which requests tells as it always did (a read timeout in the body).
    node.length = 2**62
    with pytest.raises((requests.ReadTimeout, requests.ConnectionError)):
        _api_get(session, node, timeout=(5.0, 0.3)).content  # noqa: B018


# -- the answer's head, as read by hand --------------------------------------------------


def test_repeated_headers_are_joined_and_looked_up_whatever_their_case(
    node: Node, session: Session
) -> None:
    node.headers = {"X-Seen": "one\r\nx-seen: two", "Content-Type": "application/json"}
    node.body = b"{}"
    answer = _api_get(session, node)
    assert answer.headers["X-SEEN"] == "one, two"
    assert answer.headers.get("content-type") == "application/json"


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Folded": "one\r\n two"},  # a header folded over two lines
        {"X-Odd": "one\r\nX-Spaced : two"},  # a space before the colon
        {"X-Odd": "one\r\nno colon at all"},
    ],
)
def test_an_answer_with_an_odd_header_line_goes_back_to_node_get(
    node: Node, tmp_path: Path, session: Session, headers: dict[str, str]
) -> None:
    node.headers = headers
    assert _ask(session, node, _item(tmp_path)) is NOT_MINE


@pytest.mark.parametrize(
    "url",
    [
        "http://node/1",
        "https://node:8443/a/b?c=d&e=f",
        "http://node/a?",  # an empty query: dropped
        "http://node/a#part",  # a fragment is not sent
        "http://node?x/y",  # the query starts before any slash
        "http://node#x/y",
        "http://no\tde/a\tb",  # urlsplit removes tabs and line breaks
        "http://node",
        "http://[::1]:80/a?b",
        "HTTP://node/a",
    ],
)
def test_a_request_target_is_the_one_urlsplit_finds(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    assert request_target(url) == (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def test_urls_of_one_origin_share_a_pool_and_only_they(session: Session) -> None:
    first = session.direct_pool("http://127.0.0.1:1/a?b")
    assert first is not None
    assert session.direct_pool("http://127.0.0.1:1/c") is first
    assert session.direct_pool("http://127.0.0.1:1?q/c") is first
    other = session.direct_pool("http://127.0.0.1:2/a")
    assert other is not None and other is not first
    assert session.direct_pool("http://127.0.0.1:2/b") is other
