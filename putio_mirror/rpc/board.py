"""The last picture of put.io that the sync loop saw, kept for ``torrent-get``.

Polls never ask put.io: the watcher's syncs and passes hand every snapshot they
observe to ``Board.refresh``, which keeps the transfers by info-hash and, when the
snapshot lists the files, writes down in the journal where each RPC item is locally
(its path and files). ``torrent-get`` reads the journal and this board, nothing else.

It also keeps why an item waits where its own rows do not say: what the runs journaled
that only a person can solve (a local file not ours in the way of one of its files, seen
by a plan or met by placing it; a full disk that refused one: ``find_blocked``, read
again at each refresh), and put.io's
outage: the runs' looks failing (``look_failed``) while none was answered for
``STALE_POLLS`` polls. Sonarr shows either as the item's warning. The journal's runs
tell of an outage too (``journaled_outage``: the newest ones that heard nothing from
put.io, exit 8, read again at each refresh and failed look, and at the board's start):
so a ``serve`` restarted during an outage says so from its first poll, not only once its
own first look has spent the client's retries, minutes, and ten polls more.

It also notices an item put.io lost: submitted, not placed, and put.io shows neither its
transfer nor any file of it (the user deleted put.io's copy by hand, or cancelled the
transfer there). The client still wants it, so it is submitted again, as a torrent added
again after its removal is. Two looks in a row must agree, the first listing the files:
a pass may submit it while a sync's listing is under way, and only a listing begun after
the first look is sure to show a transfer made before it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from putio_mirror.app.opening import EARLY_END
from putio_mirror.core.attention import NEEDS_YOU, NO_ROOM, noted_key
from putio_mirror.core.desired import submitted_ids, transfers_by_hash
from putio_mirror.core.errors import ExitCode, MirrorError
from putio_mirror.core.mirroring import RemoteTree, in_the_way, index_tree
from putio_mirror.core.state import Desire, Policy, Snapshot, Transfer
from putio_mirror.journal.rows import FileProgress
from putio_mirror.journal.store import Journal, LastAction, RunRecord
from putio_mirror.rpc.fields import REMOVAL_COMMAND, Blocked, Outage, Troubles

log = logging.getLogger(__name__)

ItemFiles = tuple[tuple[int, str, int], ...]
#: how long the board's looks may go unanswered before its items say put.io is out: ten
#: polls (5 minutes at the default 30 s), past the client's own retries of one look
STALE_POLLS = 10
#: the newest runs read for put.io's outage at each refresh (by the runs' key: cheap): a
#: streak longer than this says it began no later than its oldest run read
RUNS_READ = 32
#: how runs that asked put.io ended when it answered (a refusal of the token included)
_ANSWERED = frozenset(
    {
        ExitCode.OK,
        ExitCode.ITEMS_FAILED,
        ExitCode.REMOTE_FATAL,
        ExitCode.SAFETY_REFUSED,
        ExitCode.WINDOW_CLOSED,
        ExitCode.NEEDS_ATTENTION,
    }
)
#: what a Sonarr user can do about a full disk
NO_ROOM_HINT = (
    "free some space on that disk (or lower download.free_space_margin_mb); the download "
    "goes on from where it stopped at the next try"
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Board:
    """Thread-safe: the sync thread refreshes it while request threads read it."""

    def __init__(
        self,
        journal: Journal,
        policy: Policy,
        sync_soon: Callable[[], None] = lambda: None,
        *,
        clock: Callable[[], datetime] = _utc_now,
        stale_after: float = 300.0,
    ) -> None:
        """``stale_after``: seconds without an answered look after which a failed look
        means put.io is out for the items waiting on it."""
        self._journal = journal
        self._policy = policy
        self._lock = threading.Lock()
        self._transfers: dict[str, Transfer] = {}
        self._refreshed = threading.Event()
        #: ask for a sync (a listing of put.io's files) to learn whether an item is lost
        self._sync_soon = sync_soon
        #: info-hash -> transfer id of the items the last look found lost
        self._suspects: dict[str, int] = {}
        #: never-located items whose transfer went, for which a sync was asked already
        self._asked: set[str] = set()
        self._clock = clock
        self._stale_after = timedelta(seconds=stale_after)
        self._started = clock()
        #: when put.io last answered a look of this board (None until one is)
        self._answered_at: datetime | None = None
        #: when a look last failed for put.io's trouble, and why
        self._failed: tuple[datetime, str] | None = None
        #: the outage the journal's runs tell of (read again at each refresh)
        self._journaled: Unanswered | None = None
        #: info-hash -> what the journal says blocks it (replaced whole at each refresh)
        self._blocked: Mapping[str, Blocked] = MappingProxyType({})
        self._outage: Outage | None = None
        self._read_runs()

    def refresh(self, snapshot: Snapshot, with_files: bool) -> None:
        """Given a snapshot a run observed and whether it lists put.io's files, keep its
        transfers and record where the RPC items are."""
        transfers = transfers_by_hash(snapshot.transfers, submitted_ids(snapshot.journal))
        with self._lock:
            self._transfers = transfers
            self._answered_at = self._clock()
        try:
            if with_files:
                self._locate(snapshot, transfers)
            self._find_lost(snapshot, transfers, with_files)
            self._blocked = MappingProxyType(find_blocked(self._journal))
        except MirrorError as error:  # the run that observed it must go on regardless
            log.warning("could not note where RPC items are: %s", error.message)
        self._read_runs()
        self._refreshed.set()

    def look_failed(self, error: MirrorError) -> None:
        """Given why a run could not look at put.io (an outage outlasting its retries),
        keep it: once no look has been answered for long, the waiting items tell it."""
        with self._lock:
            self._failed = (self._clock(), error.message)
        self._read_runs()

    def _read_runs(self) -> None:
        """Read again what the journal's newest runs say of put.io (one small query)."""
        try:
            journaled = journaled_outage(self._journal.recent_runs(RUNS_READ))
        except MirrorError as error:  # a busy journal: what was read last stands
            log.warning("could not read the runs in the journal: %s", error.message)
            return
        with self._lock:
            self._journaled = journaled

    def troubles(self, now: datetime) -> Troubles:
        """Given the time, return what holds items up beside their own journal rows: what
        blocks each (by info-hash), and put.io's outage if there is one (see ``outage``)."""
        return self._blocked, self.outage(now)

    def outage(self, now: datetime) -> Outage | None:
        """Given the time, return put.io's outage: no look answered for ``stale_after``
        and the last one failed (this board's, or a run's in the journal); None otherwise
        (a slow look is no outage). The same object while nothing changes, so
        ``torrent-get``'s kept rows stay kept. Memory only: no journal, no put.io."""
        with self._lock:
            answered_at, failed, journaled = self._answered_at, self._failed, self._journaled
        since = self._unanswered_since(answered_at, journaled)
        if journaled is not None and (failed is None or failed[0] < journaled.ended):
            failed = (journaled.ended, journaled.why)
        if failed is None or failed[0] < since or now - since < self._stale_after:
            return None
        outage = Outage(since, failed[1])
        if outage != self._outage:
            self._outage = outage
        return self._outage

    def _unanswered_since(
        self, answered_at: datetime | None, journaled: Unanswered | None
    ) -> datetime:
        """Given when this board's looks were last answered and the journal's outage,
        return since when put.io is known not to have answered: the last answer this board
        saw; before one, the journal's outage's start if it came before this board's own
        start, else that start."""
        if answered_at is not None:
            return answered_at
        if journaled is not None:
            return min(journaled.since, self._started)
        return self._started

    def transfer(self, info_hash: str) -> Transfer | None:
        with self._lock:
            return self._transfers.get(info_hash)

    def transfers(self) -> Mapping[str, Transfer]:
        """Return the transfers by info-hash as last refreshed (a refresh replaces the
        mapping, never changes it: a poll reads one consistent picture without the lock)."""
        with self._lock:
            return MappingProxyType(self._transfers)

    def wait_refreshed(self, timeout: float) -> bool:
        """Wait until the next refresh (tests and the benchmark); say whether it came."""
        self._refreshed.clear()
        return self._refreshed.wait(timeout)

    def _locate(self, snapshot: Snapshot, transfers: dict[str, Transfer]) -> None:
        desires = self._journal.desires.listing()  # fresher than the snapshot's facts
        if not desires:
            return
        # the paths the run planned with (an item kept where it was placed, renamed since)
        names = snapshot.names or None
        tree = index_tree(snapshot.files, self._policy, names, snapshot.journal.downloads)
        for info_hash, desire in desires.items():
            transfer = transfers.get(info_hash)
            if transfer is None or transfer.file_id is None or transfer.file_id not in tree.paths:
                continue
            found = item_of(tree, transfer.file_id)
            if found != (desire.item_path, desire.item_files):
                self._journal.desires.locate(info_hash, transfer.file_id, *found)

    def _find_lost(
        self, snapshot: Snapshot, transfers: Mapping[str, Transfer], with_files: bool
    ) -> None:
        """Submit again the items put.io lost at this look and the last (see above)."""
        missing = _without_transfer(self._journal, snapshot, transfers)
        if with_files:
            listed = {remote.id for remote in snapshot.files}
            lost = {
                info_hash: transfer_id
                for info_hash, (desire, transfer_id) in missing.items()
                if not any(file_id in listed for file_id, _, _ in desire.item_files)
            }
        else:  # a transfer listing alone confirms the suspects; files are not listed
            lost = {
                info_hash: transfer_id
                for info_hash, (_, transfer_id) in missing.items()
                if self._suspects.get(info_hash) == transfer_id
            }
            self._ask_for_files(missing)
        confirmed = [
            info_hash
            for info_hash, transfer_id in lost.items()
            if self._suspects.get(info_hash) == transfer_id
        ]
        for info_hash in confirmed:
            log.warning(
                "put.io has neither the transfer nor the files of RPC item %s any more: "
                "submitting it again",
                missing[info_hash][0].name,
            )
            self._journal.desires.bring_back(info_hash, (), resubmit=True)
            self._asked.discard(info_hash)
        self._suspects = {key: value for key, value in lost.items() if key not in confirmed}

    def _ask_for_files(self, missing: Mapping[str, tuple[Desire, int]]) -> None:
        """A transfer never located whose transfer went is not normal (a finished one is
        located before it is cleaned): ask once for a sync, whose listing tells."""
        unlocated = {
            info_hash for info_hash, (desire, _) in missing.items() if not desire.item_path
        }
        new = unlocated - self._asked - set(self._suspects)
        self._asked = (self._asked & unlocated) | new
        if new:
            self._sync_soon()


