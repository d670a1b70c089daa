"""`transfers retry` and `transfers dismiss`: a person's answer to a put.io transfer in ERROR,
journaled, and never applied to a transfer that is not in ERROR."""

from __future__ import annotations

import json

from putio_mirror.core.errors import ExitCode
from tests.mirror_env import Mirror


def test_retry_puts_every_transfer_in_error_back_in_put_io_s_queue(mirror: Mirror) -> None:
    first = mirror.fake.add_transfer("Broken", status="ERROR", error_message="tracker down")
    second = mirror.fake.add_transfer("Stuck", status="ERROR", error_message="no peers")
    fine = mirror.fake.add_transfer("Fine", status="DOWNLOADING", percent_done=40)
    result = mirror.run("transfers", "retry")
    assert result.code == 0, result.err
    assert f"retried #{first} Broken (was: tracker down)" in result.out
    assert f"retried #{second} Stuck (was: no peers)" in result.out
    assert [mirror.fake.transfer(key)["status"] for key in (first, second)] == ["IN_QUEUE"] * 2
    assert mirror.fake.transfer(fine)["percent_done"] == 40
    assert mirror.run("sync").code == 0, "nothing needs a person any more"


def test_retry_and_dismiss_are_runs_in_history_with_the_transfer_s_name(mirror: Mirror) -> None:
    broken = mirror.fake.add_transfer("Broken", status="ERROR", error_message="tracker down")
    assert mirror.run("transfers", "retry", str(broken)).code == 0
    mirror.fake.set_transfer(broken, status="ERROR", error_message="tracker down again")
    assert mirror.run("transfers", "dismiss", str(broken)).code == 0
    document = json.loads(mirror.run("history", "--json").out)
    assert [run["command"].split(" on ")[0] for run in document["runs"]] == [
        "transfers dismiss",
        "transfers retry",
    ]
    actions = json.loads(mirror.run("history", "--run", "2", "--json").out)["actions"]
    assert [(a["kind"], a["target"], a["status"]) for a in actions] == [
        ("dismiss-transfer", "Broken", "done")
    ]


def test_dismiss_removes_only_the_named_transfer_and_keeps_its_files(mirror: Mirror) -> None:
    folder = mirror.fake.add_folder("Half")
    mirror.fake.add_file("part.mkv", folder, size=10)
    broken = mirror.fake.add_transfer("Half", status="ERROR", file_id=folder)
    other = mirror.fake.add_transfer("Other", status="ERROR")
    result = mirror.run("transfers", "dismiss", str(broken))
    assert result.code == 0, result.err
    assert f"dismissed #{broken} Half (was: no reason given)" in result.out
    assert [t["id"] for t in mirror.fake.transfers()] == [other]
    assert any(item["name"] == "part.mkv" for item in mirror.fake.files())


def test_a_transfer_not_in_error_is_refused_and_nothing_is_done(mirror: Mirror) -> None:
    broken = mirror.fake.add_transfer("Broken", status="ERROR")
    live = mirror.fake.add_transfer("Live", status="DOWNLOADING")
    result = mirror.run("transfers", "dismiss", str(broken), str(live), "999")
    assert result.code == ExitCode.USAGE
    assert f"#{live} is DOWNLOADING, not in ERROR" in result.err and "#999 is unknown" in result.err
    assert "putio-mirror status" in result.err
    assert len(mirror.fake.transfers()) == 2


def test_dismiss_needs_ids_or_all_and_says_when_nothing_is_in_error(mirror: Mirror) -> None:
    assert mirror.run("transfers", "dismiss").code == ExitCode.USAGE
    mirror.fake.add_transfer("Fine", status="DOWNLOADING")
    result = mirror.run("transfers", "dismiss", "--all")
    assert result.code == 0 and "No put.io transfer is in ERROR." in result.out
    assert len(mirror.fake.transfers()) == 1


def test_put_io_refusing_one_transfer_is_a_failure_of_that_one_only(mirror: Mirror) -> None:
    first = mirror.fake.add_transfer("First", status="ERROR")
    second = mirror.fake.add_transfer("Second", status="ERROR")
    mirror.fake.inject("/v2/transfers/retry", status=403, error_type="RETRY_NOT_ALLOWED")
    result = mirror.run("transfers", "retry")
    assert result.code == ExitCode.ITEMS_FAILED
    assert f"failed #{first} First: " in result.out and "(HTTP 403)" in result.out
    assert f"retried #{second} Second" in result.out
