from __future__ import annotations

import http.server
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest
import requests
import responses
from responses import matchers

from putio_mirror.core.errors import (
    AuthError,
    CorruptTorrentError,
    MirrorError,
    NotFoundError,
    RemoteError,
    TorrentRefusedError,
    TransientError,
)
from putio_mirror.core.retry import Backoff
from putio_mirror.fakeputio import FakePutio, LoggedRequest
from putio_mirror.net.cutting import Cutter, cut_by
from putio_mirror.putio.client import CallStopped, PutioClient
from putio_mirror.putio.values import parse_file, parse_timestamp, parse_transfer

TOKEN = "s3cret-token-XYZ"
API = "https://api.test/v2"
UPLOAD = "https://upload.test/v2"
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
HTML_500 = "<html><body><h1>502 Bad Gateway</h1></body></html>"
NO_TRANSFERS = {"status": "OK", "transfers": [], "cursor": None}


class Sleeps(list[float]):
    """A fake sleep that records the delays instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(sleeps: Sleeps) -> Iterator[PutioClient]:
    backoff = Backoff(base=0.5, factor=2.0, cap=10.0, max_attempts=4)
    with PutioClient(
        TOKEN, API, UPLOAD, backoff=backoff, sleep=sleeps, now=lambda: NOW, jitter=lambda: 0.0
    ) as made:
        yield made


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def _error(status: int, error_type: str, message: str) -> dict[str, object]:
    return {
        "status": "ERROR",
        "status_code": status,
        "error_type": error_type,
        "error_message": message,
    }


def _transfer(**fields: object) -> dict[str, object]:
    return {"id": 7, "name": "Some.Show", "status": "IN_QUEUE", **fields}


# ----- error mapping ----------------------------------------------------------------


def test_401_raises_auth_error_after_exactly_one_request(
    client: PutioClient, mocked: responses.RequestsMock, sleeps: Sleeps
) -> None:
    mocked.get(
        f"{API}/transfers/list",
        status=401,
        json=_error(401, "invalid_grant", "You have to login with proper credentials"),
    )
    with pytest.raises(AuthError) as caught:
        client.list_transfers()
    assert len(mocked.calls) == 1
    assert sleeps == []
    assert "app.put.io/settings/account/oauth/apps" in caught.value.hint


def test_429_waits_as_long_as_retry_after_says_then_succeeds(
    client: PutioClient, mocked: responses.RequestsMock, sleeps: Sleeps
) -> None:
    limited = _error(429, "TooManyRequests", "Too many requests")
    mocked.get(f"{API}/transfers/list", status=429, json=limited, headers={"Retry-After": "7"})
    mocked.get(f"{API}/transfers/list", status=429, json=limited, headers={"Retry-After": "3"})
    mocked.get(f"{API}/transfers/list", json=NO_TRANSFERS)
    assert client.list_transfers() == ()
    assert sleeps == [7.0, 3.0]


def test_429_with_an_http_date_waits_until_that_date(
    client: PutioClient, mocked: responses.RequestsMock, sleeps: Sleeps
) -> None:
    later = "Sat, 01 Mar 2025 12:00:05 GMT"
    mocked.get(f"{API}/transfers/list", status=429, json={}, headers={"Retry-After": later})
    mocked.get(f"{API}/transfers/list", json=NO_TRANSFERS)
    client.list_transfers()
    assert sleeps == [5.0]


def test_backoff_grows_between_retries_without_retry_after(
    client: PutioClient, mocked: responses.RequestsMock, sleeps: Sleeps
) -> None:
    for _ in range(3):
        mocked.get(f"{API}/transfers/list", status=503, body=HTML_500)
    mocked.get(f"{API}/transfers/list", json=NO_TRANSFERS)
    client.list_transfers()
    assert sleeps == [0.25, 0.5, 1.0]


def test_persistent_5xx_html_raises_transient_error_naming_the_route(
    client: PutioClient, mocked: responses.RequestsMock, sleeps: Sleeps
) -> None:
    mocked.get(f"{API}/files/5/url", status=502, body=HTML_500, content_type="text/html")
    with pytest.raises(TransientError) as caught:
        client.download_url(5)
    assert len(mocked.calls) == 4
    assert len(sleeps) == 3
    assert "files/5/url" in str(caught.value)
    assert "next run will try again" in caught.value.hint


def test_retry_after_longer_than_the_cap_gives_up_at_once_carrying_it(
    client: PutioClient, mocked: responses.RequestsMock, sleeps: Sleeps
) -> None:
    mocked.get(f"{API}/transfers/list", status=429, json={}, headers={"Retry-After": "3600"})
    with pytest.raises(TransientError) as caught:
        client.list_transfers()
    assert caught.value.retry_after == 3600.0
    assert sleeps == []


def test_connection_errors_are_retried(
    client: PutioClient, mocked: responses.RequestsMock, sleeps: Sleeps
) -> None:
    mocked.get(f"{API}/files/9/url", body=requests.ConnectionError("connection refused"))
    mocked.get(f"{API}/files/9/url", json={"status": "OK", "url": "https://node.test/9"})
    assert client.download_url(9) == "https://node.test/9"
    assert len(sleeps) == 1


def test_read_timeout_on_transfers_add_is_not_retried(
    client: PutioClient, mocked: responses.RequestsMock, sleeps: Sleeps
) -> None:
    mocked.post(f"{API}/transfers/add", body=requests.ReadTimeout("read timed out"))
    with pytest.raises(TransientError):
        client.add_transfer("magnet:?xt=urn:btih:abc")
    assert len(mocked.calls) == 1
    assert sleeps == []


@pytest.mark.parametrize("status", [500, 502, 504])
def test_ambiguous_5xx_on_transfers_add_is_not_retried(
    client: PutioClient, mocked: responses.RequestsMock, status: int
) -> None:
    mocked.post(f"{API}/transfers/add", status=status, body=HTML_500)
    with pytest.raises(TransientError):
        client.add_transfer("magnet:?xt=urn:btih:abc")
    assert len(mocked.calls) == 1


@pytest.mark.parametrize("status", [429, 503])
def test_429_and_503_on_transfers_add_are_retried(
    client: PutioClient, mocked: responses.RequestsMock, status: int
) -> None:
    mocked.post(f"{API}/transfers/add", status=status, json={})
    mocked.post(f"{API}/transfers/add", json={"status": "OK", "transfer": _transfer()})
    assert client.add_transfer("magnet:?xt=urn:btih:abc").id == 7
    assert len(mocked.calls) == 2


def test_404_raises_not_found_with_put_io_message(
    client: PutioClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(f"{API}/files/3/url", status=404, json=_error(404, "NotFound", "File not found"))
    with pytest.raises(NotFoundError) as caught:
        client.download_url(3)
    assert caught.value.status == 404
    assert "File not found" in str(caught.value)


def test_other_4xx_raises_remote_error_with_type_and_message_unretried(
    client: PutioClient, mocked: responses.RequestsMock, sleeps: Sleeps
) -> None:
    mocked.post(f"{API}/files/delete", status=400, json=_error(400, "BadRequest", "Bad ids"))
    with pytest.raises(RemoteError) as caught:
        client.delete_files([1])
    assert (caught.value.status, caught.value.error_type) == (400, "BadRequest")
    assert "Bad ids" in str(caught.value)
    assert len(mocked.calls) == 1
    assert sleeps == []


def test_a_400_to_a_magnet_or_upload_is_put_io_refusing_that_torrent_with_its_reason(
    client: PutioClient, mocked: responses.RequestsMock, sleeps: Sleeps
) -> None:
    mocked.post(f"{API}/transfers/add", status=400, json=_error(400, "EMPTY_URL", "Empty URL"))
    mocked.post(f"{UPLOAD}/files/upload", status=400, json=_error(400, "NO_TRACKERS", "None"))
    with pytest.raises(TorrentRefusedError) as magnet:
        client.add_transfer("")
    with pytest.raises(TorrentRefusedError) as upload:
        client.upload_torrent("a.torrent", b"d4:infod4:name1:aee")
    assert magnet.value.reason == "Empty URL (EMPTY_URL)"
    assert upload.value.reason == "None (NO_TRACKERS)" and "'a.torrent'" in upload.value.message
    assert len(mocked.calls) == 2 and sleeps == []


def test_text_401_from_the_upload_host_raises_auth_error(
    client: PutioClient, mocked: responses.RequestsMock
) -> None:
    mocked.post(
        f"{UPLOAD}/files/upload",
        status=401,
        body="The server could not verify that you are authorized to access the URL.",
        content_type="text/html",
    )
    with pytest.raises(AuthError):
        client.upload_torrent("a.torrent", b"d4:infod4:name1:aee")


def test_an_unparseable_success_body_raises_transient_error(
    client: PutioClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(f"{API}/transfers/list", body="<html>captive portal</html>")
    with pytest.raises(TransientError):
        client.list_transfers()


def _provoke_every_error(client: PutioClient, mocked: responses.RequestsMock) -> list[MirrorError]:
    mocked.get(f"{API}/transfers/list", status=401, body=f"bad token {TOKEN}")
    mocked.get(f"{API}/files/1/url", status=404, json=_error(404, "NotFound", f"no {TOKEN}"))
    mocked.get(f"{API}/files/2/url", status=400, json=_error(400, "X", f"echo {TOKEN}"))
    mocked.get(f"{API}/files/3/url", status=500, body=f"<p>{TOKEN}</p>")
    mocked.get(f"{API}/files/4/url", body=requests.ConnectionError(f"refused {TOKEN}"))
    mocked.post(f"{UPLOAD}/files/upload", json={"status": "OK", "file": {"id": 1}})
    calls: list[Callable[[], object]] = [
        client.list_transfers,
        lambda: client.download_url(1),
        lambda: client.download_url(2),
        lambda: client.download_url(3),
        lambda: client.download_url(4),
        lambda: client.upload_torrent("x.torrent", b"junk"),
    ]
    caught: list[MirrorError] = []
    for call in calls:
        with pytest.raises(MirrorError) as error:
            call()
        caught.append(error.value)
    return caught


def test_the_token_never_appears_in_errors_hints_or_logs(
    client: PutioClient, mocked: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caught = _provoke_every_error(client, mocked)
    kinds = {type(error) for error in caught}
    assert {AuthError, NotFoundError, RemoteError, TransientError, TorrentRefusedError} <= kinds
    for error in caught:
        assert TOKEN not in str(error)
        assert TOKEN not in error.hint
        assert TOKEN not in repr(error)
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(client)


def test_the_token_is_sent_as_an_authorization_header(
    client: PutioClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(
        f"{API}/transfers/list",
        json=NO_TRANSFERS,
        match=[matchers.header_matcher({"Authorization": f"token {TOKEN}"})],
    )
    client.list_transfers()
    assert "Authorization" not in client._session.headers  # never a session-wide default


# ----- paging and requests ----------------------------------------------------------


def test_list_all_files_follows_the_cursor_until_an_empty_string(
    client: PutioClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(
        f"{API}/files/list",
        json={"status": "OK", "files": [{"id": 6}], "cursor": "c1"},
        match=[
            matchers.query_param_matcher({"parent_id": "-1", "per_page": "1000", "hidden": "1"})
        ],
    )
    mocked.post(
        f"{API}/files/list/continue",
        json={"status": "OK", "files": [{"id": 7}, {"id": 8}], "cursor": ""},
        match=[matchers.urlencoded_params_matcher({"cursor": "c1"})],
    )
    assert [item.id for item in client.list_all_files()] == [6, 7, 8]


def test_clean_transfers_with_no_ids_sends_nothing(
    client: PutioClient, mocked: responses.RequestsMock
) -> None:
    assert client.clean_transfers([]) == ()
    client.cancel_transfers([])
    client.delete_files([])
    assert len(mocked.calls) == 0


def test_clean_transfers_returns_the_deleted_ids_or_an_empty_tuple(
    client: PutioClient, mocked: responses.RequestsMock
) -> None:
    mocked.post(f"{API}/transfers/clean", json={"status": "OK", "deleted_ids": [3, 4]})
    mocked.post(f"{API}/transfers/clean", json={"status": "OK"})
    assert client.clean_transfers([3, 4]) == (3, 4)
    assert client.clean_transfers() == ()
    assert mocked.calls[0].request.body == "transfer_ids=3%2C4"
    assert not mocked.calls[1].request.body


# ----- parsing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["2025-03-01T12:00:00", "2025-03-01 12:00:00", "2025-03-01T12:00:00Z"]
)
def test_timestamps_in_every_put_io_form_become_aware_utc(text: str) -> None:
    assert parse_timestamp(text) == NOW


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-01", datetime(2025, 3, 1, tzinfo=UTC)),  # a date alone: midnight UTC
        ("2025-03-01t12:00:00z", NOW),
        (" 2025-03-01T12:00:00 ", NOW),
        ("2025-03-01T14:00:00+02:00", NOW),
        ("2025-03-01T12:00:00.250000", NOW.replace(microsecond=250_000)),
    ],
)
def test_other_timestamp_spellings_become_the_same_aware_utc_instant(
    text: str, expected: datetime
) -> None:
    when = parse_timestamp(text)
    assert when == expected and when is not None and when.utcoffset() == timedelta(0)


@pytest.mark.parametrize("value", [None, "", "yesterday", 12])
def test_unreadable_timestamps_are_none(value: object) -> None:
    assert parse_timestamp(value) is None


def test_transfers_are_parsed_leniently() -> None:
    transfer = parse_transfer(
        _transfer(
            status="SOMETHING_NEW",
            hash="ABCDEF",
            current_ratio="1.50",
            seconds_seeding=None,
            file_id=None,
            finished_at="2025-03-01 12:00:00",
            magneturi="magnet:?xt=urn:btih:abcdef",
        )
    )
    assert transfer.status == "SOMETHING_NEW"
    assert transfer.hash == "abcdef"
    assert transfer.current_ratio == 1.5
    assert transfer.seconds_seeding is None and transfer.file_id is None
    assert transfer.finished_at == NOW
    assert transfer.source == "magnet:?xt=urn:btih:abcdef"


def test_numeric_current_ratio_and_garbage_numbers() -> None:
    assert parse_transfer(_transfer(current_ratio=2)).current_ratio == 2.0
    assert parse_transfer(_transfer(current_ratio="n/a")).current_ratio is None
    assert parse_transfer(_transfer(seconds_seeding=True)).seconds_seeding is None


def test_files_are_parsed_with_root_parent_and_folder_detection() -> None:
    folder = parse_file({"id": 1, "name": "A", "parent_id": None, "file_type": "FOLDER"})
    file = parse_file(
        {
            "id": 2,
            "name": "b.mkv",
            "parent_id": 1,
            "size": 9,
            "crc32": "ABCD0123",
            "content_type": "video/x-matroska",
            "updated_at": "2025-03-01T12:00:00",
        }
    )
    assert folder.is_folder and folder.parent_id == 0 and folder.crc32 is None
    assert not file.is_folder and file.crc32 == "abcd0123" and file.updated_at == NOW
    assert file.folder_type == "REGULAR"


def test_an_item_without_an_id_is_a_transient_error() -> None:
    with pytest.raises(TransientError):
        parse_file({"name": "no id"})


# ----- against the fake put.io over loopback -----------------------------------------


@pytest.fixture
def live(fake_putio: FakePutio, sleeps: Sleeps) -> Iterator[PutioClient]:
    backoff = Backoff(base=0.01, cap=10.0, max_attempts=4)
    with PutioClient(
        fake_putio.token,
        fake_putio.api_url,
        fake_putio.upload_url,
        timeout=5.0,
        backoff=backoff,
        sleep=sleeps,
        jitter=lambda: 0.0,
        page_size=2,
    ) as made:
        yield made


def _api_requests(fake: FakePutio, path: str) -> list[LoggedRequest]:
    return [logged for logged in fake.requests if logged.path == f"/v2/{path}"]


def test_list_transfers_follows_the_cursor_over_every_page(
    fake_putio: FakePutio, live: PutioClient
) -> None:
    ids = {
        fake_putio.add_transfer(f"T{n}", status="SEEDING", hash=f"ABCDEF{n:034X}") for n in range(5)
    }
    transfers = live.list_transfers()
    assert {transfer.id for transfer in transfers} == ids
    assert all(transfer.status == "SEEDING" for transfer in transfers)
    assert {transfer.hash for transfer in transfers} == {f"abcdef{n:034x}" for n in range(5)}
    assert len(_api_requests(fake_putio, "transfers/list/continue")) == 2


def test_list_all_files_reads_2500_files_in_three_requests(
    fake_putio: FakePutio, sleeps: Sleeps
) -> None:
    folder = fake_putio.add_folder("Bulk")
    for n in range(2499):
        fake_putio.add_file(f"f{n}.txt", parent_id=folder, content=b"x")
    with PutioClient(fake_putio.token, fake_putio.api_url, sleep=sleeps) as client:
        files = client.list_all_files()
    assert len(files) == 2500
    assert sum(file.is_folder for file in files) == 1
    listing = [logged for logged in fake_putio.requests if logged.path.startswith("/v2/files/list")]
    assert len(listing) == 3
    assert listing[0].query["parent_id"] == "-1"


def test_a_later_page_of_files_that_fails_once_is_asked_again_and_the_order_kept(
    fake_putio: FakePutio, live: PutioClient, sleeps: Sleeps
) -> None:
    folder = fake_putio.add_folder("Bulk")
    ids = [fake_putio.add_file(f"f{n}.txt", parent_id=folder, content=b"x") for n in range(6)]
    fake_putio.inject("/v2/files/list/continue", status=503, times=1)
    assert [item.id for item in live.list_all_files()] == [folder, *ids]
    assert len(sleeps) == 1  # one backoff, on the page asked for ahead


def test_a_refused_token_on_a_later_page_of_files_ends_the_listing(
    fake_putio: FakePutio, live: PutioClient
) -> None:
    folder = fake_putio.add_folder("Bulk")
    for n in range(6):
        fake_putio.add_file(f"f{n}.txt", parent_id=folder, content=b"x")
    fake_putio.inject("/v2/files/list/continue", status=401, times=1)
    with pytest.raises(AuthError):
        live.list_all_files()
    assert len(_api_requests(fake_putio, "files/list/continue")) == 1


def test_download_url_of_a_missing_id_raises_not_found(live: PutioClient) -> None:
    with pytest.raises(NotFoundError):
        live.download_url(2147483647)


def test_upload_torrent_creates_a_transfer_with_the_info_hash(
    fake_putio: FakePutio, live: PutioClient, torrent_bytes: Callable[..., bytes]
) -> None:
    transfer = live.upload_torrent("Show.S01E01.torrent", torrent_bytes("Show.S01E01"))
    assert transfer.name == "Show.S01E01"
    assert transfer.hash is not None and len(transfer.hash) == 40
    (upload,) = [logged for logged in fake_putio.requests if logged.host == "upload"]
    assert upload.query["torrent"] == "true"


def test_upload_of_a_non_torrent_raises_corrupt_torrent(
    fake_putio: FakePutio, live: PutioClient
) -> None:
    with pytest.raises(CorruptTorrentError):
        live.upload_torrent("broken.torrent", b"<html>not a torrent</html>")
    assert fake_putio.files() == []


def test_add_magnet_then_cancel_removes_the_transfer(
    fake_putio: FakePutio, live: PutioClient
) -> None:
    magnet = "magnet:?xt=urn:btih:" + "AB" * 20 + "&dn=Thing"
    folder = fake_putio.add_folder("Incoming")
    transfer = live.add_transfer(magnet, save_parent_id=folder)
    assert transfer.status == "IN_QUEUE" and transfer.save_parent_id == folder
    live.cancel_transfers([transfer.id, 99999])
    assert live.list_transfers() == ()


def test_clean_transfers_returns_what_put_io_removed(
    fake_putio: FakePutio, live: PutioClient
) -> None:
    done = fake_putio.add_transfer("done", status="COMPLETED")
    other = fake_putio.add_transfer("other", status="COMPLETED")
    seeding = fake_putio.add_transfer("seeding", status="SEEDING")
    assert live.clean_transfers([done, seeding]) == (done,)
    assert {transfer.id for transfer in live.list_transfers()} == {other, seeding}


def test_delete_files_removes_them_and_skips_missing_ones(
    fake_putio: FakePutio, live: PutioClient
) -> None:
    keep = fake_putio.add_file("keep.txt", content=b"k")
    gone = fake_putio.add_file("gone.txt", content=b"g")
    live.delete_files([gone, 2147483647])
    assert [item["id"] for item in fake_putio.files()] == [keep]
    (delete,) = _api_requests(fake_putio, "files/delete")
    assert delete.query == {"skip_nonexistents": "true"}, "a flag of the query, as put.io's own"
    assert b"skip_nonexistents" not in delete.body


def test_listings_ask_for_hidden_files_too(fake_putio: FakePutio, live: PutioClient) -> None:
    folder = fake_putio.add_folder("Show")
    hidden = fake_putio.add_file(".e01.mkv", parent_id=folder, content=b"a")
    fake_putio.hide_file(hidden)
    assert hidden in {item.id for item in live.list_all_files()}
    (first,) = _api_requests(fake_putio, "files/list")
    assert first.query.get("hidden") == "1"


def test_auth_header_goes_to_api_and_upload_hosts_but_not_to_the_node(
    fake_putio: FakePutio, live: PutioClient, torrent_bytes: Callable[..., bytes]
) -> None:
    file_id = fake_putio.add_file("a.bin", content=b"abc")
    live.list_transfers()
    live.upload_torrent("t.torrent", torrent_bytes("t"))
    url = live.download_url(file_id)
    with requests.Session() as plain:
        assert plain.get(url, timeout=5).content == b"abc"
    by_host = {logged.host: logged for logged in fake_putio.requests}
    assert by_host["api"].headers.get("Authorization") == f"token {fake_putio.token}"
    assert by_host["upload"].headers.get("Authorization") == f"token {fake_putio.token}"
    assert "Authorization" not in by_host["node"].headers


def test_rate_limit_on_the_fake_is_waited_out(
    fake_putio: FakePutio, live: PutioClient, sleeps: Sleeps
) -> None:
    fake_putio.inject(path="/v2/transfers/list", status=429, times=2, retry_after="2")
    assert live.list_transfers() == ()
    assert sleeps == [2.0, 2.0]


def test_html_503_and_resets_from_the_fake_are_retried(
    fake_putio: FakePutio, live: PutioClient, sleeps: Sleeps
) -> None:
    fake_putio.inject(path="/v2/transfers/list", status=503, json_body=False)
    fake_putio.inject(path="/v2/transfers/list", reset=True)
    assert live.list_transfers() == ()
    assert len(sleeps) == 2


def test_a_revoked_token_raises_auth_error_without_retrying(
    fake_putio: FakePutio, live: PutioClient, sleeps: Sleeps
) -> None:
    fake_putio.revoke_token()
    with pytest.raises(AuthError) as caught:
        live.list_transfers()
    assert len(fake_putio.requests) == 1
    assert fake_putio.token not in str(caught.value)
    assert sleeps == []


def test_a_text_401_from_the_fake_upload_host_raises_auth_error(
    fake_putio: FakePutio, live: PutioClient, torrent_bytes: Callable[..., bytes]
) -> None:
    fake_putio.upload_unauthorized_text = True
    fake_putio.revoke_token()
    with pytest.raises(AuthError):
        live.upload_torrent("t.torrent", torrent_bytes("t"))


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_refused_connection_is_retried_even_for_transfers_add(sleeps: Sleeps) -> None:
    api = f"http://127.0.0.1:{_closed_port()}/v2"
    backoff = Backoff(base=0.5, max_attempts=3)
    client = PutioClient(TOKEN, api, sleep=sleeps, jitter=lambda: 0.0, backoff=backoff)
    with client, pytest.raises(TransientError) as caught:
        client.add_transfer("magnet:?xt=urn:btih:abc")
    assert sleeps == [0.25, 0.5]
    assert "transfers/add" in str(caught.value)
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize("route", ["GET", "POST"])
def test_a_refused_connection_is_told_as_refused_not_as_a_timeout(
    sleeps: Sleeps, route: str
) -> None:
    # urllib3 files "refused" under its connect-timeout error: a user reading
    # "ConnectTimeout" looks for a slow network, not for a proxy or a port that is closed
    api = f"http://127.0.0.1:{_closed_port()}/v2"
    client = PutioClient(TOKEN, api, sleep=sleeps, backoff=Backoff(base=0.5, max_attempts=2))
    with client, pytest.raises(TransientError) as caught:
        if route == "GET":
            client.list_transfers()
        else:
            client.add_transfer("magnet:?xt=urn:btih:abc")
    assert "connection refused" in caught.value.message
    assert "Timeout" not in caught.value.message


def test_a_call_left_retrying_on_a_thread_ends_when_the_client_is_closed(
    fake_putio: FakePutio,
) -> None:
    # a run that failed or was interrupted leaves its listing to finish unread: closing its
    # client ends the retries at their next pause, not after every one of them (minutes)
    fake_putio.inject("/v2/transfers/list", status=503, times=100)
    backoff = Backoff(base=30.0, factor=2.0, cap=60.0, max_attempts=8)
    ended: list[BaseException] = []
    with PutioClient(fake_putio.token, fake_putio.api_url, backoff=backoff) as made:

        def listing() -> None:
            try:
                made.list_transfers()
            except TransientError as error:
                ended.append(error)

        lister = threading.Thread(target=listing)
        lister.start()
        while not _api_requests(fake_putio, "transfers/list"):
            time.sleep(0.01)
    lister.join(5)
    assert not lister.is_alive()
    assert len(_api_requests(fake_putio, "transfers/list")) == 1
    assert "the run ended" in str(ended[0])


class _CutListing:
    """A listing made on a thread of its own, its requests cut by ``cutter``, as a run's
    are (``app/observe``)."""

    def __init__(self, listing: Callable[[], object]) -> None:
        self.cutter = Cutter()
        self.raised: list[BaseException] = []
        self._thread = threading.Thread(target=self._list, args=(listing,), name="observe-t")
        self._thread.start()

    def _list(self, listing: Callable[[], object]) -> None:
        try:
            cut_by((self.cutter,), listing)
        except BaseException as error:  # what the listing raised is checked
            self.raised.append(error)

    def cut(self) -> float:
        """Cut the listing; return how long it went on after."""
        started = time.monotonic()
        self.cutter.cut()
        self._thread.join(5)
        return time.monotonic() - started


def _soon(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_listing_cut_while_its_next_page_is_slow_to_come_ends_at_once_and_quietly(
    fake_putio: FakePutio, live: PutioClient, caplog: pytest.LogCaptureFixture
) -> None:
    # the next page is asked for on a thread of its own, which the listing waits for
    folder = fake_putio.add_folder("Bulk")
    for n in range(6):
        fake_putio.add_file(f"f{n}.txt", parent_id=folder, content=b"x")
    fake_putio.inject("/v2/files/list/continue", status=503, delay=3.0)
    with caplog.at_level(logging.DEBUG, logger="putio_mirror"):
        listing = _CutListing(live.list_all_files)
        _soon(lambda: bool(_api_requests(fake_putio, "files/list/continue")))
        caplog.clear()
        went_on = listing.cut()
        time.sleep(3.2)  # the slow page's answer came by now, to a listing still waiting
    assert went_on < 0.5, "the listing waited for its next page"
    assert [type(error) for error in listing.raised] == [CallStopped]
    assert caplog.records == [], "a listing cut short told of it"
    assert len(_api_requests(fake_putio, "files/list/continue")) == 1


def test_a_listing_cut_while_it_waits_to_try_again_ends_at_once_without_another_try(
    fake_putio: FakePutio, caplog: pytest.LogCaptureFixture
) -> None:
    fake_putio.inject("/v2/transfers/list", status=503, times=100)
    backoff = Backoff(base=30.0, factor=2.0, cap=60.0, max_attempts=8)
    with (
        PutioClient(fake_putio.token, fake_putio.api_url, backoff=backoff) as made,
        caplog.at_level(logging.DEBUG, logger="putio_mirror"),
    ):
        listing = _CutListing(made.list_transfers)
        _soon(lambda: "retrying in" in caplog.text)
        caplog.clear()
        went_on = listing.cut()
    assert went_on < 0.5, "the listing waited out its pause"
    assert [type(error) for error in listing.raised] == [CallStopped]
    assert caplog.records == []
    assert len(_api_requests(fake_putio, "transfers/list")) == 1


class _Charsets(http.server.BaseHTTPRequestHandler):
    """put.io's link answers in other spellings: a charset named, or none and UTF-16."""

    protocol_version = "HTTP/1.1"
    answers: ClassVar[dict[str, tuple[str | None, bytes]]] = {
        "/v2/files/1/url": (
            "application/json; charset=latin-1",
            '{"url": "http://n/é"}'.encode("latin-1"),
        ),
        "/v2/files/2/url": (None, '{"url": "http://n/ü"}'.encode("utf-16")),
        "/v2/files/3/url": ("application/json", '{"url": "http://n/ß"}'.encode()),
    }

    def do_GET(self) -> None:
        kind, body = self.answers[self.path]
        self.send_response(200)
        if kind is not None:
            self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_link_read_by_hand_is_decoded_as_requests_decodes_it() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Charsets)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with PutioClient(TOKEN, f"http://127.0.0.1:{server.server_address[1]}/v2") as client:
            assert client.download_url(1) == "http://n/é"  # by the charset it names
            assert client.download_url(2) == "http://n/ü"  # none named: found as JSON is
            assert client.download_url(3) == "http://n/ß"
    finally:
        server.shutdown()
        server.server_close()
