"""Crash reports: version, platform and traceback in a file, so a bug is one line on screen.

A report may be attached to a public issue, so it is written for the user alone (0600)
and every secret is taken out first: the configured token, whatever its source
(``remember_secret``), ``$PUTIO_TOKEN``, and anything shaped like a credential in an
HTTP header or URL. ``redact`` does the same for every message the CLI prints.
"""

from __future__ import annotations

import os
import platform
import re
import sys
import threading
import traceback
from datetime import UTC, datetime
from pathlib import Path

from putio_mirror import __version__
from putio_mirror.core.redaction import REDACTED, hide_secrets
from putio_mirror.local.folders import state_folder

_TOKEN_ENV = "PUTIO_TOKEN"  # noqa: S105 - the variable's name, not a token
# Credentials as foreign libraries may echo them: a header ("Authorization: token X",
# "Bearer X"), a header value's repr (b'token X\n…' from http.client), a URL's query.
_PATTERNS = (
    re.compile(r"(?i)(authorization['\"]?\s*[:=,]\s*['\"]?(?:token|bearer)\s+)[^\s'\",\\]+"),
    re.compile(r"(?i)(['\"](?:token|bearer)\s+)[^\s'\",\\]+"),
    re.compile(r"(?i)((?:oauth_token|access_token)=)[^&\s'\",\\]+"),
)
_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def remember_secret(secret: str) -> None:
    """Given a secret in use (the configured token), have ``redact`` take it out from now on."""
    if secret:
        with _secrets_lock:
            _secrets.add(secret)


def redact(text: str) -> str:
    """Given any text, return it with every known secret and credential-shaped value hidden."""
    with _secrets_lock:
        secrets = set(_secrets)
    from_env = os.environ.get(_TOKEN_ENV, "").strip()
    if from_env:
        secrets.add(from_env)
    text = hide_secrets(text, secrets)
    for pattern in _PATTERNS:
        text = pattern.sub(rf"\g<1>{REDACTED}", text)
    return text


def write_crash_report(error: BaseException) -> Path:
    """Given an unexpected exception, write a redacted report readable only by the user and
    return its path; raise OSError if it cannot be written."""
    folder = state_folder() / "crash-reports"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
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
    # Created 0600 from the start (never readable by others, not even for a moment);
    # O_NOFOLLOW: a symlink planted at the name must not redirect the report.
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    descriptor = os.open(path, flags, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        os.fchmod(descriptor, 0o600)  # an earlier report of the same second kept its mode
        stream.write(redact(text))
    return path
