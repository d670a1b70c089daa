"""SIGTERM/SIGINT as a flag: the executor finishes the current chunk, journals, and stops.
SIGHUP as another, which the watcher reads as "read the config again"."""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any, Self


class _SignalFlag:
    """A context manager that turns some signals into ``is_set()`` while it is entered.

    Outside the main thread it is a plain flag (signals can't be caught there); on leaving,
    the handlers found on entering are put back.
    """

    def __init__(self, *signals: int) -> None:
        self._signals = signals
        self._event = threading.Event()
        self._previous: dict[int, Any] = {}

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del signum, frame
        self._event.set()

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            for signum in self._signals:
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


class StopFlag(_SignalFlag):
    """SIGTERM (and a first Ctrl-C) as ``is_set()``; a second Ctrl-C restores the default
    behaviour and interrupts at once."""

    def __init__(self) -> None:
        super().__init__(signal.SIGTERM, signal.SIGINT)
        #: the signal that set the flag first (None: set by the program, or not yet)
        self.signum: int | None = None

    @property
    def by_ctrl_c(self) -> bool:
        """Whether a Ctrl-C (SIGINT), not a supervisor's SIGTERM, asked to stop."""
        return self.signum == signal.SIGINT

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if not self.is_set():
            self.signum = signum
        super()._handle(signum, frame)


class Hangup(_SignalFlag):
    """SIGHUP as ``is_set()`` instead of the end of the process (the default), where the
    platform has SIGHUP."""

    def __init__(self) -> None:
        hangup = getattr(signal, "SIGHUP", None)
        super().__init__(*(() if hangup is None else (hangup,)))
