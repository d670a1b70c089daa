"""A window's end, met by a real sync against the fake put.io: whatever the node or the
limit is doing at that moment, the download stops soon after at a chunk boundary, and the
next window goes on from that byte."""

from __future__ import annotations

import json
import socket
import threading
import time
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from putio_mirror.app.run import Outcome, Request, Runtime, run_once
from putio_mirror.cli.signals import StopFlag
from putio_mirror.cli.watch import watch_blackhole
from putio_mirror.config.settings import Settings, load_settings
from putio_mirror.core.errors import ExitCode
from putio_mirror.fakeputio import FakePutio
from putio_mirror.fakeputio.fake import LoggedRequest
from tests.conftest import TorrentFactory
from tests.mirror_env import Mirror, assert_whole
from tests.rpc_env import Client, serving, url_of, wait_for, watch_sync_over
from tests.silent import SilentServer

STAGING = ".putio-mirror-staging"
WINDOW = "00:05-05:55"
NIGHT = datetime(2026, 11, 27, 1, 0).astimezone()
MORNING = datetime(2026, 11, 27, 6, 0).astimezone()
EVENING = datetime(2026, 11, 26, 23, 0).astimezone()
SHORT_NIGHT = datetime(2026, 11, 27, 0, 30).astimezone()  # inside 00:05-00:55


class ClosingWindow:
    """A local clock inside ``WINDOW`` until ``close`` is called, then after it: the
    window closes for real, at a moment the test chooses."""

    def __init__(self) -> None:
        self.closed_at: float | None = None

    def close(self) -> None:
        if self.closed_at is None:
            self.closed_at = time.monotonic()

    def __call__(self) -> datetime:
        return NIGHT if self.closed_at is None else MORNING


def close_after(clock: ClosingWindow, seconds: float) -> None:
    timer = threading.Timer(seconds, clock.close)
    timer.daemon = True
    timer.start()


def first_node_request(action: Callable[[], None]) -> Callable[[LoggedRequest], None]:
    fired = threading.Event()

    def hook(request: LoggedRequest) -> None:
        if request.host == "node" and not fired.is_set():
            fired.set()
            action()

    return hook


def synced_next_window(settings: Settings) -> None:
    """Run a sync inside the window (at night), which must end well."""
    again = run_once(Runtime(settings, clock=lambda: NIGHT), Request("sync"))
    assert again.exit_code == ExitCode.OK


def node_ranges(mirror: Mirror) -> list[str | None]:
    return [r.headers.get("Range") for r in mirror.fake.requests if r.host == "node"]


TRICKLE = {"chunk_size_kb": 256, "read_timeout_seconds": 0.5, "max_outage_seconds": 20}


def trickled_past_the_window(
    mirror: Mirror, name: str, size: int, rate: int | None, download: dict[str, Any] = TRICKLE
) -> tuple[int, Any]:
    """Given a file's name and size, a node rate (None: as fast as it goes) and download
    options far too slow for a chunk, run a sync whose window closes a second after the
    node's first byte; check that the run ended soon after; return the file's id and the
    settings."""
    file_id = mirror.fake.add_file(name, size=size)
    mirror.write_config(schedule={"windows": [WINDOW]}, download=download)
    mirror.fake.node_bytes_per_second = rate
    clock = ClosingWindow()
    mirror.fake.on_request = first_node_request(lambda: close_after(clock, 1.0))
    settings = load_settings(mirror.config, {})
    outcome = run_once(Runtime(settings, clock=clock), Request("sync"))
    ended = time.monotonic()
    assert outcome.exit_code == ExitCode.WINDOW_CLOSED
    assert clock.closed_at is not None
    assert ended - clock.closed_at < 3.0, "the run went on long after the window closed"
    mirror.fake.on_request = None
    mirror.fake.node_bytes_per_second = None
    return file_id, settings


