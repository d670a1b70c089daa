"""Group commit: the journal work of several threads in one transaction, each still told
its own outcome once that transaction committed.

Eight download threads each start and end a small file every few milliseconds; one
transaction each cost a pool checkout, ``BEGIN IMMEDIATE``, a wait for SQLite's write
lock and a commit, which profiled as the largest share of a small file's CPU. So a
thread hands its work (a function that calls the journal) to ``GroupCommit.run``; while
one thread commits, the work handed in meanwhile waits, and the next thread to commit
takes all of it in one transaction. Nothing is promised before its commit: ``run``
returns only once the transaction holding the work committed.

If any work in a group raises (or the commit fails), the group is rolled back and every
work of it is run again alone, in a transaction of its own, so each gets the outcome it
would have had by itself. Work is therefore run more than once now and then: it must be
journal calls (rolled back with the group), and side effects of its own that are safe to
repeat.

Work may need something done before any transaction holds it (``first``: a folder synced,
so the rename the work journals is durable first). The thread that commits a group runs
each distinct ``first`` of it once, before the transaction: eight files renamed into one
folder cost one sync of it, not eight.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class _Work(Generic[T]):
    __slots__ = ("done", "error", "first", "result", "work")

    def __init__(self, work: Callable[[], T], first: Callable[[], None] | None) -> None:
        self.work = work
        self.first = first
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None


class GroupCommit:
    """Runs work handed in by any thread in shared transactions (see the module's doc)."""

    def __init__(self, transaction: Callable[[], AbstractContextManager[None]]) -> None:
        """``transaction`` opens one write transaction that the journal's calls made in it,
        on this thread, join (``Database.batch``)."""
        self._transaction = transaction
        self._pending: list[_Work[Any]] = []
        self._pending_lock = threading.Lock()
        self._committing = threading.Lock()  # one group at a time

    def run(self, work: Callable[[], T], first: Callable[[], None] | None = None) -> T:
        """Given journal work (and what must be done before it, if anything), run it in a
        transaction shared with the work other threads hand in meanwhile; return its result
        (or raise its error, or ``first``'s) once that committed."""
        item: _Work[T] = _Work(work, first)
        with self._pending_lock:
            self._pending.append(item)
        with self._committing:
            if not item.done:  # else a thread that committed before us took it
                with self._pending_lock:
                    group, self._pending = self._pending, []
                self._commit(group)
        if item.error is not None:
            raise item.error
        return item.result  # type: ignore[return-value]  # set: the work returned

    def _commit(self, group: list[_Work[Any]]) -> None:
        try:
            self._run(self._first(group))
        finally:
            for item in group:
                item.done = True

    def _run(self, group: list[_Work[Any]]) -> None:
        if len(group) <= 1:
            for item in group:
                self._alone(item)
            return
        try:
            with self._transaction():
                results = [item.work() for item in group]
        except Exception:
            for item in group:  # rolled back: each on its own, for its own outcome
                self._alone(item)
            return
        except BaseException as error:  # e.g. KeyboardInterrupt: every owner hears of it
            for item in group:
                item.error = error
            return
        for item, result in zip(group, results, strict=True):
            item.result = result

    def _first(self, group: list[_Work[Any]]) -> list[_Work[Any]]:
        """Run each distinct ``first`` of the group once; return the work whose ``first``
        (if any) succeeded, having given the others its error."""
        failed: dict[Callable[[], None], BaseException] = {}
        for first in dict.fromkeys(item.first for item in group if item.first is not None):
            try:
                first()
            except Exception as error:
                failed[first] = error
        if not failed:
            return group
        for item in group:
            if item.first in failed:
                item.error = failed[item.first]
        return [item for item in group if item.first not in failed]

    def _alone(self, item: _Work[Any]) -> None:
        try:
            with self._transaction():
                item.result = item.work()
        except BaseException as error:
            item.error = error
