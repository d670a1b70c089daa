"""Who this process is, for claims, and taking over what a dead run left behind."""

from __future__ import annotations

import functools
import logging
import os
import secrets
import socket
from collections.abc import Collection
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from putio_mirror.core.history import RunSummary
from putio_mirror.local.durable import write_durably

if TYPE_CHECKING:  # a dry run without a journal never imports SQLAlchemy
    from putio_mirror.journal.store import Journal, RunRecord


log = logging.getLogger(__name__)


@functools.cache
def process_owner() -> str:
    """Who this process is, for claims: host and pid for people, random hex to be unique.

    Two hosts may share a hostname (containers, clones) and a pid; the random part keeps
    one from ever mistaking the other's claims for its own.
    """
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"


def take_over_from_dead_runs(
    journal: Journal,
    now: datetime,
    lock: Path,
    owner: str,
    *,
    wanted: Collection[str] = frozenset(),
    lease: timedelta = timedelta(minutes=10),
) -> frozenset[str]:
    """Given a journal whose run lock we hold, the time, who we are and the keys our plan
    needs (with the lease to hold them for), take over the claims of the lock's previous
    run on those keys and free its others; mark the actions of dead runs interrupted.
    Return the keys taken over, for the executor to keep alive (``Executor.inherit``).

    Which claims are ours to take must be proven, not guessed from a hostname (two hosts
    may share one, and a lock path): each run writes its owner id beside the run lock, and
    the run that wrote it is over, since we hold the lock now. Its claims go at once, so a
    run restarted after a crash need not wait out their leases; but not to another host:
    what the dead run did and had not journaled yet (a file placed, its end journaled with
    the next few files') is found by our plan, which takes it up (a file in place adopted,
    one verified in staging placed) under the claim the dead run held. Every other host's
    dead claims run out on their lease (the database's clock); then their actions are
    marked too (see ``Journal.abandon_stale_actions``), and a live host's never are.

    The previous lock holder's runs still unfinished in the journal died: they are ended at
    their last sign of life, so ``history`` and ``status`` stop calling them running.

    A kill at any point leaves the record naming every owner whose claims may be left
    (the previous ones until the take-over is over, then ours), so the next run takes
    them over in turn.
    """
    record = lock.with_name(lock.name + ".owner")
    # (ours too when this process ran before: ``watch``, ``serve``)
    named = list(dict.fromkeys(_read_owners(record)))
    if named and named != [owner]:
        _write_owners(record, list(dict.fromkeys([*named, owner])))
    taken = journal.take_over(named, owner, lease, wanted)
    for dead in named:
        if journal.end_dead_runs(dead):
            log.warning(
                "the previous run ended without finishing (killed, crashed or the "
                "power went); this run takes over what it left"
            )
    if taken:
        log.info("took over %d claims of the previous run for this run's plan", len(taken))
    stale = journal.abandon_stale_actions(now)
    if stale:
        log.info("marked %d actions of runs that stopped early as interrupted", stale)
    _write_owners(record, [owner])
    return taken


def _read_owners(record: Path) -> list[str]:
    """Given the owner record beside the lock, return the owners it names (the previous
    run's; more if a run was killed while taking over from its own previous one)."""
    try:
        return record.read_text(encoding="utf-8").split()
    except FileNotFoundError:
        return []
    except OSError as error:
        log.warning("cannot read %s (%s): the previous run's claims run out", record, error)
        return []


def _write_owners(record: Path, owners: list[str]) -> None:
    """Write the owners beside the lock atomically (a torn name would free no claim) and
    durably: after a power cut the next run must still take over this one's claims at
    once."""
    try:
        write_durably(record, "".join(each + "\n" for each in owners))
    except OSError as error:
        log.warning(
            "cannot write %s (%s): a crash would leave claims to their lease", record, error
        )


def run_summary(run: RunRecord) -> RunSummary:
    """Given a journal run, return it as the core's RunSummary: its times in local time,
    and for an unfinished run whether its process still lives (``owner_alive``)."""
    finished = run.finished_at.astimezone() if run.finished_at else None
    alive = owner_alive(run.owner) if finished is None else None
    started = run.started_at.astimezone()
    return RunSummary(
        run.id, run.command, run.host, started, finished, run.exit_code, run.summary, alive
    )


def owner_alive(owner: str | None) -> bool | None:
    """Given a run's claim owner (``host:pid:random``), return whether its process lives:
    None where that cannot be told here (another host's, or no owner recorded)."""
    host, _, rest = (owner or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)  # signal 0: is there such a process?
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True
