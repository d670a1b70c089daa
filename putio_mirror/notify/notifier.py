"""The Notifier: the one object a run tells its events to.

Events are queued and handed to the outlets on a thread of its own, in order, so a slow
hook or an unreachable notification service never holds up a download; ``close`` waits
for the queue to empty (each outlet has its own timeout). The first few items placed (or
failed) are each a message; the rest of a run's are one message at its end. A hook that
hangs or an *arr that does not answer is let be for the rest of the run, so the end of a
run that placed many items waits out one timeout, not one an item. Whatever goes wrong there is a
warning in the log, never a failed run. A run with no outlets configured makes a Notifier
that does nothing and starts no thread.

A run told to stop (SIGTERM from systemd, Ctrl-C) gives the queue a short grace at its end,
not a hook's timeout (five minutes by default): then the hook running is killed, and
what was not handed on is said in the log ("not told"), for a person to catch up on.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from types import TracebackType

from putio_mirror.notify.arr import rescan
from putio_mirror.notify.hook import run_hook
from putio_mirror.notify.messages import send
from putio_mirror.notify.values import (
    ArrServer,
    DiskFull,
    Event,
    EventName,
    ItemFailed,
    ItemPlaced,
    More,
    Outlets,
    Trouble,
)

log = logging.getLogger(__name__)

#: how long one notification service may take to answer
SEND_TIMEOUT_SECONDS = 15.0
#: how long a run told to stop still waits for its events to be handed on; then again
#: as long for what cannot be cut short (a notification service's or an *arr's answer)
STOP_GRACE_SECONDS = 1.0
_LOOK_EVERY_SECONDS = 0.1
#: the items of a kind (placed, failed) whose messages go one by one in a run; the rest
#: go in one message at its end
TOLD_ONE_BY_ONE = 3
_DONE = None


class Notifier:
    """Hands each event to the outlets that want it; thread-safe; a context manager."""

    def __init__(self, outlets: Outlets, stopping: Callable[[], bool] = lambda: False) -> None:
        self._outlets = outlets
        self._stopping = stopping  # the run was told to stop: the queue's grace is short
        self._given_up = threading.Event()  # set by close: what is left is only logged
        self._queue: queue.Queue[Event | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._disk_full_said = False
        #: the outlets that did not answer in this run (the hook, *arr URLs): let be
        self._silent: set[str] = set()
        #: the names of the items whose messages wait for the run's end, by event (the
        #: notify thread's own)
        self._held: dict[EventName, list[str]] = {}
        self._told: dict[EventName, int] = {}

    def __enter__(self) -> Notifier:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def tell(self, event: Event) -> None:
        """Queue the event for the outlets that want it (a full disk once per run)."""
        if not self._wanted(event):
            return
        with self._lock:
            if isinstance(event, DiskFull):
                if self._disk_full_said:
                    return
                self._disk_full_said = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="notify", daemon=True)
                self._thread.start()
        self._queue.put(event)

    def close(self) -> None:
        """Wait until every queued event was handed on (or failed), then stop the thread;
        if the run is told to stop, only for a short grace: then the hook running is killed
        and what is left is logged, not told."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(_DONE)
        while thread.is_alive() and not self._stopping():
            thread.join(_LOOK_EVERY_SECONDS)
        if thread.is_alive():
            thread.join(STOP_GRACE_SECONDS)
            self._given_up.set()
            # left behind after that, a daemon thread, if a call it is in does not end
            thread.join(STOP_GRACE_SECONDS)

    def _wanted(self, event: Event) -> bool:
        outlets = self._outlets
        if isinstance(event, ItemPlaced) and (outlets.on_item_placed or outlets.arr):
            return True
        return bool(outlets.urls) and event.event in outlets.events

    def _work(self) -> None:
        while (event := self._queue.get()) is not _DONE:
            if self._given_up.is_set():
                _not_told(event.event, _named(event))
                continue
            try:
                self._hand_on(event)
            except Exception:  # a bug here must not end the run, nor silence later events
                log.warning("handing on %s failed", event.event, exc_info=True)
        for name, items in self._held.items():  # the run's end: the rest, one message each
            if self._given_up.is_set():
                _not_told(name, ", ".join(items))
            else:
                self._send(More(name, tuple(items)))

    def _hand_on(self, event: Event) -> None:
        outlets = self._outlets
        if isinstance(event, ItemPlaced):
            if outlets.on_item_placed:
                self._run_hook(event)
            for server in outlets.arr:
                self._rescan(server, event)
        if outlets.urls and event.event in outlets.events:
            if isinstance(event, ItemPlaced | ItemFailed) and self._hold(event):
                return
            self._send(event)

    def _hold(self, event: ItemPlaced | ItemFailed) -> bool:
        """Given an item's event, say whether its message waits for the run's end: the
        first ``TOLD_ONE_BY_ONE`` of a kind are sent as they come."""
        told = self._told[event.event] = self._told.get(event.event, 0) + 1
        if told <= TOLD_ONE_BY_ONE:
            return False
        self._held.setdefault(event.event, []).append(event.name)
        return True

    def _send(self, event: Event | More) -> None:
        for problem in send(self._outlets.urls, event, SEND_TIMEOUT_SECONDS):
            log.warning("notification of %s failed: %s", event.event, problem)

    def _run_hook(self, event: ItemPlaced) -> None:
        said = f"hooks.on_item_placed for {event.name}"
        if _HOOK in self._silent:
            log.warning("%s: not run: it hung earlier in this run", said)
            return
        outlets = self._outlets
        trouble = run_hook(outlets.on_item_placed, event, outlets.hook_timeout, self._given_up)
        self._warn(said, trouble, _HOOK, "not run again in this run")

    def _rescan(self, server: ArrServer, event: ItemPlaced) -> None:
        said = f"asking for an import of {event.name}"
        if server.url in self._silent:
            log.warning(
                "%s: %s at %s: not asked: it did not answer earlier in this run",
                said,
                server.kind,
                server.url,
            )
            return
        self._warn(said, rescan(server, event), server.url, "not asked again in this run")

    def _warn(self, said: str, trouble: Trouble | None, outlet: str, let_be: str) -> None:
        if trouble is None:
            return
        if trouble.silent:
            self._silent.add(outlet)
            log.warning("%s: %s; %s", said, trouble.text, let_be)
        else:
            log.warning("%s: %s", said, trouble.text)


#: the hook's name among the silent outlets (the others are *arr URLs)
_HOOK = "hooks.on_item_placed"


def _named(event: Event) -> str:
    return str(getattr(event, "name", "") or getattr(event, "message", ""))


def _not_told(event: str, about: str) -> None:
    log.warning(
        "%s not told (hooks, *arr, notifications): the run was told to stop: %s", event, about
    )
