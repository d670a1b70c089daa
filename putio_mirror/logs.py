"""Logging set-up: console (stderr) or a log file, and a filter that keeps the token out.

The token is never logged on purpose; the redacting filter is a second line
of defence should a foreign library ever echo a header or URL.
"""

from __future__ import annotations

import logging
from pathlib import Path

from putio_mirror.redaction import hide_secrets

HANDLER_NAME = "putio-mirror"
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class RedactSecrets(logging.Filter):
    """Replace every occurrence of the secrets in a record's final message."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = [secret for secret in secrets if secret]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = hide_secrets(message, self._secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def _handler(log_file: Path | None) -> logging.Handler:
    if log_file is None:
        return logging.StreamHandler()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    from logging.handlers import WatchedFileHandler  # ~1 ms a console-only run never pays

    # Reopens the file when logrotate has moved it away, so a long watch keeps logging to
    # the file at that path (no copytruncate needed).
    return WatchedFileHandler(log_file, encoding="utf-8")


def setup_logging(log_file: Path | None, level: str, verbose: int, secret: str | None) -> None:
    """Given the settings' log destination and level, configure the root logger once."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == HANDLER_NAME:
            root.removeHandler(handler)
            handler.close()
    fresh = _handler(log_file)
    fresh.setFormatter(logging.Formatter(FORMAT))
    fresh.addFilter(RedactSecrets([secret] if secret else []))
    fresh.set_name(HANDLER_NAME)  # marks ours, so a second set-up replaces it
    root.addHandler(fresh)
    wanted = logging.DEBUG if verbose >= 2 else logging.INFO if verbose == 1 else level
    root.setLevel(wanted)
    for noisy in ("urllib3", "watchdog"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
