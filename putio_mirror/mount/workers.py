"""Threads for read-ahead, kept between jobs instead of one started per request.

Starting a thread waits until the new thread has run, which needs the GIL: with the
mount's other threads busy copying bytes that took milliseconds, and it happened in
the FUSE thread, on every read-ahead request (profiled on a 512 MiB sequential read:
over half the FUSE thread's time was ``Thread.start``). A job goes to an idle worker
if there is one; only otherwise is a thread started, so the pool grows to the most
requests ever in flight at once and no job waits for another to finish. A worker
idle for ``IDLE_SECONDS`` ends.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

IDLE_SECONDS = 60.0

Job = Callable[[], None]


class Workers:
    """Daemon threads that run the jobs handed to ``submit``, each at once."""

    def __init__(self, idle_seconds: float = IDLE_SECONDS) -> None:
        self._jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._idle_seconds = idle_seconds
        #: workers waiting for a job, less the jobs handed to them not yet taken
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, job: Job) -> None:
        with self._lock:
            spare = self._idle > 0
            if spare:
                self._idle -= 1
        if spare:
            self._jobs.put(job)
        else:
            threading.Thread(target=self._work, args=(job,), daemon=True).start()

    def _work(self, job: Job) -> None:
        while True:
            try:
                job()
            except Exception:  # a job reports its own failures; this is a bug's last stop
                logger.exception("mount: a read-ahead job failed")
            with self._lock:
                self._idle += 1
            next_job = self._next()
            if next_job is None:
                return
            job = next_job

    def _next(self) -> Job | None:
        """Return the next job, or None once idle long enough with none handed over."""
        while True:
            try:
                return self._jobs.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # no job is on its way to this worker
                        self._idle -= 1
                        return None
