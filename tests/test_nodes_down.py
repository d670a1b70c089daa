"""put.io's download nodes down for every file, its API up: the run stops, and no file is
counted as failing, so none waits for its next try once the nodes are back. One file
whose node fails while the others stream still fails alone (test_lifecycle has it with
one download at a time); so do broken files that are all the run has in flight, once the
files after them stream (they must not stop every run before the rest).

Real time: ``max_outage_seconds`` is one second.
"""

from __future__ import annotations

import threading

import pytest

from putio_mirror.fakeputio import FakePutio, LoggedRequest
from putio_mirror.journal.store import Journal
from tests.mirror_env import Mirror

FILES = 10
SIZE = 200_000


@pytest.fixture
def account(mirror: Mirror) -> list[int]:
    ids = [mirror.fake.add_file(f"f{number}.bin", size=SIZE) for number in range(FILES)]
    mirror.write_config(
        download={"max_outage_seconds": 1, "read_timeout_seconds": 0.5, "parallel_files": 3}
    )
    return ids


def add_broken(mirror: Mirror, count: int) -> list[int]:
    """Add ``count`` files b0.bin… whose node answers 503, always; return their ids."""
    broken = [mirror.fake.add_file(f"b{number}.bin", size=SIZE) for number in range(count)]
    for file_id in broken:
        mirror.fake.node_fault(file_id, status=503, times=10_000)
    return broken


def failures(mirror: Mirror) -> dict[int, int]:
    journal = Journal.open(f"sqlite:///{mirror.journal}")
    try:
        downloads = journal.facts().downloads
    finally:
        journal.close()
    return {file_id: record.failures for file_id, record in downloads.items() if record.failures}


def test_nodes_down_for_everyone_end_the_run_and_count_against_no_file(
    mirror: Mirror, account: list[int]
) -> None:
    mirror.fake.outage(3_600, hosts=["node"])
    result = mirror.run("sync")
    assert result.code == 1
    assert "download nodes" in result.err and "hint: " in result.err
    # The files in flight give up, the next ones too (which tells an outage from broken
    # files), and the downloads stop: the rest do not each wait their second. One line
    # says so, not one a file.
    told = [line for line in result.err.splitlines() if line.startswith("failed: ")]
    assert len(told) == 1 and "(6 downloads gave up in it;" in told[0], result.err
    assert failures(mirror) == {}, "an outage is nobody's fault"
    mirror.fake.outage(0)
    again = mirror.run("sync")
    assert again.code == 0, again.err
    assert "next try after" not in again.err
    assert sorted(mirror.local_files()) == [f"f{number}.bin" for number in range(FILES)]


@pytest.mark.parametrize("broken", [1, 2])
def test_files_whose_node_fails_while_the_others_stream_fail_alone(
    mirror: Mirror, account: list[int], fake_putio: FakePutio, broken: int
) -> None:
    fake_putio.node_bytes_per_second = SIZE  # each of the others streams for a second
    for file_id in account[:broken]:
        mirror.fake.node_fault(file_id, status=503, times=10_000)
    result = mirror.run("sync")
    assert result.code == 1 and "f0.bin" in result.err
    assert failures(mirror) == dict.fromkeys(account[:broken], 1)
    expected = [f"f{number}.bin" for number in range(broken, FILES)]
    assert sorted(mirror.local_files()) == expected


def test_put_io_wholly_unreachable_mid_run_is_told_as_such_not_as_nodes_down(
    mirror: Mirror, account: list[int]
) -> None:
    started = threading.Event()

    def outage_at_first_node_request(request: LoggedRequest) -> None:
        if request.host == "node" and not started.is_set():
            started.set()
            mirror.fake.outage(3_600)  # the API too: the fetches' last tries ask it for URLs

    mirror.fake.on_request = outage_at_first_node_request
    try:
        result = mirror.run("sync")
    finally:
        mirror.fake.on_request = None
    assert result.code == 1
    assert "got no data" in result.err and "download nodes" not in result.err
    assert failures(mirror) == {}


