"""SIGTERM/SIGINT as a flag: the executor finishes the current chunk, journals, and stops.
SIGHUP as another, which the watcher reads as "read the config again"."""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any


class StopFlag:
    """A context manager that turns SIGTERM (and a first Ctrl-C) into ``is_set()``.

    A second Ctrl-C restores the default behaviour and interrupts at once.
    Outside the main thread it is a plain flag (signals can't be caught there).
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._previous: dict[int, Any] = {}
        #: the signal that set the flag first (None: set by the program, or not yet)
        self.signum: int | None = None

    @property
    def by_ctrl_c(self) -> bool:
        """Whether a Ctrl-C (SIGINT), not a supervisor's SIGTERM, asked to stop."""
        return self.signum == signal.SIGINT

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del frame
        if self._event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if not self._event.is_set():
            self.signum = signum
        self._event.set()

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


class Hangup:
    """A context manager that turns SIGHUP into ``is_set()`` instead of the end of the
    process (the default), where the platform has SIGHUP and in the main thread only."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._previous: Any = None
        self._installed = False

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del signum, frame
        self._event.set()

    def __enter__(self) -> Hangup:
        hangup = getattr(signal, "SIGHUP", None)
        if hangup is not None and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(hangup, self._handle)
            self._installed = True
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._installed:
            signal.signal(signal.SIGHUP, self._previous)
            self._installed = False