@pytest.mark.parametrize("size", [2 * 1024 * 1024, 1024 * 1024], ids=["chunked", "whole"])
def test_a_node_that_trickles_is_stopped_soon_after_the_window_closes_and_resumed_next_window(
    mirror: Mirror, size: int
) -> None:
    # A node sending 8 KB/s: a chunk of 256 KiB would take half a minute. The window's end
    # must not wait for it (a node trickling 1 byte a second would hold the run for days),
    # whether the file is fetched a chunk at a time or whole (``fetch/whole.py``).
    file_id, settings = trickled_past_the_window(mirror, "big.bin", size, 8_000)
    part = mirror.downloads / STAGING / f"{file_id}.part"
    kept = part.stat().st_size
    assert 0 < kept < size
    mirror.fake.clear_requests()
    synced_next_window(settings)
    assert node_ranges(mirror) == [f"bytes={kept}-"]
    assert_whole(mirror, "big.bin", file_id)


def test_a_download_held_back_by_a_low_bwlimit_stops_soon_after_the_window_closes(
    mirror: Mirror,
) -> None:
    # Under a limit of 16 KiB/s a chunk of 256 KiB takes 16 s to be let through: the
    # window's end must not wait for the limiter to let the chunk go.
    size = 2 * 1024 * 1024
    limited = {"chunk_size_kb": 256, "bwlimit": "16K", "read_timeout_seconds": 2}
    file_id, settings = trickled_past_the_window(mirror, "big.bin", size, None, limited)
    part = mirror.downloads / STAGING / f"{file_id}.part"
    kept = part.stat().st_size
    assert kept < size
    mirror.fake.clear_requests()
    mirror.write_config(schedule={"windows": [WINDOW]}, download={"chunk_size_kb": 256})
    settings = load_settings(mirror.config, {})
    synced_next_window(settings)
    assert node_ranges(mirror) == [f"bytes={kept}-" if kept else None]
    assert_whole(mirror, "big.bin", file_id)


def closed_now() -> str:
    """A window that opens in two hours (local time): closed for the whole test."""
    now = datetime.now().astimezone()
    return f"{now + timedelta(hours=2):%H:%M}-{now + timedelta(hours=3):%H:%M}"


def test_serve_outside_the_window_does_not_sync_again_and_again_for_an_item_done_on_put_io(
    mirror: Mirror, torrent_bytes: TorrentFactory
) -> None:
    # An item Sonarr added is finished on put.io in the afternoon; the window opens at
    # night. Until then a sync can only find the window closed: serve must not start one
    # at every poll (each lists the whole account and fills `history` with runs).
    with serving(mirror, {"schedule": {"windows": [closed_now()]}}, poll_seconds=0.1) as server:
        client = Client(url_of(server))
        client.add_torrent(torrent_bytes("Waiting"))
        wait_for(lambda: mirror.fake.transfers())
        mirror.fake.finish_transfers()
        # the first sync (serve's start) over, however late under load; one that came for
        # the item (a bug) would come again at the next polls
        wait_for(watch_sync_over)
        syncs_before = api_calls(mirror.fake, "/v2/files/list")
        time.sleep(2.0)  # polls that would start syncs (a wait: nothing is to happen)
        syncs = api_calls(mirror.fake, "/v2/files/list") - syncs_before
    assert syncs == 0, f"{syncs} syncs started outside the window"
    assert not (mirror.downloads / "Waiting").exists()


def api_calls(fake: FakePutio, path: str) -> int:
    return sum(1 for entry in fake.requests if entry.host == "api" and entry.path == path)


class OpeningWindow:
    """A local clock before ``WINDOW`` until ``open`` is called, then inside it."""

    def __init__(self) -> None:
        self.opened = threading.Event()

    def __call__(self) -> datetime:
        return SHORT_NIGHT if self.opened.is_set() else EVENING


