"""put.io's download nodes down for every file, its API up: the run stops, and no file is
counted as failing, so none waits for its next try once the nodes are back. One file
whose node fails while the others stream still fails alone (test_lifecycle has it with
one download at a time).

Real time: ``max_outage_seconds`` is one second.
"""

from __future__ import annotations

import threading

import pytest

from putio_mirror.fakeputio import FakePutio, LoggedRequest
from putio_mirror.journal.store import Journal
from tests.mirror_env import Mirror

FILES = 6
SIZE = 200_000


@pytest.fixture
def account(mirror: Mirror) -> list[int]:
    ids = [mirror.fake.add_file(f"f{number}.bin", size=SIZE) for number in range(FILES)]
    mirror.write_config(
        download={"max_outage_seconds": 1, "read_timeout_seconds": 0.5, "parallel_files": 3}
    )
    return ids


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
    # The first files to give up stop the run: the rest do not each wait their second.
    tried = {r.path for r in mirror.fake.requests if r.host == "node"}
    assert len(tried) <= 3, tried
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
