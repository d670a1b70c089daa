"""The fake put.io reads HTTP/1.1 itself: what raw requests on one socket get back."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from putio_mirror.fakeputio import FakePutio

AUTH = b"Authorization: token test-token\r\n"


@contextmanager
def _connection(fake: FakePutio) -> Iterator[tuple[socket.socket, BinaryIO]]:
    port = int(fake.api_url.rsplit(":", 1)[1].split("/")[0])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        sock.makefile("rb") as answers,
    ):
        yield sock, answers


def _answer(answers: BinaryIO) -> tuple[int, dict[str, str], bytes]:
    """Read one answer: its status, headers (lowercase names) and body."""
    status = int(answers.readline().split()[1])
    headers: dict[str, str] = {}
    while (line := answers.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.lower()] = value.strip()
    return status, headers, answers.read(int(headers.get("content-length", "0")))


def test_keep_alive_requests_carry_query_body_folded_and_repeated_headers(
    fake_putio: FakePutio,
) -> None:
    folder = (
        b"POST /v2/files/create-folder?parent_id=0&note=a%20b HTTP/1.1\r\n" + AUTH
        + b"X-Seen: one\r\nx-seen: two\r\nX-Folded: first\r\n \t second\r\n"
        + b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 10\r\n\r\n"
        + b"name=docs!"
    )  # fmt: skip
    listing = b"GET //v2/files/list?parent_id=0 HTTP/1.1\r\n" + AUTH + b"\r\n"
    with _connection(fake_putio) as (sock, answers):
        sock.sendall(folder + listing)  # both at once: the body must end where it says
        created = _answer(answers)
        listed = _answer(answers)
    assert created[0] == 200, created
    assert json.loads(created[2])["file"]["name"] == "docs!"
    assert listed[0] == 200, listed
    assert [entry["name"] for entry in json.loads(listed[2])["files"]] == ["docs!"]
    first, second = fake_putio.requests
    assert first.query == {"parent_id": "0", "note": "a b"}
    assert first.body == b"name=docs!"
    assert first.headers["x-seen"] == "one, two"
    assert first.headers["X-FOLDED"] == "first second"
    assert list(first.headers)[:3] == ["Authorization", "X-Seen", "X-Folded"]
    assert (second.path, second.query) == ("/v2/files/list", {"parent_id": "0"})


def test_chunked_body_and_expect_100_continue(fake_putio: FakePutio) -> None:
    head = (
        b"POST /v2/files/create-folder HTTP/1.1\r\n" + AUTH
        + b"Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n"
        + b"Content-Type: application/x-www-form-urlencoded\r\n\r\n"
    )  # fmt: skip
    with _connection(fake_putio) as (sock, answers):
        sock.sendall(head)
        assert answers.readline() == b"HTTP/1.1 100 Continue\r\n"
        assert answers.readline() == b"\r\n"
        sock.sendall(b"5;ext=1\r\nname=\r\n4\r\nbook\r\n0\r\nTrailer: x\r\n\r\n")
        status, _, body = _answer(answers)
    assert status == 200, body
    assert json.loads(body)["file"]["name"] == "book"


def test_http_1_0_closes_after_its_answer_unless_asked_to_keep_alive(
    fake_putio: FakePutio,
) -> None:
    request = b"GET /v2/account/info HTTP/1.0\r\n" + AUTH
    with _connection(fake_putio) as (sock, answers):
        sock.sendall(request + b"Connection: keep-alive\r\n\r\n")
        assert _answer(answers)[0] == 200
        sock.sendall(request + b"\r\n")
        assert _answer(answers)[0] == 200
        assert answers.read() == b""  # closed by the fake


def test_unreadable_requests_get_an_error_and_the_connection_closes(
    fake_putio: FakePutio,
) -> None:
    cases = [
        (b"OPTIONS /v2/account/info HTTP/1.1\r\n\r\n", 501),
        (b"GET /v2/account/info\r\n\r\n", 400),
        (b"GET /v2/account/info HTTP/2.0\r\n\r\n", 505),
        (b"GET /v2/account/info HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
        (b"GET /v2/account/info HTTP/1.1\r\n" + b"X-Many: 1\r\n" * 101 + b"\r\n", 431),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
    ]
    for request, expected in cases:
        with _connection(fake_putio) as (sock, answers):
            sock.sendall(request)
            status, headers, _ = _answer(answers)
            assert (status, headers["connection"]) == (expected, "close"), request[:40]
            assert answers.read() == b""
    assert fake_putio.requests == []