def test_watch_syncs_as_a_window_opens_though_its_interval_is_longer(mirror: Mirror) -> None:
    # Syncs every hour and a window of 50 minutes: a sync just before the window and the
    # next just after it would never download anything.
    mirror.fake.add_file("movie.mkv", size=100_000)
    mirror.write_config(schedule={"windows": ["00:05-00:55"], "watch_interval_minutes": 60})
    mirror.blackhole.mkdir(exist_ok=True)
    settings = load_settings(mirror.config, {})
    clock, flag, ended = OpeningWindow(), StopFlag(), []
    watcher = threading.Thread(
        target=lambda: ended.append(
            watch_blackhole(
                settings,
                add_first=False,
                periodic_sync=True,
                stop=flag,
                poll_seconds=0.05,
                clock=clock,
            )
        )
    )
    watcher.start()
    try:
        wait_for(lambda: mirror.fake.requests)  # the first sync, in the closed window
        time.sleep(1.0)
        assert not (mirror.downloads / "movie.mkv").exists()
        clock.opened.set()
        wait_for(lambda: (mirror.downloads / "movie.mkv").exists(), timeout=15)
    finally:
        flag.set()
        watcher.join(30)
    assert ended == [ExitCode.OK]


def test_a_window_closing_on_segments_in_flight_stops_each_and_the_next_window_fetches_the_rest(
    mirror: Mirror,
) -> None:
    # 40 MB over four connections, each slow: the window closes with every segment midway.
    size = 40 * 1024 * 1024
    file_id = mirror.fake.add_file("movie.mkv", size=size)
    chunk = 64 * 1024
    mirror.write_config(
        schedule={"windows": [WINDOW]},
        download={"chunk_size_kb": 64, "connections": 4, "read_timeout_seconds": 2},
    )
    mirror.fake.node_bytes_per_second = 2_000_000
    clock = ClosingWindow()
    mirror.fake.on_request = first_node_request(lambda: close_after(clock, 1.5))
    settings = load_settings(mirror.config, {})
    outcome = run_once(Runtime(settings, clock=clock), Request("sync"))
    assert outcome.exit_code == ExitCode.WINDOW_CLOSED
    part = mirror.downloads / STAGING / f"{file_id}.part"
    rows = json.loads(part.with_name(part.name + ".segments").read_text())["segments"]
    assert len(rows) >= 2
    data = mirror.fake.file_content(file_id)
    on_disk = part.read_bytes()
    for start, end, done, crc in rows:
        assert 0 < done < end - start, "every segment was midway"
        assert done % chunk == 0 or start + done == end, "a segment stopped mid-chunk"
        assert on_disk[start : start + done] == data[start : start + done]
        assert f"{zlib.crc32(data[start : start + done]):08x}" == f"{crc:08x}"

    mirror.fake.on_request = None
    mirror.fake.node_bytes_per_second = None
    mirror.fake.clear_requests()
    synced_next_window(settings)
    asked = sorted(r.headers.get("Range") or "" for r in mirror.fake.requests if r.host == "node")
    wanted = sorted(
        f"bytes={start + done}-{end - 1}" if end < size else f"bytes={start + done}-"
        for start, end, done, _ in rows
    )
    assert asked == wanted, "each segment resumed from its own byte, nothing asked twice"
    assert (mirror.downloads / "movie.mkv").read_bytes() == data


def test_a_small_file_from_a_node_that_trickles_is_stopped_soon_after_the_window_closes(
    mirror: Mirror,
) -> None:
    # A file small enough to be fetched in one request (``fetch/whole.py``), from a node
    # sending 4 KB/s: 200 KB would take 50 s.
    file_id, settings = trickled_past_the_window(mirror, "subs.srt", 200_000, 4_000)
    synced_next_window(settings)
    assert_whole(mirror, "subs.srt", file_id)


def nth_node_request(count: int, action: Callable[[], None]) -> Callable[[LoggedRequest], None]:
    """Given a count, call ``action`` once the node has been asked that many times."""
    seen: list[LoggedRequest] = []
    lock = threading.Lock()

    def hook(request: LoggedRequest) -> None:
        if request.host != "node":
            return
        with lock:
            seen.append(request)
            fire = len(seen) == count
        if fire:
            action()

    return hook


