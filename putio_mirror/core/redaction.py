"""Secrets taken out of text before anyone can read it: logs, messages, crash reports.

Pure: the caller says which secrets to hide.
"""

from __future__ import annotations

from collections.abc import Iterable

REDACTED = "********"
#: put.io's tokens have 32 characters; a "secret" of a few would blank every word it
#: occurs in (crash.redact's patterns still hide it where it stands as a credential)
SHORTEST_SECRET = 8


def hide_secrets(text: str, secrets: Iterable[str]) -> str:
    """Given text and secrets, return the text with every occurrence of each secret of
    at least ``SHORTEST_SECRET`` characters replaced by ``REDACTED``; longest first, so a
    secret that contains another goes out whole."""
    hidden = (secret for secret in secrets if len(secret) >= SHORTEST_SECRET)
    for secret in sorted(hidden, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
