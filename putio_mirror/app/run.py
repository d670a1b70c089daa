"""The shell: build the collaborators from Settings and run the pipeline once.

observe → reconcile → (safety) → render or execute → journal. Every command
of the CLI calls ``run_once`` with a different ``Request``: ``sync``
takes every kind of action, ``transfers groom`` only cancel and clean,
``files download --limit 3`` only the first three downloads.
"""

from __future__ import annotations

import functools
import logging
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, get_args

from putio_mirror.app.links import LinkPrefetcher
from putio_mirror.app.observe import Observing, no_cycle_collection, observe, thawed_after
from putio_mirror.app.opening import (
    EarlyEnd,
    JournalPlace,
    adopt_legacy_staging,
    existing_facts,
    journal_place,
    open_journal,
)
from putio_mirror.app.owners import process_owner, take_over_from_dead_runs
from putio_mirror.app.report import RunReport
from putio_mirror.app.run_end import journal_end, journal_kept_end, pass_lock
from putio_mirror.app.sharing import other_folders
from putio_mirror.config.remote_folders import with_folders_found
from putio_mirror.config.settings import Settings
from putio_mirror.core.attention import (
    NEEDS_YOU,
    REMOTE_ROOT_HINT,
    Attention,
    failing_files,
    missing_blackhole,
    needs_attention,
    remote_root_problem,
)
from putio_mirror.core.errors import (
    AuthError,
    BlackholeMissingError,
    ConfigError,
    ExitCode,
    MirrorError,
    SafetyLimitError,
)
from putio_mirror.core.pacing import AUTO_MAX_FILES
from putio_mirror.core.plan import ActionKind, Download, Plan
from putio_mirror.core.reconcile import reconcile, safety_violations
from putio_mirror.core.render import with_window_note
from putio_mirror.core.state import JournalFacts, Snapshot
from putio_mirror.journal.where import plain_lock_path
from putio_mirror.local.lock import RunLock
from putio_mirror.local.paths import Places
from putio_mirror.notify.notifier import Notifier
from putio_mirror.notify.values import Outlets, TokenRefused
from putio_mirror.putio.client import PutioClient

if TYPE_CHECKING:  # imported where used: a dry run needs no executor (nor SQLAlchemy, if new)
    from putio_mirror.app.executor import Executor, Progress
    from putio_mirror.journal.store import Journal
    from putio_mirror.net.cutting import Cutter

log = logging.getLogger(__name__)

ALL_KINDS: frozenset[ActionKind] = frozenset(get_args(ActionKind))
BLACKHOLE_KINDS: frozenset[ActionKind] = frozenset({"submit", "record", "reject", "archive"})
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
        return self.lock_beside(journal.lock_path)

    def lock_beside(self, lock: Path) -> Path:
        """Given the journal's run lock, return the lock this request's run holds: that
        one, or the passes' own beside it."""
        return pass_lock(lock) if self.beside_sync else lock

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
    #: what needs a person: rejected blackhole files, transfers in ERROR, no blackhole
    attention: tuple[Attention, ...] = ()


@dataclass
class Runtime:
    """Collaborators that a run needs; tests and the demo may pass their own clock."""

    settings: Settings
    clock: Callable[[], datetime] = local_now
    stop_requested: Callable[[], bool] = lambda: False
    progress: Progress | None = None
    #: told the plan just before it is carried out (the CLI prints its summary first)
    on_plan: Callable[[Plan], None] = lambda plan: None
    #: told of every snapshot observed, and whether it lists the files (``serve``'s cache)
    on_snapshot: Callable[[Snapshot, bool], None] | None = None
    #: whether the process runs again after this run (``watch``, ``serve``): then what the
    #: run left for the cyclic garbage collector is collected as it ends
    runs_again: bool = False


