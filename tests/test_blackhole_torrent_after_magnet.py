"""A .torrent dropped into the blackhole in a later pass than a magnet of the same torrent
(Sonarr grabbing the same release again from another indexer): the .torrent carries what
the magnet lacks (its trackers, the metadata, the private flag), and a private torrent
added to put.io as a magnet usually never starts. So, as over RPC
(``test_rpc_torrent_after_magnet``), the .torrent takes the place of the magnet's
transfer while put.io has fetched nothing of it; once put.io fetches it, the .torrent is
never sent, and filed away as a duplicate with a line saying why.

The real CLI (and a watcher's pass) against the fake put.io, a real blackhole folder and
a real SQLite journal; the breaks are a real ``kill -9`` of a run in its own process.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from putio_mirror.app.run import Request, Runtime, run_once
from putio_mirror.cli.demo import sample_torrent
from putio_mirror.cli.watch import submit_blackhole
from putio_mirror.config.settings import load_settings
from putio_mirror.core.plan import Plan
from putio_mirror.fakeputio import FakePutio
from putio_mirror.journal.store import Journal
from putio_mirror.local.blackhole import parse_torrent
from tests.mirror_env import Mirror

#: the requests that add or take away a transfer on put.io
SUBMITTING = ("/v2/transfers/add", "/v2/files/upload", "/v2/transfers/cancel")


def submissions(fake: FakePutio) -> list[str]:
    return [entry.path for entry in fake.requests if entry.path in SUBMITTING]


def names_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []


def torrent_and_magnet() -> tuple[bytes, bytes, str]:
    """A .torrent, a magnet file of the same torrent (no trackers, as indexers often give
    them) and their info-hash."""
    data = sample_torrent()
    info_hash = parse_torrent(data)[0]
    return data, f"magnet:?xt=urn:btih:{info_hash}&dn=Sintel".encode(), info_hash


def journaled_transfer(mirror: Mirror, info_hash: str) -> int | None:
    with Journal.open(f"sqlite:///{mirror.journal}") as journal:
        return journal.transfer_of(info_hash)


def a_pass(mirror: Mirror, how: str) -> tuple[int, str]:
    """Run one blackhole pass ``how``: a command, or a watcher's pass; return its exit
    code and what it said."""
    if how == "watch pass":
        report = submit_blackhole(Runtime(load_settings(mirror.config, {})))
        assert report is not None
        return (1 if report.failed else 0), repr(report)
    result = mirror.run(*how.split())
    return result.code, result.out + result.err


def magnet_submitted(mirror: Mirror, magnet: bytes) -> dict[str, object]:
    """Drop the magnet, submit it, and return put.io's transfer of it."""
    mirror.drop("Show.magnet", magnet)
    first = mirror.run("torrents", "add")
    assert first.code == 0, first.err
    (transfer,) = mirror.fake.transfers()
    assert transfer["magneturi"] is not None
    return transfer


@pytest.mark.parametrize("how", ["torrents add", "sync", "watch pass"])
@pytest.mark.parametrize(
    ("ticks", "status"), [(0, "IN_QUEUE"), (2, "PREPARING_DOWNLOAD")], ids=["queued", "metadata"]
)
def test_a_torrent_dropped_while_put_io_has_not_started_its_magnet_takes_its_place(
    mirror: Mirror, ticks: int, status: str, how: str
) -> None:
    data, magnet, info_hash = torrent_and_magnet()
    waiting = magnet_submitted(mirror, magnet)
    mirror.fake.tick(ticks)  # PREPARING_DOWNLOAD: no metadata from any peer, nothing fetched
    assert mirror.fake.transfer(int(str(waiting["id"])))["status"] == status
    mirror.fake.clear_requests()
    mirror.drop("Show.torrent", data)
    code, said = a_pass(mirror, how)
    assert code == 0, said
    assert submissions(mirror.fake) == ["/v2/transfers/cancel", "/v2/files/upload"]
    cancel = next(r for r in mirror.fake.requests if r.path == "/v2/transfers/cancel")
    assert str(waiting["id"]).encode() in cancel.body, "the magnet's transfer, cancelled"
    (upload,) = [r for r in mirror.fake.requests if r.path == "/v2/files/upload"]
    assert data in upload.body, "put.io got the .torrent's bytes"
    (transfer,) = mirror.fake.transfers()
    assert transfer["hash"] == info_hash and transfer["magneturi"] is None
    assert journaled_transfer(mirror, info_hash) == transfer["id"]
    # filed away as a submitted file is: no note of a duplicate beside it
    assert names_in(mirror.blackhole / ".submitted") == ["Show.magnet", "Show.torrent"]
    assert [p.name for p in mirror.blackhole.iterdir() if p.is_file()] == []


