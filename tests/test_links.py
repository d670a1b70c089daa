"""Download links asked for ahead: the next files' links come while the current ones
download, each serves its file's first request only, and only while fresh."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from putio_mirror.app.links import MAX_AGE_SECONDS, LinkPrefetcher
from putio_mirror.core.errors import AuthError
from putio_mirror.fakeputio.fake import LoggedRequest
from tests.mirror_env import Mirror


class Asker:
    """put.io's files/{id}/url, counted; a link names its file and how often it was asked."""

    def __init__(self, failing: frozenset[int] = frozenset()) -> None:
        self.asked: list[int] = []
        self.failing = failing
        self.lock = threading.Lock()

    def __call__(self, file_id: int) -> str:
        with self.lock:
            self.asked.append(file_id)
            count = self.asked.count(file_id)
        if file_id in self.failing and count == 1:
            raise ConnectionError("put.io is away")
        return f"http://node/{file_id}?n={count}"


def test_the_next_files_links_are_asked_for_ahead_and_used_once() -> None:
    ask = Asker()
    links = LinkPrefetcher(ask, [1, 2, 3, 4, 5], ahead=2)
    assert links.url_for(1) == "http://node/1?n=1"
    assert links.url_for(2) == "http://node/2?n=1"  # asked for while 1 was fetched
    assert links.url_for(2) == "http://node/2?n=2"  # a second request asks anew
    links._pending[4].result()  # asked ahead on another thread (close would cancel it)
    links.close()
    assert sorted(set(ask.asked)) == [1, 2, 3, 4]  # 1 and 2 ahead of 2, never all five


def test_a_stale_link_is_asked_for_again() -> None:
    now = [0.0]
    ask = Asker()
    links = LinkPrefetcher(ask, [1, 2], ahead=1, clock=lambda: now[0])
    links.url_for(1)
    links._pending[2].result()  # the link of 2 has arrived
    now[0] = MAX_AGE_SECONDS + 1
    assert links.url_for(2) == "http://node/2?n=2"
    links.close()


def test_a_link_that_failed_ahead_is_asked_for_in_the_callers_thread() -> None:
    ask = Asker(failing=frozenset({2}))
    links = LinkPrefetcher(ask, [1, 2], ahead=1)
    links.url_for(1)
    assert links.url_for(2) == "http://node/2?n=2"
    links.close()


def test_an_error_met_again_reaches_the_caller() -> None:
    def refused(file_id: int) -> str:
        raise PermissionError("token refused")

    links = LinkPrefetcher(refused, [1, 2], ahead=1)
    with pytest.raises(PermissionError):
        links.url_for(1)
    with pytest.raises(PermissionError):
        links.url_for(2)
    links.close()


def test_a_run_asks_for_the_next_link_while_a_file_downloads(mirror: Mirror) -> None:
    first = mirror.fake.add_file("a.srt", size=3000)
    second = mirror.fake.add_file("b.srt", size=3000)
    mirror.write_config(download={"parallel_files": 1})
    asked_second = threading.Event()
    waited: list[bool] = []

    def hold(request: LoggedRequest) -> None:
        if request.host == "api" and request.path.endswith(f"/files/{second}/url"):
            asked_second.set()
        elif request.host == "node" and f"/{first}/" in request.path + "/":
            # the first file's bytes wait until the second file's link is being asked for
            waited.append(asked_second.wait(10))

    mirror.fake.on_request = hold
    assert mirror.run("files", "download").code == 0
    assert waited and all(waited)
    assert set(mirror.local_files()) == {"a.srt", "b.srt"}


def test_a_file_replaced_after_its_link_was_asked_for_ahead_is_never_placed_stale(
    mirror: Mirror,
) -> None:
    first = mirror.fake.add_file("a.srt", size=3000)
    second = mirror.fake.add_file("b.srt", content=b"the first release")
    mirror.write_config(download={"parallel_files": 1})
    replaced: list[int] = []

    def replace_second(request: LoggedRequest) -> None:
        # by the time the first file's bytes are asked for, the second's link is asked for
        # ahead; then put.io swaps the second file for another of the same name
        if request.host == "node" and f"/{first}/" in request.path + "/" and not replaced:
            mirror.fake.delete_file(second)
            replaced.append(mirror.fake.add_file("b.srt", content=b"the proper release"))

    mirror.fake.on_request = replace_second
    mirror.run("files", "download")
    assert mirror.local_files().get("b.srt") in (None, b"the proper release")
    mirror.fake.on_request = None
    assert mirror.run("files", "download").code == 0
    assert mirror.local_files() == {
        "a.srt": mirror.fake.file_content(first),
        "b.srt": b"the proper release",
    }


