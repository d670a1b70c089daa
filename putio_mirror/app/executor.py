"""The executor: perform a Plan's actions in order, inside the download window, journaling each.

Before every action, and between download chunks, it asks whether it may go
on (the window is open, no stop was requested). When the window closes it
stops at a chunk boundary; the ``.part`` file and the journal keep the offset
for the next run. An action whose ``requires`` did not succeed in this run is
skipped. Per-item errors are recorded and the run goes on; a transient
outage that outlasted the retries ends the run, put.io's nodes down only its
downloads; a fatal error is journaled and raised. Consecutive downloads run
``parallel_files`` at a time, or as many as put.io's distance calls for (``crowding.py``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from putio_mirror.app.claimahead import ClaimAhead
from putio_mirror.app.crowding import Gate
from putio_mirror.app.downloading import (
    AnyFetcher,
    DownloadSteps,
    NoProgress,
    Paused,
    Progress,
    Verified,
    Withdrawn,
)
from putio_mirror.app.endings import (
    ENDS_WAIT_FOR_BYTES,
    Ending,
    EndingsDue,
    journal_endings,
    withdraw_claimed,
)
from putio_mirror.app.remote_steps import file_away_step, groom, submit
from putio_mirror.app.report import Failure, RunReport
from putio_mirror.app.requested import submit_desired
from putio_mirror.app.rules import RemoteWriter, Rules
from putio_mirror.core.attention import IN_THE_WAY, NEEDS_YOU, NO_ROOM
from putio_mirror.core.errors import (
    FatalError,
    InTheWay,
    ItemError,
    JournalError,
    NoSpaceError,
    NotDurableError,
    ReadOnlyDiskError,
    TransientError,
    read_only_disk,
)
from putio_mirror.core.mirroring import in_the_way
from putio_mirror.core.pacing import Crowd
from putio_mirror.core.plan import (
    WINDOWED_KINDS,
    Action,
    AdoptLocal,
    ArchiveDuplicate,
    CancelTransfer,
    CleanTransfers,
    DeleteRemote,
    Download,
    PlaceItem,
    Plan,
    RecordTransfer,
    RejectBlackholeFile,
    SubmitDesired,
    SubmitMagnet,
    SubmitTorrent,
    TidyStaging,
)
from putio_mirror.journal.keeper import ClaimKeeper, boot_clock
from putio_mirror.journal.starting import Start
from putio_mirror.journal.store import Journal
from putio_mirror.local.paths import Places
from putio_mirror.net.cutting import Cover, Cutter
from putio_mirror.notify.values import DiskFull, Event, ItemFailed
from putio_mirror.putio.client import CallStopped

log = logging.getLogger(__name__)
#: how often the run looks whether its downloads are to stop, and how long after that their
#: reads still waiting are cut short (``Executor._cut_at_stop``)
_LOOK_EVERY_SECONDS = 0.25
_CUT_AFTER_SECONDS = 1.0
# a failure the run's summary tells on stderr too: cli/logs.py keeps it off the console
_SUMMARIZED = {"summarized": True}

# Progress is the executor's collaborator that the shell passes in; it lives with the steps.
__all__ = ["Executor", "Failure", "Progress", "RemoteWriter", "Rules", "RunReport"]


def _tag(error: Exception) -> str | None:
    """Given why an action failed, return its journal tag if only a person can solve it:
    a full disk (the RPC door tells it until a later try of the file goes on), a local
    file not ours in the way, found only by placing (each noted too: ``_note_in_the_way``)."""
    if isinstance(error, NoSpaceError):
        return NO_ROOM
    if isinstance(error, InTheWay):
        return IN_THE_WAY
    return None


class Executor:
    """Performs plans; one instance per run."""

    def __init__(
        self,
        remote: RemoteWriter,
        new_fetcher: Callable[[], AnyFetcher],
        journal: Journal,
        places: Places,
        rules: Rules,
        *,
        clock: Callable[[], datetime],
        stop_requested: Callable[[], bool] = lambda: False,
        progress: Progress | None = None,
        tell: Callable[[Event], None] = lambda event: None,
        cutter: Cutter | None = None,
    ) -> None:
        self._remote = remote
        # ends the run's windowed work in flight (``net/cutting.Cutter``): the fetchers'
        # reads, their links asked for, grooming that waits for the window
        self._cutter = cutter or Cutter()
        self._tell = tell  # the Notifier's: items placed, files failing, a full disk
        self._journal = journal
        self._places = places
        self._rules = rules
        self._clock = clock
        self._stop_requested = stop_requested
        self._downloads = DownloadSteps(
            new_fetcher,
            journal,
            places,
            now=self._now,
            progress=progress or NoProgress(),
            free_space_margin=rules.free_space_margin,
        )
        self._report = RunReport()
        self._run_id = 0  # the run's, while one runs: what it notes is journaled under it
        self._succeeded: set[str] = set()
        self._lock = threading.Lock()
        self._halted = threading.Event()
        self._claims = ClaimKeeper(journal, rules.owner, rules.lease)

    @property
    def report(self) -> RunReport:
        """The report of the current or last run (complete even after an exception)."""
        return self._report

    @property
    def lease(self) -> timedelta:
        """How long the run's claims hold without renewal."""
        return self._claims.lease

    def inherit(self, keys: Collection[str], asked: float) -> None:
        """Given claims taken over from this host's dead run for actions of the plan to
        come (``owners.take_over_from_dead_runs``), and when that was sent (``boot_clock``),
        keep them alive until their actions claim them; those never claimed are freed by
        ``close``."""
        self._claims.inherit(keys, asked)

    def close(self) -> None:
        try:
            self._claims.release_inherited()
        except JournalError as error:
            log.warning("could not free claims this run took over: %s", error.message)
        finally:
            self._claims.close()
            self._downloads.close()

    def run(self, plan: Plan, run_id: int) -> RunReport:
        """Given a plan and the journal's run id, perform it and return what happened."""
        self._report, self._succeeded, self._run_id = RunReport(), set(), run_id
        self._halted.clear()
        actions = list(plan)
        downloads = [action for action in actions if isinstance(action, Download)]
        self._downloads.expect(
            sum(action.size for action in downloads),
            sum(action.resume_from for action in downloads),
        )
        over = threading.Event()
        if any(self._rules.windowed(action.kind) for action in actions):
            watch = threading.Thread(target=self._cut_at_stop, args=(over,), name="stop-watch")
            watch.daemon = True
            watch.start()
        try:
            self._perform_all(run_id, plan, actions)
        finally:
            over.set()
        self._report.settle(self._downloads.settle())
        return self._report

    def _perform_all(self, run_id: int, plan: Plan, actions: list[Action]) -> None:
        index = 0
        while index < len(actions) and not self._should_halt():
            # Two or more downloads in a row go through one queue even one at a time: it
            # claims them and journals their ends a few per transaction (one by one, two
            # transactions a file doubled the CPU of 3,000 small files).
            batch = plan.downloads_from(index)
            if len(batch) > 1:
                self._run_parallel(run_id, batch, self._rules.crowd(batch))
                index += len(batch)
            else:
                self._step(run_id, actions[index])
                index += 1

    def _cut_at_stop(self, over: threading.Event) -> None:
        """Until the run is ``over``: once its windowed work is to stop (a stop asked, the
        window closed, a fatal error), give the downloads' reads a moment to end at a chunk
        boundary, then cut those still waiting short, and the put.io calls of that work (a
        link, grooming that waits for the window: ``_groom``). A read on a node or an API
        that went silent would wait out its timeout (a minute, half a minute), and a signal
        interrupts only the main thread's read, which Python then takes up again; the
        window's end and SIGTERM are promised within seconds. Looked at four times a
        second, here: no cost to a chunk."""
        while not over.wait(_LOOK_EVERY_SECONDS):
            if self._windowed_stopping():
                if not over.wait(_CUT_AFTER_SECONDS):
                    self._cutter.cut()
                return

    def _windowed_stopping(self) -> bool:
        """Whether the run's windowed work is to stop: a stop asked, a fatal error, the
        window closed (the downloads' window: the one grooming waits for, if it does)."""
        return self._stopping() or self._window_closed_for("download")

    def _stopping(self) -> bool:
        """Whether the run is to stop: a stop asked, or a fatal error."""
        return self._stop_requested() or self._halted.is_set()

    def _window_closed_for(self, kind: str) -> bool:
        """Whether work of this kind waits for the window, which is closed now."""
        return self._rules.windowed(kind) and not self._window_open()

    def _window_open(self) -> bool:
        """Whether the download window is open now; the clock is not read if there is no
        window (asked between every chunk of every file: issue 14)."""
        schedule = self._rules.schedule
        return schedule.always_open or schedule.is_open(self._clock())

    def _should_halt(self) -> bool:
        if self._stop_requested():
            self._report.interrupted = True
        return self._report.interrupted or self._report.aborted is not None

    def _run_parallel(self, run_id: int, batch: list[Download], crowd: Crowd) -> None:
        """Given consecutive downloads, perform them as many at a time as ``crowd``
        allows, drawn from one queue that claims them a few at a time
        (``claimahead.py``)."""
        queue = ClaimAhead(
            batch,
            take=lambda downloads: self._take(run_id, downloads),
            may_start=self._may_go_on,
            withdraw=lambda claimed: withdraw_claimed(self._journal, self._claims, claimed),
        )
        gate = Gate(crowd)
        try:
            with ThreadPoolExecutor(crowd.most, thread_name_prefix="download") as pool:
                due = EndingsDue()
                futures = [pool.submit(self._drain, queue, due, gate) for _ in range(crowd.most)]
                try:
                    for future in futures:
                        future.result()
                except BaseException:
                    self._halted.set()  # the others stop at their next chunk
                    raise
        finally:
            for action in queue.close():  # counted as the one-by-one steps count them
                if not (self._halted.is_set() or self._should_halt()):
                    self._may_start(action)

    def _may_go_on(self, action: Download) -> bool:
        """Say whether the next download may start (counting nothing: see _run_parallel)."""
        halted = self._halted.is_set() or self._should_halt()
        return not halted and self._may_start(action, count=False)

    def _drain(self, queue: ClaimAhead, due: EndingsDue, gate: Gate) -> None:
        """Perform downloads drawn from the queue, a turn at the gate each (the place kept
        from one to the next: ``crowding.py``); journal the ends of verified ones a few at
        a time, with the other workers' (before a large one, whose ending would wait for
        its bytes)."""
        ended: list[Ending] = []
        try:
            with gate.seat() as seat:
                while True:
                    with seat.turn() as turn:
                        claimed = queue.next()
                        if claimed is None:
                            return
                        action, action_id = claimed
                        if action.size - action.resume_from > ENDS_WAIT_FOR_BYTES:
                            self._end_all(due.take())
                        self._perform(action_id, action, ended)
                        turn.counts()
                    self._end_all(due.add(ended))
        finally:
            self._end_all(due.take())

    def _take(self, run_id: int, downloads: list[Download]) -> list[tuple[Download, int]]:
        """Given the next downloads, claim them, check them and journal their start in one
        transaction (shared with other workers' journal work); return those now ours, with
        their ids. Safe to repeat (``Journal.together``): claiming what we hold extends it."""
        with self._lock:
            waits = {a.key: [k for k in a.requires if k not in self._succeeded] for a in downloads}
        for action in (a for a in downloads if waits[a.key]):
            self._skip(run_id, action, f"waits for {', '.join(waits[action.key])}")
        ready = [action for action in downloads if not waits[action.key]]
        starts = [Start(a.kind, a.key, a.target, None if a.again else a.file_id) for a in ready]

        def start() -> list[int | None]:
            claims, now, asked = self._claims, self._now(), boot_clock()
            ids = self._journal.start_claimed(run_id, starts, claims.owner, claims.lease, now)
            kept = (a.key for a, id_ in zip(ready, ids, strict=True) if id_ is not None)
            claims.keep(kept, asked)
            return ids

        ids = self._journal.together(start)
        with self._lock:
            self._report.elsewhere += ids.count(None)
        return [(action, id_) for action, id_ in zip(ready, ids, strict=True) if id_ is not None]

    def _step(self, run_id: int, action: Action) -> None:
        if self._halted.is_set() or self._should_halt() or not self._may_start(action):
            return
        with self._lock:
            missing = [key for key in action.requires if key not in self._succeeded]
        if missing:
            self._skip(run_id, action, f"waits for {', '.join(missing)}")
            return
        action_id = self._journal.together(lambda: self._start(run_id, action))
        if action_id is None:
            with self._lock:
                self._report.elsewhere += 1
            return
        self._perform(action_id, action)

    def _start(self, run_id: int, action: Action) -> int | None:
        """Claim the action, check it and journal its start, in one transaction (shared
        with other workers' journal work); return its id, None if another host holds or
        did it. Safe to repeat (``Journal.together``): claiming what we hold extends it."""
        if not self._claim(action):
            return None
        return self._journal.action_started(
            run_id, action.kind, action.key, action.target, self._now()
        )

    def _claim(self, action: Action) -> bool:
        """Claim the action (kept alive until released); False if another host holds or did it."""
        if not self._claims.claim(action.key):
            return False
        if self._done_elsewhere(action):
            self._claims.release(action.key)  # finished elsewhere since we planned
            return False
        return True

    def _done_elsewhere(self, action: Action) -> bool:
        """Given an action just claimed, say whether another run did it after this one
        planned (its claim is released once done): a torrent submitted twice would be two
        transfers on put.io."""
        if isinstance(action, Download):
            return not action.again and self._journal.is_verified(action.file_id)
        if isinstance(action, PlaceItem):
            # RPC clients removed its files since we planned, on another host sharing the
            # journal (this host's own removals stop its sync): nothing to place
            file_ids = [file_id for file_id, _ in action.files]
            return self._downloads.removed.among(file_ids) == frozenset(file_ids)
        if isinstance(action, SubmitDesired | SubmitTorrent) and action.replaces is not None:
            # the magnet's transfer is no longer the one known: replaced (or being) already
            return self._journal.transfer_of(action.info_hash) != action.replaces
        if isinstance(action, SubmitTorrent | SubmitMagnet | SubmitDesired):
            return self._journal.transfer_of(action.info_hash) is not None
        return False

    def _continuing(self, action: Download) -> Callable[[], bool]:
        """Between chunks: the window is open, no stop was asked, and our claim still holds."""

        key = action.key

        def may_continue() -> bool:
            if self._stopping():
                return False
            # The claim keeper renews in the background; here we only ask what it found.
            return self._window_open() and self._claims.holds(key)

        return may_continue

    def _may_start(self, action: Action, *, count: bool = True) -> bool:
        """Say whether the action may start now (window, earlier pause); ``count``: if not,
        count it deferred."""
        if self._report.downloads_stopped and isinstance(action, Download):
            return False
        outside = not self._window_open()
        windowed = self._rules.windowed(action.kind)
        with self._lock:
            paused_earlier = self._report.window_closed and action.kind in WINDOWED_KINDS
            if (outside and windowed) or paused_earlier:
                if not count:
                    return False
                self._report.deferred += 1
                self._report.window_closed = True
                return False
        return True

    def _now(self) -> datetime:
        return self._clock().astimezone(UTC)

    def _skip(self, run_id: int, action: Action, reason: str) -> None:
        action_id = self._journal.action_started(
            run_id, action.kind, action.key, action.target, self._now()
        )
        self._journal.action_finished(action_id, "skipped", self._now(), detail=reason)
        with self._lock:
            self._report.skipped.append((action.key, reason))

    def _perform(self, action_id: int, action: Action, ended: list[Ending] | None = None) -> bool:
        """Perform one claimed and journaled action; journal how it ended and release its
        claim (``_end``, on every path); return True if it succeeded. Given ``ended``, a
        verified download's ending is put there instead, for ``_end_all`` to journal with
        the next few (its bytes are durable already: see ``Verified``)."""
        try:
            done = self._dispatch(action)
        except CallStopped as stopped:  # a stop, or the window's end (``_groom``)
            self._end(action_id, action, "paused", detail=stopped.message)
            ended_by_window = self._cut_by_window(action)
            with self._lock:
                if ended_by_window:  # as a download paused: the next window does it
                    self._report.window_closed = True
                else:
                    self._report.interrupted = True
            return False
        except Paused as paused:
            taken = not self._claims.holds(action.key)  # asked before _end lets go of it
            self._end(action_id, action, "paused", detail=str(paused))
            with self._lock:
                if self._stop_requested():
                    self._report.interrupted = True
                elif taken or isinstance(paused, Withdrawn):
                    # another host took it over, or its client removed it: not our window
                    self._report.elsewhere += 1
                elif not self._halted.is_set():
                    self._report.window_closed = True
            return False
        except (ItemError, TransientError, FatalError, OSError) as error:
            error = read_only_disk(error) or error  # one word for the disk, not each file
            if isinstance(error, FatalError):
                self._halted.set()  # the other workers stop at their next chunk
            self._fail(action_id, action, error)
            if isinstance(error, FatalError):
                raise
            return False
        except BaseException as error:
            self._end(action_id, action, "failed", error=repr(error))
            raise
        if isinstance(done, Verified):
            ending = Ending(action_id, action, "done", (done.record, done.first), done.detail)
            if ended is not None:
                ended.append(ending)
                return True
            self._end_all([ending])
        else:
            self._end(action_id, action, "done", detail=done)
        return True

    def _cut_by_window(self, action: Action) -> bool:
        """Given an action whose put.io call was cut short, say whether the window's end
        cut it (it waits for the window, which closed, and no stop was asked), not a stop."""
        return not self._stopping() and self._window_closed_for(action.kind)

    def _succeeded_with(self, action: Action) -> None:
        """Given an action whose success the journal holds, report it."""
        with self._lock:
            self._succeeded.add(action.key)
            self._report.add_done(action)
        if (placed := self._downloads.placed(action)) is not None:
            self._tell(placed)

    def _fail(self, action_id: int, action: Action, error: Exception) -> None:
        message = getattr(error, "message", None) or str(error)
        hint = getattr(error, "hint", "")
        # what the run tells once for all its files is no warning for each
        bucket = self._report.failures_for(error)
        told_once = bucket is not self._report.failed and bucket is not self._report.in_the_way
        (log.debug if told_once else log.warning)(
            "%s (%s) failed: %s", action.key, action.target, message, extra=_SUMMARIZED
        )
        self._end(action_id, action, "failed", error=message, detail=_tag(error))
        if isinstance(error, InTheWay):
            self._note_in_the_way(error.paths)
        with self._lock:
            self._report.add_failure(Failure(action.key, action.target, message, hint), error)
            if isinstance(error, InTheWay) and isinstance(action, Download):
                self._report.add_waiting(action)  # verified: it waits in staging
        if isinstance(error, NoSpaceError):
            self._tell(DiskFull(action.target, message, hint))
        elif isinstance(error, ReadOnlyDiskError):
            if self._report.disk_refused[0].key == action.key:  # told once
                self._tell(ItemFailed(action.target, message, hint))
        elif isinstance(action, Download) and isinstance(error, ItemError):
            self._tell(ItemFailed(action.target, message, hint))  # journaled for this file

    def _note_in_the_way(self, paths: tuple[str, ...]) -> None:
        """Given files that a local file not ours kept from their place, note each as the
        plan notes one it sees (``mirroring.in_the_way``), under the same key: ``status``
        says it, and the RPC door tells it to Sonarr, until the file is placed (a file
        verified waits in staging: no later plan notes it, only its placement fails)."""
        notes = [(note.message, note.hint) for note in map(in_the_way, paths)]
        self._journal.note_actions(self._run_id, NEEDS_YOU, notes, self._now())

    def _end(self, action_id: int, action: Action, status: str, **outcome: str | None) -> None:
        self._end_all([Ending(action_id, action, status, None, **outcome)])

    def _end_all(self, endings: list[Ending]) -> None:
        """Given actions that ended, journal them and free their claims in one transaction
        (``journal_endings``), then report those done, not before; empty ``endings``."""
        taken, endings[:] = list(endings), []
        try:
            if taken:
                journal_endings(self._journal, self._claims, taken, self._now)
        except NotDurableError as error:  # their moves into verified/ may not last
            for ending in taken:
                self._fail(ending.action_id, ending.action, error)
            return
        for ending in taken:
            if ending.status == "done":
                self._succeeded_with(ending.action)

    def _dispatch(self, action: Action) -> Verified | str | None:
        if isinstance(action, Download):
            return self._downloads.download(action, self._continuing(action), self._count)
        if isinstance(action, AdoptLocal):
            return self._downloads.adopt(action)
        if isinstance(action, PlaceItem):
            return self._downloads.place(action)
        if isinstance(action, TidyStaging):
            return self._downloads.tidy(action)
        if isinstance(action, SubmitTorrent | SubmitMagnet):
            blackhole, parent = self._places.blackhole, self._rules.save_parent_id
            return submit(action, self._remote, self._journal, blackhole, parent, self._now)
        if isinstance(action, SubmitDesired):
            blackhole = self._places.blackhole
            return submit_desired(
                self._remote, self._journal, action, self._rules, self._now, blackhole
            )
        if isinstance(action, RejectBlackholeFile | ArchiveDuplicate):
            return file_away_step(action, self._places.blackhole)
        if isinstance(action, RecordTransfer):
            self._journal.record_submission(
                action.info_hash, action.transfer_id, action.name, self._now()
            )
            return f"transfer {action.transfer_id}"
        return self._groom(action)

    def _groom(self, action: CancelTransfer | CleanTransfers | DeleteRemote) -> str | None:
        """Given a grooming action, ask put.io to do it; if it waits for the window, the
        call is cut short with the downloads' reads at the window's end (``CallStopped``):
        put.io silent would hold the run for the API's timeout past it, and the call would
        then be tried again outside the window."""
        if not self._rules.windowed(action.kind):
            return groom(self._remote, action)
        with Cover(self._cutter):
            return groom(self._remote, action)

    def _count(self, amount: int) -> None:
        with self._lock:
            self._report.bytes_downloaded += amount
