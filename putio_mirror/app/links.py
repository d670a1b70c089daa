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
from concurrent.futures import Future, ThreadPoolExecutor

from putio_mirror.core.errors import AuthError

log = logging.getLogger(__name__)

#: A link asked for ahead is used only this soon after it arrived (put.io's last hours).
MAX_AGE_SECONDS = 600.0


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
        self._pending: dict[int, Future[tuple[str, float]]] = {}
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="links")
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
            pending, self._pending = list(self._pending.values()), {}
        for future in pending:
            future.cancel()
        # Runs not begun yet begin, see the prefetcher closed and cancel their futures (one
        # taken by ``url_for`` may be waited on: it must not stay pending).
        self._pool.shutdown(wait=False)

    def _ask_ahead(self, until: int) -> None:
        """Ask for the links of positions up to ``until`` not asked for yet, a whole run at a
        time (the last one may be shorter) (lock held)."""
        while not self._closed:
            start = self._asked_up_to
            end = min(start + self._run, len(self._order))
            if start >= end or (end > until and end - start == self._run):
                return  # nothing left, or a run would go further ahead than asked
            self._asked_up_to = end
            run = [(file_id, Future[tuple[str, float]]()) for file_id in self._order[start:end]]
            self._pending.update(run)
            self._pool.submit(self._ask_run, run)

    def _ask_run(self, run: list[tuple[int, Future[tuple[str, float]]]]) -> None:
        """Given a run of files and their futures, ask for each link in turn and hand it
        over (a future cancelled, or the prefetcher closed: not asked)."""
        for file_id, future in run:
            if self._closed:
                future.cancel()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result((self._asked(file_id), self._clock()))
            except BaseException as error:  # met again by whoever takes this link
                future.set_exception(error)

    def _asked(self, file_id: int) -> str:
        """Ask for a file's link, unless put.io refused the token already: then raise that."""
        if self._refused is not None:
            raise self._refused
        try:
            return self._ask(file_id)
        except AuthError as error:
            self._refused = error
            raise

    def _taken(self, ahead: Future[tuple[str, float]]) -> str | None:
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
