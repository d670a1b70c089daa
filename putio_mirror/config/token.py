"""The put.io token: where it is read from ($PUTIO_TOKEN, ``putio.token_file``,
``putio.token``, then the file ``login`` writes), checked to be one printable line, wrapped
in ``Secret`` at once; no message built here ever quotes it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from putio_mirror.config.expanding import expand, unset_problem
from putio_mirror.config.schema import PutioSection, Secret
from putio_mirror.local.folders import config_folder

TOKEN_ENV = "PUTIO_TOKEN"  # noqa: S105 - the variable's name, not a token
DEFAULT_TOKEN_FILE = "token"  # noqa: S105 - a file name in the config folder
# What may stand in an HTTP header value as the token: visible ASCII, no spaces.
TOKEN_TEXT = re.compile(r"[\x21-\x7e]+")
TOKEN_HINT = (
    f"run `putio-mirror login`, or set {TOKEN_ENV}, or putio.token_file (a file holding only "
    "the token) in the config file"
)


def resolve_token(
    putio: PutioSection, env: Mapping[str, str], source: str
) -> tuple[Secret | None, tuple[str, ...]]:
    """Given the putio section, return the token: $PUTIO_TOKEN, then token_file, then token,
    with the problem (never quoting it) if the chosen one is not a single printable line."""
    from_env = env.get(TOKEN_ENV, "")
    if from_env.strip():
        return checked_token(from_env, f"${TOKEN_ENV}")
    if putio.token_file:
        if unset_problem(putio.token_file, env):
            return None, ()  # a problem of the file, not of the token (settings tells it)
        path = expand(putio.token_file, env)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or "not UTF-8 text"
            return None, (f"{source}: putio.token_file: cannot read {path}: {reason}",)
        if not text.strip():
            return None, (f"{source}: putio.token_file: {path} is empty",)
        return checked_token(text, f"{source}: putio.token_file: {path}")
    if putio.token and putio.token.strip():
        return checked_token(putio.token, f"{source}: putio.token")
    default = token_file(putio, env)
    if default.is_file():  # where `login` writes when no token_file is configured
        return resolve_token(putio.model_copy(update={"token_file": str(default)}), env, source)
    return None, ()


def token_file(putio: PutioSection, env: Mapping[str, str]) -> Path:
    """Given the putio section, return the token file: the configured one, else the default."""
    if putio.token_file:
        return expand(putio.token_file, env)
    return config_folder() / DEFAULT_TOKEN_FILE


def checked_token(text: str, where: str) -> tuple[Secret | None, tuple[str, ...]]:
    """Given a token as read (blank lines and surrounding spaces allowed) and where it was
    read, return it as a Secret, or None and a problem that names ``where`` but never quotes
    the text: a token goes verbatim into an HTTP header, where a second line (a comment, say)
    or a control character makes http.client fail with the token in its message."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        return None, (
            f"{where}: should hold only the token, on one line, but holds {len(lines)} "
            "non-empty lines (comments are not allowed there)",
        )
    token = lines[0].strip()
    if not TOKEN_TEXT.fullmatch(token):
        return None, (
            f"{where}: the token holds a space, a control character or a non-ASCII "
            "character; put.io tokens are letters and digits: copy it again",
        )
    return Secret(token), ()


def permission_warnings(
    putio: PutioSection, env: Mapping[str, str], config_path: Path | None
) -> tuple[str, ...]:
    holders = []
    if putio.token and config_path is not None:
        holders.append(config_path)
    if putio.token_file:
        holders.append(expand(putio.token_file, env))
    return tuple(
        f"{holder} holds the put.io token and other users can read it; run: chmod 600 {holder}"
        for holder in holders
        if readable_by_others(holder)
    )


def readable_by_others(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & 0o077)
    except OSError:
        return False
