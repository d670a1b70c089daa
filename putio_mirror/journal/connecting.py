"""Reaching the journal's database again and again through a long run, while the world
around it changes: a SQLite file deleted or moved away (``PinnedFile``), a PostgreSQL
server restarted (``Reconnecting``). Private to ``engine.py``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import OperationalError

from putio_mirror.core.errors import JournalError

log = logging.getLogger(__name__)

#: how long a run waits for its database server to take connections again: a restart
#: (an upgrade, a configuration change, a failover) takes seconds
PATIENCE_SECONDS = 30.0
#: how long a run that the journal stopped waits, on its way out, to journal its end
#: (``Database.last_word``): a server back a moment later still hears why the run
#: stopped, and the exit is never held up for long
LAST_WORD_SECONDS = 5.0
_FIRST_PAUSE, _LONGEST_PAUSE = 0.25, 2.0

_GONE_HINT = (
    "this run stopped rather than journal on into a file nobody will read again; put it "
    "back before the next run to keep its history, else the next run starts a new journal "
    "there: the files fetched so far are on disk and it takes them over"
)


class JournalGoneError(JournalError):
    """The journal's SQLite file was deleted or moved away while open: no transaction of
    this handle will ever work again, so a process that keeps it (``serve``) must stop
    rather than try again at every poll."""


class PinnedFile:
    """Which file a SQLite journal is, so that every transaction can check it is still
    the one at its path: a journal deleted or moved away while open (a person tidying up,
    a backup tool) is written on into a file no run will read again, and that run's
    history silently lost."""

    def __init__(self, path: Path, shown: str) -> None:
        """Given the journal's file (it must exist) and its URL as shown, remember which it is;
        raise OSError if it cannot be looked at."""
        self._path = path.absolute()
        self._shown = shown
        found = self._path.stat()
        self._identity = (found.st_dev, found.st_ino)

    def check(self) -> None:
        """Raise JournalGoneError if the journal file is no longer at its path."""
        try:
            found = self._path.stat()
        except FileNotFoundError:
            pass
        except OSError:  # cannot tell (a share gone stale): SQLite will say what it finds
            return
        else:
            if (found.st_dev, found.st_ino) == self._identity:
                return
        raise JournalGoneError(
            f"the journal {self._shown} was deleted or moved away while this run was using it",
            _GONE_HINT,
        )


def open_only_as_it_is(engine: Engine, path: Path) -> None:
    """Given a SQLite journal's engine and its file (pinned: it exists), have every
    connection made from now on open that file read-write, never create it (a URI with
    ``mode=rw``). A thread that looked for the file just before it was moved away must
    fail to connect, not make a new, empty journal there: SQLite, opening an empty file
    with a ``-wal`` beside it, deletes that ``-wal``, where the moved journal's rows were
    still waiting for a checkpoint, and the journal put back (as ``_GONE_HINT`` asks)
    holds none of them."""
    target = f"file:{quote(str(path.absolute()))}?mode=rw"

    def read_write(_dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
        cargs[:1] = [target]
        cparams["uri"] = True

    event.listen(engine, "do_connect", read_write)


class Reconnecting:
    """Connections to a database server that a run waits for through a restart.

    Once the server was reached, a connection it refuses (restarting, or not taking
    connections yet) is asked for again for up to ``patience`` seconds: a run over hours
    need not stop for a server restarted under it. The pool pings a connection before
    handing it out, so one the restart cut is replaced here too; a transaction the restart
    cut in the middle fails as ever (its work is not known here to be safe to repeat: a
    group of work is run again alone, see ``grouped.py``). Before the server was ever
    reached (a wrong URL, a password refused) nothing is waited for."""

    def __init__(
        self,
        engine: Engine,
        patience: float = PATIENCE_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        *,
        reached: bool = False,
    ) -> None:
        """``reached``: the server was reached before (by another ``Reconnecting``), so
        even a first connection refused is waited for."""
        self._engine = engine
        self._patience = patience
        self._sleep = sleep
        self._clock = clock
        self._reached = reached

    def connect(self) -> Connection:
        """Return a connection; raise SQLAlchemy's error if the server cannot be reached
        (at once before it ever was, else after ``patience`` seconds of trying)."""
        deadline: float | None = None
        pause = _FIRST_PAUSE
        while True:
            try:
                conn = self._engine.connect()
            except OperationalError as error:
                if not self._reached or self._patience <= 0:
                    raise
                now = self._clock()
                if deadline is None:
                    deadline = now + self._patience
                    log.warning(
                        "the journal's database cannot be reached (%s); waiting up to %d s "
                        "for it to come back",
                        str(error.orig).splitlines()[0],
                        self._patience,
                    )
                if now >= deadline:
                    raise
                self._sleep(min(pause, deadline - now))
                pause = min(pause * 2, _LONGEST_PAUSE)
                continue
            self._reached = True
            return conn