def test_a_window_closing_while_a_lone_download_waits_to_retry_stops_the_run_soon_after(
    mirror: Mirror,
) -> None:
    # Every node request answers 503: the lone worker waits 0.5-1 s, 1-2, 2-4, 4-8, then
    # 8-16 s between requests. The window closes a second into that fifth pause; the run
    # must end within seconds, not when the pause is over, and resume the file next window.
    size = 2 * 1024 * 1024
    file_id = mirror.fake.add_file("big.bin", size=size)
    mirror.write_config(
        schedule={"windows": [WINDOW]},
        download={"connections": 1, "max_outage_seconds": 300},
    )
    # five 503s: the node heals after the fifth, so a run that missed the window's end
    # would fetch the file and exit 0; the next window's run finds it healed
    mirror.fake.node_fault(file_id, status=503, times=5)
    clock = ClosingWindow()
    mirror.fake.on_request = nth_node_request(5, lambda: close_after(clock, 1.0))
    settings = synced_closing_window(mirror, clock)
    assert not (mirror.downloads / "big.bin").exists()

    synced_next_window(settings)
    assert_whole(mirror, "big.bin", file_id)


def test_a_window_closing_while_a_node_is_silent_stops_the_run_within_a_second_or_so(
    mirror: Mirror,
) -> None:
    # The node sends 300 KB and then nothing, the connection left open: a read started
    # before the window's end would wait out its read timeout (30 s here) past it.
    size = 2 * 1024 * 1024
    file_id = mirror.fake.add_file("big.bin", size=size)
    mirror.write_config(
        schedule={"windows": [WINDOW]},
        download={"connections": 1, "read_timeout_seconds": 30, "chunk_size_kb": 64},
    )
    mirror.fake.stall_release_seconds = 120
    mirror.fake.node_fault(file_id, stall_after=300_000)
    clock = ClosingWindow()
    mirror.fake.on_request = first_node_request(lambda: close_after(clock, 1.0))
    settings = synced_closing_window(mirror, clock)

    mirror.fake.clear_requests()
    synced_next_window(settings)
    (asked,) = node_ranges(mirror)
    assert asked is not None and asked.startswith("bytes="), "resumed, not fetched again"
    assert_whole(mirror, "big.bin", file_id)


def test_a_window_closing_while_a_witness_waits_on_a_silent_node_stops_the_run_soon_after(
    mirror: Mirror,
) -> None:
    # A download gives up on a node that answers 503; before it is called a suspect, a
    # file mirrored before is asked for one byte (fetch/witness.py), and its node stays
    # silent: that wait (read timeout 30 s, for each witness) must end at the window's end.
    witness = a_witness_beside_a_broken_file(mirror)
    mirror.fake.stall_release_seconds = 120
    mirror.fake.node_fault(witness, stall_after=0, times=10)
    clock = ClosingWindow()

    def hook(request: LoggedRequest) -> None:
        if request.host == "node" and request.path == f"/download/{witness}":
            close_after(clock, 1.0)

    mirror.fake.on_request = hook
    witnessed_closing_window(mirror, clock)


def a_witness_beside_a_broken_file(mirror: Mirror) -> int:
    """Mirror a file (the witness), then add one whose node answers 503 for ever, the
    download's patience short: the next sync asks the witness for one byte. Return its id."""
    mirror.write_config(schedule={"windows": [WINDOW]})
    settings = load_settings(mirror.config, {})
    witness = mirror.fake.add_file("before.mkv", size=100_000)
    assert run_once(Runtime(settings, clock=lambda: NIGHT), Request("sync")).exit_code == 0
    broken = mirror.fake.add_file("broken.mkv", size=2 * 1024 * 1024)
    mirror.write_config(
        schedule={"windows": [WINDOW]},
        download={"connections": 1, "max_outage_seconds": 2, "read_timeout_seconds": 30},
    )
    mirror.fake.node_fault(broken, status=503, times=1000)
    return witness