def test_a_torrent_dropped_again_after_it_took_its_magnet_s_place_is_never_sent_again(
    mirror: Mirror,
) -> None:
    data, magnet, info_hash = torrent_and_magnet()
    magnet_submitted(mirror, magnet)
    mirror.drop("Show.torrent", data)
    assert mirror.run("torrents", "add").code == 0
    (transfer,) = mirror.fake.transfers()
    mirror.fake.clear_requests()
    mirror.drop("Show (again).torrent", data)
    mirror.drop("Show (again).magnet", magnet)
    again = mirror.run("torrents", "add")
    assert again.code == 0, again.err
    assert submissions(mirror.fake) == []
    assert [t["id"] for t in mirror.fake.transfers()] == [transfer["id"]]
    assert "Show (again).torrent: this torrent was" in again.err
    assert journaled_transfer(mirror, info_hash) == transfer["id"]


@pytest.mark.parametrize(
    ("ticks", "status"), [(3, "DOWNLOADING"), (6, "SEEDING")], ids=["fetching", "fetched"]
)
def test_a_torrent_dropped_once_put_io_started_its_magnet_is_a_duplicate_said_so(
    mirror: Mirror, ticks: int, status: str
) -> None:
    data, magnet, info_hash = torrent_and_magnet()
    waiting = magnet_submitted(mirror, magnet)
    mirror.fake.tick(ticks)
    assert mirror.fake.transfer(int(str(waiting["id"])))["status"] == status
    mirror.fake.clear_requests()
    mirror.drop("Show.torrent", data)
    again = mirror.run("torrents", "add")
    assert again.code == 0, again.err
    assert submissions(mirror.fake) == [], "the magnet's transfer goes on"
    assert [t["id"] for t in mirror.fake.transfers()] == [waiting["id"]]
    line = f"Show.torrent: put.io started this torrent from its magnet ({status})"
    assert line in again.err, again.err
    assert "the .torrent is not sent" in again.err
    assert names_in(mirror.blackhole / ".submitted") == [
        "Show.magnet",
        "Show.torrent",
        "Show.torrent.why.txt",
    ]
    why = (mirror.blackhole / ".submitted" / "Show.torrent.why.txt").read_text()
    assert "started this torrent from its magnet" in why
    assert journaled_transfer(mirror, info_hash) == waiting["id"]


def test_a_torrent_dropped_while_a_torrent_added_by_hand_has_not_started_is_a_duplicate(
    mirror: Mirror,
) -> None:
    """Only a transfer of ours is ever cancelled: one a person added by hand is left."""
    data, magnet, info_hash = torrent_and_magnet()
    uri = magnet.decode()
    by_hand = mirror.fake.add_transfer("Sintel", source=uri, hash=info_hash)
    mirror.drop("Show.torrent", data)
    again = mirror.run("torrents", "add")
    assert again.code == 0, again.err
    assert submissions(mirror.fake) == []
    assert [t["id"] for t in mirror.fake.transfers()] == [by_hand]
    assert "Show.torrent: this torrent was already on put.io" in again.err


def test_a_replacement_a_watcher_s_pass_made_meanwhile_is_not_made_again_by_the_run(
    mirror: Mirror,
) -> None:
    """A run plans the replacement; before its turn, a watcher's pass (another process
    sharing the journal) makes it: the run's is done elsewhere, never a second upload."""
    data, magnet, info_hash = torrent_and_magnet()
    magnet_submitted(mirror, magnet)
    mirror.drop("Show.torrent", data)
    mirror.fake.clear_requests()
    settings = load_settings(mirror.config, {})

    def meanwhile(plan: Plan) -> None:
        report = submit_blackhole(Runtime(settings))
        assert report is not None and report.done and not report.failed

    outcome = run_once(Runtime(settings, on_plan=meanwhile), Request("torrents add"))
    assert outcome.report is not None and not outcome.report.failed, outcome.report.failed
    assert outcome.exit_code == 0
    assert submissions(mirror.fake) == ["/v2/transfers/cancel", "/v2/files/upload"]
    (transfer,) = mirror.fake.transfers()
    assert journaled_transfer(mirror, info_hash) == transfer["id"]
    assert names_in(mirror.blackhole / ".submitted") == ["Show.magnet", "Show.torrent"]


# -- a run killed in the middle of the replacement -------------------------------------


def killed_while_put_io_holds(mirror: Mirror, path: str, *, done: bool) -> None:
    """Run ``torrents add`` in its own process, hold its request to ``path`` at put.io
    (carried out there first if ``done``, else never), and kill -9 the run meanwhile."""
    if done:
        mirror.fake.inject(path, lose_answer=True, delay=30)
    else:
        mirror.fake.inject(path, status=503, delay=30)
    with mirror.spawned("torrents", "add") as process:
        deadline = time.monotonic() + 30
        while not [r for r in mirror.fake.requests if r.path == path]:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, f"no request to {path}"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    mirror.fake.heal()


