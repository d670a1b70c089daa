"""``torrent-get`` of 1,000 RPC items while a download runs: latency, and put.io requests.

Starts ``putio-mirror serve`` as users run it (a child process, config pointing at a
``FakePutio``), whose first sync downloads one large file under a bandwidth limit so it
is still running while we measure. Adds ``--items`` torrents over RPC (each submitted
once by the watcher's pass), waits until put.io has them all, then polls ``torrent-get``
with Sonarr's field list over every item, one poll after another, and prints the median
and p99 latency and how many put.io API requests were made while polling (target: none,
with ``rpc.poll_seconds`` and the sync interval longer than the polling; the running
download's node traffic is not an API request). The latency is what a client sees,
reading and decoding the reply included; "server" is the time to the reply's headers,
the endpoint's own part (this process also serves the fake put.io's download, so its
reading of the reply competes with that for the GIL).

    .venv/bin/python bench/rpc.py [--rounds 3] [--items 1000] [--polls 200] [--no-download]
"""

from __future__ import annotations

import base64
import hashlib
import socket
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests
from common import (
    BenchError,
    base_parser,
    child_env,
    main_guard,
    median,
    note,
    print_header,
    print_table,
    putio_mirror_command,
    scratch_dir,
    verdict,
    write_config,
)
from fastbencode import bencode  # type: ignore[attr-defined]

from putio_mirror.fakeputio import FakePutio

MAX_P99_SECONDS = 0.050
USER, PASSWORD = "bench", "bench-password"
SESSION_HEADER = "X-Transmission-Session-Id"
SONARR_FIELDS = [
    "id", "hashString", "name", "downloadDir", "totalSize", "leftUntilDone", "isFinished",
    "eta", "status", "secondsDownloading", "secondsSeeding", "errorString", "uploadedEver",
    "downloadedEver", "seedRatioLimit", "seedRatioMode", "seedIdleLimit", "seedIdleMode",
    "fileCount", "file-count", "labels", "percentDone", "rateDownload",
]  # fmt: skip
BIG_FILE = 1 << 30  # downloaded at 8 MB/s: still running during the polls


def torrent(number: int) -> bytes:
    info = {
        b"name": f"Show.S01E{number:04d}".encode(),
        b"piece length": 16384,
        b"length": 1000 + number,
        b"pieces": hashlib.sha1(str(number).encode(), usedforsecurity=False).digest(),
    }
    return bytes(bencode({b"info": info}))


class Rpc:
    def __init__(self, url: str) -> None:
        self.url, self.session, self.session_id = url, requests.Session(), ""
        self.session.auth = (USER, PASSWORD)
        #: seconds from sending the last request to its reply's headers: the server's part
        self.to_headers = 0.0

    def call(self, method: str, **arguments: Any) -> dict[str, Any]:
        for _ in range(2):
            response = self.session.post(
                self.url,
                json={"method": method, "arguments": arguments},
                headers={SESSION_HEADER: self.session_id},
                timeout=30,
            )
            if response.status_code != 409:
                break
            self.session_id = response.headers[SESSION_HEADER]
        self.to_headers = response.elapsed.total_seconds()
        reply: dict[str, Any] = response.json()
        if reply["result"] != "success":
            raise BenchError(f"{method}: {reply['result']}")
        return reply["arguments"]  # type: ignore[no-any-return]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out waiting for {what}")
        time.sleep(0.1)


def one_round(
    root: Path, items: int, polls: int, download: bool
) -> tuple[list[float], list[float], Counter[str], bool]:
    with FakePutio() as fake:
        if download:
            fake.add_file("Big.Film.mkv", size=BIG_FILE)
        port = free_port()
        config = write_config(
            root,
            fake,
            rpc={"listen": f"127.0.0.1:{port}", "username": USER, "password": PASSWORD,
                 "poll_seconds": 3600},
            schedule={"watch_interval_minutes": 60},
            download={"bwlimit": "8M"},
        )  # fmt: skip
        argv = [*putio_mirror_command(), "--config", str(config), "serve"]
        server = subprocess.Popen(argv, env=child_env(), stderr=subprocess.DEVNULL)
        try:
            rpc = Rpc(f"http://127.0.0.1:{port}/transmission/rpc")
            wait_until(lambda: _answers(rpc), 30, "serve to answer")
            folder = {"download-dir": str(root / "downloads" / "tv")}
            for number in range(items):
                metainfo = base64.b64encode(torrent(number)).decode()
                rpc.call("torrent-add", metainfo=metainfo, paused=False, **folder)
            wait_until(lambda: len(fake.transfers()) >= items, 300, "every submission")
            staging = root / "downloads" / ".putio-mirror-staging"
            downloading = staging.is_dir()
            fake.clear_requests()
            latencies, to_headers = [], []
            for _ in range(polls):
                started = time.perf_counter()
                got = rpc.call("torrent-get", fields=SONARR_FIELDS)["torrents"]
                latencies.append(time.perf_counter() - started)
                to_headers.append(rpc.to_headers)
                if len(got) != items:
                    raise BenchError(f"torrent-get listed {len(got)} items, not {items}")
            requests_made = Counter(
                f"{entry.method} {entry.path}" for entry in fake.requests if entry.host == "api"
            )
            still_downloading = (
                downloading and (root / "downloads" / ".putio-mirror-staging").is_dir()
            )
            return latencies, to_headers, requests_made, still_downloading
        finally:
            server.terminate()
            server.wait(60)


def _answers(rpc: Rpc) -> bool:
    try:
        rpc.call("session-get")
    except (requests.ConnectionError, BenchError):
        return False
    return True


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def main() -> None:
    parser = base_parser(__doc__ or "", rounds=3)
    parser.add_argument("--items", type=int, default=1000, help="RPC items (default 1000)")
    parser.add_argument("--polls", type=int, default=200, help="polls per round (default 200)")
    parser.add_argument(
        "--no-download", action="store_true", help="poll with no download running beside"
    )
    options = parser.parse_args()
    rows = []
    p99s: list[float] = []
    total_requests: Counter[str] = Counter()
    for number in range(1, options.rounds + 1):
        with scratch_dir(options.workdir) as root:
            latencies, to_headers, made, downloading = one_round(
                root, options.items, options.polls, not options.no_download
            )
        p99s.append(percentile(latencies, 0.99))
        total_requests += made
        note(f"round {number}: p99 {p99s[-1] * 1000:.1f} ms, {sum(made.values())} API requests")
        rows.append([
            str(number), f"{statistics.median(latencies) * 1000:.1f}",
            f"{p99s[-1] * 1000:.1f}", f"{max(latencies) * 1000:.1f}",
            f"{statistics.median(to_headers) * 1000:.1f}",
            f"{percentile(to_headers, 0.99) * 1000:.1f}",
            str(sum(made.values())), "yes" if downloading else "no",
        ])  # fmt: skip
    print_header("rpc")
    print_table(
        f"torrent-get of {options.items} items with Sonarr's fields, {options.polls} polls "
        f"a round, {'no download' if options.no_download else 'while a download runs'}",
        [
            "round",
            "median ms",
            "p99 ms",
            "max ms",
            "server median ms",
            "server p99 ms",
            "put.io API requests",
            "download running",
        ],
        rows,
    )
    worst = median(p99s)
    print(f"\np99 (median of rounds): {worst * 1000:.1f} ms, "
          f"{verdict(worst, MAX_P99_SECONDS, 's')}")  # fmt: skip
    print(f"put.io API requests while polling: {sum(total_requests.values())} "
          f"{dict(total_requests) or ''}")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main_guard(main))
