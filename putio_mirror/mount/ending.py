"""Ending the mount promptly: once libfuse's loop has ended, the reads in flight fail.

libfuse ends its loop on SIGTERM, SIGINT or SIGHUP, but unmounts only once every
request in flight is answered: a read waiting on a silent node held Ctrl-C and
``systemctl stop`` up for that read's whole outage (30 s by default). libfuse tells
the file system nothing until then, so a thread asks the session whether it has
ended, every ``POLL_SECONDS`` from the file system's ``init`` to its ``destroy``
(after which libfuse frees the session), and calls ``on_end`` once it has.
Where libfuse offers no way to ask, nothing is watched and the mount ends as before.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Callable

import mfusepy

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.2


class SessionWatch:
    """Given what to do when the FUSE session ends, watch for that between ``start``
    (called inside a FUSE callback: ``init``) and ``stop`` (``destroy``)."""

    def __init__(self, on_end: Callable[[], None], poll_seconds: float = POLL_SECONDS) -> None:
        self._on_end = on_end
        self._poll_seconds = poll_seconds
        self._stopped = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        session = _current_session()
        if session is None:
            logger.debug("mount: libfuse offers no session to watch; reads end with their own")
            return
        watcher = threading.Thread(
            target=self._watch, args=(session,), name="mount-ending", daemon=True
        )
        watcher.start()

    def stop(self) -> None:
        """Stop asking: once this returns, the session is never touched again."""
        with self._lock:
            self._stopped.set()

    def _watch(self, session: int) -> None:
        while not self._stopped.wait(self._poll_seconds):
            with self._lock:
                if self._stopped.is_set():
                    return
                ended = bool(_exited(session))
            if ended:
                logger.info("mount: unmounting; reads still waiting fail now")
                self._on_end()
                return


def _current_session() -> int | None:
    """Inside a FUSE callback, return the address of this mount's ``fuse_session``, or
    None if libfuse cannot say."""
    libfuse = mfusepy._libfuse
    get_session = getattr(libfuse, "fuse_get_session", None)
    exited = getattr(libfuse, "fuse_session_exited", None)
    context = libfuse.fuse_get_context()
    if get_session is None or exited is None or not context or not context.contents.fuse:
        return None
    get_session.restype, get_session.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
    exited.restype, exited.argtypes = ctypes.c_int, [ctypes.c_void_p]
    session: int | None = get_session(context.contents.fuse)
    return session


def _exited(session: int) -> int:
    answer: int = mfusepy._libfuse.fuse_session_exited(session)
    return answer