def witnessed_closing_window(mirror: Mirror, clock: ClosingWindow) -> None:
    """Run a sync whose window ``clock`` closes once the witness is asked; check that it
    ended within seconds of the closing (how the broken file ended does not matter)."""
    outcome, _ = ended_soon_after_closing(mirror, clock, "the witness was asked")
    assert outcome.exit_code in (ExitCode.WINDOW_CLOSED, ExitCode.OK, ExitCode.ITEMS_FAILED)


def link_asked(file_id: int, action: Callable[[], None]) -> Callable[[LoggedRequest], None]:
    """Given a file id, call ``action`` once put.io was first asked for the file's link."""
    fired = threading.Event()

    def hook(request: LoggedRequest) -> None:
        wanted = request.host == "api" and request.path == f"/v2/files/{file_id}/url"
        if wanted and not fired.is_set():
            fired.set()
            action()

    return hook


def synced_closing_window(mirror: Mirror, clock: ClosingWindow) -> Settings:
    """Run a sync whose window ``clock`` closes (as the test's hooks make it); check that it
    ended with the window, within seconds of its closing; return the settings."""
    outcome, settings = ended_soon_after_closing(mirror, clock, "the window closed")
    assert outcome.exit_code == ExitCode.WINDOW_CLOSED
    return settings


def ended_soon_after_closing(
    mirror: Mirror, clock: ClosingWindow, closed: str
) -> tuple[Outcome, Settings]:
    """Run a sync whose window ``clock`` closes; check that the window closed (else fail
    saying ``closed``) and that the run ended within seconds of it; stop the fake's hook;
    return the outcome and the settings."""
    settings = load_settings(mirror.config, {})
    outcome = run_once(Runtime(settings, clock=clock), Request("sync"))
    ended = time.monotonic()
    mirror.fake.on_request = None
    assert clock.closed_at is not None, closed
    late = ended - clock.closed_at
    assert late < 3.0, f"the run ended {late:.1f} s after the window closed"
    return outcome, settings


@pytest.mark.parametrize("size", [100_000, 2 * 1024 * 1024])  # one request; in chunks
def test_a_window_closing_while_a_download_connects_to_a_node_that_never_answers_stops_the_run(
    mirror: Mirror, size: int
) -> None:
    # The node's address drops every SYN (a blackholed IP): the connect would wait out its
    # connect timeout (10 s) past the window's end.
    file_id = mirror.fake.add_file("big.bin", size=size)
    mirror.write_config(
        schedule={"windows": [WINDOW]}, download={"connections": 1, "max_outage_seconds": 300}
    )
    mirror.fake.node_unanswering(file_id)
    clock = ClosingWindow()
    mirror.fake.on_request = link_asked(file_id, lambda: close_after(clock, 1.0))
    settings = synced_closing_window(mirror, clock)
    assert not [r for r in mirror.fake.requests if r.host == "node"], "no node answered"

    mirror.fake.node_unanswering(file_id, False)
    synced_next_window(settings)
    assert_whole(mirror, "big.bin", file_id)


def test_a_window_closing_while_a_witness_connects_to_a_node_that_never_answers_stops_the_run(
    mirror: Mirror,
) -> None:
    # As the witness on a silent node above, but its node never answers the connection.
    witness = a_witness_beside_a_broken_file(mirror)
    mirror.fake.node_unanswering(witness)
    clock = ClosingWindow()
    mirror.fake.on_request = link_asked(witness, lambda: close_after(clock, 1.0))
    witnessed_closing_window(mirror, clock)


