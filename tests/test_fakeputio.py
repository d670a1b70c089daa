"""The fake put.io behaves like put.io over real HTTP, and its faults fire as armed."""

from __future__ import annotations

import base64
import hashlib
import socket
import time
import unicodedata
import zlib
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from fastbencode import bdecode, bencode  # type: ignore[attr-defined]

from putio_mirror.fakeputio import FakePutio

TOKEN = "test-token"
BLOCK = 1_000_003  # generated content repeats with this period
TorrentFactory = Callable[..., bytes]


@pytest.fixture
def api(fake_putio: FakePutio) -> Iterator[requests.Session]:
    """A session that sends the valid token to the API host."""
    with requests.Session() as session:
        session.headers["Authorization"] = f"token {TOKEN}"
        yield session


def _get(session: requests.Session, fake: FakePutio, path: str, **params: Any) -> Any:
    response = session.get(f"{fake.api_url}{path}", params=params, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def _post(session: requests.Session, fake: FakePutio, path: str, **data: Any) -> Any:
    response = session.post(f"{fake.api_url}{path}", data=data, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def _node_get(url: str, **headers: str) -> requests.Response:
    with requests.Session() as session:
        return session.get(url, headers=headers, timeout=5)


def _upload(fake: FakePutio, data: bytes, name: str, **query: str) -> requests.Response:
    with requests.Session() as session:
        return session.post(
            f"{fake.upload_url}/files/upload",
            params=query,
            files={"file": (name, data)},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=5,
        )


# -- auth --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        ({"Authorization": f"token {TOKEN}"}, {}),
        ({"Authorization": f"Token {TOKEN}"}, {}),
        ({"Authorization": f"Bearer {TOKEN}"}, {}),
        ({}, {"oauth_token": TOKEN}),
    ],
)
def test_api_accepts_every_documented_token_form(
    fake_putio: FakePutio, headers: dict[str, str], params: dict[str, str]
) -> None:
    response = requests.get(
        f"{fake_putio.api_url}/account/info", headers=headers, params=params, timeout=5
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["status"] == "OK"
    assert response.json()["info"]["disk"]["size"] > 0


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "token wrong"}, {"Authorization": TOKEN}]
)
def test_missing_or_wrong_token_gets_invalid_grant(
    fake_putio: FakePutio, headers: dict[str, str]
) -> None:
    response = requests.get(f"{fake_putio.api_url}/files/list", headers=headers, timeout=5)
    assert response.status_code == 401
    assert response.json() == {
        "status": "ERROR",
        "status_code": 401,
        "error_type": "invalid_grant",
        "error_message": "You have to login with proper credentials",
        "error_uri": "http://api.put.io/v2/docs",
        "error_id": None,
        "extra": {},
    }


