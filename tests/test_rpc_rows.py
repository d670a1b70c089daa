"""``torrent-get``'s rows kept between polls: always the rows ``torrent_rows`` works out
afresh, however the items' desires, transfers, progress and the clock move."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from putio_mirror.core.state import Desire, Policy, Transfer
from putio_mirror.rpc.fields import ItemView, torrent_rows
from putio_mirror.rpc.rows import Progress, RowCache, local_item
from putio_mirror.rpc.wire import dumps

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
DOWNLOADS = "/srv/downloads"
POLICY = Policy()
FIELDS = [
    "id", "name", "secondsDownloading", "percentDone", "leftUntilDone", "status",
    "isFinished", "activityDate", "rateDownload", "labels", "errorString", "downloadDir",
]  # fmt: skip


def desire(number: int, **fields: object) -> Desire:
    files = (
        (10 * number + 1, f"tv/S{number}/a.mkv", 900),
        (10 * number + 2, f"tv/S{number}/b", 100),
    )
    made = Desire(f"{number:040x}", number, f"S{number}", "torrent", NOW - timedelta(hours=1))
    return replace(made, size=1000, item_path=f"tv/S{number}", item_files=files, **fields)  # type: ignore[arg-type]


def fresh(
    desires: list[Desire],
    transfers: dict[str, Transfer],
    progress: dict[int, Progress],
    now: datetime,
) -> list[dict[str, object]]:
    views = []
    for item in desires:
        files = [
            progress.get(file_id, Progress(0, False, None)) for file_id, _, _ in item.item_files
        ]
        views.append(
            ItemView(
                item, transfers.get(item.info_hash), local_item(item, files, POLICY), DOWNLOADS
            )
        )
    return torrent_rows(views, FIELDS, now)


def test_kept_rows_follow_every_change_of_their_items_and_the_clock() -> None:
    cache = RowCache(DOWNLOADS, POLICY)
    desires = [desire(1), desire(2), desire(3, paused=True)]
    transfers = {
        item.info_hash: Transfer(
            item.rpc_id, "x", "DOWNLOADING", item.info_hash, percent_done=10, down_speed=5
        )
        for item in desires
    }
    progress: dict[int, Progress] = {}
    live = {item.info_hash for item in desires}
    second = desires[1].info_hash

    def step(number: int) -> None:
        if number == 1:  # a download runs, then fails and waits to be tried again
            progress[11] = Progress(300, False, None, 1, NOW, "the node answered HTTP 500")
        elif number == 2:
            progress.update({11: Progress(900, True, None), 12: Progress(100, True, None)})
        elif number == 3:
            placed = {11: Progress(900, True, "tv/S1/a.mkv"), 12: Progress(100, True, "tv/S1/b")}
            progress.update(placed)
        elif number == 4:
            transfers[second] = replace(transfers[second], status="COMPLETED", percent_done=100)
        elif number == 5:
            desires[0] = replace(desires[0], labels=("tv",))
        elif number == 6:
            desires[2] = replace(desires[2], paused=False)
        elif number == 7:
            desires[1] = replace(desires[1], error="put.io refused it")

    for number in range(8):
        step(number)
        now = NOW + timedelta(seconds=7 * number)
        kept = cache.rows(desires, transfers, progress, FIELDS, now, live)
        expected = fresh(desires, transfers, progress, now)
        assert kept == dumps(expected)  # the same values in the same order, as JSON


def test_rows_of_removed_items_are_let_go() -> None:
    cache = RowCache(DOWNLOADS, POLICY)
    many = [desire(number) for number in range(200)]
    cache.rows(many, {}, {}, ["id"], NOW, {item.info_hash for item in many})
    one = many[:1]
    cache.rows(one, {}, {}, ["id"], NOW, {one[0].info_hash})
    assert cache.kept_rows() == 1
