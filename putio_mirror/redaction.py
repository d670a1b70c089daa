"""Secrets taken out of text before anyone can read it: logs, messages, crash reports.

Pure: the caller says which secrets to hide.
"""

from __future__ import annotations

from collections.abc import Iterable

REDACTED = "********"


def hide_secrets(text: str, secrets: Iterable[str]) -> str:
    """Given text and secrets, return the text with every occurrence of each secret
    replaced by ``REDACTED``; longest first, so a secret that contains another goes out
    whole."""
    for secret in sorted((secret for secret in secrets if secret), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
