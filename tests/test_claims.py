"""Claims with leases: hosts sharing one journal each take an action, and never the same one.

Leases are judged by the database's clock, so no test passes a time: a lease is made to run
out by moving its end into the past (``expire``).

Every test runs on a SQLite file and on a PostgreSQL database (see test_journal.py): the
one-process tests share one per backend, emptied of claims before each. The races run two real
OS processes (one pair per backend, shared by the race tests) that open one new journal
together, then claim the same keys as fast as they can.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, event

import putio_mirror
from putio_mirror.journal.starting import Start
from putio_mirror.journal.store import SCHEMA_VERSION, Journal
from tests.test_journal import PostgresDatabase, run_sql, schema_versions, sqlite_url

# Moves a lease's end into the past (UTC wall time, as UtcDateTime stores it in SQLite).
EXPIRE = "UPDATE claims SET expires_at = '2000-01-01 00:00:00.000000' WHERE key = :key"
LEASE = timedelta(minutes=5)
RACE_KEYS = 200
WORKER_TIMEOUT = 60.0
OWNERS = ("host-a", "host-b")
BACKENDS = ["sqlite", "postgresql"]

# `python -c WORKER url owner`: says "ready", opens the journal on a "go" line and says
# "opened", then claims each key written to its stdin, one a line, answering 1 (won) or 0,
# until its stdin ends. A line of several keys is started at once (``start_claimed``),
# answered with a 1 or 0 for each.
WORKER = """
import sys
from datetime import UTC, datetime, timedelta
from putio_mirror.journal.starting import Start
from putio_mirror.journal.store import Journal

url, owner = sys.argv[1], sys.argv[2]
print("ready", flush=True)
sys.stdin.readline()
with Journal.open(url, busy_timeout=30.0) as journal:
    print("opened", flush=True)
    lease = timedelta(minutes=5)
    for line in sys.stdin:
        keys = line.split()
        if len(keys) == 1:
            print(int(journal.claim(keys[0], owner, lease)), flush=True)
            continue
        run_id = journal.start_run("sync", datetime.now(UTC), owner=owner)
        starts = [Start("download", key, key) for key in keys]
        ids = journal.start_claimed(run_id, starts, owner, lease, datetime.now(UTC))
        print(" ".join(str(int(id_ is not None)) for id_ in ids), flush=True)
"""

Worker = subprocess.Popen[str]


@contextmanager
def new_journal_url(request: pytest.FixtureRequest, folder: Path) -> Iterator[str]:
    """Given a request for one of BACKENDS, yield the URL of a journal yet to be created."""
    if request.param == "sqlite":
        yield sqlite_url(folder / "j.sqlite3")
        return
    # Asked for here, not as a parameter, so the server starts only when a PostgreSQL test runs.
    admin_url: str = request.getfixturevalue("postgres_url")
    with PostgresDatabase(admin_url) as url:
        yield url


@pytest.fixture(scope="module", params=BACKENDS)
def module_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A journal URL on each backend for the one-process tests (a new database each is slow)."""
    with new_journal_url(request, tmp_path_factory.mktemp("claims")) as url:
        yield url


@pytest.fixture
def journal(module_url: str) -> Iterator[Journal]:
    """The module's journal with no claims in it."""
    with Journal.open(module_url) as opened:
        for key, (owner, _) in opened.claims().items():
            opened.release(key, owner)
        yield opened