def test_a_refused_token_is_met_once_and_never_asked_with_again() -> None:
    asked: list[int] = []
    first_done = threading.Event()

    def revoked_after_the_first(file_id: int) -> str:
        if file_id != 1:
            first_done.wait(5)  # the token is revoked once the first link was had
        asked.append(file_id)
        if file_id != 1:
            raise AuthError("put.io refused the token (HTTP 401)", "log in again")
        return f"http://node/{file_id}"

    # one worker: the links of 2, 3 and 4 are asked for ahead in that order
    links = LinkPrefetcher(revoked_after_the_first, [1, 2, 3, 4], ahead=3, workers=1)
    assert links.url_for(1) == "http://node/1"
    first_done.set()
    for file_id in (2, 3, 4):
        with pytest.raises(AuthError):
            links.url_for(file_id)
    links.close()
    assert asked == [1, 2], "one 401: the token is not tried again, ahead or in the caller"


def test_each_thread_asks_for_a_run_of_consecutive_links_one_hand_over_a_run() -> None:
    asked_by: dict[int, str] = {}
    all_asked = threading.Event()

    def ask(file_id: int) -> str:
        asked_by[file_id] = threading.current_thread().name
        if len(asked_by) == 9:
            all_asked.set()
        return f"http://node/{file_id}"

    order = list(range(1, 21))
    links = LinkPrefetcher(ask, order, ahead=8, workers=4)  # runs of two files
    assert links.url_for(1) == "http://node/1"  # its own link, asked at once
    assert all_asked.wait(timeout=10)
    assert [links.url_for(n) for n in range(2, 10)] == [f"http://node/{n}" for n in range(2, 10)]
    links.close()
    runs = [(2, 3), (4, 5), (6, 7), (8, 9)]
    assert all(asked_by[first] == asked_by[second] for first, second in runs)
    assert set(asked_by) >= set(range(1, 10))


def test_the_first_files_links_can_be_asked_for_before_any_is_needed() -> None:
    ask = Asker()
    links = LinkPrefetcher(ask, [1, 2, 3, 4, 5], ahead=2)
    links.ask_first(2)
    assert links._pending[2].result()[0] == "http://node/2?n=1"
    assert sorted(ask.asked) == [1, 2]
    assert links.url_for(1) == "http://node/1?n=1"  # the link asked for first, used once
    assert set(links._pending) == {2, 3}  # and the window moves on as before
    links.close()


def test_a_link_waited_for_when_the_prefetcher_closes_is_asked_for_by_its_taker() -> None:
    release = threading.Event()
    asked: list[int] = []

    def ask(file_id: int) -> str:
        asked.append(file_id)
        if file_id == 2:
            release.wait(10)  # the run of 2 and 3 is held at 2
        return f"http://node/{file_id}"

    links = LinkPrefetcher(ask, [1, 2, 3], ahead=2, workers=1)  # one run: 2 then 3
    assert links.url_for(1) == "http://node/1"
    got: list[str] = []
    taker = threading.Thread(target=lambda: got.append(links.url_for(3)))
    taker.start()  # takes 3's slot and waits for it
    while 3 in links._pending:  # (taken once it left the pending ones)
        threading.Event().wait(0.01)
    links.close()
    release.set()  # the run goes on, finds the prefetcher closed: 3 is not asked ahead
    taker.join(10)
    assert not taker.is_alive(), "the taker of a link never asked for must not wait forever"
    assert got == ["http://node/3"]
    assert asked.count(3) == 1  # by the taker itself


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_links_are_asked_on_as_many_threads_as_put_io_is_slow_and_no_more() -> None:
    slow = threading.Event()
    in_flight: list[int] = []

    def ask(file_id: int) -> str:
        in_flight.append(file_id)
        if file_id <= 4:
            slow.wait(10)  # put.io far away: the first four take their time
        return f"http://node/{file_id}"

    links = LinkPrefetcher(ask, list(range(1, 20)), ahead=4, workers=4)  # runs of one file
    links.ask_first(4)
    _wait_for(lambda: len(in_flight) == 4)  # four asked at once, each on a thread of its own
    assert len(links._threads) == 4
    slow.set()
    assert [links.url_for(n) for n in (1, 2, 3, 4)] == [f"http://node/{n}" for n in (1, 2, 3, 4)]
    links.close()

    quick = LinkPrefetcher(ask, list(range(5, 20)), ahead=2, workers=4)
    quick.ask_first(1)
    _wait_for(lambda: quick._free == 1)  # its thread asked, and is free
    assert quick.url_for(5) == "http://node/5"  # two runs put: the free thread takes one
    _wait_for(lambda: quick._free == 2)
    assert len(quick._threads) == 2, "a thread is started only when none is free"
    quick.close()