def _without_transfer(
    journal: Journal, snapshot: Snapshot, transfers: Mapping[str, Transfer]
) -> dict[str, tuple[Desire, int]]:
    """Return info-hash -> (desire, its transfer id) of the live items submitted as a
    transfer put.io does not list, not placed and neither paused nor failed, nor wholly
    left out by the filters (those have nothing to wait for)."""
    submitted = {
        info_hash: entry.transfer_id
        for info_hash, entry in snapshot.journal.submissions.items()
        if entry.transfer_id is not None and info_hash not in transfers
    }
    if not submitted:
        return {}
    desires = [
        desire
        for info_hash, desire in journal.desires.listing().items()
        if info_hash in submitted
        and not desire.paused
        and desire.error is None
        and not (desire.item_path and not desire.item_files)
    ]
    file_ids = [file_id for desire in desires for file_id, _, _ in desire.item_files]
    progress = journal.desires.progress_of(file_ids)
    return {
        desire.info_hash: (desire, submitted[desire.info_hash])
        for desire in desires
        if not is_placed(desire, progress)
    }


@dataclass(frozen=True, slots=True)
class Unanswered:
    """put.io's outage as the journal's runs tell it: the first of them that heard nothing
    from it began at ``since``, the last ended at ``ended``, for ``why``."""

    since: datetime
    ended: datetime
    why: str