@contextmanager
def statements_sent() -> Iterator[list[str]]:
    """Yield the list of statements sent to any database meanwhile (an ``executemany`` is
    one), their SQL's first word each."""
    sent: list[str] = []

    def count(_conn: object, _cursor: object, sql: str, *_rest: object) -> None:
        sent.append(sql.split(None, 1)[0].upper())

    event.listen(Engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(Engine, "before_cursor_execute", count)


def expire(url: str, *keys: str) -> None:
    """Given claimed keys, end their leases in the past, as if their holder had stopped long ago."""
    for key in keys:
        run_sql(url, EXPIRE, key=key)


def claimed_at(url: str, key: str) -> datetime:
    (stored,) = run_sql(url, "SELECT claimed_at FROM claims WHERE key = :key", key=key)
    # PostgreSQL gives an aware datetime; SQLite the UTC wall time as text.
    moment = stored if isinstance(stored, datetime) else datetime.fromisoformat(str(stored))
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def expires_at(journal: Journal, key: str) -> datetime:
    return journal.claims()[key][1]


# -- one process -------------------------------------------------------------------


def test_first_claim_wins_and_another_owner_is_refused(journal: Journal) -> None:
    before = journal.database_now()
    assert journal.claim("download:7", "host-a", LEASE)
    assert not journal.claim("download:7", "host-b", LEASE)
    assert journal.claim("download:8", "host-b", LEASE)
    after = journal.database_now()
    claims = journal.claims()
    assert {key: owner for key, (owner, _) in claims.items()} == {
        "download:7": "host-a",
        "download:8": "host-b",
    }
    assert all(before + LEASE <= end <= after + LEASE for _, end in claims.values())


def test_leases_run_on_the_database_clock(journal: Journal) -> None:
    # Whatever time the host thinks it is, a lease ends LEASE after the database's now.
    now = journal.database_now()
    assert now.utcoffset() == timedelta(0)
    assert abs(now - datetime.now(UTC)) < timedelta(minutes=1)  # the test's own machine
    journal.claim("download:7", "host-a", LEASE)
    assert now + LEASE <= expires_at(journal, "download:7") <= journal.database_now() + LEASE


def test_the_holder_claiming_again_extends_its_lease(journal: Journal) -> None:
    assert journal.claim("download:7", "host-a", LEASE)
    first = expires_at(journal, "download:7")
    assert journal.claim("download:7", "host-a", 2 * LEASE)
    assert expires_at(journal, "download:7") >= first + LEASE
    assert not journal.claim("download:7", "host-b", LEASE)


def test_an_expired_lease_hands_the_key_to_the_next_claimer(
    journal: Journal, module_url: str
) -> None:
    journal.claim("download:7", "host-a", LEASE)
    assert not journal.claim("download:7", "host-b", LEASE)
    expire(module_url, "download:7")
    assert journal.claim("download:7", "host-b", LEASE)
    assert journal.claims()["download:7"][0] == "host-b"
    assert not journal.claim("download:7", "host-a", LEASE)


def test_claimed_at_stays_while_the_holder_extends_and_restarts_on_a_take_over(
    journal: Journal, module_url: str
) -> None:
    journal.claim("download:7", "host-a", LEASE)
    first = claimed_at(module_url, "download:7")
    time.sleep(0.01)
    journal.claim("download:7", "host-a", LEASE)
    assert claimed_at(module_url, "download:7") == first
    expire(module_url, "download:7")
    journal.claim("download:7", "host-b", LEASE)
    assert claimed_at(module_url, "download:7") > first


def test_renew_extends_a_held_claim_even_one_that_expired_untaken(
    journal: Journal, module_url: str
) -> None:
    journal.claim("download:7", "host-a", LEASE)
    expire(module_url, "download:7")
    before = journal.database_now()
    assert journal.renew("download:7", "host-a", LEASE)
    assert journal.claims()["download:7"][0] == "host-a"
    assert expires_at(journal, "download:7") >= before + LEASE


def test_renew_after_the_claim_was_taken_over_returns_false(
    journal: Journal, module_url: str
) -> None:
    journal.claim("download:7", "host-a", LEASE)
    expire(module_url, "download:7")
    journal.claim("download:7", "host-b", LEASE)
    assert not journal.renew("download:7", "host-a", LEASE)
    assert journal.claims()["download:7"][0] == "host-b"


def test_renew_of_a_released_or_never_claimed_key_returns_false(journal: Journal) -> None:
    journal.claim("download:7", "host-a", LEASE)
    journal.release("download:7", "host-a")
    assert not journal.renew("download:7", "host-a", LEASE)
    assert not journal.renew("download:8", "host-a", LEASE)
    assert journal.claims() == {}


def test_renew_all_extends_in_one_go_and_names_the_keys_still_held(
    journal: Journal, module_url: str
) -> None:
    for key in ("download:7", "download:8", "download:9"):
        journal.claim(key, "host-a", LEASE)
    expire(module_url, "download:8")
    journal.claim("download:8", "host-b", LEASE)
    journal.release("download:9", "host-a")
    keys = {"download:7", "download:8", "download:9"}
    assert journal.renew_all(keys, "host-a", LEASE) == {"download:7"}
    assert journal.renew_all(set(), "host-a", LEASE) == frozenset()


def test_release_frees_only_the_owners_own_claim(journal: Journal) -> None:
    journal.claim("download:7", "host-a", LEASE)
    journal.release("download:7", "host-b")
    journal.release("download:8", "host-a")
    assert list(journal.claims()) == ["download:7"]
    journal.release("download:7", "host-a")
    assert journal.claims() == {}
    assert journal.claim("download:7", "host-b", LEASE)


def test_release_all_frees_every_claim_of_one_owner_and_counts_them(journal: Journal) -> None:
    for key in ("upload:x", "download:7", "download:8"):
        journal.claim(key, "host-a", LEASE)
    journal.claim("download:9", "host-b", LEASE)
    assert journal.release_all("host-a") == 3
    assert journal.release_all("host-a") == 0
    assert {key: owner for key, (owner, _) in journal.claims().items()} == {"download:9": "host-b"}


def test_a_take_over_keeps_the_dead_claims_its_plan_wants_and_frees_the_others(
    journal: Journal, module_url: str
) -> None:
    for key in ("download:7", "download:8", "upload:x"):
        journal.claim(key, "dead-a", LEASE)
    journal.claim("download:9", "dead-b", LEASE)  # a dead run killed while taking over
    run_sql(module_url, EXPIRE, key="download:9")  # (and since run out: still its, nobody took it)
    journal.claim("download:10", "live", LEASE)
    wanted = {"download:7", "download:9", "download:10", "place:3"}
    taken = journal.take_over(["dead-a", "dead-b"], "heir", LEASE, wanted)
    assert taken == {"download:7", "download:9"}
    claims = journal.claims()
    owners = {key: owner for key, (owner, _) in claims.items()}
    assert owners == {"download:7": "heir", "download:9": "heir", "download:10": "live"}
    assert claims["download:9"][1] > journal.database_now()  # leased anew
    assert not journal.claim("download:9", "live", LEASE)


def test_a_take_over_of_the_heirs_own_earlier_claims_keeps_those_wanted(journal: Journal) -> None:
    # ``watch`` runs again in one process, under one owner: its last run's claims are its own
    for key in ("download:7", "download:8"):
        journal.claim(key, "heir", LEASE)
    assert journal.take_over(["heir"], "heir", LEASE, {"download:8"}) == {"download:8"}
    assert {key: owner for key, (owner, _) in journal.claims().items()} == {"download:8": "heir"}
    assert journal.take_over([], "heir", LEASE, {"download:8"}) == frozenset()


def test_a_hosts_word_on_its_download_folder_replaces_its_earlier_and_runs_out(
    journal: Journal, module_url: str
) -> None:
    assert journal.place_into("aa", "host-1", "nas", LEASE) == [("aa", "host-1", "nas")]
    journal.place_into("bb", "host-2", "pi", LEASE)
    said = journal.place_into("cc", "host-1", "nas", LEASE)  # its folder changed
    assert sorted(said) == [("bb", "host-2", "pi"), ("cc", "host-1", "nas")]
    run_sql(module_url, EXPIRE, key="folder:bb:host-2")  # host-2 placed nothing for long
    assert journal.place_into("cc", "host-1", "nas", LEASE) == [("cc", "host-1", "nas")]
    # held by the host's name, never by a run's owner: no take-over of a run's frees them
    journal.take_over(["nas:101:aaaa"], "nas:102:bbbb", LEASE, set())
    assert sorted(journal.place_into("dd", "host-3", "pc", LEASE)) == [
        ("cc", "host-1", "nas"),
        ("dd", "host-3", "pc"),
    ]


def test_empty_leases_are_refused(journal: Journal) -> None:
    with pytest.raises(ValueError, match="positive"):
        journal.claim("download:7", "host-a", timedelta(0))
    journal.claim("download:7", "host-a", LEASE)
    with pytest.raises(ValueError, match="positive"):
        journal.renew("download:7", "host-a", -LEASE)
    assert set(journal.claims()) == {"download:7"}


# -- two processes -------------------------------------------------------------------


@dataclass(frozen=True)
class Racers:
    url: str
    workers: list[Worker]


@pytest.fixture(scope="module", params=BACKENDS)
def racers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Racers]:
    """A worker process per owner, both told at once to open the same new journal."""
    folder = tmp_path_factory.mktemp("racers")
    with new_journal_url(request, folder) as url, started_workers(url) as workers:
        for worker in workers:
            send(worker, "go\n")
        for worker in workers:
            assert readline(worker) == "opened", worker.communicate()[1]
        yield Racers(url, workers)
        for worker, (_, errors) in zip(workers, finish(workers), strict=True):
            assert worker.returncode == 0, errors