def test_files_whose_node_fails_first_and_alone_do_not_stall_the_rest(
    mirror: Mirror, account: list[int]
) -> None:
    # As many broken files as downloads at once, first in the queue: nothing streams
    # beside them, so they look like put.io's nodes down. Every run stopping at them
    # would never reach the files behind them.
    for file_id in account[:3]:
        mirror.fake.node_fault(file_id, status=503, times=10_000)
    result = mirror.run("sync")
    assert result.code == 1 and "nodes sent no data to any" not in result.err, result.err
    expected = [f"f{number}.bin" for number in range(3, FILES)]
    assert sorted(mirror.local_files()) == expected
    assert failures(mirror) == dict.fromkeys(account[:3], 1)  # they wait, as any broken file
    again = mirror.run("sync")
    assert "f0.bin: failed 1 time(s)" in again.out and "next try after" in again.out


def test_nodes_down_stop_downloads_only_verified_items_are_placed_all_the_same(
    mirror: Mirror, account: list[int]
) -> None:
    # An item whose files were verified before the nodes went silent waits only for its
    # placement, a local step: the run stopping its downloads must not keep it from the
    # download folder (nor, run after run, broken files that are all that is left).
    show = mirror.fake.add_folder("A Show")
    episodes = [mirror.fake.add_file(f"e{number}.mkv", show, size=1000) for number in range(2)]
    for file_id in account:
        mirror.fake.node_fault(file_id, status=503, times=10_000)
    served: set[str] = set()

    def silence_the_nodes_once_both_episodes_are_served(logged: LoggedRequest) -> None:
        served.add(logged.path)
        if {f"/download/{file_id}" for file_id in episodes} <= served:
            mirror.fake.outage(3_600, hosts=["node"])

    mirror.fake.on_request = silence_the_nodes_once_both_episodes_are_served
    result = mirror.run("sync")
    mirror.fake.on_request = None
    assert result.code == 1 and "nodes sent no data to any" in result.err, result.err
    assert sorted(mirror.local_files()) == ["A Show/e0.mkv", "A Show/e1.mkv"]


def test_broken_files_that_are_all_a_run_has_left_fail_as_any_broken_file(
    mirror: Mirror, account: list[int]
) -> None:
    # The steady state after the good files came: each run has only the broken ones in
    # flight, nothing streams beside them and nothing starts after them. Forgetting them
    # as an outage would try them every run, a whole max_outage each, never waiting and
    # never told as failing. The nodes answer for the files already mirrored.
    assert mirror.run("sync").code == 0
    broken = add_broken(mirror, 3)
    result = mirror.run("sync")
    assert result.code == 1 and "nodes sent no data to any" not in result.err, result.err
    assert failures(mirror) == dict.fromkeys(broken, 1)
    again = mirror.run("sync")
    assert "b0.bin: failed 1 time(s)" in again.out and "next try after" in again.out


def test_an_outage_met_by_the_last_files_of_a_run_counts_against_none(
    mirror: Mirror, account: list[int]
) -> None:
    # The same run's end, the nodes down for everyone: the files mirrored before (asked
    # for their first byte) get no byte either, so the outage is nobody's fault.
    assert mirror.run("sync").code == 0
    added = [mirror.fake.add_file(f"b{number}.bin", size=SIZE) for number in range(3)]
    mirror.fake.outage(3_600, hosts=["node"])
    mirror.fake.clear_requests()
    result = mirror.run("sync")
    assert result.code == 1, result.err
    assert failures(mirror) == {}, "an outage is nobody's fault"
    # a silent witness is a second file silent: told as the outage it is, not as files
    # that might be broken
    assert "nodes sent no data to any" in result.err, result.err
    assert "if put.io's download nodes are down" not in result.err, result.err
    links = {r.path for r in mirror.fake.requests if r.path.endswith("/url")}
    assert links - {f"/v2/files/{file_id}/url" for file_id in added}, "a witness was asked"
    mirror.fake.outage(0)
    assert mirror.run("sync").code == 0
    assert {f"b{number}.bin" for number in range(len(added))} <= set(mirror.local_files())