def journaled_outage(runs: Iterable[RunRecord]) -> Unanswered | None:
    """Given runs newest first, return the outage their ends tell of: the runs that ended
    early for put.io's silence (exit 8) since the newest that heard from it; None if that
    one is the newest of all. Runs that say nothing of put.io (still running, died,
    interrupted, the door's own removals, ...) are passed over."""
    streak: list[tuple[datetime, datetime, str]] = []  # (started, ended, why) of each
    for run in runs:
        if run.exit_code == ExitCode.UNREACHABLE and run.finished_at is not None:
            why = (run.summary or "").removeprefix(EARLY_END)
            streak.append((run.started_at, run.finished_at, why))
        elif run.exit_code in _ANSWERED and run.command != REMOVAL_COMMAND:
            break
    if not streak:
        return None
    _, ended, why = max(streak, key=lambda each: each[1])
    return Unanswered(min(started for started, _, _ in streak), ended, why)


def find_blocked(journal: Journal) -> dict[str, Blocked]:
    """Given the journal, return what blocks each live item not paused, by info-hash: the
    newest word of the runs on a file of it not yet placed, if only a person can solve it
    (a local file not ours in the way, noted by the last run that planned it, or that
    placed it after the plan saw the way free: the executor notes that under the same key;
    a full disk that refused its last try). A later try of the file (a download started,
    done or paused) means the trouble is gone, and so does its placement."""
    desires = [
        desire
        for desire in journal.desires.listing().values()
        if desire.item_files and not desire.paused and desire.error is None
    ]
    progress = journal.desires.progress_of(
        [file_id for desire in desires for file_id, _, _ in desire.item_files]
    )
    waiting = {
        desire.info_hash: [
            (file_id, path)
            for file_id, path, _ in desire.item_files
            if (found := progress.get(file_id)) is None or not found.placed_path
        ]
        for desire in desires
    }
    keys = [key for files in waiting.values() for each in files for key in _file_keys(*each)]
    last = journal.last_actions(keys)
    blocked = {}
    for info_hash, files in waiting.items():
        for file_id, path in files:
            if said := _blocking(path, *(last.get(key) for key in _file_keys(file_id, path))):
                blocked[info_hash] = said
                break
    return blocked