def run_once(runtime: Runtime, request: Request) -> Outcome:
    """Given the runtime and a request, observe, plan, and (unless dry) execute once."""
    settings = runtime.settings
    no_blackhole = _missing_blackhole(settings, request)
    # before the run locks or writes anything: a journal two hosts take turns on is refused
    place = None if request.dry_run else journal_place(settings, runtime.clock())
    with ExitStack() as stack:
        stack.enter_context(thawed_after(collect=runtime.runs_again))
        # closed last: the events of the run (and of its end) are all handed on first
        outlets = Outlets() if request.dry_run else settings.outlets
        notifier = stack.enter_context(Notifier(outlets, runtime.stop_requested))
        stack.enter_context(_telling_refusals(notifier))
        with no_cycle_collection():
            journal, read_facts, early, client, observing = _started(stack, runtime, request, place)
            settings = with_folders_found(settings, client)
            runtime = replace(runtime, settings=settings)
            snapshot, plan = _observed_plan(runtime, request, observing, read_facts)
        violations = tuple(safety_violations(plan, snapshot, settings.policy))
        notice = (
            (place.attention if place is not None else ())
            + no_blackhole
            + needs_attention(plan, snapshot.transfers)
            + failing_files(snapshot)
            + _other_folders(journal, settings, request, snapshot)
        )
        if violations and not request.force:
            if request.dry_run:
                return Outcome(plan, None, ExitCode.SAFETY_REFUSED, violations, notice)
            raise _refusal(violations)
        if request.dry_run:
            plan = with_window_note(plan, settings.schedule, runtime.clock())
            return Outcome(plan, None, _exit_code(ExitCode.OK, notice), violations, notice)
        if request.beside_sync and not plan.actions:
            # a watcher's pass with nothing to submit leaves no run in the journal
            return Outcome(plan, None, _exit_code(ExitCode.OK, notice), violations, notice)
        assert journal is not None  # only a dry run goes without
        early.handed_over = True  # from here on, the run has a row of its own
        witnesses = functools.partial(_witnesses, snapshot, plan)
        report = _execute(runtime, request, plan, client, journal, notice, notifier, witnesses)
        return Outcome(plan, report, _exit_code(report.exit_code, notice), violations, notice)
    raise AssertionError("unreachable")


def _started(
    stack: ExitStack, runtime: Runtime, request: Request, place: JournalPlace | None
) -> tuple[Journal | None, Callable[[], JournalFacts], EarlyEnd, PutioClient, Observing]:
    """Given a run's stack, enter into it what the run needs: its lock, its journal (none
    for a dry run) and how to read its facts, the recording of an early end, a put.io
    client, and the observation under way.

    put.io is asked first and awaited last: under the run lock, taken before the journal
    is opened where its place is plain (beside a SQLite file), the listings pass while
    SQLAlchemy is imported and the journal opened. Without a token (``open_client``
    raises) or a plain lock, the journal is opened first as before. ``place`` is the
    journal's, checked (None for a dry run, which writes none)."""
    settings = runtime.settings
    early_lock = None if request.dry_run else _plain_lock_path(settings, request)
    if early_lock is not None:
        stack.enter_context(RunLock(early_lock))
    observing = None
    if settings.token is not None and (request.dry_run or early_lock is not None):
        client = stack.enter_context(open_client(settings, runtime.stop_requested))
        observing = stack.enter_context(_observing(settings, request, client))
    if place is None:
        journal, read_facts = None, stack.enter_context(existing_facts(settings))
    else:
        journal = stack.enter_context(open_journal(place))
        read_facts = journal.facts
        if early_lock is None:
            stack.enter_context(RunLock(request.lock_path(journal)))
        if not request.beside_sync:
            adopt_legacy_staging(settings, journal)
    early = stack.enter_context(
        EarlyEnd(
            runtime.clock,
            _run_name(request),
            None if request.dry_run or request.beside_sync else journal,
        )
    )
    if observing is None:
        client = stack.enter_context(open_client(settings, runtime.stop_requested))
        observing = stack.enter_context(_observing(settings, request, client))
    return journal, read_facts, early, client, observing


def _observing(settings: Settings, request: Request, client: PutioClient) -> Observing:
    """Given a run's client, scan the blackhole and ask put.io for its listings."""
    return Observing(
        client,
        places(settings),
        now_epoch=time.time(),
        want_blackhole=bool(request.kinds & BLACKHOLE_KINDS),
        want_files=request.needs_files,
    )


def _plain_lock_path(settings: Settings, request: Request) -> Path | None:
    """Given a writing run, return its lock if plain without opening the journal (a SQLite
    file's is beside it); None if only the open journal can tell (a server database's)."""
    lock = plain_lock_path(settings.journal_url)
    return None if lock is None else request.lock_beside(lock)