def test_nodes_down_one_download_at_a_time_end_the_run_and_count_against_no_file(
    mirror: Mirror, account: list[int]
) -> None:
    # parallel_files: 1 has one fetch in flight, never another to compare with: the
    # first that gives up silent is a suspect, the next proves the outage. Counted
    # alone, an outage failed every file in turn, each after a whole max_outage.
    mirror.write_config(
        download={"max_outage_seconds": 1, "read_timeout_seconds": 0.5, "parallel_files": 1}
    )
    mirror.fake.outage(3_600, hosts=["node"])
    result = mirror.run("sync")
    assert result.code == 1
    told = [line for line in result.err.splitlines() if line.startswith("failed: ")]
    assert len(told) == 1 and "(2 downloads gave up in it;" in told[0], result.err
    assert failures(mirror) == {}, "an outage is nobody's fault"


def test_more_broken_files_than_downloads_at_once_stall_no_run_where_a_witness_answers(
    mirror: Mirror, account: list[int]
) -> None:
    # Six broken files (a damaged season pack) ahead of good ones, three at once: without
    # a witness the second three, silent too, "proved" an outage and every run stopped
    # there, the good files never reached. The files mirrored before answer: broken.
    assert mirror.run("sync").code == 0
    broken = add_broken(mirror, 6)
    good = [f"c{number}.bin" for number in range(5)]
    for name in good:
        mirror.fake.add_file(name, size=SIZE)
    result = mirror.run("sync")
    assert result.code == 1 and "nodes sent no data to any" not in result.err, result.err
    assert set(good) <= set(mirror.local_files())
    assert failures(mirror) == dict.fromkeys(broken, 1)
    # six lines, one hint: what a person reads at 7 a.m.
    told = [line for line in result.err.splitlines() if line.startswith("failed: b")]
    assert len(told) == 6 and result.err.count("  hint: ") == 1, result.err


def test_a_witness_deleted_on_put_io_mid_run_hands_over_to_the_next(
    mirror: Mirror, account: list[int]
) -> None:
    # The first file the run would ask is deleted on put.io after the listing: its link
    # call fails, which tells nothing of the nodes; the next file mirrored before answers.
    assert mirror.run("sync").code == 0
    broken = add_broken(mirror, 3)
    gone = threading.Event()

    def delete_the_first_witness(logged: LoggedRequest) -> None:
        if logged.path.startswith("/download/") and not gone.is_set():
            gone.set()
            mirror.fake.delete_file(account[0])

    mirror.fake.on_request = delete_the_first_witness
    mirror.fake.clear_requests()
    result = mirror.run("sync")
    mirror.fake.on_request = None
    assert result.code == 1 and "nodes sent no data to any" not in result.err, result.err
    assert failures(mirror) == dict.fromkeys(broken, 1)
    asked = [r.path for r in mirror.fake.requests if r.path.endswith("/url")]
    assert f"/v2/files/{account[0]}/url" in asked and f"/v2/files/{account[1]}/url" in asked


def test_a_broken_file_of_a_first_run_is_counted_by_the_files_that_run_fetched(
    mirror: Mirror, account: list[int]
) -> None:
    # A new account: nothing was mirrored before, and the good files are done long before
    # the broken one gives up. They are witnesses all the same: the nodes sent them.
    broken = mirror.fake.add_file("broken.bin", size=SIZE)
    mirror.fake.node_fault(broken, status=503, times=10_000)
    result = mirror.run("sync")
    assert result.code == 1 and "nodes sent no data to any" not in result.err, result.err
    assert failures(mirror) == {broken: 1}
    assert len(mirror.local_files()) == FILES