#: each break: the request the run is killed at, whether put.io carried it out, and what
#: put.io holds then (the journal knows no transfer of the torrent in each)
BREAKS: dict[str, tuple[str, bool, str]] = {
    "after forgetting the magnet's transfer": ("/v2/transfers/cancel", False, "magnet"),
    "after cancelling the magnet's transfer": ("/v2/files/upload", False, "nothing"),
    "after uploading the torrent": ("/v2/files/upload", True, "torrent"),
}


def held_by_put_io(fake: FakePutio) -> str:
    sources = ["magnet" if t["magneturi"] else "torrent" for t in fake.transfers()]
    return " ".join(sources) or "nothing"


@pytest.mark.parametrize("where", list(BREAKS))
def test_a_replacement_killed_between_two_steps_ends_with_one_transfer_the_torrent_s(
    mirror: Mirror, where: str
) -> None:
    data, magnet, info_hash = torrent_and_magnet()
    waiting = magnet_submitted(mirror, magnet)
    mirror.drop("Show.torrent", data)
    path, done, held = BREAKS[where]
    killed_while_put_io_holds(mirror, path, done=done)
    assert held_by_put_io(mirror.fake) == held
    assert journaled_transfer(mirror, info_hash) is None
    next_run = mirror.run("torrents", "add")
    assert next_run.code == 0, next_run.err
    (transfer,) = mirror.fake.transfers()
    assert transfer["id"] != waiting["id"], "the magnet's transfer cancelled in the end"
    assert transfer["hash"] == info_hash and transfer["magneturi"] is None
    assert journaled_transfer(mirror, info_hash) == transfer["id"]
    uploads = [r for r in mirror.fake.requests if r.path == "/v2/files/upload"]
    assert all(data in upload.body for upload in uploads)
    assert "Show.torrent" in names_in(mirror.blackhole / ".submitted")
    assert [p.name for p in mirror.blackhole.iterdir() if p.is_file()] == []
    mirror.fake.clear_requests()
    assert mirror.run("torrents", "add").code == 0
    assert submissions(mirror.fake) == [], "nothing more to do"


def test_a_replacement_stopped_between_forgetting_the_magnet_s_transfer_and_cancelling_it(
    mirror: Mirror,
) -> None:
    """As over RPC: the cancel refused, the journal has forgotten the magnet's transfer,
    which put.io still has. The next run must take it as ours again and replace it, not
    file the .torrent away as a duplicate of a transfer that is nobody's."""
    data, magnet, info_hash = torrent_and_magnet()
    waiting = magnet_submitted(mirror, magnet)
    mirror.drop("Show.torrent", data)
    mirror.fake.inject("/v2/transfers/cancel", status=503, retry_after="3600", times=1)
    first = mirror.run("torrents", "add")
    assert first.code != 0
    assert [t["id"] for t in mirror.fake.transfers()] == [waiting["id"]]
    assert (mirror.blackhole / "Show.torrent").exists(), "left for the next run"
    second = mirror.run("torrents", "add")
    assert second.code == 0, second.err
    (transfer,) = mirror.fake.transfers()
    assert transfer["hash"] == info_hash and transfer["magneturi"] is None
    assert journaled_transfer(mirror, info_hash) == transfer["id"]
    assert submissions(mirror.fake) == [
        "/v2/transfers/add",  # the magnet
        "/v2/transfers/cancel",  # answered 503: its transfer stays, forgotten by the journal
        "/v2/transfers/cancel",  # the next run took it as ours again and replaced it
        "/v2/files/upload",
    ]


def test_a_torrent_put_io_refuses_in_its_magnet_s_place_gives_the_magnet_back(
    mirror: Mirror,
) -> None:
    """put.io took the magnet, then refuses its .torrent (one put.io's parser dislikes):
    the magnet's transfer, cancelled to make way, is added again, so the release is not
    lost; the .torrent is filed as rejected, with put.io's reason, and said so."""
    data, magnet, info_hash = torrent_and_magnet()
    waiting = magnet_submitted(mirror, magnet)
    mirror.drop("Show.torrent", data)
    mirror.fake.inject("/v2/files/upload", status=400, error_type="INVALID_TORRENT")
    result = mirror.run("torrents", "add")
    assert result.code != 0
    assert "Show.torrent" in result.err and "its magnet was added again" in result.err
    (transfer,) = mirror.fake.transfers()
    assert transfer["id"] != waiting["id"] and transfer["hash"] == info_hash
    assert transfer["magneturi"] == waiting["magneturi"], "the same magnet as before"
    assert journaled_transfer(mirror, info_hash) == transfer["id"], "ours, for grooming"
    assert "Show.torrent" in names_in(mirror.blackhole / ".rejected")
    mirror.fake.clear_requests()
    assert mirror.run("torrents", "add").code == 0
    assert submissions(mirror.fake) == [], "nothing more to do"