def _observed_plan(
    runtime: Runtime,
    request: Request,
    observing: Observing,
    read_facts: Callable[[], JournalFacts],
) -> tuple[Snapshot, Plan]:
    """Given the collaborators, return the world as it is and the plan the request asks
    for; raise ConfigError if the folder to mirror is not in put.io's tree."""
    settings = runtime.settings
    root_id = settings.policy.remote_root_id
    snapshot = observe(observing, read_facts, places(settings), remote_root_id=root_id)
    if request.needs_files and (wrong := remote_root_problem(snapshot.files, root_id)):
        raise ConfigError(wrong, REMOTE_ROOT_HINT)
    if runtime.on_snapshot is not None:
        runtime.on_snapshot(snapshot, request.needs_files)
    plan = reconcile(snapshot, settings.policy, runtime.clock().astimezone(UTC))
    return snapshot, plan.only(request.kinds, request.limit_downloads)


def _other_folders(
    journal: Journal | None, settings: Settings, request: Request, snapshot: Snapshot
) -> tuple[Attention, ...]:
    """Given a run's journal (None: a dry run, which writes none), say in it which download
    folder this host places into, if the run works on files; return what needs a person if
    another host sharing the journal places into another (``app/sharing``)."""
    if journal is None or not request.needs_files or request.beside_sync:
        return ()
    if snapshot.local.not_mounted is not None:
        return ()  # its mark would be made on the disk below, keeping the folder not empty
    return other_folders(journal, settings.download_dir)


def _run_name(request: Request) -> str:
    return f"{request.command} on {socket.gethostname()}"


def _exit_code(code: ExitCode, notice: tuple[Attention, ...]) -> ExitCode:
    """Given what the plan's execution earned and what needs a person, return the run's exit
    code: a run that otherwise succeeded but found something only a person can solve says
    so (failures, a closed window or a stop keep their own, more telling codes)."""
    return ExitCode.NEEDS_ATTENTION if code == ExitCode.OK and notice else code


def _missing_blackhole(settings: Settings, request: Request) -> tuple[Attention, ...]:
    """Given a run that scans the blackhole, say if the folder is missing: an error for a
    command that does nothing else (exit 2), a line of the output for a sync."""
    folder = settings.blackhole_dir
    scans = settings.policy.submit_blackhole and request.kinds & BLACKHOLE_KINDS
    if not scans or folder.is_dir():
        return ()
    said = missing_blackhole(str(folder))
    if request.needs_files:
        return (said,)
    raise BlackholeMissingError(said.message.replace(": nothing was submitted", ""), said.hint)


@contextmanager
def _telling_refusals(notifier: Notifier) -> Iterator[None]:
    """Within this block, a refused token (which ends the run) is told to the notifier:
    every later run will end the same way until a person acts."""
    try:
        yield
    except AuthError as error:
        notifier.tell(TokenRefused(error.message, error.hint))
        raise


def open_client(settings: Settings, stopping: Callable[[], bool] | None = None) -> PutioClient:
    """Given the settings (and how a run is told to stop), return a put.io client (a
    context manager that closes it; a retry's pause ends at a stop, ``CallStopped``);
    raise ConfigError if no token is configured."""
    if settings.token is None:
        raise ConfigError(
            "no put.io token is configured",
            "set PUTIO_TOKEN, or putio.token_file / putio.token in the config file",
        )
    token = settings.token.reveal()
    return PutioClient(
        token, settings.api_url, settings.upload_url, timeout=settings.timeout, stopping=stopping
    )


def places(settings: Settings) -> Places:
    """Given the settings, return the local folders a run works in. Staging is named by
    where it leads if the config names a link to it: only what is inside it must be no
    link (``fetch/partfile``, ``local/staging``)."""
    return Places(
        settings.blackhole_dir,
        settings.download_dir,
        settings.staging_dir.resolve(),
        settings.ownership,
    )


