"""The shell: build the collaborators from Settings and run the pipeline once.

observe → reconcile → (safety) → render or execute → journal. Every command
of the CLI calls ``run_once`` with a different ``Request``: ``sync``
takes every kind of action, ``transfers groom`` only cancel and clean,
``files download --limit 3`` only the first three downloads.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

from putio_mirror.app.executor import Executor, Progress, Rules, RunReport
from putio_mirror.app.observe import observe
from putio_mirror.config.settings import Settings
from putio_mirror.core.bandwidth import parse_timetable
from putio_mirror.core.errors import AuthError, ConfigError, ExitCode, MirrorError, SafetyLimitError
from putio_mirror.core.plan import ActionKind, Plan
from putio_mirror.core.reconcile import reconcile, safety_violations
from putio_mirror.core.state import JournalFacts, RemoteFile, Snapshot
from putio_mirror.fetch.engine import SegmentedDownloader
from putio_mirror.fetch.throttle import RateLimiter
from putio_mirror.journal.store import Journal
from putio_mirror.local.fs import Places, RunLock
from putio_mirror.local.staging import LEGACY_ITEMS_DIR, adopt_legacy_items
from putio_mirror.putio.client import PutioClient

log = logging.getLogger(__name__)

ALL_KINDS: frozenset[ActionKind] = frozenset(get_args(ActionKind))
BLACKHOLE_KINDS: frozenset[ActionKind] = frozenset({"submit", "reject", "archive"})
GROOM_KINDS: frozenset[ActionKind] = frozenset({"cancel", "clean"})
DOWNLOAD_KINDS: frozenset[ActionKind] = frozenset({"download", "adopt", "place", "tidy"})


def local_now() -> datetime:
    """The wall clock in local time (windows are local): the run's clock unless a test or
    the demo injects another. (Blackhole file ages are judged by the OS clock, as their
    modification times are.)"""
    return datetime.now(UTC).astimezone()


@dataclass(frozen=True, slots=True)
class Request:
    """Which command runs: its name and which part of the plan it runs."""

    command: str
    kinds: frozenset[ActionKind] = ALL_KINDS
    dry_run: bool = False
    force: bool = False
    limit_downloads: int | None = None
    #: a blackhole pass beside a running sync (the watcher's): it takes a lock and an
    #: owner id of its own instead of the run lock, which the sync holds for hours
    beside_sync: bool = False

    @property
    def needs_files(self) -> bool:
        return bool(self.kinds - BLACKHOLE_KINDS)

    def lock_path(self, journal: Journal) -> Path:
        """The lock this request's run holds: the journal's run lock, or the passes' own."""
        lock = journal.lock_path
        return lock.with_name(f"{lock.stem}.blackhole{lock.suffix}") if self.beside_sync else lock

    @property
    def owner(self) -> str:
        """Who this run is, for claims (a pass beside a sync of this process is another)."""
        return process_owner() + (":blackhole" if self.beside_sync else "")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one run planned and did, and the exit code it earns."""

    plan: Plan
    report: RunReport | None
    exit_code: ExitCode
    violations: tuple[str, ...] = ()


@dataclass
class Runtime:
    """Collaborators that a run needs; tests and the demo may pass their own clock."""

    settings: Settings
    clock: Callable[[], datetime] = local_now
    stop_requested: Callable[[], bool] = lambda: False
    progress: Progress | None = None
    #: told of every snapshot observed, and whether it lists the files (``serve``'s cache)
    on_snapshot: Callable[[Snapshot, bool], None] | None = None


def run_once(runtime: Runtime, request: Request) -> Outcome:
    """Given the runtime and a request, observe, plan, and (unless dry) execute once."""
    settings = runtime.settings
    with ExitStack() as stack:
        if request.dry_run:
            # A dry run changes nothing, so creates no journal: a missing one knows nothing.
            journal = stack.enter_context(_existing_journal(settings))
        else:
            journal = stack.enter_context(_open_journal(settings))
            stack.enter_context(RunLock(request.lock_path(journal)))
            if not request.beside_sync:
                _adopt_legacy_staging(settings, journal)
        client = stack.enter_context(open_client(settings))
        facts = journal.facts() if journal is not None else JournalFacts()
        snapshot = _observe(runtime, request, client, facts)
        if runtime.on_snapshot is not None:
            runtime.on_snapshot(snapshot, request.needs_files)
        plan = reconcile(snapshot, settings.policy, runtime.clock().astimezone(UTC))
        plan = plan.only(request.kinds, request.limit_downloads)
        violations = tuple(safety_violations(plan, snapshot, settings.policy))
        if violations and not request.force:
            if request.dry_run:
                return Outcome(plan, None, ExitCode.SAFETY_REFUSED, violations)
            raise _refusal(violations)
        if request.dry_run or (request.beside_sync and not plan.actions):
            # a watcher's pass with nothing to submit leaves no run in the journal
            return Outcome(plan, None, ExitCode.OK, violations)
        assert journal is not None  # only a dry run goes without
        report = _execute(runtime, request, plan, client, journal)
        return Outcome(plan, report, report.exit_code, violations)
    raise AssertionError("unreachable")


def _adopt_legacy_staging(settings: Settings, journal: Journal) -> None:
    """Hand files that an earlier version left in staging's ``items/`` back to the engine
    (as verified, not placed), so they are placed whole and never stranded."""
    if not (settings.staging_dir / LEGACY_ITEMS_DIR).is_dir():
        return
    verified = {
        record.relative_path: file_id
        for file_id, record in journal.facts().downloads.items()
        if record.is_verified and record.relative_path
    }
    moved = adopt_legacy_items(settings.staging_dir, verified)
    journal.forget_placement(moved)
    if moved:
        log.info("took over %d verified files an earlier version left in staging", len(moved))


@contextmanager
def _open_journal(settings: Settings) -> Iterator[Journal]:
    journal = Journal.open(settings.journal_url)
    try:
        yield journal
    finally:
        journal.close()


@contextmanager
def _existing_journal(settings: Settings) -> Iterator[Journal | None]:
    journal = Journal.open_existing(settings.journal_url)
    try:
        yield journal
    finally:
        if journal is not None:
            journal.close()


def open_client(settings: Settings) -> PutioClient:
    """Given the settings, return a put.io client (a context manager that closes it);
    raise ConfigError if no token is configured."""
    if settings.token is None:
        raise ConfigError(
            "no put.io token is configured",
            "set PUTIO_TOKEN, or putio.token_file / putio.token in the config file",
        )
    token = settings.token.reveal()
    return PutioClient(token, settings.api_url, settings.upload_url, timeout=settings.timeout)


def places(settings: Settings) -> Places:
    """Given the settings, return the local folders a run works in."""
    return Places(settings.blackhole_dir, settings.download_dir, settings.staging_dir)


def _observe(
    runtime: Runtime, request: Request, client: PutioClient, facts: JournalFacts
) -> Snapshot:
    return observe(
        client,
        facts,
        places(runtime.settings),
        remote_root_id=runtime.settings.policy.remote_root_id,
        now_epoch=time.time(),
        want_blackhole=bool(request.kinds & BLACKHOLE_KINDS),
        want_files=request.needs_files,
    )


def _execute(
    runtime: Runtime, request: Request, plan: Plan, client: PutioClient, journal: Journal
) -> RunReport:
    settings = runtime.settings
    executor = Executor(
        client,
        _fetcher_factory(settings, client, runtime.clock),
        journal,
        places(settings),
        Rules(
            schedule=settings.schedule,
            groom_outside_window=settings.groom_outside_window,
            save_parent_id=settings.save_parent_id,
            remote_root_id=settings.policy.remote_root_id,
            free_space_margin=settings.free_space_margin,
            parallel_files=settings.parallel_files,
            owner=request.owner,
        ),
        clock=runtime.clock,
        stop_requested=runtime.stop_requested,
        progress=runtime.progress,
    )
    now = runtime.clock().astimezone(UTC)
    _take_over_from_dead_runs(journal, now, request)
    command = f"{request.command} on {socket.gethostname()}"
    run_id = journal.start_run(command, now, owner=request.owner)
    exit_code = ExitCode.BUG
    try:
        report = executor.run(plan, run_id)
        exit_code = report.exit_code
        return report
    except MirrorError as error:
        exit_code = error.exit_code  # journal the code the process will exit with
        raise
    finally:
        summary = executor.report.summary()
        journal.finish_run(run_id, runtime.clock().astimezone(UTC), int(exit_code), summary)
        executor.close()


def _fetcher_factory(
    settings: Settings, client: PutioClient, clock: Callable[[], datetime]
) -> Callable[[], SegmentedDownloader]:
    """One fetcher per download thread; they share the client and one bandwidth limiter."""
    lock = threading.Lock()
    timetable = parse_timetable(settings.bwlimit)
    # "off" needs no meter at all: that saves two calls per chunk on the hot path.
    limiter = None if timetable.unlimited else RateLimiter(lambda: timetable.limit_at(clock()))
    refused: list[AuthError] = []

    def url_for(file_id: int) -> str:
        with lock:  # requests.Session is not promised to be thread-safe
            if refused:  # the token was refused once: never ask again in this run
                raise refused[0]
            try:
                return client.download_url(file_id, retry=False)
            except AuthError as error:
                refused.append(error)
                raise

    def new_fetcher() -> SegmentedDownloader:
        return SegmentedDownloader(
            url_for,
            connections=settings.connections,
            chunk_size=settings.chunk_size,
            read_timeout=settings.read_timeout,
            max_outage=settings.max_outage,
            limiter=limiter,
        )

    return new_fetcher


@functools.cache
def process_owner() -> str:
    """Who this process is, for claims: host and pid for people, random hex to be unique.

    Two hosts may share a hostname (containers, clones) and a pid; the random part keeps
    one from ever mistaking the other's claims for its own.
    """
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"


def _take_over_from_dead_runs(journal: Journal, now: datetime, request: Request) -> None:
    """Given a journal whose run lock we hold and the time, free the claims of the lock's
    previous run and mark the actions of dead runs interrupted.

    Which claims are ours to free must be proven, not guessed from a hostname (two hosts
    may share one, and a lock path): each run writes its owner id beside the run lock, and
    the run that wrote it is over, since we hold the lock now. Its claims go at once, so a
    run restarted after a crash need not wait out their leases. Every other host's dead
    claims run out on their lease (the database's clock); then their actions are marked
    too (see ``Journal.abandon_stale_actions``), and a live host's never are.
    """
    lock = request.lock_path(journal)
    record = lock.with_name(lock.name + ".owner")
    previous = _read_owner(record)
    if previous:
        freed = journal.release_all(previous)
        if freed:
            log.info("freed %d claims of the previous run, which ended without them", freed)
    stale = journal.abandon_stale_actions(now)
    if stale:
        log.info("marked %d actions of runs that stopped early as interrupted", stale)
    _write_owner(record, request.owner)


def _read_owner(record: Path) -> str:
    """Given the owner record beside the lock, return the owner it names, or "" if none."""
    try:
        return record.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""
    except OSError as error:
        log.warning("cannot read %s (%s): the previous run's claims run out", record, error)
        return ""


def _write_owner(record: Path, owner: str) -> None:
    """Write the owner beside the lock atomically: a torn name would free no claim."""
    temporary = record.with_name(record.name + ".tmp")
    try:
        temporary.write_text(owner + "\n", encoding="utf-8")
        temporary.replace(record)
    except OSError as error:
        log.warning(
            "cannot write %s (%s): a crash would leave claims to their lease", record, error
        )


def _refusal(violations: tuple[str, ...]) -> SafetyLimitError:
    return SafetyLimitError(
        "refusing to run this plan: " + "; ".join(violations),
        "look at it with --dry-run; if it is really what you want, run again with --force, "
        "or raise the limits in the config's safety section",
    )


def list_remote_files(settings: Settings) -> list[dict[str, object]]:
    """Given settings, return every remote item under the mirrored root with its paths."""
    from putio_mirror.core.naming import local_paths

    with open_client(settings) as client:
        items = client.list_all_files()
    by_id = {item.id: item for item in items}
    paths = local_paths(list(items), settings.policy.remote_root_id)
    listing: list[dict[str, object]] = []
    for item_id, local in sorted(paths.items(), key=lambda pair: pair[1]):
        item = by_id[item_id]
        listing.append(
            {
                "id": item.id,
                "path": "/".join(_remote_path(item_id, by_id, settings.policy.remote_root_id)),
                "local_path": local,
                "folder": item.is_folder,
                "size": item.size,
                "crc32": item.crc32,
            }
        )
    return listing


def _remote_path(item_id: int, by_id: dict[int, RemoteFile], root_id: int) -> list[str]:
    names: list[str] = []
    current = by_id.get(item_id)
    while current is not None and current.id != root_id:
        names.append(current.name)
        current = by_id.get(current.parent_id)
    return names[::-1]
