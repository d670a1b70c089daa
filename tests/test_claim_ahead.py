"""Downloads side by side draw from a queue that claims a few files per transaction:
what was claimed ahead and never started is withdrawn, a slow file holds no other, and
the verified files' ends are journaled in groups yet never before their bytes are durable."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import datetime

from putio_mirror.app.claimahead import LOW_WATER, MOST_FILES, ClaimAhead, Claimed
from putio_mirror.app.run import Request, Runtime, run_once
from putio_mirror.config.settings import load_settings
from putio_mirror.core.errors import ExitCode
from putio_mirror.core.plan import Download
from putio_mirror.fakeputio.fake import LoggedRequest
from putio_mirror.journal.store import Journal
from tests.mirror_env import Mirror
from tests.test_journal import sqlite_url

INSIDE, AFTER = datetime(2026, 11, 27, 5, 0), datetime(2026, 11, 27, 6, 0)


def test_files_claimed_ahead_that_never_started_leave_no_claim_and_no_row(mirror: Mirror) -> None:
    ids = [mirror.fake.add_file(f"sub{n:02}.srt", size=1_000 + n) for n in range(40)]
    mirror.write_config(schedule={"windows": ["00:05-05:55"]}, download={"parallel_files": 4})
    fetched: list[str] = []
    mirror.fake.on_request = lambda r: fetched.append(r.path) if r.host == "node" else None
    # The window closes once six files were asked of the node: most were claimed ahead.
    closing = lambda: (INSIDE if len(fetched) < 6 else AFTER).astimezone()  # noqa: E731
    settings = load_settings(mirror.config, {})
    first = run_once(Runtime(settings, clock=closing), Request("sync"))
    assert first.exit_code == ExitCode.WINDOW_CLOSED
    url = sqlite_url(mirror.journal)
    with Journal.open(url) as journal:
        assert journal.claims() == {}
        run_id = journal.recent_runs(1)[0].id
        statuses = [action.status for action in journal.actions_of(run_id)]
    assert "started" not in statuses and 6 <= len(statuses) < 40
    assert first.report is not None and first.report.deferred == 40 - len(statuses)

    night = lambda: INSIDE.astimezone()  # noqa: E731
    assert run_once(Runtime(settings, clock=night), Request("sync")).exit_code == ExitCode.OK
    local = mirror.local_files()
    assert all(local[f"sub{n:02}.srt"] == mirror.fake.file_content(i) for n, i in enumerate(ids))
    with Journal.open(url) as journal:
        again = journal.actions_of(journal.recent_runs(1)[0].id)
    # A file claimed ahead in the first run and withdrawn is on its first attempt now.
    assert len(again) == 40 - statuses.count("done")
    assert sum(action.attempts == 1 for action in again) >= 40 - len(statuses)


def test_a_file_whose_node_stalls_holds_up_none_of_the_files_claimed_with_it(
    mirror: Mirror,
) -> None:
    ids = [mirror.fake.add_file(f"sub{n:02}.srt", size=1_000 + n) for n in range(12)]
    mirror.write_config(download={"parallel_files": 2})
    release = threading.Event()
    others_done = threading.Event()
    node_paths: list[str] = []

    def hold(request: LoggedRequest) -> None:
        if request.host != "node":
            return
        node_paths.append(request.path)
        if request.path.startswith(f"/download/{ids[0]}"):
            release.wait(timeout=20)  # the first file stalls until every other one came
        elif len(node_paths) == len(ids):
            others_done.set()
            release.set()

    mirror.fake.on_request = hold
    assert mirror.run("files", "download").code == 0
    assert others_done.is_set(), "the other eleven files waited for the stalled one"


def downloads(count: int, size: int = 1000) -> list[Download]:
    return [Download(file_id=n, relative_path=f"f{n}", size=size, crc32=None) for n in range(count)]


def test_the_queue_claims_several_files_per_transaction_and_withdraws_the_rest_on_close() -> None:
    takes: list[list[int]] = []
    withdrawn: list[int] = []

    def take(few: list[Download]) -> list[Claimed]:
        takes.append([d.file_id for d in few])
        return [(d, 100 + d.file_id) for d in few if d.file_id != 1]  # 1: held elsewhere

    queue = ClaimAhead(
        downloads(40),
        take=take,
        may_start=lambda d: True,
        withdraw=lambda claimed: withdrawn.extend(i for _, i in claimed),
    )
    handed = [queue.next() for _ in range(3)]
    assert [c[1] for c in handed if c] == [100, 102, 103]
    assert takes == [list(range(MOST_FILES))]
    left = queue.close()
    assert withdrawn == [100 + n for n in range(4, MOST_FILES)]
    assert [d.file_id for d in left] == list(range(4, 40))
    assert queue.next() is None


def test_the_next_small_files_are_claimed_while_the_others_go_on_taking_claimed_ones() -> None:
    takes: list[list[int]] = []
    second_claim_began, second_claim_may_end = threading.Event(), threading.Event()

    def take(few: list[Download]) -> list[Claimed]:
        takes.append([d.file_id for d in few])
        if len(takes) == 2:
            second_claim_began.set()
            assert second_claim_may_end.wait(timeout=10)
        return [(d, d.file_id) for d in few]

    total = 2 * MOST_FILES + 8
    queue = ClaimAhead(
        downloads(total), take=take, may_start=lambda d: True, withdraw=lambda claimed: None
    )
    handed = [queue.next() for _ in range(MOST_FILES - LOW_WATER)]
    assert len(takes) == 1  # plenty left: nothing claimed ahead yet
    claimer = threading.Thread(target=lambda: handed.append(queue.next()))
    claimer.start()  # hands out one more and claims the next few first, slowly
    assert second_claim_began.wait(timeout=10)
    # meanwhile the files claimed before are handed out, none waits for that claim
    handed += [queue.next() for _ in range(LOW_WATER - 1)]
    second_claim_may_end.set()
    claimer.join(timeout=10)
    handed += [queue.next() for _ in range(total - MOST_FILES)]
    assert sorted(c[1] for c in handed if c) == list(range(total))
    assert queue.next() is None and queue.close() == []
    second = list(range(MOST_FILES, 2 * MOST_FILES))
    assert takes == [list(range(MOST_FILES)), second, list(range(2 * MOST_FILES, total))]


def test_the_queue_claims_large_files_one_at_a_time_and_stops_when_one_may_not_start() -> None:
    takes: list[int] = []
    allowed = {0, 1}

    def take(few: list[Download]) -> list[Claimed]:
        takes.append(len(few))
        return [(d, d.file_id) for d in few]

    queue = ClaimAhead(
        downloads(5, size=1 << 30),
        take=take,
        may_start=lambda d: d.file_id in allowed,
        withdraw=lambda claimed: None,
    )
    assert [queue.next(), queue.next(), queue.next()][2] is None
    allowed.add(2)  # once stopped, it stays stopped
    assert queue.next() is None and takes == [1, 1]


def test_files_verified_before_a_worker_stalls_are_journaled_while_it_stalls(
    mirror: Mirror,
) -> None:
    """A worker journals its verified files' ends a few at a time; one then held up by a
    stalled node for minutes must not keep the files it verified before from the journal
    (a kill -9 meanwhile would make the next run check them all again)."""
    ids = [mirror.fake.add_file(f"sub{n:02}.srt", size=1_000 + n) for n in range(12)]
    stalled, others = ids[5], [file_id for file_id in ids if file_id != ids[5]]
    mirror.write_config(download={"parallel_files": 2})
    release, all_journaled = threading.Event(), threading.Event()

    def watch_journal() -> None:
        with Journal.open(sqlite_url(mirror.journal)) as journal:
            while not release.wait(0.05):
                if all(journal.is_verified(file_id) for file_id in others):
                    all_journaled.set()
                    release.set()

    def hold(request: LoggedRequest) -> None:
        if request.host == "node" and request.path.startswith(f"/download/{stalled}"):
            threading.Thread(target=watch_journal, daemon=True).start()
            release.wait(timeout=15)  # stalls until the other eleven are journaled verified

    mirror.fake.on_request = hold
    assert mirror.run("files", "download").code == 0
    release.set()
    assert all_journaled.is_set(), "files verified before the stall waited for it"


def test_a_kill_9_while_files_are_claimed_ahead_strands_nothing_and_the_next_run_ends_them(
    mirror: Mirror,
) -> None:
    """Killed with files claimed ahead, some verified and not yet journaled, and one held
    up by a stalled node: the next run by this host takes the claims back, journals or
    fetches every file, and leaves no claim and no action ``started``."""
    ids = [mirror.fake.add_file(f"sub{n:02}.srt", size=1_000 + n) for n in range(40)]
    mirror.fake.node_fault(ids[3], stall_after=100, times=1)  # keeps the batch under way
    mirror.write_config(download={"parallel_files": 4})
    asked: list[str] = []
    mirror.fake.on_request = lambda r: asked.append(r.path) if r.host == "node" else None
    process = mirror.spawn("files", "download")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(asked) < 12:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=10)
    assert 12 <= len(asked) < 40, "killed mid-batch"
    with Journal.open(sqlite_url(mirror.journal)) as journal:
        assert len(journal.claims()) > 1  # files claimed ahead, held by the dead process

    assert mirror.run("files", "download").code == 0
    local = mirror.local_files()
    assert all(local[f"sub{n:02}.srt"] == mirror.fake.file_content(i) for n, i in enumerate(ids))
    with Journal.open(sqlite_url(mirror.journal)) as journal:
        assert journal.claims() == {}
        statuses = {
            action.status for run in journal.recent_runs(5) for action in journal.actions_of(run.id)
        }
        assert all(journal.is_verified(file_id) for file_id in ids)
    assert "started" not in statuses
