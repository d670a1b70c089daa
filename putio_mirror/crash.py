"""Crash reports: version, platform and traceback in a file, so a bug is one line on screen."""

from __future__ import annotations

import os
import platform
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path

from putio_mirror import __version__


def crash_dir(env: dict[str, str] | None = None) -> Path:
    environ = os.environ if env is None else env
    state = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "putio-mirror" / "crash-reports"


def write_crash_report(error: BaseException) -> Path:
    """Given an unexpected exception, write a report and return its path."""
    folder = crash_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"crash-{stamp}-{os.getpid()}.txt"
    text = "\n".join(
        [
            f"putio-mirror {__version__}",
            f"python {sys.version.split()[0]} on {platform.platform()}",
            f"argv: {' '.join(sys.argv[1:])}",
            "",
            "".join(traceback.format_exception(error)),
        ]
    )
    token = os.environ.get("PUTIO_TOKEN")
    if token:
        text = text.replace(token, "********")
    path.write_text(text, encoding="utf-8")
    return path