def _file_keys(file_id: int, path: str) -> tuple[str, str]:
    """A file's download's journal key, and that of the note of a local file in its way
    (a plan's, or the executor's when placing the file found it: ``IN_THE_WAY``)."""
    return f"download:{file_id}", noted_key(NEEDS_YOU, in_the_way(path).message)


def _blocking(path: str, download: LastAction | None, noted: LastAction | None) -> Blocked | None:
    """Given a file's path, its newest download action and its newest in-the-way note,
    return what blocks it, if the newer of the two says something does."""
    if noted is not None and (download is None or noted.id > download.id):
        note = in_the_way(path)
        return Blocked(note.message, note.hint)
    if download is not None and download.status == "failed" and download.detail == NO_ROOM:
        return Blocked(f"the disk is full: {download.error}", NO_ROOM_HINT)
    return None


def item_of(tree: RemoteTree, item_id: int) -> tuple[str, ItemFiles]:
    """Given the tree and an item's id, return its local path and its mirrored files."""
    files = sorted(tree.files_under(item_id), key=lambda item: item.id)
    return tree.paths[item_id], tuple((item.id, tree.paths[item.id], item.size) for item in files)


def is_placed(desire: Desire, progress: Mapping[int, FileProgress]) -> bool:
    """Given a desire and its files' journal progress, say whether all of it is placed."""
    if not desire.item_files:
        return False
    return all(
        (found := progress.get(file_id)) is not None and found.placed_path
        for file_id, _, _ in desire.item_files
    )
