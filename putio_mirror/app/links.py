"""put.io's download links for the next files, asked for ahead of their downloads.

Each file's download starts with an API round trip for its link (``files/{id}/url``): ~0.1 s
away from put.io, serial with the file's own first byte. Many small files pay it once each,
so the links of the next files in the plan are asked for while the current ones download
(issue 14). A link asked for ahead serves only its file's first request, and only while
fresh; every later one (after a failure, a renewal) is asked for anew, as before. A refused
token is the exception: once put.io refused it, no link is asked for again in this run,
ahead or not (each ask would be one more 401 for the same revoked token).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from queue import SimpleQueue

from putio_mirror.core.errors import AuthError

log = logging.getLogger(__name__)

#: A link asked for ahead is used only this soon after it arrived (put.io's last hours).
MAX_AGE_SECONDS = 600.0


class Dropped(Exception):
    """A link asked for ahead that was never asked: the prefetcher closed first."""


class _Ahead:
    """One file's link asked for ahead: set once by the thread that asks for it, waited for
    by the one that takes it. A lock held from the start is the whole latch: a
    ``concurrent.futures.Future`` (a condition, its lock, its waiters) cost a small file
    more than all of the hand-over's other work (issue 14)."""

    __slots__ = ("_error", "_latch", "_link")

    def __init__(self) -> None:
        self._latch = threading.Lock()
        self._latch.acquire()
        self._link: tuple[str, float] | None = None
        self._error: BaseException | None = None

    def set(self, link: tuple[str, float] | None, error: BaseException | None) -> None:
        """Given the link and when it came, or the error met asking for it, or neither (it
        was not asked for), hand it over."""
        self._link, self._error = link, error
        self._latch.release()

    def result(self) -> tuple[str, float]:
        """Wait for the link; return it and when it came, or raise what asking met
        (``Dropped`` if it was never asked for)."""
        with self._latch:  # released once, by ``set``: never held again after
            pass
        if self._link is None:
            raise self._error if self._error is not None else Dropped()
        return self._link


class LinkPrefetcher:
    """Given how to ask for a link and the files in download order, answer ``url_for``
    from links asked for ``ahead`` files in advance, on ``workers`` threads of its own.

    A thread asks for the links of a run of ``ahead // workers`` consecutive files, one
    after another, each handed over as it arrives: as many asked at once as before, but
    one hand-over between threads per run, not per file (each wakes a thread: issue 14)."""

    def __init__(
        self,
        ask: Callable[[int], str],
        order: Sequence[int],
        *,
        ahead: int,
        workers: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ask = ask
        self._order = list(order)
        self._position = {file_id: index for index, file_id in enumerate(self._order)}
        self._ahead = ahead
        self._run = max(1, ahead // max(1, workers))  # files asked for by one thread in a row
        self._clock = clock
        self._lock = threading.Lock()
        self._asked_up_to = 0  # positions below this are asked for (or taken) already
        self._pending: dict[int, _Ahead] = {}
        # runs to ask for, taken by threads of our own: a put in a queue, not a pool's
        # submit with its future. A thread is started for a run only when none is free to
        # take it (up to ``workers``): as many as put.io's distance needs, no more (each
        # one more to hand the GIL to costs every file: issue 14).
        self._runs: SimpleQueue[list[tuple[int, _Ahead]] | None] = SimpleQueue()
        self._workers = max(1, workers)
        self._threads: list[threading.Thread] = []
        # threads waiting for a run (or about to) less runs waiting for a thread; below
        # zero, runs wait for the threads there are (lock held to change)
        self._free = 0
        self._closed = False
        self._refused: AuthError | None = None  # put.io refused the token: ask no more

    def url_for(self, file_id: int) -> str:
        """Given a file id, return a link for it: the one asked for ahead, if fresh."""
        with self._lock:
            ahead = self._pending.pop(file_id, None)
            position = self._position.get(file_id)
            if position is not None:
                # this file's own link is never asked for ahead once it is asked for here
                self._asked_up_to = max(self._asked_up_to, position + 1)
                self._ask_ahead(position + 1 + self._ahead)
        if ahead is not None:
            found = self._taken(ahead)
            if found is not None:
                return found
        return self._asked(file_id)

    def ask_first(self, count: int) -> None:
        """Ask for the first ``count`` files' links now, before any is needed: they come
        while the run gets ready to download (its executor built, its run journaled); at
        least one run of them (see ``_ask_ahead``)."""
        with self._lock:
            self._ask_ahead(max(count, self._run))

    def close(self) -> None:
        """Stop asking; links not yet used are dropped."""
        with self._lock:
            self._closed = True
            self._pending = {}
            threads = len(self._threads)
        # Runs not begun yet begin, see the prefetcher closed and hand over nothing (one
        # taken by ``url_for`` may be waited on: it must not stay pending); then each
        # thread meets its end.
        for _ in range(threads):
            self._runs.put(None)

    def _ask_ahead(self, until: int) -> None:
        """Ask for the links of positions up to ``until`` not asked for yet, a whole run at a
        time (the last one may be shorter) (lock held)."""
        while not self._closed:
            start = self._asked_up_to
            end = min(start + self._run, len(self._order))
            if start >= end or (end > until and end - start == self._run):
                return  # nothing left, or a run would go further ahead than asked
            self._asked_up_to = end
            run = [(file_id, _Ahead()) for file_id in self._order[start:end]]
            self._pending.update(run)
            self._runs.put(run)
            self._free -= 1
            if self._free < 0 and len(self._threads) < self._workers:
                self._free += 1  # one more to take it
                # a daemon: one stuck asking put.io never holds up the process's exit
                thread = threading.Thread(target=self._asking, name="links", daemon=True)
                self._threads.append(thread)
                thread.start()

    def _asking(self) -> None:
        """Ask for the runs put in the queue, one after another, until told to stop."""
        while (run := self._runs.get()) is not None:
            self._ask_run(run)
            with self._lock:
                self._free += 1

    def _ask_run(self, run: list[tuple[int, _Ahead]]) -> None:
        """Given a run of files and their slots, ask for each link in turn and hand it
        over (the prefetcher closed: not asked, nothing handed over)."""
        for file_id, ahead in run:
            if self._closed:
                ahead.set(None, None)
                continue
            try:
                link = (self._asked(file_id), self._clock())
            except BaseException as error:  # met again by whoever takes this link
                ahead.set(None, error)
            else:
                ahead.set(link, None)

    def _asked(self, file_id: int) -> str:
        """Ask for a file's link, unless put.io refused the token already: then raise that."""
        if self._refused is not None:
            raise self._refused
        try:
            return self._ask(file_id)
        except AuthError as error:
            self._refused = error
            raise

    def _taken(self, ahead: _Ahead) -> str | None:
        """Given a link asked for ahead, return it if it came and is fresh; None to ask anew
        (its error, if any, is met again by asking); raise a refused token's error."""
        try:
            url, arrived = ahead.result()
        except AuthError:
            raise
        except Exception as error:
            log.debug("a link asked for ahead failed (%s); asking again", error)
            return None
        return url if self._clock() - arrived < MAX_AGE_SECONDS else None