@contextmanager
def started_workers(url: str) -> Iterator[list[Worker]]:
    """Start a worker per owner on ``url``, yield them once all are ready; kill any left after."""
    package_root = str(Path(putio_mirror.__file__).parent.parent)
    env = os.environ | {"PYTHONPATH": package_root}
    command = [sys.executable, "-c", WORKER, url]
    with ExitStack() as stack:
        workers = [
            stack.enter_context(
                subprocess.Popen(
                    [*command, owner],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                )
            )
            for owner in OWNERS
        ]
        # Popen's own exit closes the pipes and waits; a worker still running is killed first.
        stack.callback(kill_running, workers)
        for worker in workers:
            assert readline(worker) == "ready", worker.communicate()[1]
        yield workers


def kill_running(workers: list[Worker]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.kill()


def finish(workers: list[Worker]) -> list[tuple[str, str]]:
    """End the workers' input; return what each wrote after, to stdout and stderr."""
    return [worker.communicate(timeout=WORKER_TIMEOUT) for worker in workers]


def readline(worker: Worker) -> str:
    assert worker.stdout is not None
    return worker.stdout.readline().strip()


def send(worker: Worker, text: str) -> None:
    assert worker.stdin is not None
    worker.stdin.write(text)
    worker.stdin.flush()


def race_freely(workers: list[Worker], keys: list[str]) -> list[set[str]]:
    """Hand every worker all the keys at once; return the keys each won, claiming at its pace."""
    for worker in workers:
        send(worker, "".join(f"{key}\n" for key in keys))
    return [{key for key in keys if readline(worker) == "1"} for worker in workers]


def race_in_step(workers: list[Worker], keys: list[str]) -> list[set[str]]:
    """Hand the workers one key at a time, each key to both at once; return the keys each won."""
    won: list[set[str]] = [set() for _ in workers]
    for number, key in enumerate(keys):
        # Whoever hears of a key first has a head start: take turns at it.
        order = list(enumerate(workers))[:: 1 if number % 2 else -1]
        for _, worker in order:
            send(worker, f"{key}\n")
        for index, worker in order:
            if readline(worker) == "1":
                won[index].add(key)
    return won


def keys_of_a_dead_host(url: str, prefix: str) -> list[str]:
    """Return RACE_KEYS new keys, half of them under a dead host's expired lease, to take over."""
    keys = [f"{prefix}:{number}" for number in range(RACE_KEYS)]
    with Journal.open(url) as journal:
        for key in keys[::2]:
            journal.claim(key, "dead-host", LEASE)
    expire(url, *keys[::2])
    return keys


def assert_each_key_won_once(url: str, keys: list[str], won: list[set[str]]) -> None:
    """Given the keys each racer won, check that each went to exactly one, as the journal says."""
    first, second = won
    assert not first & second
    assert first | second == set(keys)
    with Journal.open(url) as journal:
        held = journal.claims()
    assert [{key for key in keys if held[key][0] == owner} for owner in OWNERS] == won


def test_two_processes_opening_one_new_journal_at_once_leave_one_schema(racers: Racers) -> None:
    assert schema_versions(racers.url) == [SCHEMA_VERSION]


def test_two_processes_claiming_the_same_keys_freely_win_each_key_once(racers: Racers) -> None:
    keys = keys_of_a_dead_host(racers.url, "free")
    assert_each_key_won_once(racers.url, keys, race_freely(racers.workers, keys))


def test_two_processes_claiming_each_key_at_the_same_moment_win_it_once(racers: Racers) -> None:
    keys = keys_of_a_dead_host(racers.url, "step")
    won = race_in_step(racers.workers, keys)
    assert_each_key_won_once(racers.url, keys, won)
    # Both really raced: with turns at the head start, each won some keys.
    assert all(won)


def test_two_processes_starting_the_same_keys_in_batches_in_opposite_orders_win_each_once(
    racers: Racers,
) -> None:
    keys = keys_of_a_dead_host(racers.url, "batch")
    batches = [keys[start : start + 16] for start in range(0, len(keys), 16)]
    forward, backward = racers.workers
    for batch in batches:  # the second host sees each batch in the opposite order
        send(forward, " ".join(batch) + "\n")
        send(backward, " ".join(reversed(batch)) + "\n")
    won: list[set[str]] = [set(), set()]
    for batch in batches:
        for index, (worker, order) in enumerate(((forward, batch), (backward, batch[::-1]))):
            answers = readline(worker).split()
            won[index] |= {key for key, answer in zip(order, answers, strict=True) if answer == "1"}
    assert_each_key_won_once(racers.url, keys, won)


def test_starting_several_actions_claims_checks_and_journals_each_in_one_go(
    journal: Journal, module_url: str
) -> None:
    now = datetime.now(UTC)
    journal.claim("k:held", "host-b", LEASE)
    journal.claim("k:old", "host-b", LEASE)
    expire(module_url, "k:old")
    journal.claim("k:mine", "host-a", LEASE)
    journal.mark_verified(77, "done.bin", 10, None, now)
    run_id = journal.start_run("sync", now, owner="host-a")
    starts = [
        Start("download", "k:free", "free.bin"),
        Start("download", "k:held", "held.bin"),
        Start("download", "k:old", "old.bin"),
        Start("download", "download:77", "done.bin", unless_verified=77),
        Start("download", "k:mine", "mine.bin", unless_verified=78),
    ]
    ids = journal.start_claimed(run_id, starts, "host-a", LEASE, now)
    assert [id_ is None for id_ in ids] == [False, True, False, True, False]
    owners = {key: owner for key, (owner, _) in journal.claims().items()}
    assert owners == {"k:free": "host-a", "k:held": "host-b", "k:old": "host-a", "k:mine": "host-a"}
    actions = {action.id: action for action in journal.actions_of(run_id)}
    assert [actions[i].target for i in ids if i is not None] == ["free.bin", "old.bin", "mine.bin"]
    assert {action.status for action in actions.values()} == {"started"}
    again = journal.start_claimed(run_id, starts[:1], "host-a", LEASE, now)
    assert [action.attempts for action in journal.actions_of(run_id) if action.id in again] == [2]


def test_starting_many_actions_sends_as_many_statements_as_starting_two(
    journal: Journal,
) -> None:
    now = datetime.now(UTC)
    run_id = journal.start_run("sync", now, owner="host-a")
    sent: dict[int, list[str]] = {}
    for count in (2, 16):
        starts = [
            Start("download", f"k:{count}-{n}", f"{n}.bin", unless_verified=n) for n in range(count)
        ]
        with statements_sent() as sent[count]:
            ids = journal.start_claimed(run_id, starts, "host-a", LEASE, now)
        targets = {action.id: action.target for action in journal.actions_of(run_id)}
        assert [targets[i] for i in ids if i is not None] == [f"{n}.bin" for n in range(count)]
    # the claims, the check of the files' verification, the action rows (and on PostgreSQL
    # the database's clock): never a statement a file
    assert sent[16] == sent[2]
    assert sent[16].count("INSERT") == 2


def test_a_withdrawn_action_leaves_no_row_and_a_finished_one_is_never_withdrawn(
    journal: Journal,
) -> None:
    now = datetime.now(UTC)
    run_id = journal.start_run("sync", now, owner="host-a")
    never, ran = journal.start_claimed(
        run_id, [Start("download", "k:1", "a"), Start("download", "k:2", "b")], "host-a", LEASE, now
    )
    assert never is not None and ran is not None
    journal.action_finished(ran, "done", now)
    journal.action_withdrawn(never)
    journal.action_withdrawn(ran)
    assert [(action.id, action.status) for action in journal.actions_of(run_id)] == [(ran, "done")]