def _execute(
    runtime: Runtime,
    request: Request,
    plan: Plan,
    client: PutioClient,
    journal: Journal,
    notice: tuple[Attention, ...],
    notifier: Notifier,
    witnesses: Callable[[], Iterator[int]],
) -> RunReport:
    from putio_mirror.app.fetchers import cut_links
    from putio_mirror.net.cutting import Cutter

    settings = runtime.settings
    downloads = [action.file_id for action in plan if isinstance(action, Download)]
    # the run's reads in flight (not at a chunk) and its links asked for, ended when its
    # downloads stop
    cutter = Cutter()
    # Asked for ahead by twice as many files as download at once, on as many threads as
    # download: links arrive as fast as files finish (fewer threads set the pace at 50 ms).
    # Asked for first: the first files' links come while the executor is built and the
    # run journaled (a link is only read; a file's claim is still taken before its bytes).
    at_once = settings.parallel_files or AUTO_MAX_FILES
    links = LinkPrefetcher(cut_links(client, cutter), downloads, ahead=2 * at_once, workers=at_once)
    try:
        links.ask_first(at_once)
        runtime.on_plan(plan)
        return _executed(
            runtime, request, plan, client, journal, notice, notifier, links, witnesses, cutter
        )
    finally:
        links.close()


def _executed(
    runtime: Runtime,
    request: Request,
    plan: Plan,
    client: PutioClient,
    journal: Journal,
    notice: tuple[Attention, ...],
    notifier: Notifier,
    links: LinkPrefetcher,
    witnesses: Callable[[], Iterator[int]],
    cutter: Cutter,
) -> RunReport:
    from putio_mirror.app.executor import Executor, Rules
    from putio_mirror.app.fetchers import fetcher_factory

    settings = runtime.settings
    executor = Executor(
        client,
        fetcher_factory(settings, client, runtime.clock, links.url_for, witnesses, cutter),
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
        tell=notifier.tell,
        cutter=cutter,
    )
    try:
        return _journaled(runtime, request, plan, journal, notice, executor)
    finally:
        executor.close()  # frees too what the run took over and never came to


def _journaled(
    runtime: Runtime,
    request: Request,
    plan: Plan,
    journal: Journal,
    notice: tuple[Attention, ...],
    executor: Executor,
) -> RunReport:
    """Given a run's plan and executor, take over what a dead run of ours left, journal
    the run's start, carry out the plan and journal the run's end; return its report."""
    from putio_mirror.journal.keeper import boot_clock

    now = runtime.clock().astimezone(UTC)
    journal_kept_end(journal, request.lock_path(journal))
    # what a dead run of ours left under its claims, this plan takes up (a file it placed
    # but never journaled is adopted here, not fetched again by another host)
    asked, wanted = boot_clock(), {action.key for action in plan}
    lock = request.lock_path(journal)
    taken = take_over_from_dead_runs(
        journal, now, lock, request.owner, wanted=wanted, lease=executor.lease
    )
    executor.inherit(taken, asked)
    run_id = journal.start_run(_run_name(request), now, owner=request.owner)
    if notice:  # what only a person can solve, for ``status`` to say until a run finds it gone
        journal.note_actions(run_id, NEEDS_YOU, [(item.message, item.hint) for item in notice], now)
    code = ExitCode.BUG
    stopped: MirrorError | None = None
    try:
        report = executor.run(plan, run_id)
        code = _exit_code(report.exit_code, notice)
        return report
    except MirrorError as error:
        code, stopped = error.exit_code, error  # journal the code the process will exit with
        raise
    finally:
        ended = runtime.clock().astimezone(UTC)
        journal_end(
            journal, (lock, request.owner), run_id, ended, int(code), executor.report, stopped
        )


def _witnesses(snapshot: Snapshot, plan: Plan) -> Iterator[int]:
    """Given the run's snapshot and plan, yield put.io files this run does not download
    whose first byte tells whether the nodes work: those whose bytes came before first."""
    downloading = {action.file_id for action in plan if isinstance(action, Download)}
    others = [f.id for f in snapshot.files if f.size and not f.is_folder]
    others = [file_id for file_id in others if file_id not in downloading]
    records = snapshot.journal.downloads
    verified = {file_id for file_id, record in records.items() if record.verified_at}
    yield from (file_id for file_id in others if file_id in verified)
    yield from others


def _refusal(violations: tuple[str, ...]) -> SafetyLimitError:
    return SafetyLimitError(
        "refusing to run this plan: " + "; ".join(violations),
        "look at it with --dry-run; if it is really what you want, run again with --force, "
        "or raise the limits in the config's safety section",
    )
