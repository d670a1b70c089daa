"""How one RPC item reads as Transmission fields, which items ``ids`` name, and which
folders ``download-dir`` may name: table tests of the pure parts of the door."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from putio_mirror.core.state import Desire, Transfer
from putio_mirror.rpc import ids
from putio_mirror.rpc.adding import RpcError, parse_category
from putio_mirror.rpc.fields import Failing, ItemView, LocalItem, torrent_fields

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
HASH = "ab" * 20
DOWNLOADS = "/srv/downloads"
FILES = ((11, "tv/Show: S01/a.mkv", 900), (12, "tv/Show: S01/a.nfo", 100))
FIELDS = ["percentDone", "leftUntilDone", "isFinished", "status", "downloadDir", "name"]


def desire(**fields: object) -> Desire:
    made = Desire(HASH, 1, "Show: S01", "torrent", NOW - timedelta(hours=1), size=1000)
    return replace(made, category="tv", **fields)  # type: ignore[arg-type]


def read(view: ItemView) -> dict[str, object]:
    return torrent_fields(view, FIELDS, NOW)


def test_before_put_io_has_it_the_item_is_queued_in_its_category_folder() -> None:
    assert read(ItemView(desire(), None, None, DOWNLOADS)) == {
        "percentDone": 0.0,
        "leftUntilDone": 1000,
        "isFinished": False,
        "status": 3,
        "downloadDir": "/srv/downloads/tv",
        "name": "Show_ S01",  # sanitised as the mirror will name it
    }


@pytest.mark.parametrize(
    ("transfer", "local", "percent", "status"),
    [
        (Transfer(1, "x", "IN_QUEUE", percent_done=0), None, 0.0, 3),
        (Transfer(1, "x", "DOWNLOADING", percent_done=50), None, 0.25, 4),
        (Transfer(1, "x", "SEEDING", percent_done=100), LocalItem("tv/Show: S01", FILES), 0.5, 4),
        (Transfer(1, "x", "SEEDING"), LocalItem("tv/Show: S01", FILES, 500), 0.75, 4),
        (Transfer(1, "x", "COMPLETED"), LocalItem("tv/Show: S01", FILES, 1000), 0.995, 4),
    ],
)
def test_progress_is_put_io_first_then_local_bytes_and_never_complete_before_placement(
    transfer: Transfer, local: LocalItem | None, percent: float, status: int
) -> None:
    fields = read(ItemView(desire(), transfer, local, DOWNLOADS))
    assert (fields["percentDone"], fields["status"]) == (percent, status)
    assert fields["leftUntilDone"] > 0  # type: ignore[operator]
    assert fields["isFinished"] is False


def test_once_placed_it_is_complete_at_the_placed_path() -> None:
    placed = LocalItem("tv/Show: S01", FILES, 1000, placed=True)
    seeding = read(ItemView(desire(), Transfer(1, "x", "SEEDING"), placed, DOWNLOADS))
    assert seeding == {
        "percentDone": 1,
        "leftUntilDone": 0,
        "isFinished": False,  # Transmission: a torrent still seeding is not finished
        "status": 6,
        "downloadDir": "/srv/downloads/tv",
        "name": "Show: S01",  # exactly the placed item's name
    }
    done = read(ItemView(desire(), None, placed, DOWNLOADS))
    assert (done["status"], done["isFinished"], done["leftUntilDone"]) == (0, True, 0)


def test_a_finished_item_passes_sonarrs_seed_limit_test() -> None:
    placed = LocalItem("tv/x", FILES, 1000, placed=True)
    limited = desire(seed_ratio_limit=2.0, seed_idle_minutes=30)
    fields = torrent_fields(
        ItemView(limited, None, placed, DOWNLOADS),
        ["uploadRatio", "seedRatioLimit", "seedRatioMode", "secondsSeeding", "seedIdleLimit"],
        NOW,
    )
    assert fields["uploadRatio"] >= fields["seedRatioLimit"] == 2  # type: ignore[operator]
    assert fields["secondsSeeding"] > 30 * 60  # type: ignore[operator]


def test_errors_from_put_io_and_from_here_are_shown() -> None:
    failed = Transfer(1, "x", "ERROR", error_message="tracker said no")
    fields = ["errorString", "error", "unknownField"]
    on_putio = torrent_fields(ItemView(desire(), failed, None, DOWNLOADS), fields, NOW)
    assert on_putio == {"errorString": "put.io: tracker said no", "error": 3, "unknownField": 0}
    refused = torrent_fields(ItemView(desire(error="refused"), None, None, DOWNLOADS), fields, NOW)
    assert refused["errorString"] == "refused"


@pytest.mark.parametrize(
    ("value", "chosen"),
    [
        (None, [1, 2, 3]),
        ("recently-active", [1, 2, 3]),
        (2, [2]),
        ("2", [2]),
        ("B" * 40, [2]),
        (["a" * 40, 3, "f" * 40], [1, 3]),
        ([], []),
        (99, []),
    ],
)
def test_ids_come_in_every_form(value: object, chosen: list[int]) -> None:
    desires = [
        replace(desire(), rpc_id=n, info_hash=c * 40) for n, c in ((3, "c"), (1, "a"), (2, "b"))
    ]
    assert [item.rpc_id for item in ids.select(value, desires)] == chosen


@pytest.mark.parametrize("value", [[{"id": 1}], [True], "abc", list(range(ids.MAX_IDS + 1))])
def test_ids_that_are_no_ids_are_refused(value: object) -> None:
    with pytest.raises(RpcError):
        ids.select(value, [])


@pytest.mark.parametrize(
    ("value", "category"),
    [
        (None, ""),
        ("/srv/downloads", ""),
        ("/srv/downloads/", ""),
        ("/srv/downloads/tv-sonarr", "tv-sonarr"),
        ("/srv/downloads/x/../tv", "tv"),
        ("/data/other-client/radarr", "radarr"),  # another machine's path: its last name
        ("/srv/downloads/../etc", "etc"),  # outside, so read as a category: never /srv/etc
    ],
)
def test_download_dir_names_a_category_folder(value: str | None, category: str) -> None:
    assert parse_category(value, DOWNLOADS, ()) == category


@pytest.mark.parametrize(
    "value",
    ["/srv/downloads/a/b", "/", "/srv/downloads/.putio-mirror-staging", "relative/a/b",
     "/srv/downloads/con", 5],
)  # fmt: skip
def test_download_dir_outside_or_deep_or_unsafe_is_refused(value: object) -> None:
    with pytest.raises(RpcError):
        parse_category(value, DOWNLOADS, ())


def test_configured_categories_are_the_only_ones() -> None:
    assert parse_category("/srv/downloads/tv", DOWNLOADS, ("tv", "films")) == "tv"
    with pytest.raises(RpcError, match="one of"):
        parse_category("/srv/downloads/music", DOWNLOADS, ("tv", "films"))


def test_a_file_waiting_to_be_tried_again_is_a_warning_that_says_when() -> None:
    retry = NOW + timedelta(minutes=10)
    failing = (Failing("tv/Show: S01/a.mkv", 1, "the node answered HTTP 500", retry),)
    local = LocalItem("tv/Show: S01", FILES, 300, failing=failing)
    view = ItemView(desire(), Transfer(1, "x", "COMPLETED"), local, DOWNLOADS)
    fields = torrent_fields(view, ["error", "errorString", "status"], NOW)
    assert fields["error"] == 1 and fields["status"] == 4  # still downloading: it may come
    assert fields["errorString"] == (
        "tv/Show: S01/a.mkv failed 1 time(s): the node answered HTTP 500; "
        "tried again after 2026-11-27 03:10 UTC"
    )
