"""The CPU of one ``torrent-get`` poll over 1,000 RPC items, in-process, without HTTP.

``bench/rpc.py`` measures what Sonarr sees (a real ``serve``, a download beside, HTTP);
its figures swing with whatever else the machine runs. This one isolates the two costs
a poll adds on the server: building the view (journal reads, the board, the fields) and
encoding the reply as JSON. One file of one item makes progress between polls, as a
running download does, so a view that caches must still notice it.

    .venv/bin/python bench/rpc_view.py [--items 1000] [--polls 200] [--profile]
"""

from __future__ import annotations

import cProfile
import pstats
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import base_parser, main_guard, note, print_header, print_table, scratch_dir

from putio_mirror.config.rpc import RpcSettings
from putio_mirror.core.state import Desire, Policy, Snapshot, Transfer
from putio_mirror.journal.store import Journal
from putio_mirror.rpc.board import Board
from putio_mirror.rpc.methods import Door, answer
from putio_mirror.rpc.wire import encode_reply

SONARR_FIELDS = [
    "id", "hashString", "name", "downloadDir", "totalSize", "leftUntilDone", "isFinished",
    "eta", "status", "secondsDownloading", "secondsSeeding", "errorString", "uploadedEver",
    "downloadedEver", "seedRatioLimit", "seedRatioMode", "seedIdleLimit", "seedIdleMode",
    "fileCount", "file-count", "labels", "percentDone", "rateDownload",
]  # fmt: skip
START = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def build(root: Path, items: int) -> tuple[Journal, Door]:
    journal = Journal.open(f"sqlite:///{root / 'journal.sqlite3'}")
    transfers = []
    for number in range(items):
        info_hash = f"{number:040x}"
        name = f"Show.S01E{number:04d}"
        desire = Desire(info_hash, 0, name, "torrent", START, size=2000, category="tv")
        journal.desires.add(desire, b"d4:infode")
        files = (
            (10 * number + 1, f"tv/{name}/a.mkv", 1900),
            (10 * number + 2, f"tv/{name}/a.nfo", 100),
        )
        journal.desires.locate(info_hash, 10 * number, f"tv/{name}", files)
        status = "COMPLETED" if number % 2 else "DOWNLOADING"
        transfers.append(Transfer(number + 1, name, status, info_hash, file_id=10 * number,
                                  size=2000, percent_done=50, down_speed=1000))  # fmt: skip
        if number % 4 == 1:  # some files fetched part-way, some placed
            journal.record_progress(10 * number + 1, f"tv/{name}/a.mkv", 1900, None, 700, START)
    board = Board(journal, Policy())
    board.refresh(Snapshot(transfers=tuple(transfers)), with_files=False)
    clock = iter(START + timedelta(seconds=second) for second in range(10**9))
    settings = RpcSettings(port=0)
    door = Door(journal, board, root / "downloads", settings, Policy(), wake=lambda: None,
                clock=lambda: next(clock))  # fmt: skip
    return journal, door


def poll(door: Door, journal: Journal, round_number: int) -> tuple[float, float]:
    # The running download: one file's bytes grow between polls.
    journal.record_progress(1, "tv/Show.S01E0000/a.mkv", 1900, None, round_number % 1900, START)
    started = time.perf_counter()
    reply = answer(door, {"method": "torrent-get", "arguments": {"fields": SONARR_FIELDS}})
    built = time.perf_counter()
    encode_reply(reply)
    return built - started, time.perf_counter() - built


def main() -> None:
    parser = base_parser(__doc__ or "", rounds=1)
    parser.add_argument("--items", type=int, default=1000, help="RPC items (default 1000)")
    parser.add_argument("--polls", type=int, default=200, help="polls (default 200)")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top 25")
    options = parser.parse_args()
    with scratch_dir(options.workdir) as root:
        journal, door = build(root, options.items)
        try:
            poll(door, journal, 0)  # the first poll fills whatever is cached
            profiler = cProfile.Profile() if options.profile else None
            if profiler is not None:
                profiler.enable()
            timings = [poll(door, journal, number) for number in range(1, options.polls + 1)]
            if profiler is not None:
                profiler.disable()
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        finally:
            journal.close()
    view = sorted(build_time for build_time, _ in timings)
    encode = sorted(encode_time for _, encode_time in timings)
    note(f"{options.polls} polls of {options.items} items")
    print_header("rpc_view")
    print_table(
        f"torrent-get of {options.items} items with Sonarr's fields, in-process",
        ["part", "median ms", "p99 ms"],
        [
            ["view", f"{statistics.median(view) * 1000:.2f}", f"{_p99(view) * 1000:.2f}"],
            ["JSON", f"{statistics.median(encode) * 1000:.2f}", f"{_p99(encode) * 1000:.2f}"],
        ],
    )


def _p99(ordered: list[float]) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


if __name__ == "__main__":
    raise SystemExit(main_guard(main))