@pytest.mark.parametrize("size", [100_000, 2 * 1024 * 1024])  # one request; in chunks
@pytest.mark.parametrize("unplain", ["redirected", "folded"])
def test_a_window_closing_while_a_node_read_the_usual_way_is_silent_stops_the_run_within_seconds(
    mirror: Mirror, size: int, unplain: str
) -> None:
    # An answer the GET by hand does not read is asked again the usual way: one with a
    # header folded over two lines is read by urllib3; a redirect, by requests, which
    # follows it (asked by hand, then through the pool, then by requests: three). The node
    # sends a quarter of the file, then nothing, the connection left open: the read would
    # wait out its read timeout (30 s here) past the window's end.
    file_id = mirror.fake.add_file("big.bin", size=size)
    mirror.write_config(
        schedule={"windows": [WINDOW]},
        download={"connections": 1, "read_timeout_seconds": 30, "max_outage_seconds": 300},
    )
    mirror.fake.stall_release_seconds = 120
    if unplain == "redirected":
        mirror.fake.node_fault(file_id, redirect=True, times=3)
        mirror.fake.node_fault(file_id, stall_after=size // 4)
        meant = [302, 302, 302, 200]
    else:
        mirror.fake.node_fault(file_id, stall_after=size // 4, folded_header=True, times=2)
        meant = [200, 200]  # by hand (refused), through the pool
    clock = ClosingWindow()
    mirror.fake.on_request = nth_node_request(len(meant), lambda: close_after(clock, 1.0))
    settings = synced_closing_window(mirror, clock)
    answers = [r.status for r in mirror.fake.requests if r.host == "node"]
    assert answers[: len(meant)] == meant, "asked the usual way, as meant"

    synced_next_window(settings)
    assert_whole(mirror, "big.bin", file_id)


def test_a_window_closing_while_a_download_waits_for_a_tls_handshake_stops_the_run(
    mirror: Mirror,
) -> None:
    # The node's kernel takes the connection (it is listening) but the node never takes it
    # up: the client's TLS hello is never answered, and the handshake would wait out the
    # connect timeout (10 s) past the window's end.
    file_id = mirror.fake.add_file("big.bin", size=2 * 1024 * 1024)
    mirror.write_config(
        schedule={"windows": [WINDOW]}, download={"connections": 1, "max_outage_seconds": 300}
    )
    with socket.socket() as deaf:
        deaf.bind(("127.0.0.1", 0))
        deaf.listen(8)  # never accepted
        mirror.fake.node_base_url = f"https://127.0.0.1:{deaf.getsockname()[1]}"
        clock = ClosingWindow()
        mirror.fake.on_request = link_asked(file_id, lambda: close_after(clock, 1.0))
        settings = synced_closing_window(mirror, clock)
    mirror.fake.node_base_url = None
    synced_next_window(settings)
    assert_whole(mirror, "big.bin", file_id)


@pytest.mark.parametrize("size", [100_000, 2 * 1024 * 1024])  # one request; in chunks
def test_a_window_closing_while_put_io_sits_on_a_download_s_link_stops_the_run_soon_after(
    mirror: Mirror, size: int
) -> None:
    # put.io takes the request for the file's link (asked for ahead, on a thread of its
    # own, the download waiting for it) and never answers: the wait would last the API's
    # timeout (30 s here) past the window's end.
    file_id = mirror.fake.add_file("big.bin", size=size)
    mirror.write_config(
        putio={"timeout_seconds": 30},
        schedule={"windows": [WINDOW]},
        download={"connections": 1, "max_outage_seconds": 300},
    )
    mirror.fake.inject(f"/v2/files/{file_id}/url", status=503, delay=120)
    clock = ClosingWindow()
    mirror.fake.on_request = link_asked(file_id, lambda: close_after(clock, 1.0))
    settings = synced_closing_window(mirror, clock)
    assert not [r for r in mirror.fake.requests if r.host == "node"], "no link came"

    mirror.fake.heal()
    synced_next_window(settings)
    assert_whole(mirror, "big.bin", file_id)


@pytest.mark.parametrize("size", [100_000, 2 * 1024 * 1024])  # one request; in chunks
def test_a_window_closing_while_a_download_s_proxy_is_silent_stops_the_run_soon_after(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    # The node is reached through an HTTP proxy (the API is not: no_proxy), which takes
    # the connection and never answers: the GET goes through requests' proxy pools, and
    # would wait out its read timeout (30 s here) past the window's end.
    file_id = mirror.fake.add_file("big.bin", size=size)
    mirror.write_config(
        schedule={"windows": [WINDOW]},
        download={"connections": 1, "read_timeout_seconds": 30, "max_outage_seconds": 300},
    )
    node_port = mirror.fake.node_url.rsplit(":", 1)[1]
    mirror.fake.node_base_url = f"http://localhost:{node_port}"  # proxied: not 127.0.0.1
    with SilentServer() as proxy:
        for name in ("NO_PROXY", "HTTP_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        monkeypatch.setenv("http_proxy", proxy.url)
        clock = ClosingWindow()
        closing = threading.Thread(target=close_once_reached, args=(proxy, clock), daemon=True)
        closing.start()
        settings = synced_closing_window(mirror, clock)
        assert not [r for r in mirror.fake.requests if r.host == "node"], "the proxy was silent"
    monkeypatch.delenv("http_proxy")
    mirror.fake.node_base_url = None
    synced_next_window(settings)
    assert_whole(mirror, "big.bin", file_id)


def close_once_reached(proxy: SilentServer, clock: ClosingWindow) -> None:
    """Close the window a second after the proxy took its first connection."""
    if proxy.reached.wait(30):
        close_after(clock, 1.0)


#: grooming that waits for the window (``groom_outside_window: false``): what each kind
#: asks of put.io, and how to have one planned
GROOMING = {
    "cancel": "/v2/transfers/cancel",
    "clean": "/v2/transfers/clean",
    "delete": "/v2/files/delete",
}


def groomed_in_the_window(mirror: Mirror, kind: str) -> Callable[[], bool]:
    """Given a kind of grooming, set up put.io and the config so that a sync does it
    inside the window (and only there); return whether put.io has it done."""
    options: dict[str, Any] = {"manage_foreign": True}
    if kind == "delete":
        file_id = mirror.fake.add_file("movie.mkv", size=100_000)
        mirror.write_config(
            putio={"timeout_seconds": 10},
            schedule={"windows": [WINDOW], "groom_outside_window": False},
            download={"delete_remote_after": True},
        )
        return lambda: all(item["id"] != file_id for item in mirror.fake.files())
    status = "SEEDING" if kind == "cancel" else "COMPLETED"
    mirror.fake.add_transfer("Foreign", status=status, hash="f" * 40)
    mirror.write_config(
        putio={"timeout_seconds": 10},
        schedule={"windows": [WINDOW], "groom_outside_window": False},
        transfers=options,
    )
    return lambda: mirror.fake.transfers() == []


@pytest.mark.parametrize("kind", sorted(GROOMING))
def test_a_window_closing_while_put_io_sits_on_grooming_that_waits_for_it_stops_the_run(
    mirror: Mirror, kind: str
) -> None:
    # Grooming only inside the windows (groom_outside_window: false): put.io takes the
    # request to cancel, clean or delete and never answers. The wait would last the API's
    # timeout (10 s here) past the window's end, and the call would then be tried again
    # outside it. It ends with the window, as a download's link does: no failure, nothing
    # tried again; the next window does it.
    done = groomed_in_the_window(mirror, kind)
    path = GROOMING[kind]
    mirror.fake.inject(path, status=503, delay=120)
    clock = ClosingWindow()

    def hook(request: LoggedRequest) -> None:
        if request.host == "api" and request.path == path:
            close_after(clock, 1.0)

    mirror.fake.on_request = hook
    outcome, settings = ended_soon_after_closing(mirror, clock, f"put.io was asked to {kind}")
    assert outcome.exit_code == ExitCode.WINDOW_CLOSED
    assert outcome.report is not None and outcome.report.failed == []
    assert api_calls(mirror.fake, path) == 1, "not tried again outside the window"
    assert not done()

    mirror.fake.heal()
    synced_next_window(settings)
    assert done()
