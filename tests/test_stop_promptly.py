"""A run told to stop (SIGTERM from systemd, Ctrl-C) ends promptly whatever it waits for at
that moment: put.io's API retried, a node's pause between requests; the real CLI in a
process of its own, against the fake put.io, stopped by a real signal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from putio_mirror.core.errors import ExitCode
from putio_mirror.fakeputio.fake import LoggedRequest
from tests.mirror_env import Mirror, assert_whole
from tests.silent import SilentServer

#: how long after SIGTERM a run may take to end (its journal written, its part synced)
PROMPT = 3.0


def armed(mirror: Mirror, wanted: Callable[[LoggedRequest], bool], count: int) -> threading.Event:
    """Return an event set once the fake has answered ``count`` requests ``wanted``."""
    event, seen, lock = threading.Event(), [0], threading.Lock()

    def hook(request: LoggedRequest) -> None:
        if wanted(request):
            with lock:
                seen[0] += 1
                if seen[0] >= count:
                    event.set()

    mirror.fake.on_request = hook
    return event


def stopped(process: subprocess.Popen[bytes]) -> tuple[float, int, str]:
    """Send SIGTERM; return how long the process took to end, its code and its stderr."""
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=150)
    took = time.monotonic() - sent
    assert process.stderr is not None
    return took, code, process.stderr.read().decode()


def sigterm_a_second_after(
    mirror: Mirror, command: str, reached: threading.Event, within: float = 30
) -> tuple[float, int, str]:
    """Run ``command`` in its own process; once ``reached`` is set (the fake answered what
    the test waits on, within ``within`` seconds) and a second later, well into that
    wait, send SIGTERM; return as ``stopped`` does."""
    with mirror.spawned(command) as process:
        assert reached.wait(within)
        time.sleep(1.0)
        return stopped(process)


def listing(request: LoggedRequest) -> bool:
    return request.host == "api" and request.path.startswith("/v2/files/list")


def test_sigterm_while_put_io_s_listing_is_retried_ends_the_sync_at_once(mirror: Mirror) -> None:
    # put.io answers 503 for a while: the client waits 0.5-1 s, 1-2, 2-4, 4-8 ... (up to a
    # minute) between tries. systemd's SIGTERM in a pause must not wait for the next try.
    mirror.fake.add_file("movie.mkv", size=100_000)
    mirror.fake.inject("/v2/files/list*", status=503, times=100)
    asked = armed(mirror, listing, 4)
    # into the fourth pause (4-8 s)
    took, code, err = sigterm_a_second_after(mirror, "sync", asked)
    assert took < PROMPT, f"the sync ended {took:.1f} s after SIGTERM"
    assert code == ExitCode.INTERRUPTED, err
    history = mirror.run("history")
    assert "130" in history.out or "interrupted" in history.out.lower(), history.out


def test_sigterm_while_the_watcher_s_sync_retries_put_io_ends_the_watcher_at_once(
    mirror: Mirror,
) -> None:
    mirror.fake.add_file("movie.mkv", size=100_000)
    mirror.fake.inject("/v2/files/list*", status=503, times=100)
    asked = armed(mirror, listing, 4)
    took, code, err = sigterm_a_second_after(mirror, "watch", asked)
    assert took < PROMPT, f"the watcher ended {took:.1f} s after SIGTERM"
    assert code == ExitCode.OK, err


def test_sigterm_while_a_download_waits_to_retry_ends_the_sync_and_resumes_next_run(
    mirror: Mirror,
) -> None:
    # The lone download runs in the main thread: the signal's handler only sets a flag,
    # and a sleep goes on after it; the pause (8-16 s here) must be cut short.
    file_id = mirror.fake.add_file("movie.mkv", size=2 * 1024 * 1024)
    mirror.write_config(download={"connections": 1, "max_outage_seconds": 300})
    mirror.fake.node_fault(file_id, status=503, times=5)  # then the node heals
    asked = armed(mirror, lambda request: request.host == "node", 5)
    # into the fifth pause
    took, code, err = sigterm_a_second_after(mirror, "sync", asked, within=60)
    assert took < PROMPT, f"the sync ended {took:.1f} s after SIGTERM"
    assert code == ExitCode.INTERRUPTED, err
    assert not (mirror.downloads / "movie.mkv").exists()
    mirror.fake.on_request = None
    assert mirror.run("sync").code == ExitCode.OK
    assert_whole(mirror, "movie.mkv", file_id)


def node(request: LoggedRequest) -> bool:
    return request.host == "node"


@pytest.mark.parametrize(("connections", "redirected"), [(1, False), (4, False), (4, True)])
def test_sigterm_while_downloads_sit_on_a_silent_node_ends_the_sync_promptly(
    mirror: Mirror, connections: int, redirected: bool
) -> None:
    # The node sends a little of each segment, then nothing, its connections left open.
    # A signal interrupts only the main thread's read, and Python takes that read up
    # again after the handler: without more, the sync waits out the read timeout (30 s).
    # ``redirected``: the node redirects each segment's request, asked by hand, through
    # the pool, then by requests, which follows it, and stalls then: requests reads it.
    file_id = mirror.fake.add_file("movie.mkv", size=64 * 1024 * 1024)
    mirror.write_config(
        download={
            "connections": connections,
            "read_timeout_seconds": 30,
            "max_outage_seconds": 300,
        }
    )
    mirror.fake.stall_release_seconds = 120
    if redirected:
        mirror.fake.node_fault(file_id, redirect=True, times=3 * connections)
    mirror.fake.node_fault(file_id, stall_after=100_000, times=connections)
    asked = armed(mirror, node, connections * (4 if redirected else 1))
    # every read sits on the silence
    took, code, err = sigterm_a_second_after(mirror, "sync", asked)
    assert took < PROMPT, f"the sync ended {took:.1f} s after SIGTERM"
    assert code == ExitCode.INTERRUPTED, err
    mirror.fake.on_request = None
    assert mirror.run("sync").code == ExitCode.OK
    assert_whole(mirror, "movie.mkv", file_id)


def test_sigterm_while_a_download_connects_to_a_node_that_never_answers_ends_the_sync_promptly(
    mirror: Mirror,
) -> None:
    # The node's address drops every SYN (a blackholed IP): the connect would wait out its
    # connect timeout (10 s) after the signal.
    file_id = mirror.fake.add_file("movie.mkv", size=2 * 1024 * 1024)
    mirror.write_config(download={"connections": 1, "max_outage_seconds": 300})
    mirror.fake.node_unanswering(file_id)
    link = f"/v2/files/{file_id}/url"
    asked = armed(mirror, lambda request: request.host == "api" and request.path == link, 1)
    # the connect waits
    took, code, err = sigterm_a_second_after(mirror, "sync", asked)
    assert took < PROMPT, f"the sync ended {took:.1f} s after SIGTERM"
    assert code == ExitCode.INTERRUPTED, err
    mirror.fake.on_request = None
    mirror.fake.node_unanswering(file_id, False)
    assert mirror.run("sync").code == ExitCode.OK
    assert_whole(mirror, "movie.mkv", file_id)


def test_sigterm_while_a_hook_runs_at_the_end_of_a_sync_ends_it_promptly(
    mirror: Mirror, tmp_path: Path
) -> None:
    # The hook's timeout is 300 s and the run waits for its events to be handed on; a
    # supervisor's SIGTERM must not wait that long: the hook is stopped, what was not
    # told is said in the log.
    mirror.fake.add_file("one.mkv", size=10_000)
    mirror.fake.add_file("two.mkv", size=10_000)
    pids = tmp_path / "hook-pids"
    hook = ["sh", "-c", f'echo $$ >> "{pids}"; exec sleep 60']
    mirror.write_config(
        download={"parallel_files": 1}, hooks={"on_item_placed": hook, "timeout_seconds": 300}
    )
    with mirror.spawned("sync") as process:
        deadline = time.monotonic() + 30
        while not (pids.exists() and pids.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the hook sleeps; the run waits at its end
        took, code, err = stopped(process)
    assert took < PROMPT, f"the sync ended {took:.1f} s after SIGTERM"
    assert code in (ExitCode.OK, ExitCode.INTERRUPTED), err
    assert "not told" in err, err
    for pid in pids.read_text().split():
        assert not _alive(int(pid)), "the hook was left running"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


#: an API's answer held back this long: put.io took the request and went silent (the API's
#: timeout is 30 s in these tests, as it is by default)
SILENT = 120.0


def api_path(path: str) -> Callable[[LoggedRequest], bool]:
    return lambda request: request.host == "api" and request.path == path


def test_sigterm_while_put_io_sits_on_a_download_s_link_ends_the_sync_promptly(
    mirror: Mirror,
) -> None:
    # put.io takes the request for the file's link and never answers. The link is asked
    # for ahead, on a thread of its own, the download waiting for it: a signal ends
    # neither wait, and the API's timeout would hold the stop for half a minute.
    file_id = mirror.fake.add_file("movie.mkv", size=2 * 1024 * 1024)
    mirror.write_config(
        putio={"timeout_seconds": 30}, download={"connections": 1, "max_outage_seconds": 300}
    )
    link = f"/v2/files/{file_id}/url"
    mirror.fake.inject(link, status=503, delay=SILENT)
    asked = armed(mirror, api_path(link), 1)
    # the link is waited for
    took, code, err = sigterm_a_second_after(mirror, "sync", asked)
    assert took < PROMPT, f"the sync ended {took:.1f} s after SIGTERM"
    assert code == ExitCode.INTERRUPTED, err
    assert json.loads(mirror.run("status", "--json").out)["failing"] == [], "a stop is no failure"
    mirror.fake.on_request = None
    mirror.fake.heal()
    assert mirror.run("sync").code == ExitCode.OK
    assert_whole(mirror, "movie.mkv", file_id)


def test_sigterm_while_put_io_sits_on_deleting_a_placed_file_ends_the_sync_promptly(
    mirror: Mirror,
) -> None:
    # delete_remote_after: the file is placed, then put.io is asked to delete it and
    # never answers. The stop must not wait for the API's timeout; what was placed stays
    # journaled (the next run downloads nothing) and the deletion is asked again then.
    mirror.fake.add_file("movie.mkv", size=100_000)
    mirror.write_config(putio={"timeout_seconds": 30}, download={"delete_remote_after": True})
    mirror.fake.inject("/v2/files/delete", status=503, delay=SILENT)
    asked = armed(mirror, api_path("/v2/files/delete"), 1)
    # the deletion is waited for
    took, code, err = sigterm_a_second_after(mirror, "sync", asked)
    assert took < PROMPT, f"the sync ended {took:.1f} s after SIGTERM"
    assert code == ExitCode.INTERRUPTED, err
    assert (mirror.downloads / "movie.mkv").stat().st_size == 100_000
    assert len(mirror.fake.files()) == 1, "put.io never did the deletion"
    mirror.fake.on_request = None
    mirror.fake.heal()
    mirror.fake.clear_requests()
    assert mirror.run("sync").code == ExitCode.OK
    assert not [r for r in mirror.fake.requests if r.host == "node"], "placed, and journaled"
    assert mirror.fake.files() == []
    assert (mirror.downloads / "movie.mkv").stat().st_size == 100_000


def test_sigterm_while_put_io_sits_on_cleaning_transfers_ends_the_sync_promptly(
    mirror: Mirror,
) -> None:
    mirror.fake.add_transfer("Old", status="COMPLETED")
    mirror.write_config(putio={"timeout_seconds": 30}, transfers={"manage_foreign": True})
    mirror.fake.inject("/v2/transfers/clean", status=503, delay=SILENT)
    asked = armed(mirror, api_path("/v2/transfers/clean"), 1)
    took, code, err = sigterm_a_second_after(mirror, "sync", asked)
    assert took < PROMPT, f"the sync ended {took:.1f} s after SIGTERM"
    assert code == ExitCode.INTERRUPTED, err


def test_sigterm_while_put_io_sits_on_a_listing_ends_the_sync_promptly(mirror: Mirror) -> None:
    mirror.fake.add_file("movie.mkv", size=100_000)
    mirror.write_config(putio={"timeout_seconds": 30})
    mirror.fake.inject("/v2/files/list", status=503, delay=SILENT)
    asked = armed(mirror, listing, 1)
    took, code, err = sigterm_a_second_after(mirror, "sync", asked)
    assert took < PROMPT, f"the sync ended {took:.1f} s after SIGTERM"
    assert code == ExitCode.INTERRUPTED, err


def test_sigterm_while_put_io_s_proxy_is_silent_ends_the_sync_promptly(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every request goes through an HTTP proxy (the environment's), which takes the
    # connection and never answers: requests' proxy pools, not the session's own.
    mirror.fake.add_file("movie.mkv", size=100_000)
    mirror.write_config(putio={"timeout_seconds": 30})
    with SilentServer() as proxy:
        for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("http_proxy", proxy.url)
        # put.io's listings are waited for
        took, code, err = sigterm_a_second_after(mirror, "sync", proxy.reached)
    assert took < PROMPT, f"the sync ended {took:.1f} s after SIGTERM"
    assert code == ExitCode.INTERRUPTED, err
    assert mirror.fake.requests == []