def test_revoked_token_gets_401_on_api_and_upload(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    assert api.get(f"{fake_putio.api_url}/account/info", timeout=5).status_code == 200
    fake_putio.revoke_token()
    assert api.get(f"{fake_putio.api_url}/account/info", timeout=5).status_code == 401
    assert _upload(fake_putio, b"x", "a.txt").json()["error_type"] == "invalid_grant"


def test_upload_host_can_answer_401_with_a_text_body(fake_putio: FakePutio) -> None:
    fake_putio.upload_unauthorized_text = True
    fake_putio.revoke_token()
    response = _upload(fake_putio, b"x", "a.txt")
    assert response.status_code == 401
    assert not response.headers["Content-Type"].startswith("application/json")
    assert "could not verify" in response.text


def test_validate_reports_whether_the_token_is_good(fake_putio: FakePutio) -> None:
    url = f"{fake_putio.api_url}/oauth2/validate"
    good = requests.get(url, params={"oauth_token": TOKEN}, timeout=5).json()
    bad = requests.get(url, params={"oauth_token": "nope"}, timeout=5).json()
    assert (good["result"], good["user_id"]) == (True, 1)
    assert (bad["result"], bad["user_id"]) == (False, None)


# -- files -------------------------------------------------------------------------


def test_files_list_pages_with_cursor_until_null(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    ids = [fake_putio.add_file(f"f{n}.txt", content=b"x") for n in range(5)]
    first = _get(api, fake_putio, "/files/list", parent_id=0, per_page=2)
    second = _post(api, fake_putio, "/files/list/continue", cursor=first["cursor"])
    response = api.post(
        f"{fake_putio.api_url}/files/list/continue", json={"cursor": second["cursor"]}, timeout=5
    )
    third = response.json()
    pages = [[entry["id"] for entry in page["files"]] for page in (first, second, third)]
    assert pages == [ids[0:2], ids[2:4], ids[4:5]]
    assert first["parent"]["id"] == 0
    assert first["cursor"] and second["cursor"]
    assert third["cursor"] is None


def test_files_list_continue_rejects_an_unknown_cursor(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    response = api.post(f"{fake_putio.api_url}/files/list/continue", data={"cursor": "bogus"})
    assert response.status_code == 400
    assert response.json()["status"] == "ERROR"


def test_flat_listing_returns_every_item_in_id_order(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    folder = fake_putio.add_folder("Movies")
    inner = fake_putio.add_folder("Inner", parent_id=folder)
    leaf = fake_putio.add_file("a.mkv", parent_id=inner, content=b"abc")
    top = fake_putio.add_file("b.txt", content=b"")
    first = _get(api, fake_putio, "/files/list", parent_id=-1, per_page=3)
    rest = _post(api, fake_putio, "/files/list/continue", cursor=first["cursor"])
    listed = [entry["id"] for entry in first["files"] + rest["files"]]
    assert listed == [folder, inner, leaf, top]
    assert rest["cursor"] is None


def test_a_listing_shows_renames_hidings_and_new_sizes_made_since_the_last_one(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    folder = fake_putio.add_folder("Show")
    first = fake_putio.add_file("e1.mkv", parent_id=folder, content=b"abc")
    second = fake_putio.add_file("e2.mkv", parent_id=folder, content=b"de")
    before = _get(api, fake_putio, "/files/list", parent_id=-1, hidden=1)["files"]
    fake_putio.rename(first, "e1 (renamed).mkv")
    fake_putio.hide_file(second)
    fake_putio.add_file("e3.mkv", parent_id=folder, content=b"fghi")
    after = _get(api, fake_putio, "/files/list", parent_id=-1, hidden=1)["files"]
    assert [(entry["name"], entry["size"], entry["is_hidden"]) for entry in before] == [
        ("Show", 5, False),
        ("e1.mkv", 3, False),
        ("e2.mkv", 2, False),
    ]
    assert [(entry["name"], entry["size"], entry["is_hidden"]) for entry in after] == [
        ("Show", 9, False),
        ("e1 (renamed).mkv", 3, False),
        ("e2.mkv", 2, True),
        ("e3.mkv", 4, False),
    ]


def test_listing_a_file_returns_it_as_parent_and_an_unknown_parent_is_404(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    file_id = fake_putio.add_file("a.mkv", content=b"abc")
    listing = _get(api, fake_putio, "/files/list", parent_id=file_id)
    missing = api.get(f"{fake_putio.api_url}/files/list", params={"parent_id": 2147483647})
    assert listing["parent"]["id"] == file_id
    assert listing["files"] == []
    assert missing.status_code == 404


def test_file_objects_carry_sizes_crc_and_types(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    folder = fake_putio.add_folder("Show")
    movie = fake_putio.add_file("e1.mkv", parent_id=folder, content=b"hello")
    fake_putio.add_file("big.bin", parent_id=folder, size=3_000_000)
    folder_json = _get(api, fake_putio, f"/files/{folder}")["file"]
    movie_json = _get(api, fake_putio, f"/files/{movie}")["file"]
    assert folder_json["size"] == 3_000_005
    assert folder_json["crc32"] is None
    assert folder_json["content_type"] == "application/x-directory"
    assert movie_json["crc32"] == f"{zlib.crc32(b'hello'):08x}"
    assert (movie_json["file_type"], movie_json["extension"]) == ("VIDEO", "mkv")
    assert len(movie_json["created_at"]) == len("2024-01-01T00:00:00")
    assert api.get(f"{fake_putio.api_url}/files/2147483647").status_code == 404


def test_generated_content_crc_matches_the_bytes_across_block_boundaries(
    fake_putio: FakePutio,
) -> None:
    file_id = fake_putio.add_file("big.bin", size=2_500_000)
    data = fake_putio.file_content(file_id)
    assert len(data) == 2_500_000
    assert fake_putio.file_crc32(file_id) == f"{zlib.crc32(data):08x}"
    assert data[1_000_003:1_000_103] == data[:100]
    assert data[:100] != fake_putio.file_content(fake_putio.add_file("c.bin", size=100))


@pytest.mark.parametrize(
    ("name", "error_type"),
    [
        ("", "EMPTY_NAME"),
        ("a/b", "SLASH_IN_NAME"),
        ("é" * 128, "NAME_TOO_LONG"),
        ("Existing", "NAME_ALREADY_EXIST"),
    ],
)
def test_create_folder_rejects_bad_names(
    fake_putio: FakePutio, api: requests.Session, name: str, error_type: str
) -> None:
    fake_putio.add_folder("Existing")
    response = api.post(f"{fake_putio.api_url}/files/create-folder", data={"name": name})
    assert response.status_code == 400
    assert response.json()["error_type"] == error_type


def test_create_folder_returns_the_new_folder(fake_putio: FakePutio, api: requests.Session) -> None:
    created = _post(api, fake_putio, "/files/create-folder", name="New", parent_id=0)["file"]
    assert created["name"] == "New"
    assert fake_putio.file(created["id"])["file_type"] == "FOLDER"


def test_deleting_a_folder_removes_its_subtree_and_counts_unknown_ids(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    folder = fake_putio.add_folder("Gone")
    fake_putio.add_file("inner.txt", parent_id=folder, content=b"x")
    kept = fake_putio.add_file("kept.txt", content=b"y")
    url = f"{fake_putio.api_url}/files/delete"
    data = {"file_ids": f"{folder},2147483647"}
    response = api.post(url, params={"skip_nonexistents": "true"}, data=data, timeout=5)
    assert response.json()["skipped"] == 1
    assert [entry["id"] for entry in fake_putio.files()] == [kept]


def test_delete_reads_skip_nonexistents_from_the_query_string_only(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    kept = fake_putio.add_file("kept.txt", content=b"y")
    url = f"{fake_putio.api_url}/files/delete"
    data = {"file_ids": f"{kept},2147483647"}
    in_body = api.post(url, data=data | {"skip_nonexistents": "true"}, timeout=5)
    assert in_body.status_code == 404 and in_body.json()["error_type"] == "NotFound"
    assert [entry["id"] for entry in fake_putio.files()] == [kept], "nothing deleted on a 404"
    in_query = api.post(url, params={"skip_nonexistents": "1"}, data=data, timeout=5)
    assert in_query.status_code == 200 and in_query.json()["skipped"] == 1
    assert fake_putio.files() == []


def test_hidden_files_are_listed_only_when_asked_with_hidden_1(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    folder = fake_putio.add_folder("Show")
    shown = fake_putio.add_file("e01.mkv", parent_id=folder, content=b"a")
    hidden = fake_putio.add_file("e02.mkv", parent_id=folder, content=b"b")
    fake_putio.hide_file(hidden)
    for parent in (-1, folder):
        plain = _get(api, fake_putio, "/files/list", parent_id=parent)
        asked = _get(api, fake_putio, "/files/list", parent_id=parent, hidden=1)
        assert hidden not in [entry["id"] for entry in plain["files"]]
        assert {shown, hidden} <= {entry["id"] for entry in asked["files"]}
    assert fake_putio.file(hidden)["is_hidden"] is True


def test_the_world_keeps_hostile_names_as_given(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    names = [
        unicodedata.normalize("NFC", "Amélie.mkv"),
        unicodedata.normalize("NFD", "Amélie.mkv"),
        "..",
        "back\\slash:*?.txt",
        "ctrl\x01\x7f.txt",
        "x" * 255,
        "dup.txt",
        "dup.txt",
    ]
    for name in names:
        fake_putio.add_file(name, content=b"")
    listed = [entry["name"] for entry in _get(api, fake_putio, "/files/list")["files"]]
    assert listed == names


# -- transfers ---------------------------------------------------------------------


def test_transfers_list_pages_with_cursor_and_refuses_more_than_1000(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    ids = [fake_putio.add_transfer(name=f"t{n}") for n in range(5)]
    everything = _get(api, fake_putio, "/transfers/list")
    first = _get(api, fake_putio, "/transfers/list", per_page=2)
    second = _post(api, fake_putio, "/transfers/list/continue", cursor=first["cursor"])
    third = _post(api, fake_putio, "/transfers/list/continue", cursor=second["cursor"])
    pages = [[entry["id"] for entry in page["transfers"]] for page in (first, second, third)]
    too_many = api.get(f"{fake_putio.api_url}/transfers/list", params={"per_page": 1001})
    assert [entry["id"] for entry in everything["transfers"]] == ids
    assert pages == [ids[0:2], ids[2:4], ids[4:5]]
    assert third["cursor"] is None
    assert too_many.status_code == 400


def test_unknown_transfer_is_404(fake_putio: FakePutio, api: requests.Session) -> None:
    response = api.get(f"{fake_putio.api_url}/transfers/2147483647")
    assert response.status_code == 404
    assert response.json()["status"] == "ERROR"


def test_uploaded_torrent_becomes_a_transfer_with_its_info_hash(
    fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    data = torrent_bytes("Some.Show.S01", files=[("e1.mkv", 5000), ("sub/e1.srt", 300)])
    expected = hashlib.sha1(bencode(bdecode(data)[b"info"]), usedforsecurity=False).hexdigest()
    response = _upload(fake_putio, data, "show.torrent")
    transfer = response.json()["transfer"]
    assert response.status_code == 200
    assert (transfer["type"], transfer["status"]) == ("TORRENT", "IN_QUEUE")
    assert (transfer["hash"], transfer["name"]) == (expected, "Some.Show.S01")
    assert fake_putio.files() == []


def test_non_torrent_upload_is_refused_with_torrent_flag_and_stored_without(
    fake_putio: FakePutio,
) -> None:
    refused = _upload(fake_putio, b"not a torrent", "x.torrent", torrent="true")
    stored = _upload(fake_putio, b"not a torrent", "x.torrent")
    assert refused.status_code == 400
    assert refused.json()["error_type"] == "NOT_TORRENT"
    file_id = stored.json()["file"]["id"]
    assert fake_putio.file_content(file_id) == b"not a torrent"
    assert fake_putio.transfers() == []


@pytest.mark.parametrize(
    "btih",
    ["AB" * 20, base64.b32encode(bytes.fromhex("ab" * 20)).decode()],
    ids=["hex", "base32"],
)
def test_magnet_becomes_a_torrent_transfer_with_lowercase_hex_hash(
    fake_putio: FakePutio, api: requests.Session, btih: str
) -> None:
    magnet = f"magnet:?xt=urn:btih:{btih}&dn=My+Show"
    transfer = _post(api, fake_putio, "/transfers/add", url=magnet)["transfer"]
    assert (transfer["type"], transfer["hash"]) == ("TORRENT", "ab" * 20)
    assert transfer["name"] == "My Show"
    assert transfer["file_id"] is None


def test_add_transfer_with_an_empty_url_is_refused(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    response = api.post(f"{fake_putio.api_url}/transfers/add", data={"url": ""})
    assert response.status_code == 400
    assert response.json()["error_type"] == "EMPTY_URL"


def test_tick_walks_a_magnet_through_every_state_to_seeding(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    magnet = f"magnet:?xt=urn:btih:{'cd' * 20}"
    transfer_id = _post(api, fake_putio, "/transfers/add", url=magnet)["transfer"]["id"]
    seen = []
    for _ in range(5):
        fake_putio.tick()
        seen.append(fake_putio.transfer(transfer_id)["status"])
    done = _get(api, fake_putio, f"/transfers/{transfer_id}")["transfer"]
    folder = _get(api, fake_putio, "/files/list", parent_id=done["file_id"])
    assert seen == ["WAITING", "PREPARING_DOWNLOAD", "DOWNLOADING", "COMPLETING", "SEEDING"]
    assert (done["percent_done"], done["userfile_exists"]) == (100, True)
    assert done["finished_at"] is not None
    assert folder["parent"]["name"] == f"magnet-{'cd' * 4}"
    assert 1 <= len(folder["files"]) <= 3


def test_finished_multi_file_torrent_produces_its_files_under_a_prefixed_folder(
    fake_putio: FakePutio, torrent_bytes: TorrentFactory
) -> None:
    fake_putio.folder_name_prefix = "[site] "
    data = torrent_bytes("Pack", files=[("a.mkv", 5000), ("sub/b.srt", 2_000_000)])
    transfer_id = _upload(fake_putio, data, "pack.torrent").json()["transfer"]["id"]
    fake_putio.finish_transfers()
    transfer = fake_putio.transfer(transfer_id)
    by_name = {entry["name"]: entry for entry in fake_putio.files()}
    assert (transfer["status"], transfer["name"]) == ("SEEDING", "Pack")
    assert by_name["[site] Pack"]["id"] == transfer["file_id"]
    assert by_name["a.mkv"]["size"] == 5000
    assert by_name["b.srt"]["size"] == 1 << 20
    assert by_name["b.srt"]["parent_id"] == by_name["sub"]["id"]


def test_single_file_torrent_and_url_transfer_each_produce_one_file(
    fake_putio: FakePutio, api: requests.Session, torrent_bytes: TorrentFactory
) -> None:
    fake_putio.torrent_final_status = "COMPLETED"
    torrent_id = _upload(fake_putio, torrent_bytes("movie.mkv"), "m.torrent").json()["transfer"]
    url = "https://example.invalid/files/report.pdf"
    url_id = _post(api, fake_putio, "/transfers/add", url=url)["transfer"]
    fake_putio.finish_transfers()
    from_torrent = fake_putio.file(fake_putio.transfer(torrent_id["id"])["file_id"])
    from_url = fake_putio.file(fake_putio.transfer(url_id["id"])["file_id"])
    assert (from_torrent["name"], from_torrent["size"], from_torrent["file_type"]) == (
        "movie.mkv",
        1234,
        "VIDEO",
    )
    assert from_url["name"] == "report.pdf"
    assert {t["status"] for t in fake_putio.transfers()} == {"COMPLETED"}


def test_tick_leaves_unknown_statuses_alone_and_extra_fields_reach_the_json(
    fake_putio: FakePutio,
) -> None:
    odd = fake_putio.add_transfer(name="odd", status="STOPPING", client_ip="192.0.2.1")
    fake_putio.finish_transfers()
    assert fake_putio.transfer(odd)["status"] == "STOPPING"
    assert fake_putio.transfer(odd)["client_ip"] == "192.0.2.1"
    assert fake_putio.files() == []


def test_cancel_of_an_unknown_id_is_ok_and_cancel_keeps_the_files(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    file_id = fake_putio.add_file("a.mkv", content=b"abc")
    seeding = fake_putio.add_transfer(name="a", status="SEEDING", file_id=file_id, hash="ab" * 20)
    result = _post(api, fake_putio, "/transfers/cancel", transfer_ids=f"{seeding},2147483647")
    assert result == {"status": "OK"}
    assert fake_putio.transfers() == []
    assert [entry["id"] for entry in fake_putio.files()] == [file_id]


def test_clean_removes_completed_and_errored_transfers_only(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    completed = fake_putio.add_transfer(name="done", status="COMPLETED")
    errored = fake_putio.add_transfer(name="bad", status="ERROR", error_message="dead")
    seeding = fake_putio.add_transfer(name="seed", status="SEEDING", seconds_seeding=3600)
    queued = fake_putio.add_transfer(name="queued")
    result = _post(api, fake_putio, "/transfers/clean")
    assert sorted(result["deleted_ids"]) == [completed, errored]
    assert [t["id"] for t in fake_putio.transfers()] == [seeding, queued]


def test_multipart_and_json_bodies_are_read_like_forms(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    magnet = f"magnet:?xt=urn:btih:{'ef' * 20}"
    added = api.post(
        f"{fake_putio.api_url}/transfers/add", files={"url": (None, magnet)}, timeout=5
    ).json()["transfer"]
    cancelled = api.post(
        f"{fake_putio.api_url}/transfers/cancel", json={"transfer_ids": [added["id"]]}, timeout=5
    )
    assert added["hash"] == "ef" * 20
    assert cancelled.json()["status"] == "OK"
    assert fake_putio.transfers() == []


# -- downloads ---------------------------------------------------------------------


def _node_url(fake: FakePutio, api: requests.Session, file_id: int) -> str:
    return str(_get(api, fake, f"/files/{file_id}/url")["url"])


@pytest.mark.parametrize(
    ("range_header", "status", "content_range", "expected"),
    [
        (None, 200, None, slice(0, 10)),
        ("bytes=2-4", 206, "bytes 2-4/10", slice(2, 5)),
        ("bytes=7-", 206, "bytes 7-9/10", slice(7, 10)),
        ("bytes=-3", 206, "bytes 7-9/10", slice(7, 10)),
        ("bytes=5-100", 206, "bytes 5-9/10", slice(5, 10)),
    ],
)
def test_node_serves_the_whole_file_or_the_requested_range(
    fake_putio: FakePutio,
    api: requests.Session,
    range_header: str | None,
    status: int,
    content_range: str | None,
    expected: slice,
) -> None:
    file_id = fake_putio.add_file("a.bin", content=b"0123456789")
    headers = {"Range": range_header} if range_header else {}
    response = _node_get(_node_url(fake_putio, api, file_id), **headers)
    assert response.status_code == status
    assert response.headers.get("Content-Range") == content_range
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.content == b"0123456789"[expected]


def test_node_range_past_the_end_and_any_range_of_an_empty_file_is_416(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    small = fake_putio.add_file("a.bin", content=b"0123456789")
    empty = fake_putio.add_file("empty.bin", content=b"")
    past_end = _node_get(_node_url(fake_putio, api, small), Range="bytes=10-")
    empty_range = _node_get(_node_url(fake_putio, api, empty), Range="bytes=0-")
    empty_whole = _node_get(_node_url(fake_putio, api, empty))
    assert (past_end.status_code, past_end.headers["Content-Range"]) == (416, "bytes */10")
    assert (empty_range.status_code, empty_range.headers["Content-Range"]) == (416, "bytes */0")
    assert (empty_whole.status_code, empty_whole.content) == (200, b"")


def test_node_streams_generated_content_from_any_offset(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    file_id = fake_putio.add_file("big.bin", size=2_100_000)
    url = _node_url(fake_putio, api, file_id)
    head = _node_get(url, Range="bytes=0-999999").content
    tail = _node_get(url, Range="bytes=1000000-").content
    assert f"{zlib.crc32(head + tail):08x}" == fake_putio.file_crc32(file_id)


def test_node_serves_a_huge_file_without_building_it(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    size = 5 * 1024**3
    file_id = fake_putio.add_file("huge.mkv", size=size)
    url = _node_url(fake_putio, api, file_id)
    with requests.Session() as session:
        head = session.head(url, timeout=5)
    far = _node_get(url, Range=f"bytes={5 * BLOCK}-{5 * BLOCK + 99}")
    near = _node_get(url, Range="bytes=0-99")
    assert head.headers["Content-Length"] == str(size)
    assert far.headers["Content-Range"] == f"bytes {5 * BLOCK}-{5 * BLOCK + 99}/{size}"
    assert far.content == near.content
    assert len(fake_putio.file_crc32(file_id)) == 8


def test_node_url_needs_no_api_token_but_a_valid_u(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    file_id = fake_putio.add_file("a.bin", content=b"abc")
    url = _node_url(fake_putio, api, file_id)
    forged = _node_get(url.split("?")[0] + "?u=forged")
    folder = api.get(f"{fake_putio.api_url}/files/{fake_putio.add_folder('F')}/url", timeout=5)
    assert _node_get(url).content == b"abc"
    assert forged.status_code == 403
    assert forged.headers["Content-Type"] == "application/json"
    assert folder.status_code == 400


def test_node_url_expires_after_its_allowed_uses(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    fake_putio.url_max_uses = 1
    file_id = fake_putio.add_file("a.bin", content=b"abc")
    url = _node_url(fake_putio, api, file_id)
    first, second = _node_get(url), _node_get(url)
    fresh = _node_get(_node_url(fake_putio, api, file_id))
    assert first.status_code == 200
    assert (second.status_code, second.json()["error_type"]) == (410, "LINK_EXPIRED")
    assert fresh.status_code == 200


def test_download_route_redirects_to_a_fresh_node_url(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    file_id = fake_putio.add_file("a.bin", content=b"abc")
    response = api.head(f"{fake_putio.api_url}/files/{file_id}/download", timeout=5)
    location = response.headers["Location"]
    assert response.status_code == 302
    assert location.startswith(f"{fake_putio.node_url}/download/{file_id}?u=")
    assert _node_get(location).content == b"abc"


def test_node_base_url_points_download_links_at_another_server(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    file_id = fake_putio.add_file("a.bin", content=b"abc")
    fake_putio.node_base_url = "http://127.0.0.1:9/files/"
    moved = _node_url(fake_putio, api, file_id)
    fake_putio.node_base_url = None
    default = _node_url(fake_putio, api, file_id)
    assert moved.startswith(f"http://127.0.0.1:9/files/{file_id}.bin?u=")
    assert default.startswith(f"{fake_putio.node_url}/download/{file_id}?u=")


def test_file_pieces_are_the_bytes_the_node_serves(fake_putio: FakePutio) -> None:
    file_id = fake_putio.add_file("big.bin", size=2 * BLOCK + 5)
    pieces = list(fake_putio.file_pieces(file_id))
    data = b"".join(pieces)
    assert len(pieces) > 1
    assert len(data) == 2 * BLOCK + 5
    assert f"{zlib.crc32(data):08x}" == fake_putio.file_crc32(file_id)
    with pytest.raises(KeyError):
        fake_putio.file_pieces(fake_putio.add_folder("F"))


# -- faults ------------------------------------------------------------------------


def test_injected_429_carries_retry_after_and_rate_limit_headers(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    fake_putio.inject(path="/v2/transfers/list", status=429, times=2, retry_after="2")
    url = f"{fake_putio.api_url}/transfers/list"
    limited = [api.get(url, timeout=5) for _ in range(2)]
    assert [response.status_code for response in limited] == [429, 429]
    assert limited[0].headers["Retry-After"] == "2"
    assert limited[0].headers["x-ratelimit-remaining"] == "0"
    assert limited[0].json()["error_type"] == "TooManyRequests"
    assert api.get(url, timeout=5).status_code == 200
    assert api.get(f"{fake_putio.api_url}/account/info", timeout=5).status_code == 200


def test_injected_503_can_have_an_html_body(fake_putio: FakePutio, api: requests.Session) -> None:
    fake_putio.inject(path="*", status=503, json_body=False)
    response = api.get(f"{fake_putio.api_url}/files/list", timeout=5)
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "text/html"
    assert response.text.startswith("<html>")


def test_injected_reset_drops_the_connection_once(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    fake_putio.inject(path="/v2/transfers/list", reset=True)
    url = f"{fake_putio.api_url}/transfers/list"
    with pytest.raises(requests.ConnectionError):
        api.get(url, timeout=5)
    assert api.get(url, timeout=5).status_code == 200
    assert [logged.status for logged in fake_putio.requests] == [0, 200]


def test_node_stall_leaves_the_client_waiting_until_its_timeout(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    file_id = fake_putio.add_file("big.bin", size=200_000)
    fake_putio.node_fault(file_id, stall_after=1024)
    url = _node_url(fake_putio, api, file_id)
    received = bytearray()
    # 256 divides 1024: urllib3 blocks until a whole chunk arrives, so the tail would be lost.
    with (
        requests.Session() as session,
        pytest.raises(requests.ConnectionError),
        session.get(url, stream=True, timeout=0.3) as response,
    ):
        for piece in response.iter_content(256):
            received += piece
    assert bytes(received) == fake_putio.file_content(file_id)[:1024]
    assert _node_get(url).status_code == 200


def test_stop_is_quick_while_a_download_is_stalled() -> None:
    fake = FakePutio().start()
    file_id = fake.add_file("big.bin", size=200_000)
    fake.node_fault(file_id, stall_after=10)
    with requests.Session() as session:
        url = session.get(f"{fake.api_url}/files/{file_id}/url", params={"oauth_token": TOKEN})
        response = session.get(url.json()["url"], stream=True, timeout=5)
        started = time.monotonic()
        fake.stop()
        assert time.monotonic() - started < 2
        with pytest.raises(requests.RequestException):
            response.content  # noqa: B018 - reading is what fails
        response.close()


def test_node_reset_cuts_the_download_after_the_given_bytes(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    file_id = fake_putio.add_file("big.bin", size=200_000)
    fake_putio.node_fault(file_id, reset_after=1000)
    url = _node_url(fake_putio, api, file_id)
    received = bytearray()
    with (
        requests.Session() as session,
        pytest.raises(requests.RequestException),
        session.get(url, stream=True, timeout=5) as response,
    ):
        for piece in response.iter_content(256):
            received += piece
    assert len(received) <= 1000
    assert bytes(received) == fake_putio.file_content(file_id)[: len(received)]


def test_node_fault_status_answers_html_the_given_number_of_times(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    file_id = fake_putio.add_file("a.bin", content=b"abc")
    fake_putio.node_fault(file_id, status=503, times=2)
    url = _node_url(fake_putio, api, file_id)
    statuses = [_node_get(url).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]


def test_node_fault_redirect_sends_the_client_to_the_same_url_then_the_next_fault(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    file_id = fake_putio.add_file("a.bin", content=b"abc")
    fake_putio.node_fault(file_id, redirect=True)
    fake_putio.node_fault(file_id, status=503)
    url = _node_url(fake_putio, api, file_id)
    with requests.Session() as session:
        followed = session.get(url, timeout=5)
        again = session.get(url, allow_redirects=False, timeout=5)
    assert [answer.status_code for answer in followed.history] == [302]
    assert url.endswith(followed.history[0].headers["Location"])
    assert followed.status_code == 503  # the next fault: the request redirected has it
    assert again.content == b"abc"


def test_node_fault_folded_header_folds_a_header_of_the_answer_over_two_lines(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    file_id = fake_putio.add_file("a.bin", content=b"abc")
    fake_putio.node_fault(file_id, folded_header=True)
    url = _node_url(fake_putio, api, file_id)
    folded, plain = _node_get(url), _node_get(url)
    assert folded.content == b"abc"
    assert folded.headers["X-Fake-Folded"].split() == ["one", "two"]
    assert "X-Fake-Folded" not in plain.headers


def test_an_unanswering_node_leaves_a_connect_waiting_until_it_answers_again(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    file_id = fake_putio.add_file("a.bin", content=b"abc")
    fake_putio.node_unanswering(file_id)
    silent = urlsplit(_node_url(fake_putio, api, file_id))
    assert silent.hostname == "127.0.0.1"
    assert silent.port is not None and silent.port != urlsplit(fake_putio.node_url).port
    with socket.socket() as sock:
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.connect((silent.hostname, silent.port))
    fake_putio.node_unanswering(file_id, False)
    assert _node_get(_node_url(fake_putio, api, file_id)).content == b"abc"


def test_outage_resets_every_connection_until_the_clock_passes(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    now = [100.0]
    assert api.get(f"{fake_putio.api_url}/account/info", timeout=5).status_code == 200
    fake_putio.outage(seconds=120, clock=lambda: now[0])
    with pytest.raises(requests.ConnectionError):
        api.get(f"{fake_putio.api_url}/account/info", timeout=5)
    now[0] = 220.0
    assert api.get(f"{fake_putio.api_url}/account/info", timeout=5).status_code == 200


# -- request log -------------------------------------------------------------------


def test_request_log_records_every_host_in_order(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    file_id = fake_putio.add_file("a.bin", content=b"abc")
    url = _node_url(fake_putio, api, file_id)
    _node_get(url)
    _post(api, fake_putio, "/transfers/cancel", transfer_ids="1")
    _upload(fake_putio, b"x", "x.txt")
    logged = fake_putio.requests
    assert [(r.host, r.method, r.path, r.status) for r in logged] == [
        ("api", "GET", f"/v2/files/{file_id}/url", 200),
        ("node", "GET", f"/download/{file_id}", 200),
        ("api", "POST", "/v2/transfers/cancel", 200),
        ("upload", "POST", "/v2/files/upload", 200),
    ]
    assert [r.mutating for r in logged] == [False, False, True, True]
    assert logged[0].headers["authorization"] == f"token {TOKEN}"
    assert "Authorization" in logged[0].headers
    assert "Authorization" not in logged[1].headers
    assert logged[1].query["u"]
    assert logged[2].body == b"transfer_ids=1"
    fake_putio.clear_requests()
    assert fake_putio.requests == []


def test_latency_delays_every_host_s_first_byte(
    fake_putio: FakePutio, api: requests.Session
) -> None:
    file_id = fake_putio.add_file("near.bin", size=1000)
    url = _node_url(fake_putio, api, file_id)
    fake_putio.latency_seconds = 0.15
    started = time.monotonic()
    _get(api, fake_putio, "/account/info")
    api_seconds = time.monotonic() - started
    started = time.monotonic()
    assert _node_get(url).content == fake_putio.file_content(file_id)
    node_seconds = time.monotonic() - started
    assert min(api_seconds, node_seconds) >= 0.15
