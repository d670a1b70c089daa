"""Several hosts, one journal: the work is shared, no file is fetched twice, nobody's claims
or running actions are taken for dead by another host starting."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

from putio_mirror.app.executor import Executor
from putio_mirror.app.report import RunReport
from putio_mirror.core.plan import Plan
from putio_mirror.fakeputio import FakePutio
from putio_mirror.fetch.values import Fetched, FileToFetch
from putio_mirror.journal.store import Journal
from tests.mirror_env import Mirror
from tests.relay import Relay
from tests.test_journal import run_sql, sqlite_url
from tests.test_shared_journal import (
    FILM,
    OWNER_A,
    OWNER_B,
    Instant,
    Stalling,
    host,
    in_background,
    run,
)


@pytest.fixture
def shared_journal(postgres_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this test, dropped afterwards."""
    import psycopg

    name = f"hosts_{uuid.uuid4().hex[:12]}"
    admin = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = postgres_url.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def host_config(root: Path, host: str, fake: FakePutio, journal_url: str) -> Path:
    folder = root / host
    folder.mkdir()
    (folder / "token").write_text(fake.token)
    (folder / "token").chmod(0o600)
    config = {
        "putio": {
            "token_file": str(folder / "token"),
            "api_url": fake.api_url,
            "upload_url": fake.upload_url,
            "timeout_seconds": 5,
        },
        "paths": {
            "blackhole": str(folder / "blackhole"),
            "downloads": str(folder / "downloads"),
            "journal": journal_url,
        },
        "download": {"parallel_files": 2, "placement": "file"},
    }
    path = folder / "mirror.yaml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def start(config: Path, host: str) -> subprocess.Popen[bytes]:
    # Each "host" has its own state folder, so its own run lock, as two machines would.
    env = dict(os.environ, XDG_STATE_HOME=str(config.parent / "state"), XDG_RUNTIME_DIR="")
    return subprocess.Popen(
        [sys.executable, "-m", "putio_mirror", "--config", str(config), "files", "download"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_two_hosts_sharing_one_postgresql_journal_fetch_each_file_once(
    tmp_path: Path, fake_putio: FakePutio, shared_journal: str
) -> None:
    ids = [fake_putio.add_file(f"f{n:03}.bin", size=20_000 + n) for n in range(200)]
    configs = [host_config(tmp_path, host, fake_putio, shared_journal) for host in ("a", "b")]
    processes = [start(config, host) for config, host in zip(configs, "ab", strict=True)]
    for process in processes:
        assert process.wait(timeout=120) == 0, process.stderr.read() if process.stderr else ""
        if process.stderr:
            process.stderr.close()
    fetched = Counter(r.path for r in fake_putio.requests if r.host == "node" and r.method == "GET")
    assert len(fetched) == 200 and max(fetched.values()) == 1, "no file fetched twice"
    by_host = [{p.name for p in (config.parent / "downloads").glob("*.bin")} for config in configs]
    assert by_host[0].isdisjoint(by_host[1])
    assert by_host[0] | by_host[1] == {f"f{n:03}.bin" for n in range(200)}
    assert all(by_host), "both hosts did part of the work"
    contents = {
        p.name: p.read_bytes()
        for config in configs
        for p in (config.parent / "downloads").glob("*.bin")
    }
    assert all(contents[f"f{n:03}.bin"] == fake_putio.file_content(i) for n, i in enumerate(ids))


class ToldToStop(Instant):
    """Stands at a chunk boundary until told it may not go on; then waits for ``proceed``
    before it returns, stopped (so its host journals the stop once the test lets it)."""

    def __init__(self, started: threading.Event, told: threading.Event) -> None:
        self.started, self.told, self.proceed = started, told, threading.Event()

    def fetch(
        self,
        item: FileToFetch,
        *,
        may_continue: Callable[[], bool] = lambda: True,
        on_progress: Callable[[int], None] = lambda amount: None,
    ) -> Fetched:
        self.started.set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and may_continue():
            time.sleep(0.02)
        self.told.set()
        assert self.proceed.wait(20)
        return Fetched(False, 0)


def postgres_address(url: str) -> tuple[str, int]:
    parsed = make_url(url)
    return parsed.host or "127.0.0.1", parsed.port or 5432


def test_a_host_cut_off_from_the_journal_stops_writing_before_its_lease_can_be_taken(
    tmp_path: Path, shared_journal: str
) -> None:
    # Host A reaches put.io but not the database (a network partition, the database's host
    # rebooting): its keeper cannot renew, so its lease runs out and host B may take the file.
    # A must stop writing before then, or both fetch and place one file.
    started, told = threading.Event(), threading.Event()
    fetcher = ToldToStop(started, told)
    lease = timedelta(seconds=1.5)
    with Relay(postgres_address(shared_journal)) as relay:
        through_relay = make_url(shared_journal).set(host="127.0.0.1", port=relay.port)
        a_url = through_relay.render_as_string(hide_password=False)
        a, a_journal = host(tmp_path, a_url, OWNER_A, lambda: fetcher, lease=lease)
        outcome: list[RunReport | BaseException] = []
        thread = threading.Thread(target=lambda: outcome.append(_outcome(a, a_journal)))
        thread.start()
        assert started.wait(10)
        relay.cut()
        with Journal.open(shared_journal) as journal:
            while journal.claims()[FILM.key][1] > journal.database_now():
                time.sleep(0.05)
        # A's lease ran out: host B may take the file over now, and A must have stopped.
        assert told.is_set(), "host A still writes a file whose lease ran out"
        b, b_journal = host(tmp_path, shared_journal, OWNER_B, Instant)
        assert run(b, b_journal, Plan((FILM,))).done == [FILM.key]
        relay.mend()
        fetcher.proceed.set()
        thread.join(30)
    (a_report,) = outcome
    assert isinstance(a_report, RunReport)
    assert (a_report.done, a_report.elsewhere) == ([], 1)
    with Journal.open(shared_journal) as journal:
        assert journal.facts().downloads[FILM.file_id].is_verified


def _outcome(executor: Executor, journal: Journal) -> RunReport | BaseException:
    try:
        return run(executor, journal, Plan((FILM,)))
    except BaseException as error:
        return error


# -- one host starting while others work (in-process, one SQLite journal) -------------------

LIVE_CLAIM = (
    "INSERT INTO claims (key, owner, expires_at, claimed_at) VALUES (:key, :owner, :ends, :ends)"
)


def in_ten_minutes() -> str:
    """A lease end ten minutes ahead, as UtcDateTime writes it in SQLite (UTC wall time)."""
    return (datetime.now(UTC) + timedelta(minutes=10)).strftime("%Y-%m-%d %H:%M:%S.%f")


def test_a_starting_host_leaves_another_hosts_running_action_alone(mirror: Mirror) -> None:
    url = sqlite_url(mirror.journal)
    started, stop = threading.Event(), threading.Event()
    other, other_journal = host(mirror.root, url, OWNER_A, lambda: Stalling(started, stop))
    thread, _ = in_background(lambda: run(other, other_journal, Plan((FILM,))))
    try:
        assert started.wait(10)
        assert mirror.run("sync").code == 0
        with Journal.open(url) as journal:
            (first, *_) = sorted(journal.recent_runs(), key=lambda record: record.id)
            assert [action.status for action in journal.actions_of(first.id)] == ["started"]
    finally:
        stop.set()
        thread.join(20)


def test_two_hosts_with_one_hostname_never_free_each_others_live_claims(mirror: Mirror) -> None:
    assert mirror.run("sync").code == 0
    url = sqlite_url(mirror.journal)
    # The claim of a live run on another machine of the same name, with the same lock path.
    lock = mirror.journal.absolute().with_name("journal.sqlite3.lock")
    twin = f"{socket.gethostname()}:{lock}:424242"
    run_sql(url, LIVE_CLAIM, key="download:7", owner=twin, ends=in_ten_minutes())
    assert mirror.run("sync").code == 0
    with Journal.open(url) as journal:
        assert journal.claims()["download:7"][0] == twin


def test_a_run_after_a_crash_frees_the_dead_runs_claims_at_once(
    mirror: Mirror, fake_putio: FakePutio
) -> None:
    assert mirror.run("sync").code == 0
    url = sqlite_url(mirror.journal)
    file_id = fake_putio.add_file("film.mkv", size=5000)
    # A run of this lock died mid-download: its claim's lease still runs, its action "started".
    dead = "this-host:999999:deadbeefdeadbeef"
    with Journal.open(url) as journal:
        crashed = journal.start_run("sync", datetime.now(UTC))
    run_sql(url, "UPDATE runs SET owner = :owner WHERE id = :id", owner=dead, id=crashed)
    run_sql(url, LIVE_CLAIM, key=f"download:{file_id}", owner=dead, ends=in_ten_minutes())
    run_sql(
        url,
        "INSERT INTO actions (run_id, kind, key, target, status, attempts, started_at, owner) "
        "VALUES (:run, 'download', :key, 'film.mkv', 'started', 1, :ends, :owner)",
        run=crashed,
        key=f"download:{file_id}",
        ends=in_ten_minutes(),
        owner=dead,
    )
    mirror.journal.with_name("journal.sqlite3.lock.owner").write_text(dead + "\n")
    result = mirror.run("files", "download")
    assert result.code == 0, result.err
    assert mirror.local_files() == {"film.mkv": fake_putio.file_content(file_id)}
    with Journal.open(url) as journal:
        assert [action.status for action in journal.actions_of(crashed)] == ["interrupted"]


OWNER_PROBE = "from putio_mirror.app.owners import process_owner; print(process_owner())"


def test_each_process_claims_under_an_owner_id_of_its_own() -> None:
    owners = [
        subprocess.run(
            [sys.executable, "-c", OWNER_PROBE], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    ]
    assert owners[0] != owners[1]
    for owner in owners:
        hostname, pid, random = owner.split(":")
        assert hostname == socket.gethostname() and pid.isdigit() and len(random) == 16


# -- two processes on one host -------------------------------------------------------------


def test_two_runs_on_one_host_whose_environments_differ_still_share_one_run_lock(
    tmp_path: Path, fake_putio: FakePutio, shared_journal: str
) -> None:
    # A `serve` under a system service has no $XDG_RUNTIME_DIR; a `sync` typed in an ssh
    # session has one. One host, one user, one journal: one of them must wait (exit 6).
    file_id = fake_putio.add_file("movie.mkv", size=3_000_000)
    fake_putio.node_fault(file_id, stall_after=1_000_000, times=1)
    config = host_config(tmp_path, "a", fake_putio, shared_journal)
    state = str(tmp_path / "state")
    session = tmp_path / "run-user"
    session.mkdir()
    command = [sys.executable, "-m", "putio_mirror", "--config", str(config), "files", "download"]
    service = dict(os.environ, XDG_STATE_HOME=state)
    service.pop("XDG_RUNTIME_DIR", None)
    first = subprocess.Popen(command, env=service, stderr=subprocess.PIPE)
    part = config.parent / "downloads" / ".putio-mirror-staging" / f"{file_id}.part"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (part.exists() and part.stat().st_size):
        time.sleep(0.05)
    typed = dict(os.environ, XDG_STATE_HOME=state, XDG_RUNTIME_DIR=str(session))
    second = subprocess.run(command, env=typed, capture_output=True, timeout=60)
    first.terminate()  # it stalls for 30 s: stopped at its chunk, it ends at once
    first.communicate(timeout=60)
    assert second.returncode == 6, second.stderr.decode()
    assert "another putio-mirror run" in second.stderr.decode()
