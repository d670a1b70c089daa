"""Downloads side by side, drawn from one queue that claims the next files a few at a time.

A download starts with journal work: its claim, a check that no other host verified the file
meanwhile, and its action row. Ten thousand small files paid one transaction each for it,
and every download was handed to a worker thread on its own (issue 14: the threads handing
the interpreter lock back and forth cost a third of the CPU). So ``parallel_files`` workers
draw from one ``ClaimAhead``, which claims the next files in one transaction, a few at a
time (fewer the larger they are: a host sharing the journal should not wait for files we
merely queued). A worker busy with one file, however long, holds only that one: the others
draw the rest. The claim runs outside the queue's lock, and for small files before the last
claimed ones are handed out, so the other workers never wait for it.

A file claimed ahead but never handed out (the window closed, a stop, a fatal error) is
withdrawn when the queue closes: its action row deleted and its claim released, in one
transaction, so the journal reads as if it had never been claimed. A ``kill -9`` or a power
cut before that leaves its claim and its row ``started``: this host's next run takes the
claim over if its plan has the file, else frees it (``owners.take_over_from_dead_runs``), and
marks the row interrupted (``Journal.abandon_stale_actions``); a host that never comes back
leaves it to run out (it is a lease). Nothing is stranded.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence

from putio_mirror.core.plan import Download

#: the most files claimed in one transaction: each transaction cost ~0.1 ms of CPU a small
#: file at 16 (its BEGIN and commit, the group commit's handoffs between threads); a host
#: sharing the journal waits at most for 32 small files we merely queued (or MOST_BYTES)
MOST_FILES = 32
#: ... and the most bytes left to fetch among them (the first file is claimed whatever its size)
MOST_BYTES = 64 * 1024 * 1024

#: fewer claimed files than this left, the next few are claimed ahead (small ones only)
LOW_WATER = MOST_FILES // 2
#: files claimed ahead are at most this large: a large file's claim waits for a free worker
SMALL = 4 * 1024 * 1024

Claimed = tuple[Download, int]  # a download and its action row's id


class ClaimAhead:
    """Hands out downloads, in order, claimed and journaled as started; thread-safe.

    ``take`` claims a few downloads in one transaction and returns those it holds now with
    their action ids (the others are done or held elsewhere); ``may_start`` says whether the
    next download may start (False: the queue stops handing out); ``withdraw`` undoes the
    claims and rows of downloads never handed out, in one transaction.
    """

    def __init__(
        self,
        downloads: Sequence[Download],
        *,
        take: Callable[[list[Download]], list[Claimed]],
        may_start: Callable[[Download], bool],
        withdraw: Callable[[list[Claimed]], None],
    ) -> None:
        self._unclaimed = deque(downloads)
        self._claimed: deque[Claimed] = deque()
        self._take = take
        self._may_start = may_start
        self._withdraw = withdraw
        self._lock = threading.Lock()
        self._claimed_or_stopped = threading.Condition(self._lock)
        self._claiming = False  # a worker claims the next few (outside the lock)
        self._stopped = False

    def next(self) -> Claimed | None:
        """Return the next download to perform and its action id; None once there is none,
        or once one may not start (every later call then says None too).

        The claim of the next few runs outside the lock: while one worker claims them, the
        others go on taking the files claimed before. Small files are claimed before the
        last claimed ones are handed out (``LOW_WATER``), so no worker waits for a claim."""
        while True:
            handed, few = self._hand_out()
            if not few:
                return handed
            try:
                self._claim(few)
            except BaseException:
                if handed is not None:  # not handed out after all: withdrawn on close
                    with self._lock:
                        self._claimed.appendleft(handed)
                raise
            if handed is not None:
                return handed
            # else each claimed one is asked again (the claim took a while)

    def _hand_out(self) -> tuple[Claimed | None, list[Download]]:
        """Return the next claimed download to hand out (None: none now) and the next few to
        claim first (``_claiming`` then set; empty: none)."""
        with self._lock:
            while not self._stopped:
                if self._claimed:
                    download, _ = self._claimed[0]
                    if not self._may_start(download):
                        break
                    return self._claimed.popleft(), self._few_ahead()
                if self._claiming:
                    self._claimed_or_stopped.wait()  # another worker's claim is on its way
                    continue
                if not self._unclaimed:
                    return None, []
                if not self._may_start(self._unclaimed[0]):
                    break
                self._claiming = True
                return None, self._next_few()
            self._stopped = True
            return None, []

    def close(self) -> list[Download]:
        """Stop handing out; withdraw what was claimed and not handed out; return the
        downloads never handed out (withdrawn or never claimed), in order."""
        with self._lock:
            self._stopped = True
            while self._claiming:  # a claim on its way is withdrawn with the others
                self._claimed_or_stopped.wait()
            claimed, self._claimed = list(self._claimed), deque()
            unclaimed, self._unclaimed = list(self._unclaimed), deque()
        if claimed:
            self._withdraw(claimed)
        return [download for download, _ in claimed] + unclaimed

    def _claim(self, few: list[Download]) -> None:
        """Given the next few downloads (``_claiming`` set), claim them; whatever happens,
        hand them to the queue: claimed, or (the claim failed) to claim again."""
        taken: list[Claimed] = []
        try:
            taken = self._take(few)
        except BaseException:
            with self._lock:
                self._unclaimed.extendleft(reversed(few))
            raise
        finally:
            with self._lock:
                self._claimed.extend(taken)
                self._claiming = False
                self._claimed_or_stopped.notify_all()

    def _few_ahead(self) -> list[Download]:
        """Return the next few downloads to claim before the claimed ones run out (lock
        held): only small files, only a few left, nobody claiming, and the next may start.
        Empty if not now."""
        if self._claiming or not self._unclaimed or len(self._claimed) >= LOW_WATER:
            return []
        following = self._unclaimed[0]
        if following.size - following.resume_from > SMALL or not self._may_start(following):
            return []
        self._claiming = True
        return self._next_few()

    def _next_few(self) -> list[Download]:
        """Take the next downloads off the unclaimed ones: up to MOST_FILES, and up to
        MOST_BYTES left to fetch (at least one)."""
        few = [self._unclaimed.popleft()]
        left = few[0].size - few[0].resume_from
        while self._unclaimed and len(few) < MOST_FILES:
            following = self._unclaimed[0]
            left += following.size - following.resume_from
            if left > MOST_BYTES:
                break
            few.append(self._unclaimed.popleft())
        return few
