"""Logging set-up: console (stderr) or a log file, and a filter that keeps the token out.

The token is never logged on purpose; the redacting filter is a second line
of defence should a foreign library ever echo a header or URL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

HANDLER_NAME = "putio-mirror"
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class Redact(logging.Filter):
    """Pass each record's final message through ``redact`` (the one that printed errors and
    crash reports go through too: the token, whatever its source, and credential shapes)."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self._redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


#: set (``extra={SUMMARIZED: True}``) on a record the run's summary tells on stderr too
SUMMARIZED = "summarized"


def _not_summarized(record: logging.LogRecord) -> bool:
    # On the console the summary's "failed:" line says it, with its hint, after the run:
    # the same failure twice in other words is noise at 7 a.m. A log file keeps them all.
    return not getattr(record, SUMMARIZED, False)


def _handler(log_file: Path | None) -> logging.Handler:
    if log_file is None:
        return logging.StreamHandler()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    from logging.handlers import WatchedFileHandler  # ~1 ms a console-only run never pays

    # Reopens the file when logrotate has moved it away, so a long watch keeps logging to
    # the file at that path (no copytruncate needed).
    return WatchedFileHandler(log_file, encoding="utf-8")


def setup_logging(
    log_file: Path | None, level: str, verbose: int, redact: Callable[[str], str]
) -> None:
    """Given the settings' log destination and level, configure the root logger once."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == HANDLER_NAME:
            root.removeHandler(handler)
            handler.close()
    fresh = _handler(log_file)
    fresh.setFormatter(logging.Formatter(FORMAT))
    fresh.addFilter(Redact(redact))
    if log_file is None:
        fresh.addFilter(_not_summarized)
    fresh.set_name(HANDLER_NAME)  # marks ours, so a second set-up replaces it
    root.addHandler(fresh)
    # verbose < 0 is --quiet: only problems, so a cron job mails only when one needs a person
    wanted = {2: logging.DEBUG, 1: logging.INFO, -1: logging.WARNING}.get(min(verbose, 2), level)
    root.setLevel(wanted)
    for noisy in ("urllib3", "watchdog"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
